//! Action heads checked in isolation (issue: action heads), from the reference's own
//! `*.action_hidden` inputs — the head is the unit under test here, the VLM is checked
//! elsewhere:
//! - `rollout.e<E>.t<T>.head_actions`, `head_gripper_logits` (each episode replayed from a reset
//!   state, step by step, so the history-window overflow and the reset are exercised) and the
//!   post-processing `action_chunk_binarized`, `action_first`, `action_unnormalized`,
//!   `action_emitted`;
//! - `batch.head_actions`, `batch.head_gripper_logits` (batch forward over the window);
//! - the losses from the reference head outputs and labels (`batch.loss_*`, `batch.nomask.*`,
//!   `batch.trainer_loss`);
//! - discrete policies: `action_tokenizer.*` and the discrete training metrics from the
//!   reference logits summaries.

use std::collections::BTreeMap;

use burn::prelude::*;
use robovlm_core::action_heads::{
    ActionHead, ActionTokenizer, HeadState, ShiftedPosition, continuous_loss, discrete_metrics,
};
use robovlm_core::postprocess::postprocess;
use robovlm_core::robovlms_config::{HeadSpec, RoboVlmsConfig};
use robovlm_core::{PaliGemmaConfig, policy_weights::find_prefix, weights::safetensors_keys};
use serde_json::Value;

use super::{Produced, Request};
use crate::parity::tensor::{HostTensor, Values};

const STEP_LEAVES: [&str; 6] = [
    "head_actions",
    "head_gripper_logits",
    "action_chunk_binarized",
    "action_first",
    "action_unnormalized",
    "action_emitted",
];
const BATCH_HEAD: [&str; 2] = ["batch.head_actions", "batch.head_gripper_logits"];
const CONT_LOSSES: [&str; 6] = [
    "batch.loss_arm_act",
    "batch.loss_gripper_act",
    "batch.loss",
    "batch.trainer_loss",
    "batch.nomask.loss_arm",
    "batch.nomask.loss_gripper",
];
const DISCRETE_LOSSES: [&str; 6] =
    ["batch.loss_arm_act", "batch.action_l1_act", "batch.acc_arm_act", "batch.acc_gripper_act", "batch.loss", "batch.trainer_loss"];
const TOKENIZER: [&str; 3] = ["action_tokenizer.probe_ids", "action_tokenizer.probe_decoded", "action_tokenizer.bin_centers"];

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
    match &config.head {
        HeadSpec::Continuous { .. } => continuous::<B>(req, &config, device, out),
        HeadSpec::Discrete { n_bin, min_action, max_action } => discrete(req, *n_bin, *min_action, *max_action, out),
    }
}

fn is_head_tensor(n: &str) -> bool {
    let leaf = n.rsplit('.').next().unwrap_or(n);
    STEP_LEAVES.contains(&leaf) || BATCH_HEAD.contains(&n) || CONT_LOSSES.contains(&n) || DISCRETE_LOSSES.contains(&n) || TOKENIZER.contains(&n)
}

fn reference<'a>(req: &'a Request<'_>, name: &str) -> Result<&'a HostTensor, String> {
    req.case.references.iter().find(|(n, _)| n == name).map(|(_, t)| t).ok_or_else(|| format!("reference {name} missing"))
}

fn floats(t: &HostTensor) -> Vec<f32> {
    match &t.values {
        Values::F32(v) => v.clone(),
        Values::I64(v) => v.iter().map(|&x| x as f32).collect(),
    }
}

fn tensor<B: Backend, const D: usize>(t: &HostTensor, device: &B::Device) -> Result<Tensor<B, D>, String> {
    let shape: [usize; D] = t.shape.clone().try_into().map_err(|_| format!("expected a {D}-d tensor, got {:?}", t.shape))?;
    Ok(Tensor::from_data(TensorData::new(floats(t), shape), device))
}

fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Result<HostTensor, String> {
    let shape = t.dims().to_vec();
    Ok(HostTensor::f32(shape, t.into_data().convert::<f32>().to_vec::<f32>().map_err(|e| format!("{e:?}"))?))
}

fn load_head<B: Backend>(req: &Request<'_>, config: &RoboVlmsConfig, device: &B::Device) -> Result<ActionHead<B>, String> {
    let backbone = config.backbone_dir(None).map_err(|e| e.to_string())?;
    let text = PaliGemmaConfig::from_file(&backbone.join("config.json")).map_err(|e| e.to_string())?;
    let head_config = config.head_config(text.text_hidden_size).ok_or("not a continuous head")?;
    let mut head = head_config.init::<B>(device);
    let file = req.case.dir.join("policy.safetensors");
    let keys = safetensors_keys(&file).map_err(|e| e.to_string())?;
    let prefix = find_prefix(keys.iter().map(String::as_str), "act_head.")
        .ok_or_else(|| format!("{}: no act_head.* tensors", file.display()))?;
    head.load_safetensors(&file, &prefix).map_err(|e| e.to_string())?;
    Ok(head)
}

fn continuous<B: Backend>(req: &Request<'_>, config: &RoboVlmsConfig, device: &B::Device, out: &mut Produced) {
    let wanted_steps: Vec<&String> = req
        .wanted
        .iter()
        .filter(|n| n.starts_with("rollout.") && STEP_LEAVES.contains(&n.rsplit('.').next().unwrap_or("")))
        .collect();
    let want_batch = BATCH_HEAD.iter().any(|n| req.wanted.contains(*n));
    let want_loss = CONT_LOSSES.iter().any(|n| req.wanted.contains(*n));
    if wanted_steps.is_empty() && !want_batch && !want_loss {
        return;
    }
    let head = load_head::<B>(req, config, device);
    // Rollouts: replay each wanted episode from a reset state, every step in order.
    let mut episodes: Vec<usize> = wanted_steps
        .iter()
        .filter_map(|n| n.split('.').nth(1)?.strip_prefix('e')?.parse().ok())
        .collect();
    episodes.sort_unstable();
    episodes.dedup();
    for e in episodes {
        let result = head.as_ref().map_err(Clone::clone).and_then(|h| rollout(req, h, config, e, device));
        for n in wanted_steps.iter().filter(|n| n.starts_with(&format!("rollout.e{e}."))) {
            let r = result.as_ref().map_err(Clone::clone).and_then(|m| m.get(n.as_str()).cloned().ok_or_else(|| format!("step of {n} not in the episode")));
            req.put(out, (*n).clone(), r);
        }
    }
    if want_batch {
        let result = head.as_ref().map_err(Clone::clone).and_then(|h| {
            let hidden = tensor::<B, 4>(reference(req, "batch.action_hidden")?, device)?;
            let o = h.forward(hidden);
            Ok((host(o.arm)?, host(o.gripper)?))
        });
        req.put(out, BATCH_HEAD[0].into(), result.clone().map(|r| r.0));
        req.put(out, BATCH_HEAD[1].into(), result.map(|r| r.1));
    }
    if want_loss {
        let result = losses::<B>(req, config, device);
        for n in CONT_LOSSES {
            req.put(out, n.into(), result.as_ref().map_err(Clone::clone).and_then(|m| m.get(n).cloned().ok_or("not computed".into())));
        }
    }
}

fn rollout<B: Backend>(
    req: &Request<'_>,
    head: &ActionHead<B>,
    config: &RoboVlmsConfig,
    e: usize,
    device: &B::Device,
) -> Result<BTreeMap<String, HostTensor>, String> {
    let mut state = HeadState::new();
    let mut out = BTreeMap::new();
    for t in 0.. {
        let prefix = format!("rollout.e{e}.t{t}");
        let Ok(hidden) = reference(req, &format!("{prefix}.action_hidden")) else { break };
        let [_, _, n_tok, d]: [usize; 4] = hidden.shape.clone().try_into().map_err(|_| "action_hidden must be 4-d")?;
        let tokens = tensor::<B, 4>(hidden, device)?.reshape([1, n_tok, d]);
        let o = head.step(tokens, &mut state);
        let (arm, grip) = (host(o.arm)?, host(o.gripper)?);
        let chunk = arm.shape[2];
        let (av, gv) = (floats(&arm), floats(&grip));
        let arm_rows: Vec<Vec<f32>> = av.chunks(av.len() / chunk).map(<[f32]>::to_vec).collect();
        let p = postprocess(&arm_rows, &gv, config.normalization.as_ref());
        let width = p.first.len();
        out.insert(format!("{prefix}.action_chunk_binarized"), HostTensor::f32(vec![1, 1, chunk, width], p.chunk_binarized.concat()));
        out.insert(format!("{prefix}.action_first"), HostTensor::f32(vec![width], p.first));
        out.insert(format!("{prefix}.action_unnormalized"), HostTensor::f32(vec![width], p.unnormalized));
        out.insert(format!("{prefix}.action_emitted"), HostTensor::f32(vec![width], p.emitted));
        out.insert(format!("{prefix}.head_actions"), arm);
        out.insert(format!("{prefix}.head_gripper_logits"), grip);
    }
    Ok(out)
}

fn losses<B: Backend>(req: &Request<'_>, config: &RoboVlmsConfig, device: &B::Device) -> Result<BTreeMap<&'static str, HostTensor>, String> {
    let arm = tensor::<B, 4>(reference(req, "batch.head_actions")?, device)?;
    let grip = tensor::<B, 4>(reference(req, "batch.head_gripper_logits")?, device)?;
    let labels = tensor::<B, 4>(reference(req, "batch.action_chunck")?, device)?;
    let mask = tensor::<B, 3>(reference(req, "batch.chunck_mask")?, device)?;
    let scalar = |t: Tensor<B, 1>| -> Result<f32, String> { Ok(t.into_data().convert::<f32>().to_vec::<f32>().map_err(|e| format!("{e:?}"))?[0]) };
    let masked = continuous_loss(arm.clone(), grip.clone(), labels.clone(), Some(mask));
    let plain = continuous_loss(arm, grip, labels, None);
    let (la, lg) = (scalar(masked.loss_arm)?, scalar(masked.loss_gripper)?);
    let one = |v: f32| HostTensor::f32(vec![1], vec![v]);
    let mut m = BTreeMap::new();
    m.insert("batch.loss_arm_act", one(la));
    m.insert("batch.loss_gripper_act", one(lg));
    m.insert("batch.loss", one(la + lg));
    m.insert("batch.trainer_loss", one(la + config.arm_gripper_loss_ratio as f32 * lg));
    m.insert("batch.nomask.loss_arm", one(scalar(plain.loss_arm)?));
    m.insert("batch.nomask.loss_gripper", one(scalar(plain.loss_gripper)?));
    Ok(m)
}

fn action_tokenizer(req: &Request<'_>, n_bin: usize, min: f64, max: f64) -> Result<ActionTokenizer, String> {
    let processor = req.case.processor()?;
    let tok = processor.tokenizer();
    Ok(ActionTokenizer::new(tok.base_vocab_size(), tok.special_count(), n_bin, min, max))
}

fn discrete(req: &Request<'_>, n_bin: usize, min: f64, max: f64, out: &mut Produced) {
    if TOKENIZER.iter().chain(DISCRETE_LOSSES.iter()).all(|n| !req.wanted.contains(*n)) {
        return;
    }
    let tokenizer = action_tokenizer(req, n_bin, min, max);
    let probes = tokenizer.as_ref().map_err(Clone::clone).and_then(|t| {
        let actions = floats(reference(req, "action_tokenizer.probe_actions")?);
        let ids: Vec<i64> = actions.iter().map(|&a| t.encode(f64::from(a))).collect();
        let decoded: Vec<f32> = ids.iter().map(|&i| t.decode(i) as f32).collect();
        let centers: Vec<f32> = t.bin_centers().iter().map(|&c| c as f32).collect();
        Ok((HostTensor::i64(vec![ids.len()], ids), HostTensor::f32(vec![decoded.len()], decoded), HostTensor::f32(vec![centers.len()], centers)))
    });
    req.put(out, TOKENIZER[0].into(), probes.clone().map(|p| p.0));
    req.put(out, TOKENIZER[1].into(), probes.clone().map(|p| p.1));
    req.put(out, TOKENIZER[2].into(), probes.map(|p| p.2));
    let metrics = tokenizer.and_then(|t| {
        let argmax = floats(reference(req, "batch.logits_argmax")?);
        let lse = floats(reference(req, "batch.logits_logsumexp")?);
        let next = floats(reference(req, "batch.logit_of_next_label")?);
        let labels_t = reference(req, "batch.merged_labels")?;
        let labels = floats(labels_t);
        let (rows, len) = (labels_t.shape[0], labels_t.shape[1]);
        let mut positions = Vec::new();
        for b in 0..rows {
            for p in 0..len - 1 {
                positions.push(ShiftedPosition {
                    argmax: argmax[b * len + p] as i64,
                    label: labels[b * len + p + 1] as i64,
                    logsumexp: f64::from(lse[b * len + p]),
                    logit_of_label: f64::from(next[b * (len - 1) + p]),
                });
            }
        }
        discrete_metrics(&positions, &t, 7).ok_or_else(|| "no label to score".to_owned())
    });
    let one = |v: f64| HostTensor::f32(vec![1], vec![v as f32]);
    let pick = |name: &str| {
        metrics.as_ref().map_err(Clone::clone).map(|m| match name {
            "batch.action_l1_act" => one(m.action_l1),
            "batch.acc_arm_act" => one(m.acc_arm),
            "batch.acc_gripper_act" => one(m.acc_gripper),
            _ => one(m.loss),
        })
    };
    for n in DISCRETE_LOSSES {
        req.put(out, n.into(), pick(n));
    }
}
