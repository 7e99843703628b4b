//! `cargo xtask synth-model --out DIR`: a synthetic PaliGemma-3B-width checkpoint (config.json +
//! model.safetensors, transformers 4.47 key layout, random weights) of reducible depth, for
//! measuring loading (`cargo xtask bench --model DIR --iters 0`: load time and peak RSS as a
//! multiple of the file size). Streamed to disk: the writer never holds a tensor in memory.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

/// Arguments of `cargo xtask synth-model`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output directory (created; an existing model.safetensors is overwritten).
    #[arg(long)]
    out: PathBuf,
    /// SigLIP layers (of 27).
    #[arg(long, default_value_t = 4)]
    vision_layers: usize,
    /// Gemma layers (of 18).
    #[arg(long, default_value_t = 2)]
    text_layers: usize,
    /// Stored dtype: f32 or bf16.
    #[arg(long, default_value = "f32")]
    dtype: String,
}

const VISION: usize = 1152;
const VISION_MLP: usize = 4304;
const PATCHES: usize = 256;
const TEXT: usize = 2048;
const TEXT_MLP: usize = 16384;
const KV: usize = 256;
const VOCAB: usize = 257_216;

fn tensors(vision_layers: usize, text_layers: usize) -> Vec<(String, Vec<usize>)> {
    let mut t: Vec<(String, Vec<usize>)> = Vec::new();
    let v = "vision_tower.vision_model.";
    t.push((format!("{v}embeddings.patch_embedding.weight"), vec![VISION, 3, 14, 14]));
    t.push((format!("{v}embeddings.patch_embedding.bias"), vec![VISION]));
    t.push((format!("{v}embeddings.position_embedding.weight"), vec![PATCHES, VISION]));
    for i in 0..vision_layers {
        let l = format!("{v}encoder.layers.{i}.");
        for p in ["q_proj", "k_proj", "v_proj", "out_proj"] {
            t.push((format!("{l}self_attn.{p}.weight"), vec![VISION, VISION]));
            t.push((format!("{l}self_attn.{p}.bias"), vec![VISION]));
        }
        for n in ["layer_norm1", "layer_norm2"] {
            t.push((format!("{l}{n}.weight"), vec![VISION]));
            t.push((format!("{l}{n}.bias"), vec![VISION]));
        }
        t.push((format!("{l}mlp.fc1.weight"), vec![VISION_MLP, VISION]));
        t.push((format!("{l}mlp.fc1.bias"), vec![VISION_MLP]));
        t.push((format!("{l}mlp.fc2.weight"), vec![VISION, VISION_MLP]));
        t.push((format!("{l}mlp.fc2.bias"), vec![VISION]));
    }
    t.push((format!("{v}post_layernorm.weight"), vec![VISION]));
    t.push((format!("{v}post_layernorm.bias"), vec![VISION]));
    t.push(("multi_modal_projector.linear.weight".into(), vec![TEXT, VISION]));
    t.push(("multi_modal_projector.linear.bias".into(), vec![TEXT]));
    let g = "language_model.model.";
    t.push((format!("{g}embed_tokens.weight"), vec![VOCAB, TEXT]));
    for i in 0..text_layers {
        let l = format!("{g}layers.{i}.");
        t.push((format!("{l}self_attn.q_proj.weight"), vec![TEXT, TEXT]));
        t.push((format!("{l}self_attn.k_proj.weight"), vec![KV, TEXT]));
        t.push((format!("{l}self_attn.v_proj.weight"), vec![KV, TEXT]));
        t.push((format!("{l}self_attn.o_proj.weight"), vec![TEXT, TEXT]));
        t.push((format!("{l}mlp.gate_proj.weight"), vec![TEXT_MLP, TEXT]));
        t.push((format!("{l}mlp.up_proj.weight"), vec![TEXT_MLP, TEXT]));
        t.push((format!("{l}mlp.down_proj.weight"), vec![TEXT, TEXT_MLP]));
        t.push((format!("{l}input_layernorm.weight"), vec![TEXT]));
        t.push((format!("{l}post_attention_layernorm.weight"), vec![TEXT]));
    }
    t.push((format!("{g}norm.weight"), vec![TEXT]));
    t
}

fn config(vision_layers: usize, text_layers: usize, dtype: &str) -> String {
    let torch_dtype = if dtype == "bf16" { "bfloat16" } else { "float32" };
    serde_json::json!({
        "architectures": ["PaliGemmaForConditionalGeneration"],
        "model_type": "paligemma",
        "bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0,
        "hidden_size": TEXT, "projection_dim": TEXT, "image_token_index": 257152,
        "torch_dtype": torch_dtype, "transformers_version": "4.47.1",
        "text_config": {
            "model_type": "gemma", "hidden_size": TEXT, "intermediate_size": TEXT_MLP,
            "num_hidden_layers": text_layers, "num_attention_heads": 8, "num_key_value_heads": 1,
            "head_dim": KV, "vocab_size": VOCAB, "num_image_tokens": PATCHES,
            "hidden_activation": "gelu_pytorch_tanh", "max_position_embeddings": 8192,
            "torch_dtype": torch_dtype
        },
        "vision_config": {
            "model_type": "siglip_vision_model", "hidden_size": VISION, "intermediate_size": VISION_MLP,
            "num_hidden_layers": vision_layers, "num_attention_heads": 16, "image_size": 224,
            "patch_size": 14, "projection_dim": TEXT, "vision_use_head": false, "torch_dtype": torch_dtype
        }
    })
    .to_string()
}

/// Writes the checkpoint; prints its size.
pub fn run(args: Args) -> Result<bool> {
    let elem = match args.dtype.as_str() {
        "f32" => 4,
        "bf16" => 2,
        other => bail!("--dtype {other}: use f32 or bf16"),
    };
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    std::fs::write(args.out.join("config.json"), config(args.vision_layers, args.text_layers, &args.dtype))?;
    let list = tensors(args.vision_layers, args.text_layers);
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
    let mut offset = 0usize;
    for (name, shape) in &list {
        let bytes = shape.iter().product::<usize>() * elem;
        let dtype = if elem == 4 { "F32" } else { "BF16" };
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + bytes]}),
        );
        offset += bytes;
    }
    let mut text = serde_json::Value::Object(header).to_string();
    while !text.len().is_multiple_of(8) {
        text.push(' ');
    }
    let path = args.out.join("model.safetensors");
    let mut out =
        BufWriter::with_capacity(1 << 22, File::create(&path).with_context(|| format!("creating {}", path.display()))?);
    out.write_all(&(text.len() as u64).to_le_bytes())?;
    out.write_all(text.as_bytes())?;
    // Small random values (±0.02, xorshift): finite, Gemma-like magnitudes, never all-zero pages.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut chunk = Vec::with_capacity(1 << 20);
    let mut left = offset / elem;
    while left > 0 {
        let n = left.min((1 << 20) / elem);
        chunk.clear();
        for _ in 0..n {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let v = ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.04;
            if elem == 4 {
                chunk.extend_from_slice(&v.to_le_bytes());
            } else {
                chunk.extend_from_slice(&((v.to_bits() >> 16) as u16).to_le_bytes());
            }
        }
        out.write_all(&chunk)?;
        left -= n;
    }
    out.flush()?;
    let size = std::fs::metadata(&path)?.len();
    println!("{}: {} tensors, {:.2} GB", path.display(), list.len(), size as f64 / 1e9);
    Ok(true)
}
