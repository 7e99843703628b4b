//! PaliGemma model outputs, from the case's PNGs and prompts through the processor and the
//! loaded model (never from reference tensors):
//! - per prompt `p<N>`: `vision_embeddings`, `vision_layer_outputs` (stacked
//!   `[layers, batch, tokens, hidden]`), `vision_last_hidden_state`, `projector_output`,
//!   `image_features_scaled` (÷ sqrt(text hidden), transformers' divisor), `inputs_embeds`,
//!   `position_ids`, `attn_allowed` (+ `attn_allowed_sliding`, Gemma 2's sliding layers),
//!   `text_hidden_states`, `text_last_layer_prenorm`, `logits`;
//! - greedy generation with the KV cache: `p<N>.gen_new_ids`, `p<N>.gen_step_logits`,
//!   `batch.gen_new_ids`, `batch.gen_step_logits` (`max_new_tokens` from `inputs/case.json`;
//!   Gemma 2: transformers 4.47.1's HybridCache masking), and `batch.gen_new_ids_padding_correct`
//!   (Gemma 2 with [`SlidingCache::PaddingCorrect`]: each row as if generated alone);
//! - `batch.prefill_position_ids`, `batch.prefill_attn_allowed[_sliding]` (left-padded batch);
//! - `train.attn_allowed[_sliding]`, `train.attn_allowed_no_tt`, `train.logits`, `train.loss`.

use std::collections::BTreeMap;

use burn::prelude::*;
use robovlm_core::gemma::{AttentionMask, GenerationConfig, GenerationOutput, SlidingCache};
use robovlm_core::paligemma::{
    ImageFeatures, PaliGemma, PaliGemmaConfig, PaliGemmaProcessor, PromptBatch, paligemma_loss, position_ids,
};
use serde_json::Value;

use super::{Produced, Request};
use crate::tensor::HostTensor;

const PROMPT_LEAVES: [&str; 14] = [
    "gen_new_ids",
    "gen_step_logits",
    "vision_embeddings",
    "vision_layer_outputs",
    "vision_last_hidden_state",
    "projector_output",
    "image_features_scaled",
    "inputs_embeds",
    "position_ids",
    "attn_allowed",
    "attn_allowed_sliding",
    "text_hidden_states",
    "text_last_layer_prenorm",
    "logits",
];
const BATCH: [&str; 6] = [
    "batch.prefill_position_ids",
    "batch.prefill_attn_allowed",
    "batch.prefill_attn_allowed_sliding",
    "batch.gen_new_ids",
    "batch.gen_step_logits",
    "batch.gen_new_ids_padding_correct",
];
const TRAIN: [&str; 5] =
    ["train.attn_allowed", "train.attn_allowed_sliding", "train.attn_allowed_no_tt", "train.logits", "train.loss"];

type Outputs = Result<BTreeMap<String, HostTensor>, String>;

pub fn provide<B: Backend>(req: &Request<'_>, device: &B::Device, out: &mut Produced) {
    let kind = req.case.field("kind").and_then(Value::as_str).unwrap_or("");
    if !kind.starts_with("paligemma") {
        return;
    }
    let mut prompts: Vec<String> = req
        .wanted
        .iter()
        .filter_map(|n| n.rsplit_once('.'))
        .filter(|(p, leaf)| PROMPT_LEAVES.contains(leaf) && is_prompt_key(p))
        .map(|(p, _)| p.to_owned())
        .collect();
    prompts.dedup();
    let want_batch = BATCH.iter().any(|n| req.wanted.contains(*n));
    let want_train = TRAIN.iter().any(|n| req.wanted.contains(*n));
    if prompts.is_empty() && !want_batch && !want_train {
        return;
    }
    let model = load::<B>(req, device);
    let mut record = |names: Vec<String>, result: Outputs| {
        for name in names {
            let leaf = name.rsplit_once('.').map_or(name.as_str(), |(_, l)| l).to_owned();
            let r = match &result {
                Ok(map) => match map.get(&leaf) {
                    Some(t) => Ok(t.clone()),
                    None => continue,
                },
                Err(e) => Err(e.clone()),
            };
            req.put(out, name, r);
        }
    };
    for p in &prompts {
        let names = PROMPT_LEAVES.iter().map(|l| format!("{p}.{l}")).collect();
        record(names, model.as_ref().map_err(Clone::clone).and_then(|m| prompt(req, m, p, device)));
    }
    if want_batch {
        let names = BATCH.iter().map(|n| n.to_string()).collect();
        record(names, model.as_ref().map_err(Clone::clone).and_then(|m| batch(req, m, device)));
    }
    if want_train {
        let names = TRAIN.iter().map(|n| n.to_string()).collect();
        record(names, model.as_ref().map_err(Clone::clone).and_then(|m| train(req, m, device)));
    }
}

struct Loaded<B: Backend> {
    model: PaliGemma<B>,
    config: PaliGemmaConfig,
}

fn is_prompt_key(prefix: &str) -> bool {
    prefix.strip_prefix('p').is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn load<B: Backend>(req: &Request<'_>, device: &B::Device) -> Result<Loaded<B>, String> {
    let dir = req.case.model_dir();
    let config = PaliGemmaConfig::from_file(&dir.join("config.json")).map_err(|e| e.to_string())?;
    let model = PaliGemma::load(&dir, &config, device).map_err(|e| e.to_string())?;
    Ok(Loaded { model, config })
}

fn mask_tensor(m: &AttentionMask) -> HostTensor {
    HostTensor::i64(vec![m.batch, m.queries, m.keys], m.allowed.iter().map(|&a| i64::from(a)).collect())
}

/// `attn_allowed` and, for a decoder with sliding-window layers, `attn_allowed_sliding`.
fn insert_masks<B: Backend>(m: &Loaded<B>, map: &mut BTreeMap<String, HostTensor>, mask: &AttentionMask) {
    map.insert("attn_allowed".into(), mask_tensor(mask));
    if let Some(window) = m.model.language.sliding_window() {
        map.insert("attn_allowed_sliding".into(), mask_tensor(&mask.sliding(window)));
    }
}

fn text(v: &Value, key: &str) -> Result<String, String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned).ok_or_else(|| format!("missing string `{key}`"))
}

/// Image features of image files (relative to the case), stacked `[images, tokens, hidden]`.
fn features<B: Backend>(
    req: &Request<'_>,
    m: &Loaded<B>,
    processor: &PaliGemmaProcessor,
    images: &[String],
    device: &B::Device,
) -> Result<(Tensor<B, 3>, Option<ImageFeatures<B>>), String> {
    let mut pixels = Vec::new();
    for rel in images {
        let path = req.case.input_path(rel)?;
        pixels.push(processor.process_image(&path).map_err(|e| e.to_string())?.to_tensor::<B>(device));
    }
    let f = m.model.image.forward_with_intermediates(Tensor::cat(pixels, 0), m.config.text_hidden_size as f64);
    Ok((f.scaled.clone(), Some(f)))
}

fn prompt<B: Backend>(req: &Request<'_>, m: &Loaded<B>, key: &str, device: &B::Device) -> Outputs {
    let p = req.case.value(&format!("{key}.prompt")).ok_or_else(|| format!("values.{key}.prompt missing"))?;
    let processor = req.case.processor()?;
    let ids = processor.encode_prompts(&[&text(p, "text")?]).map_err(|e| e.to_string())?;
    let (feats, inter) = features(req, m, processor, &[text(p, "image")?], device)?;
    let f = inter.expect("intermediates kept");
    let mut out = BTreeMap::new();
    out.insert("vision_embeddings".into(), HostTensor::from_tensor(f.vision_embeddings)?);
    out.insert("vision_layer_outputs".into(), HostTensor::from_tensor(Tensor::stack::<4>(f.vision_layer_outputs, 0))?);
    out.insert("vision_last_hidden_state".into(), HostTensor::from_tensor(f.vision_last_hidden_state)?);
    out.insert("projector_output".into(), HostTensor::from_tensor(f.projector_output)?);
    out.insert("image_features_scaled".into(), HostTensor::from_tensor(feats.clone())?);
    out.extend(text_forward(m, processor, &ids, Some(feats.clone()), false, device)?);
    if req.wanted.iter().any(|n| n.starts_with(&format!("{key}.gen_"))) {
        let reference_steps =
            req.case.references.iter().find(|(n, _)| *n == format!("{key}.gen_new_ids")).map(|(_, t)| t.shape[0]);
        let g = generate(req, m, processor, &ids, feats, reference_steps, SlidingCache::default(), device)?;
        out.insert("gen_new_ids".into(), HostTensor::ints(vec![g.new_ids[0].len()], &g.new_ids[0]));
        out.insert("gen_step_logits".into(), step_logits(&g));
    }
    Ok(out)
}

/// `max_new_tokens` from `inputs/case.json → generation`, else the reference's step count.
#[allow(clippy::too_many_arguments)]
fn generate<B: Backend>(
    req: &Request<'_>,
    m: &Loaded<B>,
    processor: &PaliGemmaProcessor,
    ids: &PromptBatch,
    feats: Tensor<B, 3>,
    reference_steps: Option<usize>,
    sliding_cache: SlidingCache,
    device: &B::Device,
) -> Result<GenerationOutput, String> {
    let from_case = req
        .case
        .case_json()
        .and_then(|c| c.get("generation"))
        .and_then(|g| g.get("max_new_tokens"))
        .and_then(Value::as_u64)
        .map(|n| n as usize);
    let max_new_tokens = from_case.or(reference_steps).ok_or("no max_new_tokens in inputs/case.json")?;
    let special = processor.tokenizer().special();
    let config = GenerationConfig {
        max_new_tokens,
        sampling: None,
        eos_token: Some(special.eos),
        pad_token: special.pad,
        keep_logits: true,
        sliding_cache,
    };
    m.model.generate(ids, processor.image_token_id(), Some(feats), &config, device).map_err(|e| e.to_string())
}

fn step_logits(g: &GenerationOutput) -> HostTensor {
    let (rows, steps) = (g.step_logits.len(), g.step_logits.first().map_or(0, Vec::len));
    let vocab = g.step_logits.first().and_then(|r| r.first()).map_or(0, Vec::len);
    let values: Vec<f32> = g.step_logits.iter().flatten().flatten().copied().collect();
    HostTensor::f32(vec![rows, steps, vocab], values)
}

/// The language half: merged embeddings, positions, mask, hidden states, logits.
fn text_forward<B: Backend>(
    m: &Loaded<B>,
    processor: &PaliGemmaProcessor,
    ids: &PromptBatch,
    feats: Option<Tensor<B, 3>>,
    training: bool,
    device: &B::Device,
) -> Result<BTreeMap<String, HostTensor>, String> {
    let (batch, seq) = (ids.batch, ids.seq);
    let out = m
        .model
        .forward_prompt(ids, processor.image_token_id(), feats, training, true, device)
        .map_err(|e| e.to_string())?;
    let (embeds, positions, mask, logits) = (out.inputs_embeds, out.positions, out.mask, out.logits);
    let out = out.decoder;
    let mut map = BTreeMap::new();
    map.insert("inputs_embeds".into(), HostTensor::from_tensor(embeds)?);
    map.insert("position_ids".into(), HostTensor::i64(vec![batch, seq], positions));
    insert_masks(m, &mut map, &mask);
    map.insert("text_hidden_states".into(), HostTensor::from_tensor(Tensor::stack::<4>(out.hidden_states, 0))?);
    if let Some(pre) = out.last_layer_prenorm {
        map.insert("text_last_layer_prenorm".into(), HostTensor::from_tensor(pre)?);
    }
    map.insert("logits".into(), HostTensor::from_tensor(logits)?);
    Ok(map)
}

fn batch<B: Backend>(req: &Request<'_>, m: &Loaded<B>, device: &B::Device) -> Outputs {
    let items = req.case.value_array("batch.prompts")?;
    let prompts = items.iter().map(|p| text(p, "text")).collect::<Result<Vec<_>, _>>()?;
    let refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
    let processor = req.case.processor()?;
    let ids = processor.encode_prompts(&refs).map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    if req.wanted.iter().any(|n| n.starts_with("batch.gen_")) {
        let images = items.iter().map(|p| text(p, "image")).collect::<Result<Vec<_>, _>>()?;
        let (feats, _) = features(req, m, processor, &images, device)?;
        let reference_steps =
            req.case.references.iter().find(|(n, _)| n == "batch.gen_new_ids").map(|(_, t)| t.shape[1]);
        let ids_tensor = |g: &GenerationOutput| {
            let steps = g.new_ids.first().map_or(0, Vec::len);
            let flat: Vec<u32> = g.new_ids.iter().flatten().copied().collect();
            HostTensor::ints(vec![g.new_ids.len(), steps], &flat)
        };
        let g = generate(req, m, processor, &ids, feats.clone(), reference_steps, SlidingCache::default(), device)?;
        out.insert("gen_new_ids".into(), ids_tensor(&g));
        out.insert("gen_step_logits".into(), step_logits(&g));
        if req.wanted.iter().any(|n| n == "batch.gen_new_ids_padding_correct") {
            let correct = SlidingCache::PaddingCorrect;
            let g = generate(req, m, processor, &ids, feats, reference_steps, correct, device)?;
            out.insert("gen_new_ids_padding_correct".into(), ids_tensor(&g));
        }
    }
    out.insert(
        "prefill_position_ids".into(),
        HostTensor::i64(vec![ids.batch, ids.seq], position_ids(&ids.attention_mask, ids.batch, true)),
    );
    let prefill = AttentionMask::prefix(&ids.attention_mask, ids.batch);
    if let Some(window) = m.model.language.sliding_window() {
        out.insert("prefill_attn_allowed_sliding".into(), mask_tensor(&prefill.sliding(window)));
    }
    out.insert("prefill_attn_allowed".into(), mask_tensor(&prefill));
    Ok(out)
}

fn train<B: Backend>(req: &Request<'_>, m: &Loaded<B>, device: &B::Device) -> Outputs {
    let examples = req.case.value_array("train.examples")?;
    let pairs =
        examples.iter().map(|e| Ok((text(e, "prefix")?, text(e, "suffix")?))).collect::<Result<Vec<_>, String>>()?;
    let images = examples.iter().map(|e| text(e, "image")).collect::<Result<Vec<_>, String>>()?;
    let processor = req.case.processor()?;
    let refs: Vec<(&str, &str)> = pairs.iter().map(|(p, s)| (p.as_str(), s.as_str())).collect();
    let ids = processor.prompts().training(&refs).map_err(|e| e.to_string())?;
    let (feats, _) = features(req, m, processor, &images, device)?;
    let mut out = text_forward(m, processor, &ids, Some(feats), true, device)?;
    let tt = ids.token_type_ids.as_deref().unwrap_or_default();
    let mut result = BTreeMap::new();
    insert_masks(m, &mut result, &AttentionMask::paligemma_training(&ids.attention_mask, tt, ids.batch));
    result.insert("attn_allowed_no_tt".into(), mask_tensor(&AttentionMask::prefix(&ids.attention_mask, ids.batch)));
    let logits = out.remove("logits").ok_or("no logits")?;
    let vocab = *logits.shape.last().unwrap_or(&1);
    let values = match &logits.values {
        crate::tensor::Values::F32(v) => v.clone(),
        crate::tensor::Values::I64(_) => return Err("integer logits".into()),
    };
    let labels = ids.labels.as_deref().unwrap_or_default();
    let loss = paligemma_loss(&values, vocab, labels, &ids.attention_mask, ids.batch).ok_or("no label to score")?;
    result.insert("loss".into(), HostTensor::f32(vec![1], vec![loss as f32]));
    result.insert("logits".into(), logits);
    Ok(result)
}
