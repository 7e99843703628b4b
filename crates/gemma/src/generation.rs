//! Text generation over input embeddings with a KV cache: a bidirectional prefill over the
//! prompt's non-pad tokens, then causal decoding, greedy by default or sampled.
//!
//! Mirrors transformers 4.47.1 `generate()`: position ids from the attention mask's cumulative
//! sum (`cumsum − 1`, pads at 1; left-padded batches), pad keys masked throughout, finished rows
//! keep emitting the pad token until every row has stopped. Model-agnostic: the caller builds the
//! embeddings (text only, or with image rows spliced in, as PaliGemma does) and says where
//! positions start (PaliGemma's are 1-based: [`Generator::with_position_offset`]).

use burn::prelude::*;

use crate::decoder::{Decoder, DecoderInput};
use crate::error::{Error, Result};
use crate::kv_cache::KvCache;
use crate::mask::{AttentionMask, SlidingCache};
use crate::sampling::{Sampling, SplitMix64, argmax, sample};

/// Runtime knobs of one generation call.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationConfig {
    /// Tokens to generate at most (per row).
    pub max_new_tokens: usize,
    /// Sampling; `None` = greedy (argmax over the whole vocabulary).
    pub sampling: Option<Sampling>,
    /// Stop a row at this token (`<eos>`); `None` never stops early.
    pub eos_token: Option<u32>,
    /// Emitted by rows that already stopped (`<pad>`).
    pub pad_token: u32,
    /// Keep every step's logits (parity and debugging; costs `steps × vocab` floats per row).
    pub keep_logits: bool,
    /// Gemma 2 with a left-padded batch: reproduce transformers 4.47.1's HybridCache masking
    /// (the default) or mask each row's pads correctly (see [`SlidingCache`]).
    pub sliding_cache: SlidingCache,
}

impl Default for GenerationConfig {
    /// Greedy, 20 new tokens (transformers' default length), no stop token, pad id 0.
    fn default() -> Self {
        Self {
            max_new_tokens: 20,
            sampling: None,
            eos_token: None,
            pad_token: 0,
            keep_logits: false,
            sliding_cache: SlidingCache::default(),
        }
    }
}

/// What generation produced.
#[derive(Debug, Clone)]
pub struct GenerationOutput {
    /// New token ids per row (the pad token after a row stopped).
    pub new_ids: Vec<Vec<u32>>,
    /// `[row][step][vocab]` raw logits when `keep_logits` (step 0 = the prefill's last position).
    pub step_logits: Vec<Vec<Vec<f32>>>,
}

/// Position ids of a left-padded prompt batch as transformers' `generate()` prepares them:
/// `cumsum(mask) − 1` with pads set to 1, plus `offset` (PaliGemma: 1).
pub fn generation_positions(attention_mask: &[u32], batch: usize, offset: i64) -> Vec<i64> {
    let seq = attention_mask.len() / batch.max(1);
    let mut out = Vec::with_capacity(attention_mask.len());
    for row in attention_mask.chunks(seq.max(1)) {
        let mut sum = 0i64;
        out.extend(row.iter().map(|&m| {
            sum += i64::from(m);
            (if m == 0 { 1 } else { sum - 1 }) + offset
        }));
    }
    out
}

/// Owns the per-layer KV caches of one generation; reusable across calls.
#[derive(Debug)]
pub struct Generator<'m, B: Backend> {
    decoder: &'m Decoder<B>,
    caches: Vec<KvCache<B>>,
    position_offset: i64,
}

impl<'m, B: Backend> Generator<'m, B> {
    /// A generator over a loaded decoder, positions starting at 0 (Gemma).
    pub fn new(decoder: &'m Decoder<B>) -> Self {
        Self { decoder, caches: decoder.new_caches(), position_offset: 0 }
    }

    /// Shifts every position id by `offset` (PaliGemma counts from 1).
    pub fn with_position_offset(mut self, offset: i64) -> Self {
        self.position_offset = offset;
        self
    }

    /// Generates from input embeddings `[batch, seq, hidden]` (unscaled, as
    /// [`Decoder::embed`] returns them, possibly with other rows spliced in) and their 2-D
    /// attention mask `[batch, seq]` (1 real, 0 left padding). The prefill is bidirectional over
    /// the non-pad tokens (PaliGemma's prefix); decoding is causal.
    ///
    /// # Errors
    /// If the mask does not match the embeddings or the sampling settings are invalid.
    pub fn generate(
        &mut self,
        embeds: Tensor<B, 3>,
        attention_mask: &[u32],
        config: &GenerationConfig,
    ) -> Result<GenerationOutput> {
        if let Some(s) = &config.sampling
            && !(s.temperature > 0.0 && s.top_p > 0.0 && s.top_p <= 1.0)
        {
            return Err(Error::Input("sampling needs temperature > 0 and 0 < top_p <= 1".into()));
        }
        let device = embeds.device();
        self.caches.iter_mut().for_each(KvCache::reset);
        let [batch, seq, _] = embeds.dims();
        if attention_mask.len() != batch * seq {
            return Err(Error::Input(format!(
                "attention mask has {} entries for [{batch}, {seq}]",
                attention_mask.len()
            )));
        }
        let total = seq.saturating_add(config.max_new_tokens);
        self.decoder.check_length(total, &format!("{seq} prompt positions + {} new tokens", config.max_new_tokens))?;
        let mut key_mask = attention_mask.to_vec();
        let positions = generation_positions(attention_mask, batch, self.position_offset);
        // Each row continues from its last prompt position (left padding: all rows end together).
        let mut last_position: Vec<i64> = (0..batch).map(|b| positions[b * seq + seq - 1]).collect();
        let mut mask = AttentionMask::prefix(&key_mask, batch);
        let mut embeds_in = embeds;
        let mut input_positions = positions;
        let mut rng = config.sampling.as_ref().map(|s| SplitMix64(s.seed));
        let mut out = GenerationOutput { new_ids: vec![Vec::new(); batch], step_logits: vec![Vec::new(); batch] };
        let mut finished = vec![false; batch];
        let mut past = 0;
        let mut step_len = seq;
        for _ in 0..config.max_new_tokens {
            let hidden = self
                .decoder
                .forward(DecoderInput {
                    embeds: embeds_in,
                    positions: &input_positions,
                    mask: Some(&mask),
                    caches: Some(&mut self.caches),
                    keep_hidden_states: false,
                    sliding_cache: config.sliding_cache,
                    // Only the last position's logits are read (left padding: every row ends
                    // there), so the prompt pass skips the rest of the last layer's rows.
                    outputs: Some(step_len - 1..step_len),
                })
                .hidden;
            let logits = self.decoder.logits(hidden);
            let vocab = logits.dims()[2];
            let rows =
                logits.into_data().convert::<f32>().into_vec::<f32>().map_err(|e| Error::Input(format!("{e:?}")))?;
            let mut next = Vec::with_capacity(batch);
            for b in 0..batch {
                let row = &rows[b * vocab..(b + 1) * vocab];
                if config.keep_logits {
                    out.step_logits[b].push(row.to_vec());
                }
                let id = if finished[b] {
                    config.pad_token
                } else {
                    match (&config.sampling, rng.as_mut()) {
                        (Some(s), Some(r)) => sample(row, s, r),
                        _ => argmax(row),
                    }
                };
                if config.eos_token == Some(id) {
                    finished[b] = true;
                }
                out.new_ids[b].push(id);
                next.push(id);
            }
            if finished.iter().all(|&f| f) {
                break;
            }
            // Next step: one new token per row, causal over the cache, pads still masked.
            past += step_len;
            step_len = 1;
            let mut widened = Vec::with_capacity(batch * (past + 1));
            for b in 0..batch {
                widened.extend_from_slice(&key_mask[b * past..(b + 1) * past]);
                widened.push(1);
            }
            key_mask = widened;
            last_position.iter_mut().for_each(|p| *p += 1);
            input_positions = last_position.clone();
            mask = AttentionMask::causal_decode(&key_mask, batch, past, 1);
            let ids = Tensor::<B, 2, Int>::from_data(
                TensorData::new(next.iter().map(|&i| i64::from(i)).collect::<Vec<_>>(), [batch, 1]),
                &device,
            );
            embeds_in = self.decoder.embed(ids);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::generation_positions;

    #[test]
    fn positions_follow_transformers() {
        // Left pad, then three real tokens: pads at 1, real tokens 0, 1, 2 (+ offset).
        assert_eq!(generation_positions(&[0, 1, 1, 1], 1, 0), [1, 0, 1, 2]);
        assert_eq!(generation_positions(&[0, 1, 1, 1, 1, 1, 1, 1], 2, 1), [2, 1, 2, 3, 1, 2, 3, 4]);
    }
}
