//! RoboVLMs case inputs: instruction ids (`*.text_ids`, `*.text_mask`) and frames
//! (`*.pixel_values`, `[batch, time, 3, H, W]`) for rollouts (`rollout.e<E>.t<T>.*`), the loss
//! batch (`batch.*`) and discrete inference (`infer<I>.*`), as listed in `inputs/case.json`.

use burn::prelude::{Backend, Tensor, TensorData};
use robovlm_core::robovlms::{discrete_inference_ids, instruction_batch};
use serde_json::Value;

use super::{Produced, Request};
use crate::tensor::HostTensor;

pub fn provide<B: Backend>(req: &Request<'_>, device: &B::Device, out: &mut Produced) {
    let kind = req.case.field("kind").and_then(Value::as_str).unwrap_or("");
    if !kind.starts_with("robovlms") {
        return;
    }
    let Some(case_json) = req.case.case_json() else { return };
    for name in req.wanted {
        let Some((prefix, leaf)) = name.rsplit_once('.') else { continue };
        if !matches!(leaf, "text_ids" | "text_mask" | "pixel_values") {
            continue;
        }
        let Some(source) = locate(case_json, prefix) else { continue };
        let result = if leaf == "pixel_values" {
            frames_tensor::<B>(req, &source.frames, device)
        } else if !source.discrete {
            instructions_tensor(req, &source.instructions, leaf)
        } else if leaf == "text_ids" {
            discrete_ids(req, &source.instructions)
        } else {
            continue;
        };
        req.put(out, name.clone(), result);
    }
}

/// The instructions and frames behind a tensor prefix (rows × time for frames).
struct Source {
    instructions: Vec<String>,
    frames: Vec<Vec<String>>,
    discrete: bool,
}

fn strings(v: Option<&Value>) -> Option<Vec<String>> {
    v?.as_array()?.iter().map(|s| s.as_str().map(str::to_owned)).collect()
}

fn locate(case_json: &Value, prefix: &str) -> Option<Source> {
    let parts: Vec<&str> = prefix.split('.').collect();
    match parts.as_slice() {
        ["rollout", e, t] => {
            let (e, t): (usize, usize) = (e.strip_prefix('e')?.parse().ok()?, t.strip_prefix('t')?.parse().ok()?);
            let episode = case_json.get("episodes")?.get(e)?;
            let instruction = episode.get("instruction")?.as_str()?.to_owned();
            let frame = episode.get("frames")?.get(t)?.as_str()?.to_owned();
            Some(Source { instructions: vec![instruction], frames: vec![vec![frame]], discrete: false })
        }
        ["batch"] => {
            let batch = case_json.get("batch")?;
            let instructions = strings(batch.get("instructions"))?;
            let frames = batch.get("frames")?.as_array()?.iter().map(|r| strings(Some(r))).collect::<Option<_>>()?;
            Some(Source { instructions, frames, discrete: false })
        }
        [infer] if infer.starts_with("infer") => {
            let i: usize = infer.strip_prefix("infer")?.parse().ok()?;
            let item = case_json.get("inference")?.get(i)?;
            let instruction = item.get("instruction")?.as_str()?.to_owned();
            let frame = item.get("frame")?.as_str()?.to_owned();
            Some(Source { instructions: vec![instruction], frames: vec![vec![frame]], discrete: true })
        }
        _ => None,
    }
}

fn instructions_tensor(req: &Request<'_>, instructions: &[String], leaf: &str) -> Result<HostTensor, String> {
    let refs: Vec<&str> = instructions.iter().map(String::as_str).collect();
    let b = instruction_batch(req.case.processor()?.tokenizer(), &refs).map_err(|e| e.to_string())?;
    let values = if leaf == "text_ids" { &b.input_ids } else { &b.attention_mask };
    Ok(HostTensor::ints(vec![b.batch, b.seq], values))
}

fn discrete_ids(req: &Request<'_>, instructions: &[String]) -> Result<HostTensor, String> {
    let n = req.case.field("fwd_pred_next_n").and_then(Value::as_u64).ok_or("reference.json has no fwd_pred_next_n")?
        as usize;
    let ids =
        discrete_inference_ids(req.case.processor()?.tokenizer(), &instructions[0], n).map_err(|e| e.to_string())?;
    Ok(HostTensor::ints(vec![1, ids.len()], &ids))
}

fn frames_tensor<B: Backend>(
    req: &Request<'_>,
    frames: &[Vec<String>],
    device: &B::Device,
) -> Result<HostTensor, String> {
    let processor = req.case.processor()?;
    let (rows, time) = (frames.len(), frames.first().map_or(0, Vec::len));
    if frames.iter().any(|r| r.len() != time) {
        return Err("rows of frames have different lengths".into());
    }
    let mut values = Vec::new();
    let (mut h, mut w) = (0, 0);
    for rel in frames.iter().flatten() {
        let img = processor.process_image(&req.case.input_path(rel)?).map_err(|e| e.to_string())?;
        (h, w) = (img.height, img.width);
        values.extend(img.pixel_values);
    }
    let shape = [rows, time, 3, h, w];
    HostTensor::from_tensor(Tensor::<B, 5>::from_data(TensorData::new(values, shape), device))
}
