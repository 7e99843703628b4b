//! Gemma's gated feed-forward block.

use burn::nn::LinearConfig;
use burn::prelude::*;
use robovlm_ops::{Linear, gelu_tanh_mul};

use crate::row_matmul;

/// `GemmaMLP`: `down(gelu_tanh(gate(x)) · up(x))` (GeGLU, no biases).
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    /// `hidden → intermediate`, activated.
    pub gate_proj: Linear<B>,
    /// `hidden → intermediate`, linear.
    pub up_proj: Linear<B>,
    /// `intermediate → hidden`.
    pub down_proj: Linear<B>,
}

impl<B: Backend> Mlp<B> {
    pub(crate) fn new(hidden: usize, intermediate: usize, device: &B::Device) -> Self {
        let linear = |i, o| Linear::from(LinearConfig::new(i, o).with_bias(false).init(device));
        Self {
            gate_proj: linear(hidden, intermediate),
            up_proj: linear(hidden, intermediate),
            down_proj: linear(intermediate, hidden),
        }
    }

    /// # Shapes
    /// - `x`, returns: `[batch, seq, hidden]`
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let gate = row_matmul::linear(&self.gate_proj, x.clone());
        // On the bf16 fast path the up projection's epilogue applies the GeGLU (the same values,
        // `up` never stored); elsewhere the two steps, with this crate's one-row products.
        let hidden = match self.up_proj.fast_gelu_mul(x, gate) {
            Ok(hidden) => hidden,
            Err((x, gate)) => gelu_tanh_mul(gate, row_matmul::linear(&self.up_proj, x)),
        };
        row_matmul::linear(&self.down_proj, hidden)
    }
}
