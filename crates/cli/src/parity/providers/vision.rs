//! The image path of PaliGemma cases, per prompt `p<N>` (its PNG through the processor, never
//! the reference pixels): `vision_embeddings`, `vision_layer_outputs` (stacked
//! `[layers, batch, tokens, hidden]`), `vision_last_hidden_state`, `projector_output` and
//! `image_features_scaled` (÷ sqrt(text hidden size), transformers' divisor).

use burn::prelude::*;
use robovlm_core::{ImageEncoder, PaliGemmaConfig};
use serde_json::Value;

use super::{Produced, Request};
use crate::parity::tensor::HostTensor;

const LEAVES: [&str; 5] =
    ["vision_embeddings", "vision_layer_outputs", "vision_last_hidden_state", "projector_output", "image_features_scaled"];

pub fn provide<B: Backend>(req: &Request<'_>, device: &B::Device, out: &mut Produced) {
    let kind = req.case.field("kind").and_then(Value::as_str).unwrap_or("");
    if !kind.starts_with("paligemma") {
        return;
    }
    let mut prefixes: Vec<&str> = req
        .wanted
        .iter()
        .filter_map(|n| n.rsplit_once('.'))
        .filter(|(_, leaf)| LEAVES.contains(leaf))
        .map(|(p, _)| p)
        .collect();
    prefixes.dedup();
    if prefixes.is_empty() {
        return;
    }
    let model = load::<B>(req, device);
    for prefix in prefixes {
        let result = model.as_ref().map_err(Clone::clone).and_then(|(enc, cfg)| run(req, enc, cfg, prefix, device));
        for leaf in LEAVES {
            let name = format!("{prefix}.{leaf}");
            let r = match &result {
                Ok(map) => match map.iter().find(|(l, _)| *l == leaf) {
                    Some((_, t)) => Ok(t.clone()),
                    None => continue,
                },
                Err(e) => Err(e.clone()),
            };
            req.put(out, name, r);
        }
    }
}

fn load<B: Backend>(req: &Request<'_>, device: &B::Device) -> Result<(ImageEncoder<B>, PaliGemmaConfig), String> {
    let dir = req.case.model_dir();
    let config = PaliGemmaConfig::from_file(&dir.join("config.json")).map_err(|e| e.to_string())?;
    let encoder = ImageEncoder::load(&dir, &config, device).map_err(|e| e.to_string())?;
    Ok((encoder, config))
}

fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Result<HostTensor, String> {
    let shape = t.dims().to_vec();
    let values = t.into_data().convert::<f32>().to_vec::<f32>().map_err(|e| format!("{e:?}"))?;
    Ok(HostTensor::f32(shape, values))
}

fn run<B: Backend>(
    req: &Request<'_>,
    encoder: &ImageEncoder<B>,
    config: &PaliGemmaConfig,
    prefix: &str,
    device: &B::Device,
) -> Result<Vec<(&'static str, HostTensor)>, String> {
    let image = req
        .case
        .value(&format!("{prefix}.prompt"))
        .and_then(|p| p.get("image"))
        .and_then(Value::as_str)
        .ok_or_else(|| format!("values.{prefix}.prompt.image missing"))?;
    let path = req.case.input_path(image)?;
    let pixels = req.case.processor()?.process_image(&path).map_err(|e| e.to_string())?.to_tensor::<B>(device);
    let f = encoder.forward_with_intermediates(pixels, config.text_hidden_size as f64);
    Ok(vec![
        ("vision_embeddings", host(f.vision_embeddings)?),
        ("vision_layer_outputs", host(Tensor::stack::<4>(f.vision_layer_outputs, 0))?),
        ("vision_last_hidden_state", host(f.vision_last_hidden_state)?),
        ("projector_output", host(f.projector_output)?),
        ("image_features_scaled", host(f.scaled)?),
    ])
}
