//! Serde mirror of HF `text_config` (`GemmaConfig` / `Gemma2Config`, transformers 4.47.1):
//! every default and alias lives here. PaliGemma's `config.json` omits most keys.

use serde::{Deserialize, Serialize};

use crate::config::GemmaConfig;
use crate::error::Error;

/// Which decoder `text_config.model_type` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    /// `gemma` (PaliGemma; also when `model_type` is absent, as `PaliGemmaConfig` defaults it).
    Gemma1,
    /// `gemma2` (PaliGemma 2).
    Gemma2,
}

/// `text_config` as written by transformers. Absent keys take the version's defaults (see
/// [`HfGemmaConfig::defaults`]); an explicit `null` soft-cap means "no soft-capping", as in
/// transformers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct HfGemmaConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    /// Not `hidden_size / num_attention_heads`.
    pub head_dim: usize,
    pub rope_theta: f64,
    pub rms_norm_eps: f64,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    pub attention_bias: bool,
    /// `hidden_activation` (default gelu_pytorch_tanh).
    pub hidden_activation: Option<String>,
    /// Older Gemma 1 configs name it `hidden_act`; Gemma 2 ignores it.
    pub hidden_act: Option<String>,
    /// Must be null/absent.
    pub rope_scaling: Option<serde_json::Value>,
    /// Gemma 2 only.
    pub query_pre_attn_scalar: Option<f64>,
    /// Gemma 2 only; `null` = none.
    pub attn_logit_softcapping: Option<f64>,
    /// Gemma 2 only; `null` = none.
    pub final_logit_softcapping: Option<f64>,
    /// Gemma 2 only.
    pub sliding_window: Option<usize>,
}

impl HfGemmaConfig {
    /// transformers 4.47.1's constructor defaults of `GemmaConfig` / `Gemma2Config`.
    fn defaults(version: Version) -> Self {
        let gemma1 = Self {
            vocab_size: 256000,
            hidden_size: 3072,
            intermediate_size: 24576,
            num_hidden_layers: 28,
            num_attention_heads: 16,
            num_key_value_heads: 16,
            head_dim: 256,
            rope_theta: 10000.0,
            rms_norm_eps: 1e-6,
            max_position_embeddings: 8192,
            tie_word_embeddings: true,
            attention_bias: false,
            hidden_activation: None,
            hidden_act: None,
            rope_scaling: None,
            query_pre_attn_scalar: None,
            attn_logit_softcapping: None,
            final_logit_softcapping: None,
            sliding_window: None,
        };
        match version {
            Version::Gemma1 => gemma1,
            Version::Gemma2 => Self {
                hidden_size: 2304,
                intermediate_size: 9216,
                num_hidden_layers: 26,
                num_attention_heads: 8,
                num_key_value_heads: 4,
                query_pre_attn_scalar: Some(256.0),
                attn_logit_softcapping: Some(50.0),
                final_logit_softcapping: Some(30.0),
                sliding_window: Some(4096),
                ..gemma1
            },
        }
    }

    /// Parses a `text_config` object: its keys over the defaults of its `model_type`.
    fn parse(value: &serde_json::Value) -> Result<(Version, Self), Error> {
        let config_err = |field: &str, message: String| Error::Config { field: field.into(), message };
        let object = value.as_object().ok_or_else(|| config_err("text_config", "must be a JSON object".into()))?;
        let version = match object.get("model_type") {
            None | Some(serde_json::Value::Null) => Version::Gemma1,
            Some(serde_json::Value::String(t)) if t == "gemma" => Version::Gemma1,
            Some(serde_json::Value::String(t)) if t == "gemma2" => Version::Gemma2,
            Some(other) => {
                let shown: String = other.to_string().chars().take(24).collect();
                return Err(config_err(
                    "model_type",
                    format!("{shown} is not supported (\"gemma\" for PaliGemma, \"gemma2\" for PaliGemma 2)"),
                ));
            }
        };
        let mut merged = serde_json::to_value(Self::defaults(version)).expect("plain struct serialises");
        let fields = merged.as_object_mut().expect("struct serialises to an object");
        for (key, v) in object {
            if fields.contains_key(key) {
                fields.insert(key.clone(), v.clone());
            }
        }
        let hf = serde_json::from_value(merged).map_err(|e| config_err("text_config", e.to_string()))?;
        Ok((version, hf))
    }
}

/// transformers maps these to the tanh-approximated GELU in Gemma 1 (`gelu` too: Gemma forces
/// the approximate form for legacy `hidden_act: gelu`).
const TANH_GELU: [&str; 4] = ["gelu_pytorch_tanh", "gelu_new", "gelu_fast", "gelu"];

/// Gemma 2 looks its activation up in `ACT2FN` without that override: `gelu` is the exact erf
/// GELU there, which this decoder does not implement.
const GEMMA2_TANH_GELU: [&str; 3] = ["gelu_pytorch_tanh", "gelu_new", "gelu_fast"];

fn convert(version: Version, hf: HfGemmaConfig) -> Result<GemmaConfig, Error> {
    let bad = |field: &str, message: String| Err(Error::Config { field: field.into(), message });
    let act = match version {
        Version::Gemma1 => hf.hidden_activation.as_deref().or(hf.hidden_act.as_deref()),
        Version::Gemma2 => hf.hidden_activation.as_deref(),
    }
    .unwrap_or("gelu_pytorch_tanh");
    let supported: &[&str] = if version == Version::Gemma1 { &TANH_GELU } else { &GEMMA2_TANH_GELU };
    if !supported.contains(&act) {
        let shown: String = act.chars().take(24).collect();
        return bad("hidden_activation", format!("{shown:?} is not supported (tanh-approximated GELU only)"));
    }
    if hf.rope_scaling.as_ref().is_some_and(|v| !v.is_null()) {
        return bad("rope_scaling", "RoPE scaling is not supported".into());
    }
    if hf.num_key_value_heads == 0 || !hf.num_attention_heads.is_multiple_of(hf.num_key_value_heads) {
        return bad(
            "num_key_value_heads",
            format!("{} does not divide num_attention_heads {}", hf.num_key_value_heads, hf.num_attention_heads),
        );
    }
    if hf.head_dim == 0 || !hf.head_dim.is_multiple_of(2) {
        return bad("head_dim", format!("{} must be positive and even", hf.head_dim));
    }
    // Far above any released Gemma (27B: 4608 wide, 46 layers, 256k vocabulary), far below
    // what would exhaust memory while the module skeleton is built from the config.
    for (field, v, max) in [
        ("vocab_size", hf.vocab_size, 1 << 22),
        ("hidden_size", hf.hidden_size, 1 << 16),
        ("intermediate_size", hf.intermediate_size, 1 << 18),
        ("num_hidden_layers", hf.num_hidden_layers, 1024),
        ("num_attention_heads", hf.num_attention_heads, 1024),
        ("head_dim", hf.head_dim, 4096),
        ("max_position_embeddings", hf.max_position_embeddings, 1 << 15),
    ] {
        if !(1..=max).contains(&v) {
            return bad(field, format!("{v} is out of range (1..={max})"));
        }
    }
    if !(hf.rope_theta > 0.0 && hf.rope_theta.is_finite() && hf.rms_norm_eps >= 0.0 && hf.rms_norm_eps.is_finite()) {
        return bad("rope_theta", "rope_theta must be positive and rms_norm_eps non-negative".into());
    }
    let config = GemmaConfig::new(
        hf.vocab_size,
        hf.hidden_size,
        hf.intermediate_size,
        hf.num_hidden_layers,
        hf.num_attention_heads,
        hf.num_key_value_heads,
        hf.head_dim,
    )
    .with_rope_theta(hf.rope_theta)
    .with_rms_norm_eps(hf.rms_norm_eps)
    .with_max_position_embeddings(hf.max_position_embeddings)
    .with_tie_word_embeddings(hf.tie_word_embeddings)
    .with_attention_bias(hf.attention_bias);
    if version == Version::Gemma1 {
        return Ok(config);
    }
    let positive = |field: &str, v: Option<f64>| match v {
        Some(x) if !(x > 0.0 && x.is_finite()) => {
            Err(Error::Config { field: field.into(), message: format!("{x} must be positive") })
        }
        _ => Ok(v),
    };
    let scalar = positive("query_pre_attn_scalar", hf.query_pre_attn_scalar)?
        .ok_or_else(|| Error::Config { field: "query_pre_attn_scalar".into(), message: "must be a number".into() })?;
    let window = match hf.sliding_window {
        Some(w) if (1..=1 << 20).contains(&w) => w,
        Some(w) => return bad("sliding_window", format!("{w} is out of range (1..={})", 1 << 20)),
        // transformers 4.47.1 cannot run a Gemma 2 without a window (its mask code needs one).
        None => return bad("sliding_window", "must be a positive integer for gemma2".into()),
    };
    Ok(config
        .with_query_pre_attn_scalar(Some(scalar))
        .with_attn_logit_softcapping(positive("attn_logit_softcapping", hf.attn_logit_softcapping)?)
        .with_final_logit_softcapping(positive("final_logit_softcapping", hf.final_logit_softcapping)?)
        .with_sliding_window(Some(window))
        .with_sandwich_norms(true))
}

impl GemmaConfig {
    /// Parses an HF `text_config` JSON object (`model_type` `gemma`, absent, or `gemma2`).
    pub fn from_hf_value(value: &serde_json::Value) -> Result<Self, Error> {
        let (version, hf) = HfGemmaConfig::parse(value)?;
        convert(version, hf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paligemma_text_config_gets_transformers_defaults() {
        // google/paligemma-3b-pt-224 config.json, text_config as written.
        let c = GemmaConfig::from_hf_value(&serde_json::json!({
            "hidden_size": 2048, "intermediate_size": 16384, "model_type": "gemma",
            "num_attention_heads": 8, "num_hidden_layers": 18, "num_image_tokens": 256,
            "num_key_value_heads": 1, "torch_dtype": "float32", "vocab_size": 257216
        }))
        .unwrap();
        assert_eq!(c, GemmaConfig::paligemma_3b());
        assert_eq!(c.head_dim, 256);
        assert_eq!(c.group_size(), 8);
    }

    #[test]
    fn paligemma2_text_config_gets_gemma2_defaults() {
        // google/paligemma2-3b-pt-224 config.json, text_config as written by convert_paligemma2.
        let c = GemmaConfig::from_hf_value(&serde_json::json!({
            "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 2304, "intermediate_size": 9216,
            "model_type": "gemma2", "num_attention_heads": 8, "num_hidden_layers": 26,
            "num_image_tokens": 256, "num_key_value_heads": 4, "vocab_size": 257216,
            "cache_implementation": "hybrid"
        }))
        .unwrap();
        assert_eq!(c, GemmaConfig::paligemma2_3b());
        assert!(c.is_sliding(0) && !c.is_sliding(1) && c.is_sliding(24));
        // Explicit nulls switch a soft-cap off, as in transformers; the scalar is never head_dim.
        let c = GemmaConfig::from_hf_value(&serde_json::json!({
            "model_type": "gemma2", "head_dim": 128, "query_pre_attn_scalar": 144,
            "final_logit_softcapping": null
        }))
        .unwrap();
        assert_eq!((c.query_pre_attn_scalar, c.final_logit_softcapping), (Some(144.0), None));
        assert_eq!(c.attn_logit_softcapping, Some(50.0));
        // Gemma 1 has none of it.
        let c = GemmaConfig::from_hf_value(&serde_json::json!({"model_type": "gemma"})).unwrap();
        assert!(!c.sandwich_norms && c.sliding_window.is_none() && c.query_pre_attn_scalar.is_none());
    }

    #[test]
    fn bad_values_name_the_field() {
        for (json, field) in [
            (serde_json::json!({"num_attention_heads": 4, "num_key_value_heads": 3}), "num_key_value_heads"),
            (serde_json::json!({"head_dim": 15}), "head_dim"),
            (serde_json::json!({"hidden_activation": "relu"}), "hidden_activation"),
            (serde_json::json!({"rope_scaling": {"type": "linear"}}), "rope_scaling"),
            (serde_json::json!({"vocab_size": -1}), "text_config"),
            (serde_json::json!({"model_type": "gemma3_text"}), "model_type"),
            (serde_json::json!({"model_type": "gemma2", "hidden_activation": "gelu"}), "hidden_activation"),
            (serde_json::json!({"model_type": "gemma2", "sliding_window": null}), "sliding_window"),
            (serde_json::json!({"model_type": "gemma2", "sliding_window": 0}), "sliding_window"),
            (serde_json::json!({"model_type": "gemma2", "attn_logit_softcapping": -1.0}), "attn_logit_softcapping"),
            (serde_json::json!({"model_type": "gemma2", "query_pre_attn_scalar": 0}), "query_pre_attn_scalar"),
            (serde_json::json!([1, 2]), "text_config"),
        ] {
            let err = GemmaConfig::from_hf_value(&json).unwrap_err().to_string();
            assert!(err.contains(field), "{json}: {err}");
        }
    }
}
