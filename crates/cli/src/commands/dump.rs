//! `robovlm dump`: write a PaliGemma forward pass's intermediate tensors to a safetensors file,
//! named like the golden fixtures (`pixel_values`, `input_ids`, `vision_embeddings`,
//! `vision_last_hidden_state`, `projector_output`, `image_features_scaled`, `inputs_embeds`,
//! `position_ids`, `text_hidden_states`, `logits`), for users comparing with their Python run.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use robovlm_core::{PaliGemma, PaliGemmaConfig, PaliGemmaProcessor};

use crate::backend::{BackendKind, Dtype, OnBackend, run_on};
use crate::hub::resolve_model;

/// Arguments of `robovlm dump`.
#[derive(Debug, Clone, clap::Args)]
pub struct DumpArgs {
    /// HF PaliGemma directory, or a Hub repo id `org/name[@revision]` (e.g.
    /// google/paligemma-3b-pt-224), downloaded into the HF cache with a progress bar or taken from
    /// it. Honours HF_TOKEN (gated repos), HF_HOME / HF_HUB_CACHE, HF_HUB_OFFLINE=1, HF_ENDPOINT.
    #[arg(long, value_name = "DIR|HF_ID")]
    model: String,
    /// Image file.
    #[arg(long)]
    image: PathBuf,
    /// Prompt text.
    #[arg(long)]
    prompt: String,
    /// Output safetensors file (F32 activations, I64 ids).
    #[arg(long)]
    out: PathBuf,
    /// Backend (default: the fastest CPU backend compiled in).
    #[arg(long, value_enum)]
    backend: Option<BackendKind>,
    /// Compute precision (activations are written as F32 whatever it is).
    #[arg(long, value_enum, default_value = "f32")]
    dtype: Dtype,
}

enum Dumped {
    F32(Vec<usize>, Vec<f32>),
    I64(Vec<usize>, Vec<i64>),
}

struct Job(DumpArgs, PathBuf);

fn f32s<B: Backend, const D: usize>(t: Tensor<B, D>) -> Result<Dumped> {
    let shape = t.dims().to_vec();
    let v = t.into_data().convert::<f32>().to_vec::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(Dumped::F32(shape, v))
}

impl OnBackend for Job {
    type Output = Result<Vec<(&'static str, Dumped)>>;

    fn run<B: Backend>(self, device: &B::Device) -> Self::Output {
        let (args, dir) = (self.0, self.1);
        let processor = PaliGemmaProcessor::from_dir(&dir)?;
        let config = PaliGemmaConfig::from_file(&dir.join("config.json"))?;
        let model = PaliGemma::<B>::load(&dir, &config, device)?;
        let ids = processor.encode_prompts(&[&args.prompt])?;
        let image = processor.process_image(&args.image)?;
        let pixels = image.to_tensor::<B>(device);
        let f = model.image.forward_with_intermediates(pixels.clone(), config.text_hidden_size as f64);
        let out =
            model.forward_prompt(&ids, processor.image_token_id(), Some(f.scaled.clone()), false, true, device)?;
        Ok(vec![
            ("pixel_values", f32s(pixels)?),
            ("input_ids", Dumped::I64(vec![1, ids.seq], ids.input_ids.iter().map(|&i| i64::from(i)).collect())),
            ("vision_embeddings", f32s(f.vision_embeddings)?),
            ("vision_last_hidden_state", f32s(f.vision_last_hidden_state)?),
            ("projector_output", f32s(f.projector_output)?),
            ("image_features_scaled", f32s(f.scaled)?),
            ("inputs_embeds", f32s(out.inputs_embeds)?),
            ("position_ids", Dumped::I64(vec![1, ids.seq], out.positions)),
            ("text_hidden_states", f32s(Tensor::stack::<4>(out.decoder.hidden_states, 0))?),
            ("logits", f32s(out.logits)?),
        ])
    }
}

/// Runs the forward pass and writes the file.
pub fn run(args: DumpArgs) -> Result<ExitCode> {
    if args.prompt.trim().is_empty() {
        bail!("--prompt is empty");
    }
    let dir = resolve_model(&args.model)?;
    let out = args.out.clone();
    let backend = args.backend.unwrap_or_else(BackendKind::default_compiled);
    let dtype = args.dtype;
    let tensors = run_on(backend, dtype, Job(args, dir))??;
    let bytes: Vec<(&str, safetensors::Dtype, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(name, t)| match t {
            Dumped::F32(s, v) => (name, safetensors::Dtype::F32, s, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            Dumped::I64(s, v) => (name, safetensors::Dtype::I64, s, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(n, d, s, b)| Ok((*n, safetensors::tensor::TensorView::new(*d, s.clone(), b)?)))
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
    safetensors::serialize_to_file(views, None, &out).with_context(|| format!("writing {}", out.display()))?;
    println!("wrote {} tensors to {}", bytes.len(), out.display());
    Ok(ExitCode::SUCCESS)
}
