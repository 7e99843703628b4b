//! Grouped-query self-attention of a Gemma layer, with RoPE and an optional KV cache.

use std::ops::Range;

use burn::nn::LinearConfig;
use burn::prelude::*;
use burn::tensor::ops::AttentionModuleOptions;
use robovlm_ops::Linear;
use robovlm_ops::attention_grouped;

use crate::config::GemmaConfig;
use crate::kv_cache::KvCache;
use crate::rope::{RopeTables, apply};
use crate::row_matmul;

/// `GemmaAttention` / `Gemma2Attention` (transformers 4.47.1, eager): `num_attention_heads`
/// query heads share `num_key_value_heads` key/value heads (1 = multi-query), each `head_dim`
/// wide (independent of the hidden size). Scores are scaled by `head_dim^-0.5` (Gemma 1) or
/// `query_pre_attn_scalar^-0.5` (Gemma 2), then soft-capped (Gemma 2), then masked.
#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    /// `hidden → heads · head_dim`.
    pub q_proj: Linear<B>,
    /// `hidden → kv_heads · head_dim`.
    pub k_proj: Linear<B>,
    /// `hidden → kv_heads · head_dim`.
    pub v_proj: Linear<B>,
    /// `heads · head_dim → hidden`.
    pub o_proj: Linear<B>,
    /// Query heads.
    pub num_heads: usize,
    /// Key/value heads.
    pub num_kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Score scale when not `head_dim^-0.5` (Gemma 2's `query_pre_attn_scalar^-0.5`).
    pub scale: Option<f64>,
    /// Attention-logit soft-cap (Gemma 2).
    pub softcap: Option<f64>,
}

impl<B: Backend> Attention<B> {
    pub(crate) fn new(c: &GemmaConfig, device: &B::Device) -> Self {
        let linear = |i, o| Linear::from(LinearConfig::new(i, o).with_bias(c.attention_bias).init(device));
        let (q, kv) = (c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim);
        Self {
            q_proj: linear(c.hidden_size, q),
            k_proj: linear(c.hidden_size, kv),
            v_proj: linear(c.hidden_size, kv),
            o_proj: linear(q, c.hidden_size),
            num_heads: c.num_attention_heads,
            num_kv_heads: c.num_key_value_heads,
            head_dim: c.head_dim,
            scale: c.query_pre_attn_scalar.map(|s| s.powf(-0.5)),
            softcap: c.attn_logit_softcapping,
        }
    }

    /// # Shapes
    /// - `x`: `[batch, seq, hidden]`
    /// - `bias`: additive mask `[batch, 1, seq, keys]` (0 = attend, `f32::MIN` = masked), where
    ///   `keys` = cached + `seq`; `None` = every query sees every key
    /// - `queries`: the positions (of `0..seq`) whose outputs are wanted, `None` = all. Keys and
    ///   values (and the cache) still cover every position; only these rows are queried and
    ///   projected out — a decoder's last layer needs no more (see [`crate::DecoderInput`]).
    /// - returns: `[batch, queries, hidden]`
    ///
    /// # Panics
    /// If `queries` is empty or reaches past `seq` (a caller bug).
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        rope: &RopeTables<B>,
        bias: Option<&Tensor<B, 4>>,
        cache: Option<&mut KvCache<B>>,
        queries: Option<Range<usize>>,
    ) -> Tensor<B, 3> {
        let [batch, seq, width] = x.dims();
        let (h, kvh, d) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let split = |t: Tensor<B, 3>, heads| {
            let len = t.dims()[1];
            t.reshape([batch, len, heads, d]).swap_dims(1, 2)
        };
        let k = apply(split(row_matmul::linear(&self.k_proj, x.clone()), kvh), rope);
        let v = split(row_matmul::linear(&self.v_proj, x.clone()), kvh);
        let (q, rope, bias) = match queries {
            Some(rows) if rows != (0..seq) => {
                assert!(rows.start < rows.end && rows.end <= seq, "queries {rows:?} outside 0..{seq}");
                let x = x.slice([0..batch, rows.clone(), 0..width]);
                let bias = bias.map(|b| {
                    let [bb, one, _, keys] = b.dims();
                    b.clone().slice([0..bb, 0..one, rows.clone(), 0..keys])
                });
                (x, rope.rows(rows), bias)
            }
            _ => (x, rope.clone(), bias.cloned()),
        };
        let len = q.dims()[1];
        let q = apply(split(row_matmul::linear(&self.q_proj, q), h), &rope);
        let (k, v) = match cache {
            Some(cache) => cache.append(k, v),
            None => (k, v),
        };
        // GQA (repeat_kv) and the f32 score island live in robovlm_ops (bf16 on Flex: one
        // parallel kernel that reads the KV heads in place).
        let options = AttentionModuleOptions { scale: self.scale, softcap: self.softcap, is_causal: false };
        let out = attention_grouped(q, k, v, bias, options);
        row_matmul::linear(&self.o_proj, out.swap_dims(1, 2).reshape([batch, len, h * d]))
    }
}
