//! `tok<N>_ids` and `tok<N>_ids_autotokenizer`: the tokenizer on tricky strings.

use serde_json::Value;

use super::{Produced, Request};
use crate::tensor::HostTensor;

pub fn provide(req: &Request<'_>, out: &mut Produced) {
    for name in req.wanted {
        let Some(rest) = name.strip_prefix("tok") else { continue };
        let (index, add_special) = if let Some(i) = rest.strip_suffix("_ids") {
            (i, false)
        } else if let Some(i) = rest.strip_suffix("_ids_autotokenizer") {
            // AutoTokenizer's default call adds special tokens (PaliGemma's add nothing).
            (i, true)
        } else {
            continue;
        };
        let Ok(n) = index.parse::<usize>() else { continue };
        let result = tokenize(req, n, add_special);
        req.put(out, name.clone(), result);
    }
}

fn tokenize(req: &Request<'_>, n: usize, add_special: bool) -> Result<HostTensor, String> {
    let text = req
        .case
        .value(&format!("tok{n}"))
        .and_then(|v| v.get("string"))
        .or_else(|| req.case.case_json().and_then(|c| c.get("tokenizer_strings")).and_then(|s| s.get(n)))
        .and_then(Value::as_str)
        .ok_or_else(|| format!("no string for tok{n} in values or inputs/case.json"))?;
    let processor = req.case.processor()?;
    let ids = processor.tokenizer().encode(text, add_special).map_err(|e| e.to_string())?;
    Ok(HostTensor::ints(vec![ids.len()], &ids))
}
