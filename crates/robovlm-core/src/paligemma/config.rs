//! PaliGemma's top-level `config.json` (transformers 4.47.1 `PaliGemmaConfig`).

use std::path::{Path, PathBuf};

use gemma::GemmaConfig;
use serde::Deserialize;
use serde_json::Value;
use siglip::VisionConfig;

use crate::error::{Error, Result, read_json};

/// `hidden_size` used by RoboVLMs' image-feature divisor when the top-level key is absent
/// (PaliGemma-2 style exports; fixtures README §4.4).
pub const DEFAULT_TOP_LEVEL_HIDDEN_SIZE: usize = 2048;

#[derive(Debug, Deserialize)]
struct HfPaliGemma {
    image_token_index: Option<u32>,
    projection_dim: Option<usize>,
    hidden_size: Option<usize>,
    #[serde(default)]
    text_config: Value,
    #[serde(default)]
    vision_config: Value,
}

/// The parts of `config.json` the composition needs; the towers parse their own sections.
#[derive(Debug, Clone, PartialEq)]
pub struct PaliGemmaConfig {
    /// The vision tower.
    pub vision: VisionConfig,
    /// Projector output width (`projection_dim`, default 2048).
    pub projection_dim: usize,
    /// `text_config.hidden_size` (Gemma's width; transformers' image-feature divisor).
    pub text_hidden_size: usize,
    /// Top-level `hidden_size` if present (RoboVLMs' image-feature divisor).
    pub top_level_hidden_size: Option<usize>,
    /// `image_token_index` if present.
    pub image_token_index: Option<u32>,
    /// The raw `text_config` object, for the language model's own parser.
    pub text_config: Value,
    /// Where it was read from.
    pub path: PathBuf,
}

impl PaliGemmaConfig {
    /// Reads `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let hf: HfPaliGemma = read_json(path)?;
        let vision = VisionConfig::from_hf_value(&hf.vision_config)
            .map_err(|e| Error::config(path, "vision_config", e.to_string()))?;
        // transformers' GemmaConfig default hidden_size is 2048.
        let text_hidden_size = match hf.text_config.get("hidden_size") {
            None => 2048,
            Some(v) => v
                .as_u64()
                .filter(|&h| h > 0)
                .ok_or_else(|| Error::config(path, "text_config.hidden_size", "must be a positive integer"))?
                as usize,
        };
        let projection_dim = hf.projection_dim.unwrap_or(2048);
        if projection_dim != text_hidden_size {
            return Err(Error::config(
                path,
                "projection_dim",
                format!("{projection_dim} differs from text_config.hidden_size {text_hidden_size}"),
            ));
        }
        Ok(Self {
            vision,
            projection_dim,
            text_hidden_size,
            top_level_hidden_size: hf.hidden_size,
            image_token_index: hf.image_token_index,
            text_config: hf.text_config,
            path: path.to_owned(),
        })
    }

    /// The language model's architecture (`text_config` with transformers' defaults).
    pub fn text(&self) -> Result<GemmaConfig> {
        GemmaConfig::from_hf_value(&self.text_config)
            .map_err(|e| Error::config(&self.path, "text_config", e.to_string()))
    }

    /// What image features are divided by the square root of, the RoboVLMs way: the top-level
    /// `hidden_size`, [`DEFAULT_TOP_LEVEL_HIDDEN_SIZE`] when absent (transformers uses
    /// `text_hidden_size` instead).
    pub fn robovlms_divisor(&self) -> f64 {
        self.top_level_hidden_size.unwrap_or(DEFAULT_TOP_LEVEL_HIDDEN_SIZE) as f64
    }
}
