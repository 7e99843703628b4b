//! `robovlm generate`: PaliGemma text generation (greedy by default).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use burn::prelude::Backend;
use robovlm_core::{GenerationConfig, Generator, PaliGemma, PaliGemmaConfig, PaliGemmaProcessor, Sampling};

use crate::backend::{BackendKind, OnBackend, run_on};
use crate::commands::Dtype;
use crate::hub::resolve_model;

/// Arguments of `robovlm generate`.
#[derive(Debug, Clone, clap::Args)]
pub struct GenerateArgs {
    /// HF PaliGemma directory, or a Hub repo id `org/name[@revision]` (e.g.
    /// google/paligemma-3b-pt-224), downloaded into the HF cache with a progress bar or taken from
    /// it. Honours HF_TOKEN (gated repos), HF_HOME / HF_HUB_CACHE, HF_HUB_OFFLINE=1, HF_ENDPOINT.
    #[arg(long, value_name = "DIR|HF_ID")]
    model: String,
    /// Image file: JPEG, PNG, BMP or WebP, decoded exactly as Pillow's
    /// `Image.open(f).convert("RGB")` (EXIF orientation is not applied, as in Pillow), then
    /// resized with Pillow's BICUBIC as the model's processor does. GIF/TIFF are refused.
    #[arg(long)]
    image: PathBuf,
    /// Prompt, e.g. "caption en", "detect cat", "answer en what is on the table?".
    #[arg(long)]
    prompt: String,
    /// Stop after this many new tokens (or at <eos>).
    #[arg(long, default_value_t = 20)]
    max_new_tokens: usize,
    /// Sample with this temperature instead of greedy decoding.
    #[arg(long)]
    temperature: Option<f32>,
    /// Nucleus sampling: keep the smallest token set reaching this probability (with --temperature).
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// Keep only the k most likely tokens when sampling (0 = off).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// Sampling seed (sampling is reproducible for a given seed).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Backend (default: the fastest CPU backend compiled in).
    #[arg(long, value_enum)]
    backend: Option<BackendKind>,
    /// Compute precision of the model's matrix work: f32, f16 (flex, wgpu, cuda) or bf16 (flex,
    /// cuda). Norms, attention scores, Gemma's residual stream and the action head stay f32.
    #[arg(long, value_enum, default_value = "f32")]
    dtype: Dtype,
    /// Print one JSON object {"input_ids", "generated_ids", "text"}.
    #[arg(long)]
    json: bool,
}

struct Job(GenerateArgs, PathBuf);

impl OnBackend for Job {
    type Output = Result<(Vec<u32>, Vec<u32>, String)>;

    fn run<B: Backend>(self, device: &B::Device) -> Self::Output {
        let (args, dir) = (self.0, self.1);
        let processor = PaliGemmaProcessor::from_dir(&dir)
            .with_context(|| format!("loading the processor of {}", dir.display()))?;
        let config = PaliGemmaConfig::from_file(&dir.join("config.json"))?;
        let model = PaliGemma::<B>::load(&dir, &config, device)?;
        let ids = processor.encode_prompts(&[&args.prompt])?;
        let max_positions = robovlm_core::gemma::GemmaConfig::from_hf_value(&config.text_config)
            .map(|c| c.max_position_embeddings)
            .unwrap_or(usize::MAX);
        if ids.seq + args.max_new_tokens > max_positions {
            bail!(
                "--prompt: {} prompt tokens + {} new tokens exceed max_position_embeddings {max_positions}",
                ids.seq,
                args.max_new_tokens
            );
        }
        let image = processor.process_image(&args.image)?.to_tensor::<B>(device);
        let features = model.image.forward(image, config.text_hidden_size as f64);
        let special = processor.tokenizer().special();
        let gen_config = GenerationConfig {
            max_new_tokens: args.max_new_tokens,
            sampling: args.temperature.map(|temperature| Sampling {
                temperature,
                top_k: args.top_k,
                top_p: args.top_p,
                seed: args.seed,
            }),
            eos_token: Some(special.eos),
            pad_token: special.pad,
            keep_logits: false,
        };
        let out =
            Generator::new(&model).generate(&ids, processor.image_token_id(), Some(features), &gen_config, device)?;
        let generated = out.new_ids.into_iter().next().unwrap_or_default();
        let text = processor.tokenizer().decode(&generated, true)?;
        Ok((ids.input_ids, generated, text))
    }
}

/// Runs generation and prints the result.
pub fn run(args: GenerateArgs) -> Result<ExitCode> {
    if args.prompt.trim().is_empty() {
        bail!("--prompt is empty: give the task text, e.g. \"caption en\"");
    }
    if args.max_new_tokens == 0 {
        bail!("--max-new-tokens must be at least 1");
    }
    if let Some(t) = args.temperature
        && !(t > 0.0 && t.is_finite())
    {
        bail!("--temperature must be a positive number");
    }
    if !(args.top_p > 0.0 && args.top_p <= 1.0) {
        bail!("--top-p must be in (0, 1]");
    }
    let dir = resolve_model(&args.model)?;
    let backend = args.backend.unwrap_or_else(BackendKind::default_compiled);
    let dtype = args.dtype;
    let json = args.json;
    let (input_ids, generated_ids, text) = run_on(backend, dtype, Job(args, dir))??;
    if json {
        println!("{}", serde_json::json!({ "input_ids": input_ids, "generated_ids": generated_ids, "text": text }));
    } else {
        println!("{text}");
    }
    Ok(ExitCode::SUCCESS)
}
