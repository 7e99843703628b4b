//! Feed-forward block of a SigLIP encoder layer.

use burn::nn::LinearConfig;
use burn::prelude::*;
use robovlm_ops::Linear;

/// `SiglipMLP`: `fc2(gelu_tanh(fc1(x)))`.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    /// `hidden → intermediate`.
    pub fc1: Linear<B>,
    /// `intermediate → hidden`.
    pub fc2: Linear<B>,
}

impl<B: Backend> Mlp<B> {
    pub(crate) fn new(hidden: usize, intermediate: usize, device: &B::Device) -> Self {
        Self {
            fc1: LinearConfig::new(hidden, intermediate).init(device).into(),
            fc2: LinearConfig::new(intermediate, hidden).init(device).into(),
        }
    }

    /// # Shapes
    /// - `x`, returns: `[batch, tokens, hidden]`
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        self.fc2.forward(self.fc1.forward_gelu(x))
    }
}
