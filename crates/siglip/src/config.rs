//! Architecture of the SigLIP vision tower.

use burn::prelude::*;

use crate::vision_tower::VisionTower;

/// Architecture of the SigLIP vision tower used inside PaliGemma.
///
/// Field names follow HF `vision_config` (`SiglipVisionConfig`); JSON goes through
/// [`VisionConfig::from_hf_value`], which applies transformers' defaults for absent keys.
#[derive(Config, Debug, PartialEq)]
pub struct VisionConfig {
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Inner width of each MLP block.
    pub intermediate_size: usize,
    /// Number of encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer; must divide `hidden_size`.
    pub num_attention_heads: usize,
    /// Square input resolution in pixels.
    pub image_size: usize,
    /// Square patch side in pixels; must divide `image_size`.
    pub patch_size: usize,
    /// Colour channels of the input image.
    #[config(default = 3)]
    pub num_channels: usize,
    /// Epsilon of every LayerNorm.
    #[config(default = 1e-6)]
    pub layer_norm_eps: f64,
}

impl VisionConfig {
    /// SigLIP-So400m/14 at 224 px, as in `google/paligemma-3b-pt-224` (`vision_config`).
    pub fn paligemma_224() -> Self {
        Self::new(1152, 4304, 27, 16, 224, 14)
    }

    /// SigLIP-So400m/14 at 448 px, as in `google/paligemma-3b-pt-448`.
    pub fn paligemma_448() -> Self {
        Self::new(1152, 4304, 27, 16, 448, 14)
    }

    /// SigLIP-So400m/14 at 896 px, as in `google/paligemma-3b-pt-896`.
    pub fn paligemma_896() -> Self {
        Self::new(1152, 4304, 27, 16, 896, 14)
    }

    /// Patches per side.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Image tokens produced per image.
    pub fn num_patches(&self) -> usize {
        self.grid().pow(2)
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// Builds a randomly initialised tower; load weights afterwards.
    ///
    /// # Panics
    /// If `num_attention_heads` does not divide `hidden_size` or `patch_size` does not divide
    /// `image_size` ([`VisionConfig::from_hf_value`] rejects such configs with an error first).
    pub fn init<B: Backend>(&self, device: &B::Device) -> VisionTower<B> {
        assert!(
            self.num_attention_heads > 0 && self.hidden_size.is_multiple_of(self.num_attention_heads),
            "num_attention_heads must divide hidden_size"
        );
        assert!(
            self.patch_size > 0 && self.image_size.is_multiple_of(self.patch_size),
            "patch_size must divide image_size"
        );
        VisionTower::new(self, device)
    }
}
