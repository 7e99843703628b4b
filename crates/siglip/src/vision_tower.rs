//! The whole tower: embeddings → encoder layers → post-layernorm.

use burn::nn::{LayerNorm, LayerNormConfig};
use burn::prelude::*;
use robovlm_ops::{layer_norm, on_kernel_pool};

use crate::config::VisionConfig;
use crate::embeddings::Embeddings;
use crate::encoder_layer::EncoderLayer;

/// `SiglipEncoder`: the stack of layers (a `Vec`, so weight paths read `layers.3.…`).
#[derive(Module, Debug)]
pub struct Encoder<B: Backend> {
    /// Encoder layers in order.
    pub layers: Vec<EncoderLayer<B>>,
}

/// `SiglipVisionTransformer` without a pooling head, as PaliGemma uses it
/// (`vision_use_head=false`): the output is `last_hidden_state`.
///
/// The module tree mirrors the checkpoint below `vision_tower.vision_model.`, so loading is a
/// prefix (see [`VisionTower::load_weights`]).
#[derive(Module, Debug)]
pub struct VisionTower<B: Backend> {
    /// Patch + position embeddings.
    pub embeddings: Embeddings<B>,
    /// Encoder layers.
    pub encoder: Encoder<B>,
    /// Final LayerNorm.
    pub post_layernorm: LayerNorm<B>,
    /// Its epsilon (burn's `LayerNorm` does not expose its own).
    pub layer_norm_eps: f64,
}

/// Every intermediate of one forward pass, for parity checks and debugging.
#[derive(Debug, Clone)]
pub struct VisionTowerOutput<B: Backend> {
    /// Embeddings (patches + positions), `[batch, tokens, hidden]`.
    pub embeddings: Tensor<B, 3>,
    /// Output of each encoder layer, in order.
    pub layer_outputs: Vec<Tensor<B, 3>>,
    /// After `post_layernorm`: what PaliGemma projects.
    pub last_hidden_state: Tensor<B, 3>,
}

impl<B: Backend> VisionTower<B> {
    pub(crate) fn new(c: &VisionConfig, device: &B::Device) -> Self {
        Self {
            embeddings: Embeddings::new(c, device),
            encoder: Encoder { layers: (0..c.num_hidden_layers).map(|_| EncoderLayer::new(c, device)).collect() },
            post_layernorm: LayerNormConfig::new(c.hidden_size).with_epsilon(c.layer_norm_eps).init(device),
            layer_norm_eps: c.layer_norm_eps,
        }
    }

    /// Encodes images.
    ///
    /// # Shapes
    /// - `pixels`: `[batch, channels, image_size, image_size]` (the processor's `pixel_values`)
    /// - returns: `[batch, num_patches, hidden]` (`last_hidden_state`)
    pub fn forward(&self, pixels: Tensor<B, 4>) -> Tensor<B, 3> {
        on_kernel_pool::<B, _>(|| {
            let x = self.encoder.layers.iter().fold(self.embeddings.forward(pixels), |x, layer| layer.forward(x));
            layer_norm(&self.post_layernorm, self.layer_norm_eps, x)
        })
    }

    /// Like [`Self::forward`], keeping the embeddings and every layer's output.
    pub fn forward_with_intermediates(&self, pixels: Tensor<B, 4>) -> VisionTowerOutput<B> {
        on_kernel_pool::<B, _>(|| self.forward_with_intermediates_here(pixels))
    }

    fn forward_with_intermediates_here(&self, pixels: Tensor<B, 4>) -> VisionTowerOutput<B> {
        let embeddings = self.embeddings.forward(pixels);
        let mut layer_outputs = Vec::with_capacity(self.encoder.layers.len());
        let mut x = embeddings.clone();
        for layer in &self.encoder.layers {
            x = layer.forward(x);
            layer_outputs.push(x.clone());
        }
        let last_hidden_state = layer_norm(&self.post_layernorm, self.layer_norm_eps, x);
        VisionTowerOutput { embeddings, layer_outputs, last_hidden_state }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use robovlm_test_utils::TestBackend;

    #[test]
    fn shapes_follow_the_config() {
        let device = Default::default();
        let c = VisionConfig::new(12, 20, 2, 3, 28, 7);
        let tower = c.init::<TestBackend>(&device);
        let out = tower.forward_with_intermediates(Tensor::zeros([2, 3, 28, 28], &device));
        assert_eq!(out.embeddings.dims(), [2, 16, 12]);
        assert_eq!(out.layer_outputs.len(), 2);
        assert_eq!(out.last_hidden_state.dims(), [2, 16, 12]);
    }
}
