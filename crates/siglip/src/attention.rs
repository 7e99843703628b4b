//! Bidirectional multi-head self-attention of a SigLIP encoder layer.

use burn::nn::LinearConfig;
use burn::prelude::*;
use robovlm_ops::Linear;
use robovlm_ops::attention;

/// `SiglipAttention`: biased q/k/v/out projections, scale `head_dim^-0.5`, no mask.
#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    /// Query projection (with bias).
    pub q_proj: Linear<B>,
    /// Key projection (with bias).
    pub k_proj: Linear<B>,
    /// Value projection (with bias).
    pub v_proj: Linear<B>,
    /// Output projection (with bias).
    pub out_proj: Linear<B>,
    /// Number of heads.
    pub num_heads: usize,
}

impl<B: Backend> Attention<B> {
    pub(crate) fn new(hidden: usize, num_heads: usize, device: &B::Device) -> Self {
        let linear = || Linear::from(LinearConfig::new(hidden, hidden).with_bias(true).init(device));
        Self { q_proj: linear(), k_proj: linear(), v_proj: linear(), out_proj: linear(), num_heads }
    }

    /// # Shapes
    /// - `x`, returns: `[batch, tokens, hidden]`
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [batch, tokens, hidden] = x.dims();
        let head_dim = hidden / self.num_heads;
        let heads = |t: Tensor<B, 3>| t.reshape([batch, tokens, self.num_heads, head_dim]).swap_dims(1, 2);
        let q = heads(self.q_proj.forward(x.clone()));
        let k = heads(self.k_proj.forward(x.clone()));
        let v = heads(self.v_proj.forward(x));
        // Default scale is 1/sqrt(head_dim), as SigLIP's.
        let out = attention(q, k, v, None);
        self.out_proj.forward(out.swap_dims(1, 2).reshape([batch, tokens, hidden]))
    }
}
