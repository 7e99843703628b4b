//! Attention masks, built in one place (fixtures README §3.7, transformers 4.47.1
//! `PaliGemmaForConditionalGeneration._update_causal_mask`).
//!
//! A mask is a host `[batch, queries, keys]` table of "may attend"; [`AttentionMask::to_bias`]
//! turns it into the additive form transformers applies (0 or the float32 minimum — not −∞, so
//! a fully masked row degrades like transformers' instead of producing NaN).

use burn::prelude::*;
use burn::tensor::DType;

/// Which keys each query may attend to, `[batch, queries, keys]` row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttentionMask {
    /// Rows.
    pub batch: usize,
    /// Queries per row.
    pub queries: usize,
    /// Keys per row.
    pub keys: usize,
    /// `allowed[(b * queries + q) * keys + k]`.
    pub allowed: Vec<bool>,
}

impl AttentionMask {
    fn build(batch: usize, queries: usize, keys: usize, f: impl Fn(usize, usize, usize) -> bool) -> Self {
        let mut allowed = Vec::with_capacity(batch * queries * keys);
        for b in 0..batch {
            for q in 0..queries {
                for k in 0..keys {
                    allowed.push(f(b, q, k));
                }
            }
        }
        Self { batch, queries, keys, allowed }
    }

    /// PaliGemma inference/prefill: every query attends every non-pad key — image, `<bos>`,
    /// prompt and `"\n"` are fully bidirectional; pad *queries* still attend the real tokens.
    /// `key_mask` is the 2-D attention mask `[batch, seq]` (1 real, 0 pad).
    pub fn prefix(key_mask: &[u32], batch: usize) -> Self {
        let seq = key_mask.len() / batch.max(1);
        Self::build(batch, seq, seq, |b, _, k| key_mask[b * seq + k] != 0)
    }

    /// Decoding `new` tokens after `past` cached ones: causal over the cache (query `q` sees
    /// keys `0..=past + q`), pad keys masked. `key_mask` covers all `past + new` keys.
    pub fn causal_decode(key_mask: &[u32], batch: usize, past: usize, new: usize) -> Self {
        let keys = past + new;
        assert_eq!(key_mask.len(), batch * keys, "key_mask must be [batch, past + new]");
        Self::build(batch, new, keys, |b, q, k| k <= past + q && key_mask[b * keys + k] != 0)
    }

    /// Training mask of transformers 4.47.1 (only when both `token_type_ids` and `labels` are
    /// passed): causal, pad keys masked, then every key with `token_type_id == 0` un-masked for
    /// all queries. Because the un-masking runs after the padding step, **left pads (token type
    /// 0) become attendable again** — a 4.47.1 bug reproduced on purpose: it is what a model
    /// trained with that version saw.
    pub fn paligemma_training(attention_mask: &[u32], token_type_ids: &[u32], batch: usize) -> Self {
        let seq = attention_mask.len() / batch.max(1);
        Self::build(batch, seq, seq, |b, q, k| {
            token_type_ids[b * seq + k] == 0 || (k <= q && attention_mask[b * seq + k] != 0)
        })
    }

    /// Additive bias `[batch, 1, queries, keys]`: 0 where allowed, `f32::MIN` where masked.
    pub fn to_bias<B: Backend>(&self, device: &B::Device) -> Tensor<B, 4> {
        let values: Vec<f32> = self.allowed.iter().map(|&a| if a { 0.0 } else { f32::MIN }).collect();
        // Always f32: `f32::MIN` has no f16 value, and the attention scores it is added to are
        // f32 whatever the compute precision (robovlm_ops::attention).
        Tensor::from_data(TensorData::new(values, [self.batch, 1, self.queries, self.keys]), (device, DType::F32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(m: &AttentionMask) -> Vec<String> {
        m.allowed.chunks(m.keys).map(|r| r.iter().map(|&a| if a { '1' } else { '.' }).collect()).collect()
    }

    #[test]
    fn prefix_masks_pad_keys_only() {
        let m = AttentionMask::prefix(&[0, 1, 1], 1);
        assert_eq!(rows(&m), [".11", ".11", ".11"]);
    }

    #[test]
    fn decode_is_causal_over_the_cache() {
        let m = AttentionMask::causal_decode(&[0, 1, 1, 1, 1], 1, 3, 2);
        assert_eq!(rows(&m), [".111.", ".1111"]);
    }

    #[test]
    fn training_unmasks_prefix_keys_including_left_pads() {
        // [pad, img, bos, suffix, eos]: token types 0 0 0 1 1.
        let m = AttentionMask::paligemma_training(&[0, 1, 1, 1, 1], &[0, 0, 0, 1, 1], 1);
        assert_eq!(rows(&m), ["111..", "111..", "111..", "1111.", "11111"]);
    }
}
