//! Serde mirror of HF `vision_config` (`SiglipVisionConfig`, transformers 4.47.1): every HF
//! default and quirk lives here. PaliGemma's `config.json` omits most keys.

use serde::Deserialize;

use crate::config::VisionConfig;
use crate::error::Error;

/// `vision_config` as written by transformers, with its class defaults for absent keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub(crate) struct HfVisionConfig {
    /// `hidden_size` (default 768).
    pub hidden_size: usize,
    /// `intermediate_size` (default 3072).
    pub intermediate_size: usize,
    /// `num_hidden_layers` (default 12).
    pub num_hidden_layers: usize,
    /// `num_attention_heads` (default 12).
    pub num_attention_heads: usize,
    /// `num_channels` (default 3).
    pub num_channels: usize,
    /// `image_size` (default 224).
    pub image_size: usize,
    /// `patch_size` (default 16).
    pub patch_size: usize,
    /// `layer_norm_eps` (default 1e-6).
    pub layer_norm_eps: f64,
    /// `hidden_act` (default `gelu_pytorch_tanh`); only tanh-approximated GELU is implemented.
    pub hidden_act: String,
    /// `vision_use_head`: PaliGemma sets false; a pooling head is not implemented.
    pub vision_use_head: Option<bool>,
}

impl Default for HfVisionConfig {
    fn default() -> Self {
        Self {
            hidden_size: 768,
            intermediate_size: 3072,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            num_channels: 3,
            image_size: 224,
            patch_size: 16,
            layer_norm_eps: 1e-6,
            hidden_act: "gelu_pytorch_tanh".into(),
            vision_use_head: None,
        }
    }
}

/// Activations equal to transformers' `gelu_pytorch_tanh` (tanh-approximated GELU).
const TANH_GELU: [&str; 3] = ["gelu_pytorch_tanh", "gelu_new", "gelu_fast"];

impl TryFrom<HfVisionConfig> for VisionConfig {
    type Error = Error;

    fn try_from(hf: HfVisionConfig) -> Result<Self, Error> {
        let bad = |field: &str, message: String| Err(Error::Config { field: field.into(), message });
        if !TANH_GELU.contains(&hf.hidden_act.as_str()) {
            return bad("hidden_act", format!("{:?} is not supported (tanh-approximated GELU only)", hf.hidden_act));
        }
        if hf.vision_use_head == Some(true) {
            return bad("vision_use_head", "a pooling head is not supported (PaliGemma does not use one)".into());
        }
        if hf.num_attention_heads == 0 || !hf.hidden_size.is_multiple_of(hf.num_attention_heads) {
            return bad(
                "num_attention_heads",
                format!("{} does not divide hidden_size {}", hf.num_attention_heads, hf.hidden_size),
            );
        }
        if hf.patch_size == 0 || !hf.image_size.is_multiple_of(hf.patch_size) {
            return bad("patch_size", format!("{} does not divide image_size {}", hf.patch_size, hf.image_size));
        }
        // Far above any released SigLIP (So400m: 1152 wide, 27 layers, 896 px), far below what
        // would exhaust memory while the module skeleton is built from the config.
        for (field, v, max) in [
            ("hidden_size", hf.hidden_size, 1 << 16),
            ("intermediate_size", hf.intermediate_size, 1 << 18),
            ("num_hidden_layers", hf.num_hidden_layers, 1024),
            ("num_attention_heads", hf.num_attention_heads, 1024),
            ("num_channels", hf.num_channels, 4),
            ("image_size", hf.image_size, 1 << 14),
        ] {
            if !(1..=max).contains(&v) {
                return bad(field, format!("{v} is out of range (1..={max})"));
            }
        }
        Ok(VisionConfig::new(
            hf.hidden_size,
            hf.intermediate_size,
            hf.num_hidden_layers,
            hf.num_attention_heads,
            hf.image_size,
            hf.patch_size,
        )
        .with_num_channels(hf.num_channels)
        .with_layer_norm_eps(hf.layer_norm_eps))
    }
}

impl VisionConfig {
    /// Parses an HF `vision_config` JSON object.
    pub fn from_hf_value(value: &serde_json::Value) -> Result<Self, Error> {
        let hf: HfVisionConfig = serde_json::from_value(value.clone())
            .map_err(|e| Error::Config { field: "vision_config".into(), message: e.to_string() })?;
        hf.try_into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_to_absent_keys() {
        let c = VisionConfig::from_hf_value(&serde_json::json!({
            "hidden_size": 1152, "intermediate_size": 4304, "num_hidden_layers": 27,
            "num_attention_heads": 16, "patch_size": 14, "projection_dim": 2048, "model_type": "siglip_vision_model"
        }))
        .unwrap();
        assert_eq!(c, VisionConfig::paligemma_224());
        assert_eq!(c.num_patches(), 256);
        assert_eq!(VisionConfig::paligemma_448().num_patches(), 1024);
        assert_eq!(VisionConfig::paligemma_896().num_patches(), 4096);
    }

    #[test]
    fn bad_values_name_the_field() {
        for (json, field) in [
            (serde_json::json!({"hidden_size": 30, "num_attention_heads": 4}), "num_attention_heads"),
            (serde_json::json!({"image_size": 50, "patch_size": 14}), "patch_size"),
            (serde_json::json!({"hidden_act": "relu"}), "hidden_act"),
            (serde_json::json!({"vision_use_head": true}), "vision_use_head"),
            (serde_json::json!({"hidden_size": "wide"}), "vision_config"),
        ] {
            let err = VisionConfig::from_hf_value(&json).unwrap_err().to_string();
            assert!(err.contains(field), "{json}: {err}");
        }
    }
}
