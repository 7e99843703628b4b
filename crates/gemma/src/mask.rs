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

    /// The mask of a sliding-window layer (Gemma 2, fixtures README §7.2) over the same keys:
    /// `self` AND `key > query − window`, in absolute indices of the possibly padded row, where
    /// the queries are the last `queries` of the `keys` positions. Only the left side is
    /// limited: PaliGemma's bidirectional prefix stays visible to the right.
    pub fn sliding(&self, window: usize) -> Self {
        let keys: Vec<usize> = (0..self.keys).collect();
        self.sliding_over(window, &keys, SlidingCache::PaddingCorrect)
    }

    /// The sliding-window mask over the keys a windowed [`crate::KvCache`] returns: key `i` holds
    /// absolute index `positions[i]` (any order, a contiguous range). `self` is the global mask
    /// of the same call, over all `keys` absolute indices. With
    /// [`SlidingCache::Transformers4471`] key `i` reads the global mask's column
    /// `positions[i] − min(positions)` instead of `positions[i]` — the slot index of
    /// transformers 4.47.1's HybridCache (see [`SlidingCache`]).
    pub(crate) fn sliding_over(&self, window: usize, positions: &[usize], columns: SlidingCache) -> Self {
        let past = self.keys - self.queries;
        let first = positions.iter().copied().min().unwrap_or(0);
        Self::build(self.batch, self.queries, positions.len(), |b, q, i| {
            let key = positions[i];
            let column = match columns {
                SlidingCache::PaddingCorrect => key,
                SlidingCache::Transformers4471 => key - first,
            };
            key + window > past + q && self.allowed[(b * self.queries + q) * self.keys + column]
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

/// How the sliding layers' cache is masked during cached decoding of a left-padded batch.
///
/// transformers 4.47.1's `HybridCache` (Gemma 2's default) keeps a ring of `sliding_window`
/// slots but masks slot `j` with column `j` of the padding mask — the absolute index `j`, not
/// the index the slot holds. A row with `P` left pads therefore drops its `P` *oldest* window
/// entries instead of its pads (fixtures README §7.3), so it does not generate what the same
/// prompt generates alone. Unpadded prompts are unaffected either way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SlidingCache {
    /// Reproduce transformers 4.47.1 (the default: what a policy or user of that stack got).
    #[default]
    Transformers4471,
    /// Mask each cached key by its own padding entry: every row generates what it would alone.
    PaddingCorrect,
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
    fn sliding_limits_only_the_left_side() {
        // Bidirectional prefix of 4 tokens, window 2: query q sees keys q-1.. to the right.
        let m = AttentionMask::prefix(&[1, 1, 1, 1], 1).sliding(2);
        assert_eq!(rows(&m), ["1111", "1111", ".111", "..11"]);
        // Decode step: 2 new queries after 3 cached keys; pad key 0.
        let m = AttentionMask::causal_decode(&[0, 1, 1, 1, 1], 1, 3, 2).sliding(3);
        assert_eq!(rows(&m), [".111.", "..111"]);
    }

    #[test]
    fn hybrid_cache_quirk_reads_slot_columns() {
        // 6 keys seen, a ring of 3 holding absolute 3, 4, 5 in slots [3 → 0, 4 → 1, 5 → 2]
        // stored as [5, 3, 4] (ring order); one pad at absolute 0.
        let global = AttentionMask::causal_decode(&[0, 1, 1, 1, 1, 1], 1, 5, 1);
        let correct = global.sliding_over(3, &[5, 3, 4], SlidingCache::PaddingCorrect);
        assert_eq!(rows(&correct), ["111"]);
        // 4.47.1: slot of absolute 3 is column 0 (the pad) → masked.
        let quirk = global.sliding_over(3, &[5, 3, 4], SlidingCache::Transformers4471);
        assert_eq!(rows(&quirk), ["1.1"]);
    }

    #[test]
    fn training_unmasks_prefix_keys_including_left_pads() {
        // [pad, img, bos, suffix, eos]: token types 0 0 0 1 1.
        let m = AttentionMask::paligemma_training(&[0, 1, 1, 1, 1], &[0, 0, 0, 1, 1], 1);
        assert_eq!(rows(&m), ["111..", "111..", "111..", "1111.", "11111"]);
    }
}
