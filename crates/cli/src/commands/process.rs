//! `robovlm process`: the PaliGemma processor alone (prompt ids and pixel values).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::commands::ImagePrompt;
use crate::output::out;
use robovlm_core::PaliGemmaProcessor;

/// Arguments of `robovlm process`.
#[derive(Debug, clap::Args)]
pub struct ProcessArgs {
    /// HF PaliGemma model directory (tokenizer.json, preprocessor_config.json, config.json).
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    input: ImagePrompt,
    /// Print one JSON object {"input_ids", "attention_mask", "pixel_values_shape", "pixel_mean"}.
    #[arg(long)]
    json: bool,
}

/// Runs the processor and prints what the model would receive.
pub fn run(args: ProcessArgs) -> Result<ExitCode> {
    args.input.prompt()?;
    let processor = PaliGemmaProcessor::from_dir(&args.model)
        .with_context(|| format!("loading the processor from {}", args.model.display()))?;
    let ids = processor.encode_prompts(&[&args.input.prompt])?;
    let image = processor.process_image(&args.input.image)?;
    let n = image.pixel_values.len() as f64;
    let mean = image.pixel_values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let shape = [1, 3, image.height, image.width];
    if args.json {
        let out = serde_json::json!({
            "input_ids": ids.input_ids,
            "attention_mask": ids.attention_mask,
            "pixel_values_shape": shape,
            "pixel_mean": mean,
        });
        out!("{out}");
    } else {
        let tokens: Vec<String> = ids
            .input_ids
            .iter()
            .map(|&id| processor.tokenizer().id_to_token(id).unwrap_or_else(|| format!("#{id}")))
            .collect();
        out!("input_ids ({}): {:?}", ids.input_ids.len(), ids.input_ids);
        out!("tokens: {}", tokens.join(" "));
        out!("pixel_values: {shape:?}, mean {mean:.6}");
    }
    Ok(ExitCode::SUCCESS)
}
