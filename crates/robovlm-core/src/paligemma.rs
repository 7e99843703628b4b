//! PaliGemma composition: vision tower → projector → ÷ sqrt(divisor) → image features.
//! (The language half joins with the Gemma issue.)

use std::path::Path;

use burn::prelude::*;
use projector::{Projector, ProjectorConfig};
use siglip::VisionTower;

use crate::config::PaliGemmaConfig;
use crate::error::{Error, Result};
use crate::weights::WeightFiles;

/// The image path of PaliGemma: SigLIP tower and projector, with their weights.
#[derive(Module, Debug)]
pub struct ImageEncoder<B: Backend> {
    /// SigLIP tower.
    pub vision: VisionTower<B>,
    /// Multimodal projector.
    pub projector: Projector<B>,
}

/// Every intermediate of the image path, for parity and debugging.
#[derive(Debug, Clone)]
pub struct ImageFeatures<B: Backend> {
    /// Tower embeddings `[batch, tokens, vision_hidden]`.
    pub vision_embeddings: Tensor<B, 3>,
    /// Each tower layer's output.
    pub vision_layer_outputs: Vec<Tensor<B, 3>>,
    /// Tower output after `post_layernorm`.
    pub vision_last_hidden_state: Tensor<B, 3>,
    /// Projector output `[batch, tokens, text_hidden]`.
    pub projector_output: Tensor<B, 3>,
    /// Projector output ÷ sqrt(divisor): what replaces the `<image>` embeddings.
    pub scaled: Tensor<B, 3>,
}

impl<B: Backend> ImageEncoder<B> {
    /// Builds the image path of `config` and loads its weights from the model directory.
    pub fn load(dir: &Path, config: &PaliGemmaConfig, device: &B::Device) -> Result<Self> {
        let files = WeightFiles::discover(dir)?;
        let mut vision = config.vision.init::<B>(device);
        vision
            .load_safetensors(&files.paths(), files.layout.vision)
            .map_err(|e| Error::Weights(e.to_string()))?;
        let mut projector = ProjectorConfig::new(config.vision.hidden_size, config.projection_dim).init::<B>(device);
        projector
            .load_safetensors(&files.paths(), files.layout.projector)
            .map_err(|e| Error::Weights(e.to_string()))?;
        Ok(Self { vision, projector })
    }

    /// Encodes images and keeps every intermediate.
    ///
    /// `divisor`: transformers divides by `sqrt(text_config.hidden_size)`, RoboVLMs by
    /// `sqrt(config.hidden_size)` (top level, default 2048) — the caller chooses.
    ///
    /// # Shapes
    /// - `pixels`: `[batch, 3, image_size, image_size]`
    pub fn forward_with_intermediates(&self, pixels: Tensor<B, 4>, divisor: f64) -> ImageFeatures<B> {
        let out = self.vision.forward_with_intermediates(pixels);
        let projector_output = self.projector.forward(out.last_hidden_state.clone());
        // PyTorch divides by a float32 scalar `hidden_size**0.5`.
        let scale = (divisor.sqrt() as f32) as f64;
        let scaled = projector_output.clone().div_scalar(scale);
        ImageFeatures {
            vision_embeddings: out.embeddings,
            vision_layer_outputs: out.layer_outputs,
            vision_last_hidden_state: out.last_hidden_state,
            projector_output,
            scaled,
        }
    }
}
