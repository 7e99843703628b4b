//! One Gemma decoder layer.

use burn::prelude::*;

use crate::attention::Attention;
use crate::config::GemmaConfig;
use crate::kv_cache::KvCache;
use crate::mlp::Mlp;
use crate::rms_norm::RmsNorm;
use crate::rope::RopeTables;

/// `GemmaDecoderLayer`: `h += attn(norm1(h)); h += mlp(norm2(h))`.
#[derive(Module, Debug)]
pub struct DecoderLayer<B: Backend> {
    /// Norm before attention.
    pub input_layernorm: RmsNorm<B>,
    /// Self-attention.
    pub self_attn: Attention<B>,
    /// Norm before the MLP.
    pub post_attention_layernorm: RmsNorm<B>,
    /// Feed-forward block.
    pub mlp: Mlp<B>,
}

impl<B: Backend> DecoderLayer<B> {
    pub(crate) fn new(c: &GemmaConfig, device: &B::Device) -> Self {
        Self {
            input_layernorm: RmsNorm::new(c.hidden_size, c.rms_norm_eps, device),
            self_attn: Attention::new(c, device),
            post_attention_layernorm: RmsNorm::new(c.hidden_size, c.rms_norm_eps, device),
            mlp: Mlp::new(c.hidden_size, c.intermediate_size, device),
        }
    }

    /// # Shapes
    /// - `x`, returns: `[batch, seq, hidden]`; `bias` is the additive mask of [`crate::AttentionMask::to_bias`].
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        rope: &RopeTables<B>,
        bias: Option<&Tensor<B, 4>>,
        cache: Option<&mut KvCache<B>>,
    ) -> Tensor<B, 3> {
        // `x` is the f32 residual stream; the norms hand the blocks the compute precision and
        // their outputs are added back in f32 (no-op casts in f32).
        let dtype = x.dtype();
        let x = x.clone() + self.self_attn.forward(self.input_layernorm.forward(x), rope, bias, cache).cast(dtype);
        x.clone() + self.mlp.forward(self.post_attention_layernorm.forward(x)).cast(dtype)
    }
}
