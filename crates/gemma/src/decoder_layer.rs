//! One Gemma decoder layer (Gemma 1 or Gemma 2 block order).

use std::ops::Range;

use burn::prelude::*;
use robovlm_ops::residual_add;

use crate::attention::Attention;
use crate::config::GemmaConfig;
use crate::kv_cache::KvCache;
use crate::mlp::Mlp;
use crate::rms_norm::RmsNorm;
use crate::rope::RopeTables;

/// `GemmaDecoderLayer` / `Gemma2DecoderLayer`.
///
/// - Gemma 1: `h += attn(input_layernorm(h)); h += mlp(post_attention_layernorm(h))`.
/// - Gemma 2: `h += post_attention_layernorm(attn(input_layernorm(h)));
///   h += post_feedforward_layernorm(mlp(pre_feedforward_layernorm(h)))` — the same checkpoint
///   name `post_attention_layernorm` sits at a different place (fixtures README §7.1).
#[derive(Module, Debug)]
pub struct DecoderLayer<B: Backend> {
    /// Norm before attention.
    pub input_layernorm: RmsNorm<B>,
    /// Self-attention.
    pub self_attn: Attention<B>,
    /// Gemma 1: the norm before the MLP. Gemma 2: the norm of the attention output.
    pub post_attention_layernorm: RmsNorm<B>,
    /// Gemma 2: the norm before the MLP.
    pub pre_feedforward_layernorm: Option<RmsNorm<B>>,
    /// Feed-forward block.
    pub mlp: Mlp<B>,
    /// Gemma 2: the norm of the MLP output.
    pub post_feedforward_layernorm: Option<RmsNorm<B>>,
    /// The window of a sliding-attention layer (Gemma 2's even layers); `None` = global.
    pub sliding_window: Option<usize>,
}

impl<B: Backend> DecoderLayer<B> {
    pub(crate) fn new(c: &GemmaConfig, index: usize, device: &B::Device) -> Self {
        let norm = || RmsNorm::new(c.hidden_size, c.rms_norm_eps, device);
        Self {
            input_layernorm: norm(),
            self_attn: Attention::new(c, device),
            post_attention_layernorm: norm(),
            pre_feedforward_layernorm: c.sandwich_norms.then(norm),
            mlp: Mlp::new(c.hidden_size, c.intermediate_size, device),
            post_feedforward_layernorm: c.sandwich_norms.then(norm),
            sliding_window: if c.is_sliding(index) { c.sliding_window } else { None },
        }
    }

    /// # Shapes
    /// - `x`: `[batch, seq, hidden]`; `bias` is the additive mask of
    ///   [`crate::AttentionMask::to_bias`] for this layer's keys (the decoder builds the
    ///   sliding layers' own).
    /// - `rows`: the positions (of `0..seq`) whose outputs are wanted, `None` = all: attention
    ///   still reads (and caches) every position's keys and values, but queries, the output
    ///   projection and the MLP run on these rows only.
    /// - returns: `[batch, rows, hidden]`
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        rope: &RopeTables<B>,
        bias: Option<&Tensor<B, 4>>,
        cache: Option<&mut KvCache<B>>,
        rows: Option<Range<usize>>,
    ) -> Tensor<B, 3> {
        // `x` is the f32 residual stream; the norms hand the blocks the compute precision and
        // their outputs are added back in f32 (`residual_add` casts them; no-ops in f32).
        let attn = self.self_attn.forward(self.input_layernorm.forward(x.clone()), rope, bias, cache, rows.clone());
        let x = match rows {
            Some(rows) => {
                let [batch, _, width] = x.dims();
                x.slice([0..batch, rows, 0..width])
            }
            None => x,
        };
        match (&self.pre_feedforward_layernorm, &self.post_feedforward_layernorm) {
            (Some(pre), Some(post)) => {
                let x = residual_add(x, self.post_attention_layernorm.forward(attn));
                residual_add(x.clone(), post.forward(self.mlp.forward(pre.forward(x))))
            }
            _ => {
                let x = residual_add(x, attn);
                residual_add(x.clone(), self.mlp.forward(self.post_attention_layernorm.forward(x)))
            }
        }
    }
}
