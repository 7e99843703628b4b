//! Text generation with a KV cache: bidirectional prefill over image + prompt, then causal
//! decoding, greedy by default or sampled (temperature, top-k, top-p, seeded).
//!
//! Mirrors transformers 4.47.1 `generate()` for PaliGemma: position ids from the attention
//! mask's cumulative sum (left-padded batches), pad keys masked throughout, finished rows keep
//! emitting `<pad>` until every row has stopped.

use burn::prelude::*;
use gemma::{AttentionMask, DecoderInput, KvCache};

use crate::error::{Error, Result};
use crate::paligemma::{PaliGemma, position_ids};
use crate::prompt::PromptBatch;

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
}

/// Sampling settings (`do_sample=True`).
#[derive(Debug, Clone, PartialEq)]
pub struct Sampling {
    /// Logits are divided by this (> 0).
    pub temperature: f32,
    /// Keep only the `k` most likely tokens (0 = off).
    pub top_k: usize,
    /// Keep the smallest set whose probability reaches `p` (1.0 = off).
    pub top_p: f32,
    /// Seed of the sampler's random stream.
    pub seed: u64,
}

/// What generation produced.
#[derive(Debug, Clone)]
pub struct GenerationOutput {
    /// New token ids per row (`<pad>` after a row stopped).
    pub new_ids: Vec<Vec<u32>>,
    /// `[row][step][vocab]` raw logits when `keep_logits` (step 0 = prefill's last position).
    pub step_logits: Vec<Vec<Vec<f32>>>,
}

/// Owns the per-layer KV caches of one generation; reusable across calls.
#[derive(Debug)]
pub struct Generator<'m, B: Backend> {
    model: &'m PaliGemma<B>,
    caches: Vec<KvCache<B>>,
}

impl<'m, B: Backend> Generator<'m, B> {
    /// A generator over a loaded model.
    pub fn new(model: &'m PaliGemma<B>) -> Self {
        Self { model, caches: (0..model.language.layers.len()).map(|_| KvCache::new()).collect() }
    }

    /// Generates from a prompt batch (left-padded, as the processor builds it) and its image
    /// features `[images, tokens, hidden]` (already divided by the divisor).
    pub fn generate(
        &mut self,
        prompt: &PromptBatch,
        image_token: u32,
        features: Option<Tensor<B, 3>>,
        config: &GenerationConfig,
        device: &B::Device,
    ) -> Result<GenerationOutput> {
        let embeds = self.model.merge_embeddings(&prompt.input_ids, prompt.batch, image_token, features, device)?;
        self.generate_embeds(embeds, &prompt.attention_mask, config, device)
    }

    /// Generates from ready input embeddings `[batch, seq, hidden]` (unscaled; e.g. a RoboVLMs
    /// discrete prompt with image features spliced in) and their 2-D mask `[batch, seq]`
    /// (left padding). The prefill is bidirectional over non-pad tokens.
    pub fn generate_embeds(
        &mut self,
        embeds: Tensor<B, 3>,
        attention_mask: &[u32],
        config: &GenerationConfig,
        device: &B::Device,
    ) -> Result<GenerationOutput> {
        if let Some(s) = &config.sampling
            && !(s.temperature > 0.0 && s.top_p > 0.0 && s.top_p <= 1.0)
        {
            return Err(Error::Input("sampling needs temperature > 0 and 0 < top_p <= 1".into()));
        }
        self.caches.iter_mut().for_each(KvCache::reset);
        let [batch, seq, _] = embeds.dims();
        if attention_mask.len() != batch * seq {
            return Err(Error::Input(format!(
                "attention mask has {} entries for [{batch}, {seq}]",
                attention_mask.len()
            )));
        }
        let mut key_mask = attention_mask.to_vec();
        let positions = position_ids(attention_mask, batch, true);
        // Each row continues from its last prompt position (left padding: all rows end together).
        let mut last_position: Vec<i64> = (0..batch).map(|b| positions[b * seq + seq - 1]).collect();
        let mut bias = AttentionMask::prefix(&key_mask, batch).to_bias(device);
        let mut embeds_in = embeds;
        let mut input_positions = positions;
        let mut rng = config.sampling.as_ref().map(|s| SplitMix64(s.seed));
        let mut out = GenerationOutput { new_ids: vec![Vec::new(); batch], step_logits: vec![Vec::new(); batch] };
        let mut finished = vec![false; batch];
        let mut past = 0;
        let mut step_len = seq;
        for _ in 0..config.max_new_tokens {
            let hidden = self
                .model
                .language
                .forward(DecoderInput {
                    embeds: embeds_in,
                    positions: &input_positions,
                    bias: Some(bias),
                    caches: Some(&mut self.caches),
                    keep_hidden_states: false,
                })
                .hidden;
            let [_, _, d] = hidden.dims();
            let last = hidden.slice([0..batch, step_len - 1..step_len, 0..d]);
            let logits = self.model.language.logits(last);
            let vocab = logits.dims()[2];
            let rows =
                logits.into_data().convert::<f32>().to_vec::<f32>().map_err(|e| Error::Input(format!("{e:?}")))?;
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
            bias = AttentionMask::causal_decode(&key_mask, batch, past, 1).to_bias(device);
            let ids = Tensor::<B, 2, Int>::from_data(
                TensorData::new(next.iter().map(|&i| i64::from(i)).collect::<Vec<_>>(), [batch, 1]),
                device,
            );
            embeds_in = self.model.language.embed(ids);
        }
        Ok(out)
    }
}

/// First index of the maximum (PyTorch's argmax tie rule).
fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best as u32
}

/// A small, seedable, dependency-free PRNG (SplitMix64) for reproducible sampling.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Temperature, then top-k, then top-p (HF's warper order), then one draw.
fn sample(row: &[f32], s: &Sampling, rng: &mut SplitMix64) -> u32 {
    let mut order: Vec<usize> = (0..row.len()).collect();
    order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
    if s.top_k > 0 {
        order.truncate(s.top_k.max(1));
    }
    let max = f64::from(row[order[0]]);
    let mut probs: Vec<f64> =
        order.iter().map(|&i| ((f64::from(row[i]) - max) / f64::from(s.temperature)).exp()).collect();
    let total: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= total);
    if s.top_p < 1.0 {
        let mut cum = 0.0;
        let keep = probs
            .iter()
            .position(|&p| {
                cum += p;
                cum >= f64::from(s.top_p)
            })
            .map_or(probs.len(), |i| i + 1);
        probs.truncate(keep);
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
    }
    let mut u = rng.next_f64();
    for (p, &i) in probs.iter().zip(&order) {
        if u < *p {
            return i as u32;
        }
        u -= p;
    }
    order[probs.len() - 1] as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_maximum() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, -1.0]), 1);
    }

    #[test]
    fn sampling_is_seeded_and_respects_top_k() {
        let row = [0.0f32, 5.0, 4.9, -3.0];
        let s = Sampling { temperature: 1.0, top_k: 2, top_p: 1.0, seed: 7 };
        let draws: Vec<u32> = (0..50).map(|i| sample(&row, &s, &mut SplitMix64(i))).collect();
        assert!(draws.iter().all(|&d| d == 1 || d == 2));
        assert!(draws.contains(&1) && draws.contains(&2));
        let again: Vec<u32> = (0..50).map(|i| sample(&row, &s, &mut SplitMix64(i))).collect();
        assert_eq!(draws, again);
        // A tiny top_p keeps only the most likely token.
        let s = Sampling { top_p: 0.01, top_k: 0, ..s };
        assert!((0..20).all(|i| sample(&row, &s, &mut SplitMix64(i)) == 1));
    }
}
