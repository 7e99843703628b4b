//! The fuzz targets: each writes the mutated bytes where the real loader expects a file and
//! calls the public entry point a user's input reaches.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use robovlm_core::paligemma::ImageProcessor;
use robovlm_core::pixels::Limits;
use robovlm_core::robovlms::{RoboVlmsConfig, discrete_inference_ids, instruction_batch};
use robovlm_core::weights::Checkpoint;
use robovlm_core::{PaliGemmaConfig, PaliGemmaProcessor, RgbImage};

/// Where a target runs: its scratch folder and the corpus.
pub struct Context<'a> {
    /// Scratch folder of this target (inputs are written here).
    pub dir: &'a Path,
    /// The corpus root.
    pub corpus: &'a Path,
}

/// One fuzz target.
pub struct Target {
    /// Name (also the corpus subfolder).
    pub name: &'static str,
    /// Whether the format is text (enables token-level mutations).
    pub text: bool,
    /// Which corpus files are seeds (by file name).
    pub seed: fn(&str) -> bool,
    /// Feeds one input to the loader; `true` when it was accepted.
    pub run: fn(&[u8], &Context<'_>) -> bool,
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target { name: "safetensors", text: false, seed: any, run: safetensors },
    Target { name: "shards", text: true, seed: |n| n.ends_with(".index.json"), run: shard_index },
    Target { name: "pt", text: false, seed: any, run: pytorch },
    Target { name: "hf_config", text: true, seed: any, run: hf_config },
    Target { name: "robovlms_config", text: true, seed: any, run: robovlms_config },
    Target { name: "preprocessor", text: true, seed: any, run: preprocessor },
    Target { name: "text", text: true, seed: any, run: text },
    Target { name: "image", text: false, seed: any, run: image },
    Target { name: "observation", text: false, seed: any, run: observation },
];

fn any(_: &str) -> bool {
    true
}

/// The seed files of `target`: `(file name, bytes)`, sorted by name.
pub(crate) fn seeds(target: &Target, corpus: &Path) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(corpus.join(target.name))? {
        let path = entry?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if path.is_file() && (target.seed)(&name) {
            out.push((name, std::fs::read(&path)?));
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(std::io::Error::other(format!("no seeds for {} in {}", target.name, corpus.display())));
    }
    Ok(out)
}

/// Writes `input` to `dir/name` and returns the path (scratch I/O failing is a harness bug).
fn write(ctx: &Context<'_>, name: &str, input: &[u8]) -> PathBuf {
    let path = ctx.dir.join(name);
    std::fs::write(&path, input).unwrap_or_else(|e| panic!("fuzz harness: writing {}: {e}", path.display()));
    path
}

/// Opens a checkpoint and reads every tensor.
fn read_all(checkpoint: &Checkpoint) -> bool {
    checkpoint.keys().iter().all(|k| checkpoint.read(k).is_ok())
}

fn safetensors(input: &[u8], ctx: &Context<'_>) -> bool {
    Checkpoint::open(&write(ctx, "input.safetensors", input)).is_ok_and(|c| read_all(&c))
}

fn shard_index(input: &[u8], ctx: &Context<'_>) -> bool {
    let model = ctx.dir.join("model");
    if !model.is_dir() {
        // The shards stay valid; the index is what is fuzzed.
        std::fs::create_dir_all(&model).expect("fuzz harness: scratch folder");
        for name in ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"] {
            std::fs::copy(ctx.corpus.join("shards").join(name), model.join(name)).expect("fuzz harness: shard copy");
        }
    }
    std::fs::write(model.join("model.safetensors.index.json"), input).expect("fuzz harness: index");
    Checkpoint::discover(&model).is_ok_and(|c| read_all(&c))
}

fn pytorch(input: &[u8], ctx: &Context<'_>) -> bool {
    Checkpoint::open(&write(ctx, "input.pt", input)).is_ok_and(|c| read_all(&c))
}

fn hf_config(input: &[u8], ctx: &Context<'_>) -> bool {
    PaliGemmaConfig::from_file(&write(ctx, "config.json", input)).is_ok_and(|c| c.text().is_ok())
}

fn robovlms_config(input: &[u8], ctx: &Context<'_>) -> bool {
    RoboVlmsConfig::from_file(&write(ctx, "robovlm_config.json", input)).is_ok_and(|c| {
        let _ = c.head_config(64);
        true
    })
}

fn preprocessor(input: &[u8], ctx: &Context<'_>) -> bool {
    let Ok(processor) = ImageProcessor::from_file(&write(ctx, "preprocessor_config.json", input)) else { return false };
    // Resizing to a valid but huge size only costs time; sizes a model accepts are exercised.
    let config = processor.config();
    if config.height.saturating_mul(config.width) > 1 << 20 {
        return true;
    }
    let frame = RgbImage::new(5, 3, (0..45).map(|v| v as u8 * 5).collect()).expect("a valid 5x3 frame");
    processor.process(&frame).is_ok()
}

/// The fixture model's processor, loaded once.
fn tiny_processor() -> &'static PaliGemmaProcessor {
    static PROCESSOR: OnceLock<PaliGemmaProcessor> = OnceLock::new();
    PROCESSOR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/paligemma_tiny/model");
        PaliGemmaProcessor::from_dir(&dir).expect("fuzz harness: the fixture processor loads")
    })
}

fn text(input: &[u8], _: &Context<'_>) -> bool {
    let text = String::from_utf8_lossy(input);
    let processor = tiny_processor();
    let prompts = processor.encode_prompts(&[&text]).is_ok();
    let instructions = instruction_batch(processor.tokenizer(), &[&text, "open the drawer"]).is_ok();
    let discrete = discrete_inference_ids(processor.tokenizer(), &text, 2).is_ok();
    let decoded =
        processor.tokenizer().encode(&text, false).is_ok_and(|ids| processor.tokenizer().decode(&ids, true).is_ok());
    prompts && instructions && discrete && decoded
}

fn image(input: &[u8], _: &Context<'_>) -> bool {
    // Limits scaled down so that 10,000 inputs stay quick; the rule is the default one.
    let limits = Limits { max_pixels: 1 << 22, max_file_bytes: 1 << 24 };
    RgbImage::decode_with_limits(input, &limits).is_ok_and(|img| img.resize_bicubic(56, 56).width() == 56)
}

/// A policy-server message: msgpack decoding and observation parsing (openpi's encoding).
fn observation(bytes: &[u8], _: &Context<'_>) -> bool {
    static OPTIONS: OnceLock<robovlm_serve::ServeOptions> = OnceLock::new();
    let options = OPTIONS.get_or_init(|| robovlm_serve::ServeOptions {
        image_keys: vec!["observation/image".into(), "observation/wrist_image".into()],
        ..robovlm_serve::ServeOptions::default()
    });
    robovlm_serve::msgpack::decode(bytes).is_ok_and(|v| robovlm_serve::protocol::observation(&v, options).is_ok())
}
