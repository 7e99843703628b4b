//! Discrete RoboVLMs policies: `action_tokenizer.*` probes, inference (`infer<I>.*`) and the
//! training batch with its metrics (`batch.*`).

use std::collections::BTreeMap;

use burn::prelude::*;
use robovlm_core::action_heads::{ActionTokenizer, ShiftedPosition, discrete_metrics};
use robovlm_core::robovlms::{ActionLabels, BatchOutput, RoboPolicy, StepDetail};
use serde_json::Value;

use super::{Produced, Request, batch_pixels, batch_spec, open_frame, reference};
use crate::tensor::HostTensor;

pub(super) const BATCH: [&str; 10] = [
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
pub(super) const LOSSES: [&str; 6] = [
    "batch.loss_arm_act",
    "batch.action_l1_act",
    "batch.acc_arm_act",
    "batch.acc_gripper_act",
    "batch.loss",
    "batch.trainer_loss",
];
pub(super) const INFER_LEAVES: [&str; 5] =
    ["prefill_inputs_embeds", "prefill_attn_allowed", "step_logits", "generated_ids", "action"];
pub(super) const TOKENIZER: [&str; 3] =
    ["action_tokenizer.probe_ids", "action_tokenizer.probe_decoded", "action_tokenizer.bin_centers"];

/// `infer<I>.*`: discrete inference on `inputs/case.json → inference[I]`.
pub(super) fn inference<B: Backend>(req: &Request<'_>, policy: &mut RoboPolicy<B>, out: &mut Produced) {
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
    for i in items {
        let result = (|| {
            let item = req
                .case
                .case_json()
                .and_then(|c| c.get("inference"))
                .and_then(|x| x.get(i))
                .ok_or("no inference item")?;
            let instruction = item.get("instruction").and_then(Value::as_str).ok_or("no instruction")?;
            let frame = open_frame(req, item.get("frame").and_then(Value::as_str).ok_or("no frame")?)?;
            let StepDetail::Discrete(s) = policy.step(&frame, instruction).map_err(|e| e.to_string())?.detail else {
                return Err("not a discrete policy".to_owned());
            };
            let embeds = HostTensor::from_tensor(s.prefill_inputs_embeds)?;
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
        })();
        for leaf in INFER_LEAVES {
            let name = format!("infer{i}.{leaf}");
            req.put(
                out,
                name,
                result
                    .as_ref()
                    .map_err(Clone::clone)
                    .and_then(|m| m.get(leaf).cloned().ok_or_else(|| "not computed".into())),
            );
        }
    }
}

/// The discrete training batch: ids/labels from the recorded (input) action labels, the
/// training forward, the logits summaries and the metrics.
pub(super) fn training<B: Backend>(req: &Request<'_>, policy: &RoboPolicy<B>, out: &mut Produced) {
    if BATCH.iter().chain(LOSSES.iter()).all(|n| !req.wanted.contains(*n)) {
        return;
    }
    let result = (|| -> Result<BTreeMap<&'static str, HostTensor>, String> {
        let RoboPolicy::Discrete(discrete) = policy else { return Err("not a discrete policy".into()) };
        let (instructions, frames) = batch_spec(req)?;
        let mut labels = Vec::new();
        for b in 0..instructions.len() {
            let actions_t = reference(req, &format!("batch.sample{b}.actions"))?;
            let dim = *actions_t.shape.last().unwrap_or(&1);
            let actions: Vec<Vec<f32>> = HostTensor::to_f32_vec(actions_t).chunks(dim).map(<[f32]>::to_vec).collect();
            let mask: Vec<bool> = HostTensor::to_f32_vec(reference(req, &format!("batch.sample{b}.action_mask"))?)
                .iter()
                .map(|&m| m != 0.0)
                .collect();
            labels.push(ActionLabels { actions, mask });
        }
        let bs = frames.len();
        let pixels = batch_pixels(req, policy, &frames)?;
        let refs: Vec<&str> = instructions.iter().map(String::as_str).collect();
        let BatchOutput::Discrete { batch, training: train } =
            policy.forward_batch(pixels, &refs, Some(&labels)).map_err(|e| e.to_string())?
        else {
            return Err("not a discrete policy".into());
        };
        let logits = HostTensor::from_tensor(train.logits)?;
        let (seq, vocab) = (logits.shape[1], logits.shape[2]);
        let lv = HostTensor::to_f32_vec(&logits);
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
                    positions.push(ShiftedPosition {
                        argmax: best as i64,
                        label,
                        logsumexp: l,
                        logit_of_label: f64::from(at),
                    });
                }
            }
        }
        let m = discrete_metrics(&positions, discrete.action_tokenizer(), policy.config().action_dim)
            .ok_or("no label to score")?;
        let shape3 = vec![batch.batch, batch.window, batch.len];
        let one = |v: f64| HostTensor::f32(vec![1], vec![v as f32]);
        let mut r = BTreeMap::new();
        r.insert("batch.instr_and_action_ids", HostTensor::ints(shape3.clone(), &batch.ids));
        r.insert("batch.instr_and_action_labels", HostTensor::i64(shape3.clone(), batch.labels.clone()));
        r.insert("batch.instr_and_action_mask", HostTensor::ints(shape3, &batch.mask));
        r.insert("batch.inputs_embeds", HostTensor::from_tensor(train.inputs_embeds)?);
        r.insert("batch.attention_mask_2d", HostTensor::ints(vec![bs, seq], &train.attention_mask));
        r.insert(
            "batch.attn_allowed",
            HostTensor::i64(vec![bs, seq, seq], train.allowed.allowed.iter().map(|&a| i64::from(a)).collect()),
        );
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
    for n in BATCH.iter().chain(LOSSES.iter()) {
        req.put(
            out,
            n.to_string(),
            result.as_ref().map_err(Clone::clone).and_then(|m| m.get(*n).cloned().ok_or_else(|| "not computed".into())),
        );
    }
}

fn action_tokenizer(req: &Request<'_>, n_bin: usize, min: f64, max: f64) -> Result<ActionTokenizer, String> {
    let processor = req.case.processor()?;
    let tok = processor.tokenizer();
    Ok(ActionTokenizer::new(tok.base_vocab_size(), tok.special_count(), n_bin, min, max))
}

pub(super) fn probes(req: &Request<'_>, n_bin: usize, min: f64, max: f64, out: &mut Produced) {
    if TOKENIZER.iter().all(|n| !req.wanted.contains(*n)) {
        return;
    }
    let tokenizer = action_tokenizer(req, n_bin, min, max);
    let probes = tokenizer.as_ref().map_err(Clone::clone).and_then(|t| {
        let actions = reference(req, "action_tokenizer.probe_actions")?.to_f32_vec();
        let ids: Vec<i64> = actions.iter().map(|&a| t.encode(f64::from(a))).collect();
        let decoded: Vec<f32> = ids.iter().map(|&i| t.decode(i) as f32).collect();
        let centers: Vec<f32> = t.bin_centers().iter().map(|&c| c as f32).collect();
        Ok((
            HostTensor::i64(vec![ids.len()], ids),
            HostTensor::f32(vec![decoded.len()], decoded),
            HostTensor::f32(vec![centers.len()], centers),
        ))
    });
    req.put(out, TOKENIZER[0].into(), probes.clone().map(|p| p.0));
    req.put(out, TOKENIZER[1].into(), probes.clone().map(|p| p.1));
    req.put(out, TOKENIZER[2].into(), probes.map(|p| p.2));
}
