//! Serde mirror of HF `text_config` (`GemmaConfig`, transformers 4.47.1): every default and
//! alias lives here. PaliGemma's `config.json` omits most keys.

use serde::Deserialize;

use crate::config::GemmaConfig;
use crate::error::Error;

/// `text_config` as written by transformers, with `GemmaConfig`'s defaults for absent keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub(crate) struct HfGemmaConfig {
    /// Default 256000.
    pub vocab_size: usize,
    /// Default 3072.
    pub hidden_size: usize,
    /// Default 24576.
    pub intermediate_size: usize,
    /// Default 28.
    pub num_hidden_layers: usize,
    /// Default 16.
    pub num_attention_heads: usize,
    /// Default 16.
    pub num_key_value_heads: usize,
    /// Default 256 (not `hidden_size / num_attention_heads`).
    pub head_dim: usize,
    /// Default 10000.
    pub rope_theta: f64,
    /// Default 1e-6.
    pub rms_norm_eps: f64,
    /// Default 8192.
    pub max_position_embeddings: usize,
    /// Default true.
    pub tie_word_embeddings: bool,
    /// Default false.
    pub attention_bias: bool,
    /// `hidden_activation` (default gelu_pytorch_tanh).
    pub hidden_activation: Option<String>,
    /// Older configs name it `hidden_act`.
    pub hidden_act: Option<String>,
    /// Must be null/absent for Gemma v1.
    pub rope_scaling: Option<serde_json::Value>,
}

impl Default for HfGemmaConfig {
    fn default() -> Self {
        Self {
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
        }
    }
}

/// transformers maps these to the tanh-approximated GELU in Gemma (`gelu` too: Gemma forces the
/// approximate form for legacy `hidden_act: gelu`).
const TANH_GELU: [&str; 4] = ["gelu_pytorch_tanh", "gelu_new", "gelu_fast", "gelu"];

impl TryFrom<HfGemmaConfig> for GemmaConfig {
    type Error = Error;

    fn try_from(hf: HfGemmaConfig) -> Result<Self, Error> {
        let bad = |field: &str, message: String| Err(Error::Config { field: field.into(), message });
        let act = hf.hidden_activation.as_deref().or(hf.hidden_act.as_deref()).unwrap_or("gelu_pytorch_tanh");
        if !TANH_GELU.contains(&act) {
            return bad("hidden_activation", format!("{act:?} is not supported (tanh-approximated GELU only)"));
        }
        if hf.rope_scaling.as_ref().is_some_and(|v| !v.is_null()) {
            return bad("rope_scaling", "RoPE scaling is not supported".into());
        }
        if hf.num_key_value_heads == 0 || hf.num_attention_heads % hf.num_key_value_heads != 0 {
            return bad(
                "num_key_value_heads",
                format!("{} does not divide num_attention_heads {}", hf.num_key_value_heads, hf.num_attention_heads),
            );
        }
        if hf.head_dim == 0 || hf.head_dim % 2 != 0 {
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
        if !(hf.rope_theta > 0.0 && hf.rms_norm_eps >= 0.0) {
            return bad("rope_theta", "rope_theta must be positive and rms_norm_eps non-negative".into());
        }
        Ok(GemmaConfig::new(
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
        .with_attention_bias(hf.attention_bias))
    }
}

impl GemmaConfig {
    /// Parses an HF `text_config` JSON object.
    pub fn from_hf_value(value: &serde_json::Value) -> Result<Self, Error> {
        let hf: HfGemmaConfig = serde_json::from_value(value.clone())
            .map_err(|e| Error::Config { field: "text_config".into(), message: e.to_string() })?;
        hf.try_into()
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
    fn bad_values_name_the_field() {
        for (json, field) in [
            (serde_json::json!({"num_attention_heads": 4, "num_key_value_heads": 3}), "num_key_value_heads"),
            (serde_json::json!({"head_dim": 15}), "head_dim"),
            (serde_json::json!({"hidden_activation": "relu"}), "hidden_activation"),
            (serde_json::json!({"rope_scaling": {"type": "linear"}}), "rope_scaling"),
            (serde_json::json!({"vocab_size": -1}), "text_config"),
        ] {
            let err = GemmaConfig::from_hf_value(&json).unwrap_err().to_string();
            assert!(err.contains(field), "{json}: {err}");
        }
    }
}
