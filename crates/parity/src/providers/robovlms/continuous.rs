//! Continuous RoboVLMs policies (LSTM / FC / GPT heads):
//! - `rollout.e<E>.t<T>.*`: each episode replayed from `reset()`, one `step()` per frame —
//!   `inputs_embeds`, `attention_mask_2d`, `attn_allowed` (+ `attn_allowed_sliding` on a
//!   PaliGemma 2 backbone), `last_hidden`, `action_hidden`,
//!   `head_actions`, `head_gripper_logits` and the post-processing `action_chunk_binarized`,
//!   `action_first`, `action_unnormalized`, `action_emitted`;
//! - `batch.*`: the window batch forward and its losses against the recorded labels.

use std::collections::BTreeMap;

use burn::prelude::*;
use robovlm_core::action_heads::continuous_loss;
use robovlm_core::robovlms::{BatchOutput, RoboPolicy, StepDetail, VlmForward, VlmOutputs};
use serde_json::Value;

use super::{Produced, Request, batch_pixels, batch_spec, open_frame, reference, strings, tensor};
use crate::tensor::HostTensor;

pub(super) const STEP_LEAVES: [&str; 12] = [
    "inputs_embeds",
    "attention_mask_2d",
    "attn_allowed",
    "attn_allowed_sliding",
    "last_hidden",
    "action_hidden",
    "head_actions",
    "head_gripper_logits",
    "action_chunk_binarized",
    "action_first",
    "action_unnormalized",
    "action_emitted",
];
pub(super) const BATCH_HEAD: [&str; 8] = [
    "batch.inputs_embeds",
    "batch.attention_mask_2d",
    "batch.attn_allowed",
    "batch.attn_allowed_sliding",
    "batch.last_hidden",
    "batch.action_hidden",
    "batch.head_actions",
    "batch.head_gripper_logits",
];
pub(super) const CONT_LOSSES: [&str; 6] = [
    "batch.loss_arm_act",
    "batch.loss_gripper_act",
    "batch.loss",
    "batch.trainer_loss",
    "batch.nomask.loss_arm",
    "batch.nomask.loss_gripper",
];
/// `window`: the backbone's sliding window (Gemma 2), for `attn_allowed_sliding`.
fn vlm_tensors<B: Backend>(
    v: &VlmForward<B>,
    window: Option<usize>,
    rows: usize,
    out: &mut BTreeMap<String, HostTensor>,
    prefix: &str,
    action_shape: Vec<usize>,
) -> Result<(), String> {
    let seq = v.attention_mask.len() / rows;
    out.insert(format!("{prefix}.inputs_embeds"), HostTensor::from_tensor(v.inputs_embeds.clone())?);
    out.insert(format!("{prefix}.attention_mask_2d"), HostTensor::ints(vec![rows, seq], &v.attention_mask));
    let allowed = v.allowed.allowed.iter().map(|&a| i64::from(a)).collect();
    out.insert(format!("{prefix}.attn_allowed"), HostTensor::i64(vec![rows, seq, seq], allowed));
    if let Some(w) = window {
        let sliding = v.allowed.sliding(w).allowed.iter().map(|&a| i64::from(a)).collect();
        out.insert(format!("{prefix}.attn_allowed_sliding"), HostTensor::i64(vec![rows, seq, seq], sliding));
    }
    let last = v.last_hidden.clone().ok_or("the policy computed the action token's hidden state only")?;
    out.insert(format!("{prefix}.last_hidden"), HostTensor::from_tensor(last)?);
    let action = HostTensor::from_tensor(v.action_hidden.clone())?;
    out.insert(format!("{prefix}.action_hidden"), HostTensor { shape: action_shape, values: action.values });
    Ok(())
}

pub(super) fn provide<B: Backend>(
    req: &Request<'_>,
    policy: &mut RoboPolicy<B>,
    device: &B::Device,
    out: &mut Produced,
) {
    let wanted_steps: Vec<&String> = req
        .wanted
        .iter()
        .filter(|n| n.starts_with("rollout.") && STEP_LEAVES.contains(&n.rsplit('.').next().unwrap_or("")))
        .collect();
    // Every position's hidden state is compared, not only the action token's.
    policy.set_vlm_outputs(VlmOutputs::All);
    let want_batch = BATCH_HEAD.iter().chain(CONT_LOSSES.iter()).any(|n| req.wanted.contains(*n));
    let mut episodes: Vec<usize> =
        wanted_steps.iter().filter_map(|n| n.split('.').nth(1)?.strip_prefix('e')?.parse().ok()).collect();
    episodes.sort_unstable();
    episodes.dedup();
    for e in episodes {
        let result = rollout(req, policy, e);
        for n in wanted_steps.iter().filter(|n| n.starts_with(&format!("rollout.e{e}."))) {
            let r = result
                .as_ref()
                .map_err(Clone::clone)
                .and_then(|m| m.get(n.as_str()).cloned().ok_or_else(|| format!("step of {n} not in the episode")));
            req.put(out, (*n).clone(), r);
        }
    }
    if want_batch {
        let result = batch(req, policy, device);
        for n in BATCH_HEAD.iter().chain(CONT_LOSSES.iter()) {
            req.put(
                out,
                n.to_string(),
                result
                    .as_ref()
                    .map_err(Clone::clone)
                    .and_then(|m| m.get(*n).cloned().ok_or_else(|| "not computed".into())),
            );
        }
    }
}

fn rollout<B: Backend>(
    req: &Request<'_>,
    policy: &mut RoboPolicy<B>,
    e: usize,
) -> Result<BTreeMap<String, HostTensor>, String> {
    let episode = req
        .case
        .case_json()
        .and_then(|c| c.get("episodes"))
        .and_then(|x| x.get(e))
        .ok_or_else(|| format!("inputs/case.json has no episode {e}"))?;
    let instruction = episode.get("instruction").and_then(Value::as_str).ok_or("episode without instruction")?;
    let frames = strings(episode.get("frames")).ok_or("episode without frames")?;
    policy.reset();
    let window = policy.backbone().model.language.sliding_window();
    let mut out = BTreeMap::new();
    for (t, rel) in frames.iter().enumerate() {
        let prefix = format!("rollout.e{e}.t{t}");
        let StepDetail::Continuous(step) =
            policy.step(&open_frame(req, rel)?, instruction).map_err(|err| err.to_string())?.detail
        else {
            return Err("not a continuous policy".into());
        };
        let d = step.vlm.action_hidden.dims()[2];
        vlm_tensors(&step.vlm, window, 1, &mut out, &prefix, vec![1, 1, 1, d])?;
        let p = &step.action;
        let (chunk, width) = (p.chunk_binarized.len(), p.first.len());
        out.insert(
            format!("{prefix}.action_chunk_binarized"),
            HostTensor::f32(vec![1, 1, chunk, width], p.chunk_binarized.concat()),
        );
        out.insert(format!("{prefix}.action_first"), HostTensor::f32(vec![width], p.first.clone()));
        out.insert(format!("{prefix}.action_unnormalized"), HostTensor::f32(vec![width], p.unnormalized.clone()));
        out.insert(format!("{prefix}.action_emitted"), HostTensor::f32(vec![width], p.emitted.clone()));
        out.insert(format!("{prefix}.head_actions"), HostTensor::from_tensor(step.head.arm)?);
        out.insert(format!("{prefix}.head_gripper_logits"), HostTensor::from_tensor(step.head.gripper)?);
    }
    Ok(out)
}

fn batch<B: Backend>(
    req: &Request<'_>,
    policy: &RoboPolicy<B>,
    device: &B::Device,
) -> Result<BTreeMap<String, HostTensor>, String> {
    let (instructions, frames) = batch_spec(req)?;
    let (b, t) = (frames.len(), frames.first().map_or(0, Vec::len));
    let pixels = batch_pixels(req, policy, &frames)?;
    let refs: Vec<&str> = instructions.iter().map(String::as_str).collect();
    let BatchOutput::Continuous { vlm, head } = policy.forward_batch(pixels, &refs, None).map_err(|e| e.to_string())?
    else {
        return Err("not a continuous policy".into());
    };
    let d = vlm.action_hidden.dims()[2];
    let mut out = BTreeMap::new();
    let window = policy.backbone().model.language.sliding_window();
    vlm_tensors(&vlm, window, b * t, &mut out, "batch", vec![b, t, 1, d])?;
    out.insert("batch.head_actions".into(), HostTensor::from_tensor(head.arm.clone())?);
    out.insert("batch.head_gripper_logits".into(), HostTensor::from_tensor(head.gripper.clone())?);
    let labels = tensor::<B, 4>(reference(req, "batch.action_chunck")?, device)?;
    let mask = tensor::<B, 3>(reference(req, "batch.chunck_mask")?, device)?;
    let scalar = |t: Tensor<B, 1>| -> Result<f32, String> {
        Ok(t.into_data().convert::<f32>().to_vec::<f32>().map_err(|e| format!("{e:?}"))?[0])
    };
    let masked = continuous_loss(head.arm.clone(), head.gripper.clone(), labels.clone(), Some(mask));
    let plain = continuous_loss(head.arm, head.gripper, labels, None);
    let (la, lg) = (scalar(masked.loss_arm)?, scalar(masked.loss_gripper)?);
    let one = |v: f32| HostTensor::f32(vec![1], vec![v]);
    out.insert("batch.loss_arm_act".into(), one(la));
    out.insert("batch.loss_gripper_act".into(), one(lg));
    out.insert("batch.loss".into(), one(la + lg));
    out.insert("batch.trainer_loss".into(), one(la + policy.config().arm_gripper_loss_ratio as f32 * lg));
    out.insert("batch.nomask.loss_arm".into(), one(scalar(plain.loss_arm)?));
    out.insert("batch.nomask.loss_gripper".into(), one(scalar(plain.loss_gripper)?));
    Ok(out)
}
