//! RoboVLMs policies end to end (from the PNGs, instructions and checkpoint, through the
//! backbone and the head):
//! - `rollout.e<E>.t<T>.*`: each episode replayed from `reset()`, one `step()` per frame —
//!   `inputs_embeds`, `attention_mask_2d`, `attn_allowed`, `last_hidden`, `action_hidden`,
//!   `head_actions`, `head_gripper_logits` and the post-processing `action_chunk_binarized`,
//!   `action_first`, `action_unnormalized`, `action_emitted`;
//! - `batch.*`: the window batch forward and its losses against the recorded labels;
//! - discrete policies: `action_tokenizer.*` and the discrete training metrics from the
//!   reference logits summaries.

use std::collections::BTreeMap;

use burn::prelude::*;
use robovlm_core::action_heads::{ActionTokenizer, ShiftedPosition, continuous_loss, discrete_metrics};
use robovlm_core::robovlms_config::{HeadSpec, RoboVlmsConfig};
use robovlm_core::{DiscretePolicy, Policy, PolicyFiles, RgbImage, VlmForward};
use serde_json::Value;

use super::{Produced, Request};
use crate::parity::tensor::{HostTensor, Values};

const STEP_LEAVES: [&str; 11] = [
    "inputs_embeds",
    "attention_mask_2d",
    "attn_allowed",
    "last_hidden",
    "action_hidden",
    "head_actions",
    "head_gripper_logits",
    "action_chunk_binarized",
    "action_first",
    "action_unnormalized",
    "action_emitted",
];
const BATCH_HEAD: [&str; 7] = [
    "batch.inputs_embeds",
    "batch.attention_mask_2d",
    "batch.attn_allowed",
    "batch.last_hidden",
    "batch.action_hidden",
    "batch.head_actions",
    "batch.head_gripper_logits",
];
const CONT_LOSSES: [&str; 6] = [
    "batch.loss_arm_act",
    "batch.loss_gripper_act",
    "batch.loss",
    "batch.trainer_loss",
    "batch.nomask.loss_arm",
    "batch.nomask.loss_gripper",
];
const DISCRETE_BATCH: [&str; 10] = [
    "batch.instr_and_action_ids",
    "batch.instr_and_action_labels",
    "batch.instr_and_action_mask",
    "batch.inputs_embeds",
    "batch.attention_mask_2d",
    "batch.attn_allowed",
    "batch.merged_labels",
    "batch.logits_argmax",
    "batch.logits_logsumexp",
    "batch.logit_of_next_label",
];
const DISCRETE_LOSSES: [&str; 6] =
    ["batch.loss_arm_act", "batch.action_l1_act", "batch.acc_arm_act", "batch.acc_gripper_act", "batch.loss", "batch.trainer_loss"];
const INFER_LEAVES: [&str; 5] = ["prefill_inputs_embeds", "prefill_attn_allowed", "step_logits", "generated_ids", "action"];
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
        HeadSpec::Continuous { .. } => continuous::<B>(req, device, out),
        HeadSpec::Discrete { n_bin, min_action, max_action } => {
            discrete(req, *n_bin, *min_action, *max_action, out);
            discrete_inference::<B>(req, device, out);
            discrete_training::<B>(req, device, out);
        }
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

fn vlm_tensors<B: Backend>(v: &VlmForward<B>, rows: usize, out: &mut BTreeMap<String, HostTensor>, prefix: &str, action_shape: Vec<usize>) -> Result<(), String> {
    let seq = v.attention_mask.len() / rows;
    out.insert(format!("{prefix}.inputs_embeds"), host(v.inputs_embeds.clone())?);
    out.insert(format!("{prefix}.attention_mask_2d"), HostTensor::ints(vec![rows, seq], &v.attention_mask));
    let allowed = v.allowed.allowed.iter().map(|&a| i64::from(a)).collect();
    out.insert(format!("{prefix}.attn_allowed"), HostTensor::i64(vec![rows, seq, seq], allowed));
    out.insert(format!("{prefix}.last_hidden"), host(v.last_hidden.clone())?);
    let action = host(v.action_hidden.clone())?;
    out.insert(format!("{prefix}.action_hidden"), HostTensor { shape: action_shape, values: action.values });
    Ok(())
}

fn continuous<B: Backend>(req: &Request<'_>, device: &B::Device, out: &mut Produced) {
    let wanted_steps: Vec<&String> = req
        .wanted
        .iter()
        .filter(|n| n.starts_with("rollout.") && STEP_LEAVES.contains(&n.rsplit('.').next().unwrap_or("")))
        .collect();
    let want_batch = BATCH_HEAD.iter().chain(CONT_LOSSES.iter()).any(|n| req.wanted.contains(*n));
    if wanted_steps.is_empty() && !want_batch {
        return;
    }
    let policy = PolicyFiles::in_dir(&req.case.dir)
        .and_then(|files| Policy::<B>::load(&files, device))
        .map_err(|e| e.to_string());
    let mut policy = match policy {
        Ok(p) => p,
        Err(e) => {
            for n in wanted_steps.iter().copied().chain(req.wanted.iter().filter(|n| BATCH_HEAD.contains(&n.as_str()) || CONT_LOSSES.contains(&n.as_str()))) {
                req.put(out, n.clone(), Err(e.clone()));
            }
            return;
        }
    };
    let mut episodes: Vec<usize> = wanted_steps
        .iter()
        .filter_map(|n| n.split('.').nth(1)?.strip_prefix('e')?.parse().ok())
        .collect();
    episodes.sort_unstable();
    episodes.dedup();
    for e in episodes {
        let result = rollout(req, &mut policy, e);
        for n in wanted_steps.iter().filter(|n| n.starts_with(&format!("rollout.e{e}."))) {
            let r = result.as_ref().map_err(Clone::clone).and_then(|m| m.get(n.as_str()).cloned().ok_or_else(|| format!("step of {n} not in the episode")));
            req.put(out, (*n).clone(), r);
        }
    }
    if want_batch {
        let result = batch(req, &policy, device);
        for n in BATCH_HEAD.iter().chain(CONT_LOSSES.iter()) {
            req.put(out, n.to_string(), result.as_ref().map_err(Clone::clone).and_then(|m| m.get(*n).cloned().ok_or_else(|| "not computed".into())));
        }
    }
}

fn strings(v: Option<&Value>) -> Option<Vec<String>> {
    v?.as_array()?.iter().map(|s| s.as_str().map(str::to_owned)).collect()
}

fn open_frame(req: &Request<'_>, rel: &str) -> Result<RgbImage, String> {
    RgbImage::open(&req.case.input_path(rel)?).map_err(|e| e.to_string())
}

fn rollout<B: Backend>(req: &Request<'_>, policy: &mut Policy<B>, e: usize) -> Result<BTreeMap<String, HostTensor>, String> {
    let episode = req.case.case_json().and_then(|c| c.get("episodes")).and_then(|x| x.get(e)).ok_or_else(|| format!("inputs/case.json has no episode {e}"))?;
    let instruction = episode.get("instruction").and_then(Value::as_str).ok_or("episode without instruction")?;
    let frames = strings(episode.get("frames")).ok_or("episode without frames")?;
    policy.reset();
    let mut out = BTreeMap::new();
    for (t, rel) in frames.iter().enumerate() {
        let prefix = format!("rollout.e{e}.t{t}");
        let step = policy.step(&open_frame(req, rel)?, instruction).map_err(|err| err.to_string())?;
        let d = step.vlm.action_hidden.dims()[2];
        vlm_tensors(&step.vlm, 1, &mut out, &prefix, vec![1, 1, 1, d])?;
        let p = &step.action;
        let (chunk, width) = (p.chunk_binarized.len(), p.first.len());
        out.insert(format!("{prefix}.action_chunk_binarized"), HostTensor::f32(vec![1, 1, chunk, width], p.chunk_binarized.concat()));
        out.insert(format!("{prefix}.action_first"), HostTensor::f32(vec![width], p.first.clone()));
        out.insert(format!("{prefix}.action_unnormalized"), HostTensor::f32(vec![width], p.unnormalized.clone()));
        out.insert(format!("{prefix}.action_emitted"), HostTensor::f32(vec![width], p.emitted.clone()));
        out.insert(format!("{prefix}.head_actions"), host(step.head.arm)?);
        out.insert(format!("{prefix}.head_gripper_logits"), host(step.head.gripper)?);
    }
    Ok(out)
}

/// `inputs/case.json → batch`: one instruction and a row of frame paths per sample.
fn batch_spec(req: &Request<'_>) -> Result<(Vec<String>, Vec<Vec<String>>), String> {
    let spec = req.case.case_json().and_then(|c| c.get("batch")).ok_or("inputs/case.json has no batch")?;
    let instructions = strings(spec.get("instructions")).ok_or("batch without instructions")?;
    let frames: Vec<Vec<String>> = spec
        .get("frames")
        .and_then(Value::as_array)
        .and_then(|rows| rows.iter().map(|r| strings(Some(r))).collect())
        .ok_or("batch without frames")?;
    Ok((instructions, frames))
}

fn batch<B: Backend>(req: &Request<'_>, policy: &Policy<B>, device: &B::Device) -> Result<BTreeMap<String, HostTensor>, String> {
    let (instructions, frames) = batch_spec(req)?;
    let (b, t) = (frames.len(), frames.first().map_or(0, Vec::len));
    let images = frames.iter().flatten().map(|rel| open_frame(req, rel)).collect::<Result<Vec<_>, _>>()?;
    let pixels = policy.pixels(&images).map_err(|e| e.to_string())?;
    let [_, c, h, w] = pixels.dims();
    let refs: Vec<&str> = instructions.iter().map(String::as_str).collect();
    let (vlm, head) = policy.forward_batch(pixels.reshape([b, t, c, h, w]), &refs).map_err(|e| e.to_string())?;
    let d = vlm.action_hidden.dims()[2];
    let mut out = BTreeMap::new();
    vlm_tensors(&vlm, b * t, &mut out, "batch", vec![b, t, 1, d])?;
    out.insert("batch.head_actions".into(), host(head.arm.clone())?);
    out.insert("batch.head_gripper_logits".into(), host(head.gripper.clone())?);
    let labels = tensor::<B, 4>(reference(req, "batch.action_chunck")?, device)?;
    let mask = tensor::<B, 3>(reference(req, "batch.chunck_mask")?, device)?;
    let scalar = |t: Tensor<B, 1>| -> Result<f32, String> { Ok(t.into_data().convert::<f32>().to_vec::<f32>().map_err(|e| format!("{e:?}"))?[0]) };
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

/// `infer<I>.*`: discrete inference on `inputs/case.json → inference[I]`.
fn discrete_inference<B: Backend>(req: &Request<'_>, device: &B::Device, out: &mut Produced) {
    let mut items: Vec<usize> = req
        .wanted
        .iter()
        .filter_map(|n| {
            let (p, leaf) = n.split_once('.')?;
            INFER_LEAVES.contains(&leaf).then_some(())?;
            p.strip_prefix("infer")?.parse().ok()
        })
        .collect();
    items.dedup();
    if items.is_empty() {
        return;
    }
    let policy = PolicyFiles::in_dir(&req.case.dir).and_then(|f| DiscretePolicy::<B>::load(&f, device)).map_err(|e| e.to_string());
    for i in items {
        let result = policy.as_ref().map_err(Clone::clone).and_then(|p| {
            let item = req.case.case_json().and_then(|c| c.get("inference")).and_then(|x| x.get(i)).ok_or("no inference item")?;
            let instruction = item.get("instruction").and_then(Value::as_str).ok_or("no instruction")?;
            let frame = open_frame(req, item.get("frame").and_then(Value::as_str).ok_or("no frame")?)?;
            let s = p.infer(&frame, instruction).map_err(|e| e.to_string())?;
            let embeds = host(s.prefill_inputs_embeds)?;
            let seq = embeds.shape[1];
            // transformers sizes the prefill mask for the dynamic cache (`seq + 1` keys); the
            // extra key column is the not-yet-written slot, masked by the causal step.
            let allowed: Vec<i64> = (0..seq * (seq + 1)).map(|k| i64::from(k % (seq + 1) < seq)).collect();
            let vocab = s.step_logits.first().map_or(0, Vec::len);
            let mut m = BTreeMap::new();
            m.insert("prefill_inputs_embeds", embeds);
            m.insert("prefill_attn_allowed", HostTensor::i64(vec![1, seq, seq + 1], allowed));
            m.insert("step_logits", HostTensor::f32(vec![s.step_logits.len(), vocab], s.step_logits.concat()));
            m.insert("generated_ids", HostTensor::ints(vec![s.generated_ids.len()], &s.generated_ids));
            m.insert("action", HostTensor::f32(vec![1, s.action.len()], s.action));
            Ok(m)
        });
        for leaf in INFER_LEAVES {
            let name = format!("infer{i}.{leaf}");
            req.put(out, name, result.as_ref().map_err(Clone::clone).and_then(|m| m.get(leaf).cloned().ok_or_else(|| "not computed".into())));
        }
    }
}

/// The discrete training batch: ids/labels from the recorded (input) action labels, the
/// training forward, the logits summaries and the metrics.
fn discrete_training<B: Backend>(req: &Request<'_>, device: &B::Device, out: &mut Produced) {
    if DISCRETE_BATCH.iter().chain(DISCRETE_LOSSES.iter()).all(|n| !req.wanted.contains(*n)) {
        return;
    }
    let result = (|| -> Result<BTreeMap<&'static str, HostTensor>, String> {
        let policy = PolicyFiles::in_dir(&req.case.dir).and_then(|f| DiscretePolicy::<B>::load(&f, device)).map_err(|e| e.to_string())?;
        let (instructions, frames) = batch_spec(req)?;
        let mut samples = Vec::new();
        for (b, instruction) in instructions.iter().enumerate() {
            let actions_t = reference(req, &format!("batch.sample{b}.actions"))?;
            let dim = *actions_t.shape.last().unwrap_or(&1);
            let actions: Vec<Vec<f32>> = floats(actions_t).chunks(dim).map(<[f32]>::to_vec).collect();
            let mask: Vec<bool> = floats(reference(req, &format!("batch.sample{b}.action_mask"))?).iter().map(|&m| m != 0.0).collect();
            samples.push(policy.training_sample(instruction, &actions, &mask).map_err(|e| e.to_string())?);
        }
        let batch = DiscretePolicy::<B>::collate(&samples);
        let (bs, t) = (frames.len(), frames.first().map_or(0, Vec::len));
        let processor = req.case.processor()?;
        let mut pixels = Vec::new();
        for rel in frames.iter().flatten() {
            pixels.push(processor.process_image(&req.case.input_path(rel)?).map_err(|e| e.to_string())?.to_tensor::<B>(device));
        }
        let pixels = Tensor::cat(pixels, 0);
        let [_, c, h, w] = pixels.dims();
        let train = policy.forward_training(pixels.reshape([bs, t, c, h, w]), &batch).map_err(|e| e.to_string())?;
        let logits = host(train.logits)?;
        let (seq, vocab) = (logits.shape[1], logits.shape[2]);
        let lv = floats(&logits);
        let (mut argmax, mut lse, mut next, mut positions) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for b in 0..bs {
            for p in 0..seq {
                let row = &lv[(b * seq + p) * vocab..(b * seq + p + 1) * vocab];
                let (mut best, mut max) = (0usize, f32::NEG_INFINITY);
                for (i, &v) in row.iter().enumerate() {
                    if v > max {
                        (best, max) = (i, v);
                    }
                }
                let l = f64::from(max) + row.iter().map(|&v| (f64::from(v) - f64::from(max)).exp()).sum::<f64>().ln();
                argmax.push(best as i64);
                lse.push(l as f32);
                if p + 1 < seq {
                    let label = train.merged_labels[b * seq + p + 1];
                    let at = if label >= 0 { row[label as usize] } else { 0.0 };
                    next.push(at);
                    positions.push(ShiftedPosition { argmax: best as i64, label, logsumexp: l, logit_of_label: f64::from(at) });
                }
            }
        }
        let m = discrete_metrics(&positions, policy.action_tokenizer(), policy.config().action_dim).ok_or("no label to score")?;
        let shape3 = vec![batch.batch, batch.window, batch.len];
        let one = |v: f64| HostTensor::f32(vec![1], vec![v as f32]);
        let mut r = BTreeMap::new();
        r.insert("batch.instr_and_action_ids", HostTensor::ints(shape3.clone(), &batch.ids));
        r.insert("batch.instr_and_action_labels", HostTensor::i64(shape3.clone(), batch.labels.clone()));
        r.insert("batch.instr_and_action_mask", HostTensor::ints(shape3, &batch.mask));
        r.insert("batch.inputs_embeds", host(train.inputs_embeds)?);
        r.insert("batch.attention_mask_2d", HostTensor::ints(vec![bs, seq], &train.attention_mask));
        r.insert("batch.attn_allowed", HostTensor::i64(vec![bs, seq, seq], train.allowed.allowed.iter().map(|&a| i64::from(a)).collect()));
        r.insert("batch.merged_labels", HostTensor::i64(vec![bs, seq], train.merged_labels.clone()));
        r.insert("batch.logits_argmax", HostTensor::i64(vec![bs, seq], argmax));
        r.insert("batch.logits_logsumexp", HostTensor::f32(vec![bs, seq], lse));
        r.insert("batch.logit_of_next_label", HostTensor::f32(vec![bs, seq - 1], next));
        r.insert("batch.loss_arm_act", one(m.loss));
        r.insert("batch.loss", one(m.loss));
        r.insert("batch.trainer_loss", one(m.loss));
        r.insert("batch.action_l1_act", one(m.action_l1));
        r.insert("batch.acc_arm_act", one(m.acc_arm));
        r.insert("batch.acc_gripper_act", one(m.acc_gripper));
        Ok(r)
    })();
    for n in DISCRETE_BATCH.iter().chain(DISCRETE_LOSSES.iter()) {
        req.put(out, n.to_string(), result.as_ref().map_err(Clone::clone).and_then(|m| m.get(*n).cloned().ok_or_else(|| "not computed".into())));
    }
}

fn action_tokenizer(req: &Request<'_>, n_bin: usize, min: f64, max: f64) -> Result<ActionTokenizer, String> {
    let processor = req.case.processor()?;
    let tok = processor.tokenizer();
    Ok(ActionTokenizer::new(tok.base_vocab_size(), tok.special_count(), n_bin, min, max))
}

fn discrete(req: &Request<'_>, n_bin: usize, min: f64, max: f64, out: &mut Produced) {
    if TOKENIZER.iter().all(|n| !req.wanted.contains(*n)) {
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
}
