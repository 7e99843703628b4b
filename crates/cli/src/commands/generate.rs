//! `robovlm generate`: PaliGemma text generation (greedy by default).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use robovlm_core::gemma::{GenerationConfig, Sampling};
use robovlm_core::{PaliGemma, PaliGemmaConfig, PaliGemmaProcessor};

use crate::backend::{DeviceArgs, on_backend};
use crate::commands::ImagePrompt;
use crate::hub::ModelArg;
use crate::output::out;

/// Arguments of `robovlm generate`.
#[derive(Debug, Clone, clap::Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    model: ModelArg,
    #[command(flatten)]
    input: ImagePrompt,
    /// Stop after this many new tokens (or at `<eos>`).
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
    #[command(flatten)]
    device: DeviceArgs,
    /// Print one JSON object {"input_ids", "generated_ids", "text"}.
    #[arg(long)]
    json: bool,
}

/// Loads the model in `dir` and generates: prompt ids, new ids, decoded text.
fn generate(args: &GenerateArgs, dir: &Path) -> Result<(Vec<u32>, Vec<u32>, String)> {
    let processor =
        PaliGemmaProcessor::from_dir(dir).with_context(|| format!("loading the processor of {}", dir.display()))?;
    let config = PaliGemmaConfig::from_file(&dir.join("config.json"))?;
    let ids = processor.encode_prompts(&[&args.input.prompt])?;
    // Checked again by the generator; here too so that a prompt that cannot fit fails before a
    // multi-gigabyte model is loaded. Saturating: `--max-new-tokens` may be any u64.
    let max_positions = config.text()?.max_position_embeddings;
    if ids.seq.saturating_add(args.max_new_tokens) > max_positions {
        bail!(
            "--prompt: {} prompt tokens + {} new tokens exceed max_position_embeddings {max_positions}",
            ids.seq,
            args.max_new_tokens
        );
    }
    let image = processor.process_image(&args.input.image)?;
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
        ..Default::default()
    };
    let generated = on_backend!(args.device, |B, device| {
        let model = PaliGemma::<B>::load(dir, &config, device)?;
        let features = model.image.forward(image.to_tensor::<B>(device), config.text_hidden_size as f64);
        let out = model.generate(&ids, processor.image_token_id(), Some(features), &gen_config, device)?;
        anyhow::Ok(out.new_ids.into_iter().next().unwrap_or_default())
    })?;
    let text = processor.tokenizer().decode(&generated, true)?;
    Ok((ids.input_ids, generated, text))
}

/// Runs generation and prints the result.
pub fn run(args: GenerateArgs) -> Result<ExitCode> {
    args.input.prompt()?;
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
    let dir = args.model.resolve()?;
    let (input_ids, generated_ids, text) = generate(&args, &dir)?;
    if args.json {
        out!("{}", serde_json::json!({ "input_ids": input_ids, "generated_ids": generated_ids, "text": text }));
    } else {
        out!("{text}");
    }
    Ok(ExitCode::SUCCESS)
}
