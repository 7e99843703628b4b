//! `robovlm dump`: write a PaliGemma forward pass's intermediate tensors to a safetensors file,
//! named like the golden fixtures (`pixel_values`, `input_ids`, `vision_embeddings`,
//! `vision_last_hidden_state`, `projector_output`, `image_features_scaled`, `inputs_embeds`,
//! `position_ids`, `text_hidden_states`, `logits`), for users comparing with their Python run.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use burn::prelude::*;
use burn::tensor::TensorData;
use robovlm_core::weights::write_safetensors;
use robovlm_core::{PaliGemma, PaliGemmaConfig, PaliGemmaProcessor};

use crate::backend::{DeviceArgs, on_backend};
use crate::commands::ImagePrompt;
use crate::hub::ModelArg;
use crate::output::out;

/// Arguments of `robovlm dump`.
#[derive(Debug, Clone, clap::Args)]
pub struct DumpArgs {
    #[command(flatten)]
    model: ModelArg,
    #[command(flatten)]
    input: ImagePrompt,
    /// Output safetensors file (F32 activations, I64 ids).
    #[arg(long)]
    out: PathBuf,
    /// Activations are written as F32 whatever `--dtype` is.
    #[command(flatten)]
    device: DeviceArgs,
}

/// A tensor read back to the host as F32 (the file's activations are F32 whatever the
/// precision).
fn f32s<B: Backend, const D: usize>(t: Tensor<B, D>) -> TensorData {
    t.into_data().convert::<f32>()
}

/// Integer ids `[1, n]` as I64.
fn ids(values: impl IntoIterator<Item = i64>) -> TensorData {
    let v: Vec<i64> = values.into_iter().collect();
    let n = v.len();
    TensorData::new(v, [1, n])
}

/// Runs the forward pass and writes the file.
pub fn run(args: DumpArgs) -> Result<ExitCode> {
    args.input.prompt()?;
    let dir = args.model.resolve()?;
    let processor = PaliGemmaProcessor::from_dir(&dir)?;
    let config = PaliGemmaConfig::from_file(&dir.join("config.json"))?;
    let prompt = processor.encode_prompts(&[&args.input.prompt])?;
    let image = processor.process_image(&args.input.image)?;
    let tensors: Vec<(String, TensorData)> = on_backend!(args.device, |B, device| {
        let model = PaliGemma::<B>::load(&dir, &config, device)?;
        let pixels = image.to_tensor::<B>(device);
        let f = model.image.forward_with_intermediates(pixels.clone(), config.text_hidden_size as f64);
        let out =
            model.forward_prompt(&prompt, processor.image_token_id(), Some(f.scaled.clone()), false, true, device)?;
        let named = vec![
            ("pixel_values", f32s(pixels)),
            ("input_ids", ids(prompt.input_ids.iter().map(|&i| i64::from(i)))),
            ("vision_embeddings", f32s(f.vision_embeddings)),
            ("vision_last_hidden_state", f32s(f.vision_last_hidden_state)),
            ("projector_output", f32s(f.projector_output)),
            ("image_features_scaled", f32s(f.scaled)),
            ("inputs_embeds", f32s(out.inputs_embeds)),
            ("position_ids", ids(out.positions)),
            ("text_hidden_states", f32s(Tensor::stack::<4>(out.decoder.hidden_states, 0))),
            ("logits", f32s(out.logits)),
        ];
        anyhow::Ok(named.into_iter().map(|(n, t)| (n.to_owned(), t)).collect())
    })?;
    write_safetensors(&args.out, &tensors)?;
    out!("wrote {} tensors to {}", tensors.len(), args.out.display());
    Ok(ExitCode::SUCCESS)
}
