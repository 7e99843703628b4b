//! One pre-LN transformer block of the SigLIP encoder.

use burn::nn::{LayerNorm, LayerNormConfig};
use burn::prelude::*;
use robovlm_ops::{layer_norm, residual_add};

use crate::attention::Attention;
use crate::config::VisionConfig;
use crate::mlp::Mlp;

/// `SiglipEncoderLayer`: `x += attn(LN1(x)); x += mlp(LN2(x))`.
#[derive(Module, Debug)]
pub struct EncoderLayer<B: Backend> {
    /// Norm before attention.
    pub layer_norm1: LayerNorm<B>,
    /// Self-attention.
    pub self_attn: Attention<B>,
    /// Norm before the MLP.
    pub layer_norm2: LayerNorm<B>,
    /// Feed-forward block.
    pub mlp: Mlp<B>,
    /// Epsilon of both norms (burn's `LayerNorm` does not expose its own).
    pub layer_norm_eps: f64,
}

impl<B: Backend> EncoderLayer<B> {
    pub(crate) fn new(c: &VisionConfig, device: &B::Device) -> Self {
        let norm = || LayerNormConfig::new(c.hidden_size).with_epsilon(c.layer_norm_eps).init(device);
        Self {
            layer_norm1: norm(),
            self_attn: Attention::new(c.hidden_size, c.num_attention_heads, device),
            layer_norm2: norm(),
            mlp: Mlp::new(c.hidden_size, c.intermediate_size, device),
            layer_norm_eps: c.layer_norm_eps,
        }
    }

    /// The norms compute in f32 whatever the precision (see [`robovlm_ops::layer_norm`]).
    ///
    /// # Shapes
    /// - `x`, returns: `[batch, tokens, hidden]`
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let eps = self.layer_norm_eps;
        let x = residual_add(x.clone(), self.self_attn.forward(layer_norm(&self.layer_norm1, eps, x)));
        residual_add(x.clone(), self.mlp.forward(layer_norm(&self.layer_norm2, eps, x)))
    }
}
