//! RoboVLMs policies end to end, from the PNGs, instructions and checkpoint through the
//! backbone and the head: continuous policies in [`continuous`], discrete ones in [`discrete`].

mod continuous;
mod discrete;

use burn::prelude::*;
use robovlm_core::RgbImage;
use robovlm_core::robovlms::{HeadSpec, PolicyFiles, RoboPolicy, RoboVlmsConfig};
use serde_json::Value;

use super::{Produced, Request};
use crate::tensor::HostTensor;

pub fn provide<B: Backend>(req: &Request<'_>, device: &B::Device, out: &mut Produced) {
    let kind = req.case.field("kind").and_then(Value::as_str).unwrap_or("");
    if !kind.starts_with("robovlms") {
        return;
    }
    let config_path = req.case.dir.join("robovlm_config.json");
    let config = match RoboVlmsConfig::from_file(&config_path) {
        Ok(c) => c,
        Err(e) => {
            // Every head tensor of the case fails with the reason.
            for n in req.wanted.iter().filter(|n| is_head_tensor(n)) {
                req.put(out, n.clone(), Err(e.to_string()));
            }
            return;
        }
    };
    if let HeadSpec::Discrete { n_bin, min_action, max_action } = &config.head {
        discrete::probes(req, *n_bin, *min_action, *max_action, out);
    }
    // The model half: loaded once for every rollout, inference and batch tensor of the case.
    let wanted: Vec<&String> =
        req.wanted.iter().filter(|n| is_head_tensor(n) && !discrete::TOKENIZER.contains(&n.as_str())).collect();
    if wanted.is_empty() {
        return;
    }
    let policy = PolicyFiles::in_dir(&req.case.dir).and_then(|files| RoboPolicy::<B>::load(&files, device));
    let mut policy = match policy {
        Ok(p) => p,
        Err(e) => {
            for n in wanted {
                req.put(out, n.clone(), Err(e.to_string()));
            }
            return;
        }
    };
    match &config.head {
        HeadSpec::Continuous { .. } => continuous::provide::<B>(req, &mut policy, device, out),
        HeadSpec::Discrete { .. } => {
            discrete::inference::<B>(req, &mut policy, out);
            discrete::training::<B>(req, &policy, out);
        }
    }
}

/// Every tensor name this provider family computes (to report a config error on each).
fn is_head_tensor(n: &str) -> bool {
    let leaf = n.rsplit('.').next().unwrap_or(n);
    let named = [
        continuous::BATCH_HEAD.as_slice(),
        &continuous::CONT_LOSSES,
        &discrete::BATCH,
        &discrete::LOSSES,
        &discrete::TOKENIZER,
    ];
    continuous::STEP_LEAVES.contains(&leaf)
        || (n.starts_with("infer") && discrete::INFER_LEAVES.contains(&leaf))
        || named.iter().any(|list| list.contains(&n))
}

pub(super) fn reference<'a>(req: &'a Request<'_>, name: &str) -> Result<&'a HostTensor, String> {
    req.case
        .references
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, t)| t)
        .ok_or_else(|| format!("reference {name} missing"))
}

pub(super) fn tensor<B: Backend, const D: usize>(t: &HostTensor, device: &B::Device) -> Result<Tensor<B, D>, String> {
    let shape: [usize; D] =
        t.shape.clone().try_into().map_err(|_| format!("expected a {D}-d tensor, got {:?}", t.shape))?;
    Ok(Tensor::from_data(TensorData::new(t.to_f32_vec(), shape), device))
}

pub(super) fn strings(v: Option<&Value>) -> Option<Vec<String>> {
    v?.as_array()?.iter().map(|s| s.as_str().map(str::to_owned)).collect()
}

pub(super) fn open_frame(req: &Request<'_>, rel: &str) -> Result<RgbImage, String> {
    RgbImage::open(&req.case.input_path(rel)?).map_err(|e| e.to_string())
}

/// The batch's frames `[samples, window, 3, H, W]`, preprocessed by the policy's processor.
pub(super) fn batch_pixels<B: Backend>(
    req: &Request<'_>,
    policy: &RoboPolicy<B>,
    frames: &[Vec<String>],
) -> Result<Tensor<B, 5>, String> {
    let (b, t) = (frames.len(), frames.first().map_or(0, Vec::len));
    let images = frames.iter().flatten().map(|rel| open_frame(req, rel)).collect::<Result<Vec<_>, _>>()?;
    let pixels = policy.pixels(&images).map_err(|e| e.to_string())?;
    let [_, c, h, w] = pixels.dims();
    Ok(pixels.reshape([b, t, c, h, w]))
}

/// `inputs/case.json → batch`: one instruction and a row of frame paths per sample.
pub(super) fn batch_spec(req: &Request<'_>) -> Result<(Vec<String>, Vec<Vec<String>>), String> {
    let spec = req.case.case_json().and_then(|c| c.get("batch")).ok_or("inputs/case.json has no batch")?;
    let instructions = strings(spec.get("instructions")).ok_or("batch without instructions")?;
    let frames: Vec<Vec<String>> = spec
        .get("frames")
        .and_then(Value::as_array)
        .and_then(|rows| rows.iter().map(|r| strings(Some(r))).collect())
        .ok_or("batch without frames")?;
    Ok((instructions, frames))
}
