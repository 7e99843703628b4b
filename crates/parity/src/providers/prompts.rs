//! PaliGemma prompt ids: `p<N>.input_ids`/`attention_mask` (one prompt), `batch.*` (left-padded
//! batch) and `train.*` (prefix + suffix with token types and labels).

use serde_json::Value;

use super::{Produced, Request};
use crate::tensor::HostTensor;
use robovlm_core::PromptBatch;

pub fn provide(req: &Request<'_>, out: &mut Produced) {
    let kind = req.case.field("kind").and_then(Value::as_str).unwrap_or("");
    if !kind.starts_with("paligemma") {
        return;
    }
    for name in req.wanted {
        let Some((prefix, leaf)) = name.split_once('.') else { continue };
        if !matches!(leaf, "input_ids" | "attention_mask") || !is_prompt_key(prefix) {
            continue;
        }
        let result = single(req, prefix).map(|b| pick(&b, leaf));
        req.put(out, name.clone(), result);
    }
    let batch_names = ["batch.input_ids", "batch.attention_mask"];
    if batch_names.iter().any(|n| req.wanted.contains(*n)) {
        let batch = batch(req);
        for n in batch_names {
            let leaf = n.split_once('.').map(|(_, l)| l).unwrap_or(n);
            req.put(out, n.to_owned(), batch.as_ref().map(|b| pick(b, leaf)).map_err(Clone::clone));
        }
    }
    let train_names = ["train.input_ids", "train.attention_mask", "train.token_type_ids", "train.labels"];
    if train_names.iter().any(|n| req.wanted.contains(*n)) {
        let train = train(req);
        for n in train_names {
            let leaf = n.split_once('.').map(|(_, l)| l).unwrap_or(n);
            req.put(out, n.to_owned(), train.as_ref().map(|b| pick(b, leaf)).map_err(Clone::clone));
        }
    }
}

/// `p<N>`: a prompt of the case.
fn is_prompt_key(prefix: &str) -> bool {
    prefix.strip_prefix('p').is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn pick(b: &PromptBatch, leaf: &str) -> HostTensor {
    let shape = vec![b.batch, b.seq];
    match leaf {
        "input_ids" => HostTensor::ints(shape, &b.input_ids),
        "attention_mask" => HostTensor::ints(shape, &b.attention_mask),
        "token_type_ids" => HostTensor::ints(shape, b.token_type_ids.as_deref().unwrap_or_default()),
        "labels" => HostTensor::ints(shape, b.labels.as_deref().unwrap_or_default()),
        other => unreachable!("no prompt tensor {other}"),
    }
}

fn text_of(v: &Value, key: &str) -> Result<String, String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned).ok_or_else(|| format!("missing string `{key}`"))
}

fn single(req: &Request<'_>, prefix: &str) -> Result<PromptBatch, String> {
    let prompt = req
        .case
        .value(&format!("{prefix}.prompt"))
        .ok_or_else(|| format!("values.{prefix}.prompt missing"))
        .and_then(|v| text_of(v, "text"))?;
    req.case.processor()?.encode_prompts(&[&prompt]).map_err(|e| e.to_string())
}

fn batch(req: &Request<'_>) -> Result<PromptBatch, String> {
    let prompts =
        req.case.value_array("batch.prompts")?.iter().map(|p| text_of(p, "text")).collect::<Result<Vec<_>, _>>()?;
    let refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
    req.case.processor()?.encode_prompts(&refs).map_err(|e| e.to_string())
}

fn train(req: &Request<'_>) -> Result<PromptBatch, String> {
    let examples = req
        .case
        .value_array("train.examples")?
        .iter()
        .map(|e| Ok((text_of(e, "prefix")?, text_of(e, "suffix")?)))
        .collect::<Result<Vec<_>, String>>()?;
    let refs: Vec<(&str, &str)> = examples.iter().map(|(p, s)| (p.as_str(), s.as_str())).collect();
    req.case.processor()?.prompts().training(&refs).map_err(|e| e.to_string())
}
