//! The Gemma decoder: embedding → layers → final norm, plus logits through the (tied) head.

use std::ops::Range;

use burn::nn::{Embedding, EmbeddingConfig, LinearConfig};
use burn::prelude::*;
use burn::tensor::DType;
use robovlm_ops::{Linear, PackedWeight, WeightLayout, on_kernel_pool};

use crate::config::GemmaConfig;
use crate::decoder_layer::DecoderLayer;
use crate::kv_cache::KvCache;
use crate::mask::{AttentionMask, SlidingCache};
use crate::rms_norm::RmsNorm;
use crate::rope::Rope;
use crate::row_matmul;

/// `GemmaModel` / `Gemma2Model` (+ the LM head of `*ForCausalLM`). Stateless: KV caches are
/// passed in.
///
/// The module tree mirrors the checkpoint below `language_model.model.`; `lm_head` exists only
/// for untied configs (PaliGemma ties it to `embed_tokens`).
#[derive(Module, Debug)]
pub struct Decoder<B: Backend> {
    /// Token embeddings `[vocab, hidden]` (looked up unscaled; see [`Self::forward`]).
    pub embed_tokens: Embedding<B>,
    /// Decoder layers in order.
    pub layers: Vec<DecoderLayer<B>>,
    /// Final RMSNorm.
    pub norm: RmsNorm<B>,
    /// Separate output head, only when `tie_word_embeddings` is false.
    pub lm_head: Option<Linear<B>>,
    /// RoPE base.
    pub rope_theta: f64,
    /// Width of one head (RoPE table width).
    pub head_dim: usize,
    /// Longest sequence the model was trained for; callers check prompts against it.
    pub max_position_embeddings: usize,
    /// `c · tanh(logits / c)` on the logits (Gemma 2).
    pub final_logit_softcapping: Option<f64>,
    /// Packed bf16 copy of `embed_tokens` for tied logits on the Flex fast path (not a
    /// parameter; built on first use).
    #[module(skip)]
    tied_packed: PackedWeight,
}

/// What one decoder pass returns.
#[derive(Debug, Clone)]
pub struct DecoderOutput<B: Backend> {
    /// Output after the final norm, `[batch, seq, hidden]` (`[batch, rows, hidden]` with
    /// [`DecoderInput::outputs`]).
    pub hidden: Tensor<B, 3>,
    /// HF's `output_hidden_states` when requested: `[0]` = scaled embeddings, `[i]` = output of
    /// layer `i-1`, last = `hidden` (after the final norm).
    pub hidden_states: Vec<Tensor<B, 3>>,
    /// Raw output of the last layer (before the final norm), when hidden states were requested.
    pub last_layer_prenorm: Option<Tensor<B, 3>>,
}

/// Inputs of one decoder pass.
#[derive(Debug)]
pub struct DecoderInput<'a, B: Backend> {
    /// Unscaled input embeddings `[batch, seq, hidden]` (token rows from [`Decoder::embed`],
    /// image rows or learned tokens spliced in by the caller).
    pub embeds: Tensor<B, 3>,
    /// Position ids, row-major `[batch, seq]` (PaliGemma: 1-based).
    pub positions: &'a [i64],
    /// Which keys each query may attend, `[batch, seq, keys]` over absolute key indices
    /// (`keys` = cached + `seq`); `None` = every key. Sliding-window layers AND it with their
    /// window themselves.
    pub mask: Option<&'a AttentionMask>,
    /// One cache per layer, or `None` for a stateless pass.
    pub caches: Option<&'a mut [KvCache<B>]>,
    /// Keep every layer's output (HF `output_hidden_states`).
    pub keep_hidden_states: bool,
    /// How windowed caches are masked in cached decoding (only matters for left-padded
    /// batches; see [`SlidingCache`]).
    pub sliding_cache: SlidingCache,
    /// The positions (of `0..seq`, the same in every batch row) whose output is wanted; `None` =
    /// all. Why: nothing reads the last layer's output elsewhere — a prompt pass before
    /// generation needs only the last position's logits, a RoboVLMs step only the action
    /// token — so the last layer computes its queries, output projection and MLP for these rows
    /// alone (its keys and values, which the caches keep, still for every position). The rows'
    /// values are the full pass's (bit for bit on Flex; another backend's product may sum one
    /// row in another order than many). Not combined with `keep_hidden_states`.
    pub outputs: Option<Range<usize>>,
}

impl<B: Backend> Decoder<B> {
    pub(crate) fn new(c: &GemmaConfig, device: &B::Device) -> Self {
        Self {
            embed_tokens: EmbeddingConfig::new(c.vocab_size, c.hidden_size).init(device),
            layers: (0..c.num_hidden_layers).map(|i| DecoderLayer::new(c, i, device)).collect(),
            norm: RmsNorm::new(c.hidden_size, c.rms_norm_eps, device),
            lm_head: (!c.tie_word_embeddings)
                .then(|| LinearConfig::new(c.hidden_size, c.vocab_size).with_bias(false).init(device).into()),
            rope_theta: c.rope_theta,
            head_dim: c.head_dim,
            max_position_embeddings: c.max_position_embeddings,
            final_logit_softcapping: c.final_logit_softcapping,
            tied_packed: PackedWeight::default(),
        }
    }

    /// The sliding window of the windowed layers (Gemma 2), if any.
    pub fn sliding_window(&self) -> Option<usize> {
        self.layers.iter().find_map(|l| l.sliding_window)
    }

    /// One empty cache per layer: bounded rings for sliding-window layers, unbounded otherwise.
    pub fn new_caches(&self) -> Vec<KvCache<B>> {
        self.layers.iter().map(|l| l.sliding_window.map_or_else(KvCache::new, KvCache::windowed)).collect()
    }

    /// Refuses a sequence of `len` positions beyond `max_position_embeddings` (the attention
    /// mask alone grows with its square), naming both numbers and `what` the sequence is.
    pub fn check_length(&self, len: usize, what: &str) -> crate::Result<()> {
        if len > self.max_position_embeddings {
            return Err(crate::Error::Input(format!(
                "{what}: {len} positions exceed max_position_embeddings {}",
                self.max_position_embeddings
            )));
        }
        Ok(())
    }

    /// Width of the residual stream.
    pub fn hidden_size(&self) -> usize {
        self.embed_tokens.weight.dims()[1]
    }

    /// Embedding rows `[vocab, hidden]` count.
    pub fn vocab_size(&self) -> usize {
        self.embed_tokens.weight.dims()[0]
    }

    /// Unscaled token embeddings.
    ///
    /// # Shapes
    /// - `ids`: `[batch, seq]`; returns `[batch, seq, hidden]`
    pub fn embed(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        self.embed_tokens.forward(ids)
    }

    /// Runs the layers. The input embeddings are first multiplied by `sqrt(hidden)` — every row,
    /// image features and injected tokens included — as a float32 scalar, as transformers does.
    ///
    /// # Panics
    /// If `positions`, the mask or the caches do not match the input's shape, or `outputs` is
    /// empty, reaches past `seq` or comes with `keep_hidden_states` (caller bugs).
    pub fn forward(&self, input: DecoderInput<'_, B>) -> DecoderOutput<B> {
        on_kernel_pool::<B, _>(|| self.forward_here(input))
    }

    /// [`Self::forward`] on the calling thread.
    fn forward_here(&self, input: DecoderInput<'_, B>) -> DecoderOutput<B> {
        let DecoderInput { embeds, positions, mask, caches, keep_hidden_states, sliding_cache, outputs } = input;
        let [batch, seq, hidden] = embeds.dims();
        assert_eq!(positions.len(), batch * seq, "positions must be [batch, seq]");
        if let Some(rows) = &outputs {
            assert!(rows.start < rows.end && rows.end <= seq, "outputs {rows:?} outside 0..{seq}");
            assert!(!keep_hidden_states, "outputs and keep_hidden_states are not combined");
        }
        let device = embeds.device();
        let (global, sliding) = self.biases(mask, caches.as_deref(), batch, seq, sliding_cache, &device);
        let normalizer = f64::from((hidden as f32).sqrt());
        // The residual stream is kept in f32 whatever the compute precision: Gemma's activations
        // grow past f16's range (≈ 6.5e4) in deep layers; only the blocks run in half precision.
        let mut x = embeds.cast(DType::F32).mul_scalar(normalizer);
        let rope = Rope::new(self.head_dim, self.rope_theta).tables::<B>(positions, batch, &device);
        let mut hidden_states = Vec::new();
        let mut caches = caches.map(|c| {
            assert_eq!(c.len(), self.layers.len(), "one KV cache per layer");
            c.iter_mut()
        });
        let last = self.layers.len().saturating_sub(1);
        for (i, layer) in self.layers.iter().enumerate() {
            if keep_hidden_states {
                hidden_states.push(x.clone());
            }
            let cache = caches.as_mut().and_then(|c| c.next());
            let bias = if layer.sliding_window.is_some() { sliding.as_ref() } else { global.as_ref() };
            x = layer.forward(x, &rope, bias, cache, if i == last { outputs.clone() } else { None });
        }
        if let (true, Some(rows)) = (self.layers.is_empty(), outputs) {
            x = x.slice([0..batch, rows, 0..hidden]);
        }
        let last_layer_prenorm = keep_hidden_states.then(|| x.clone());
        let hidden = self.norm.forward(x);
        if keep_hidden_states {
            // Like the per-layer entries (the residual stream), in f32.
            hidden_states.push(hidden.clone().cast(DType::F32));
        }
        DecoderOutput { hidden, hidden_states, last_layer_prenorm }
    }

    /// The additive biases of this call: global layers', and sliding layers' (their window
    /// over the keys their caches return, see [`KvCache::positions`]). Built once per call.
    fn biases(
        &self,
        mask: Option<&AttentionMask>,
        caches: Option<&[KvCache<B>]>,
        batch: usize,
        seq: usize,
        columns: SlidingCache,
        device: &B::Device,
    ) -> (Option<Tensor<B, 4>>, Option<Tensor<B, 4>>) {
        let past = caches.and_then(|c| c.first()).map_or(0, KvCache::len);
        if let Some(m) = mask {
            assert!(
                m.batch == batch && m.queries == seq && m.keys == past + seq,
                "mask must be [batch, seq, cached + seq]"
            );
        }
        let global = mask.map(|m| m.to_bias(device));
        let Some((index, window)) = self.layers.iter().enumerate().find_map(|(i, l)| Some((i, l.sliding_window?)))
        else {
            return (global, None);
        };
        let positions = match caches {
            Some(c) => c[index].positions(seq),
            None => (0..seq).collect(),
        };
        let all;
        let mask = match mask {
            Some(m) => m,
            None => {
                all = AttentionMask {
                    batch,
                    queries: seq,
                    keys: past + seq,
                    allowed: vec![true; batch * seq * (past + seq)],
                };
                &all
            }
        };
        (global, Some(mask.sliding_over(window, &positions, columns).to_bias(device)))
    }

    /// Logits: `hidden · embed_tokensᵀ` (tied) or through `lm_head`, then Gemma 2's final
    /// soft-cap `c · tanh(logits / c)` (computed in f32, returned in the compute precision).
    ///
    /// # Shapes
    /// - `hidden`: `[batch, seq, hidden]`; returns `[batch, seq, vocab]`
    pub fn logits(&self, hidden: Tensor<B, 3>) -> Tensor<B, 3> {
        let logits = self.raw_logits(hidden);
        match self.final_logit_softcapping {
            Some(cap) => {
                let dtype = logits.dtype();
                logits.cast(DType::F32).div_scalar(cap).tanh().mul_scalar(cap).cast(dtype)
            }
            None => logits,
        }
    }

    fn raw_logits(&self, hidden: Tensor<B, 3>) -> Tensor<B, 3> {
        match &self.lm_head {
            Some(head) => row_matmul::linear(head, hidden),
            None => {
                let [batch, seq, d] = hidden.dims();
                let w = self.embed_tokens.weight.val(); // [vocab, hidden]
                let vocab = w.dims()[0];
                // bf16 on Flex: the packed kernels (a decode step reads the table once, in bf16).
                let hidden = match self.tied_packed.matmul(hidden, &w, WeightLayout::OutIn, None) {
                    Ok(logits) => return logits,
                    Err(hidden) => hidden,
                };
                row_matmul::tied_logits(hidden.reshape([batch * seq, d]), w).reshape([batch, seq, vocab])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use robovlm_test_utils::TestBackend;

    /// Hidden states of `ids` decoded one token at a time after a bidirectional prefill of
    /// `prefix` tokens, with the cache — against one full pass over the whole sequence whose
    /// mask is the bidirectional prefix plus causal new tokens (the sliding layers AND their
    /// window onto both).
    fn cached_vs_full(c: &GemmaConfig, len: usize, prefix: usize) {
        let device = Default::default();
        let dec = c.init::<TestBackend>(&device);
        let ids: Vec<i64> = (0..len as i64).map(|i| (i * 7 + 3) % c.vocab_size as i64).collect();
        let embeds = |ids: &[i64]| dec.embed(Tensor::from_data(TensorData::new(ids.to_vec(), [1, ids.len()]), &device));
        let positions: Vec<i64> = (1..=len as i64).collect();
        let run = |input: DecoderInput<'_, TestBackend>| dec.forward(input).hidden;
        fn input<'a>(
            embeds: Tensor<TestBackend, 3>,
            positions: &'a [i64],
            mask: Option<&'a AttentionMask>,
            caches: Option<&'a mut [KvCache<TestBackend>]>,
        ) -> DecoderInput<'a, TestBackend> {
            DecoderInput {
                embeds,
                positions,
                mask,
                caches,
                keep_hidden_states: false,
                sliding_cache: SlidingCache::default(),
                outputs: None,
            }
        }

        let mut full_mask = AttentionMask::prefix(&vec![1; len], 1);
        for k in prefix..len {
            for q in 0..k {
                full_mask.allowed[q * len + k] = false;
            }
        }
        let full = run(input(embeds(&ids), &positions, Some(&full_mask), None));

        let mut caches = dec.new_caches();
        let prefill_mask = AttentionMask::prefix(&vec![1; prefix], 1);
        let mut got =
            vec![run(input(embeds(&ids[..prefix]), &positions[..prefix], Some(&prefill_mask), Some(&mut caches)))];
        for t in prefix..len {
            let step_mask = AttentionMask::causal_decode(&vec![1; t + 1], 1, t, 1);
            got.push(run(input(embeds(&ids[t..=t]), &positions[t..=t], Some(&step_mask), Some(&mut caches))));
        }
        assert_eq!(caches[0].len(), len);
        let got: Vec<f32> = Tensor::cat(got, 1).into_data().to_vec::<f32>().unwrap();
        let want: Vec<f32> = full.into_data().to_vec::<f32>().unwrap();
        for (i, (x, y)) in want.iter().zip(&got).enumerate() {
            assert!((x - y).abs() < 1e-4, "len {len} prefix {prefix}: element {i}: {x} vs {y}");
        }
        caches.iter_mut().for_each(KvCache::reset);
        assert!(caches[0].is_empty());
    }

    /// A small Gemma 2 (query scale, attention soft-cap, sandwich norms) with a sliding
    /// `window`: the configuration the window and output-row tests share.
    fn gemma2(window: usize) -> GemmaConfig {
        GemmaConfig::new(50, 16, 24, 3, 4, 2, 6)
            .with_query_pre_attn_scalar(Some(5.0))
            .with_attn_logit_softcapping(Some(3.0))
            .with_sliding_window(Some(window))
            .with_sandwich_norms(true)
    }

    #[test]
    fn cached_decode_equals_full_recompute() {
        cached_vs_full(&GemmaConfig::new(50, 16, 24, 2, 4, 2, 6), 5, 4);
    }

    /// Gemma 2 with a window of 4: prompts longer than the window, shorter, and exactly as long;
    /// generation runs far past the window, so the rings wrap several times.
    #[test]
    fn sliding_window_cached_decode_equals_full_recompute() {
        let c = gemma2(4).with_final_logit_softcapping(Some(2.0));
        for (len, prefix) in [(14, 9), (14, 2), (12, 4), (6, 3)] {
            cached_vs_full(&c, len, prefix);
        }
    }

    /// `outputs` returns those rows of the full pass (Gemma 1 and Gemma 2 with a window
    /// shorter than the prompt, a padded batch of two), and the caches it fills are the full
    /// pass's: decoding after it gives the same next hidden states.
    #[test]
    fn output_rows_are_the_full_passes_rows() {
        let device = Default::default();
        for c in [GemmaConfig::new(50, 16, 24, 2, 4, 1, 6), gemma2(3)] {
            let dec = c.init::<TestBackend>(&device);
            let (batch, seq) = (2, 7);
            let ids: Vec<i64> = (0..(batch * seq) as i64).map(|i| (i * 11 + 5) % 50).collect();
            let embeds = dec.embed(Tensor::from_data(TensorData::new(ids, [batch, seq]), &device));
            let positions: Vec<i64> = (0..batch).flat_map(|_| 1..=seq as i64).collect();
            let key_mask = [vec![1; seq], [vec![0; 2], vec![1; seq - 2]].concat()].concat();
            let mask = AttentionMask::prefix(&key_mask, batch);
            let pass = |outputs: Option<Range<usize>>, caches: Option<&mut [KvCache<TestBackend>]>| {
                let input = DecoderInput {
                    embeds: embeds.clone(),
                    positions: &positions,
                    mask: Some(&mask),
                    caches,
                    keep_hidden_states: false,
                    sliding_cache: SlidingCache::default(),
                    outputs,
                };
                dec.forward(input).hidden
            };
            let (mut full_caches, mut row_caches) = (dec.new_caches(), dec.new_caches());
            let full = pass(None, Some(&mut full_caches));
            for rows in [0..1, 3..5, seq - 1..seq, 0..seq] {
                let got = pass(Some(rows.clone()), None);
                let want = full.clone().slice([0..batch, rows.clone(), 0..16]);
                assert_eq!(got.dims(), want.dims());
                let (got, want) = (got.into_data().to_vec::<f32>().unwrap(), want.into_data().to_vec::<f32>().unwrap());
                assert_same(&got, &want, &format!("rows {rows:?}"));
            }
            pass(Some(seq - 1..seq), Some(&mut row_caches));
            let widened: Vec<u32> = key_mask.chunks(seq).flat_map(|row| [row, &[1]].concat()).collect();
            let step_mask = AttentionMask::causal_decode(&widened, batch, seq, 1);
            let step = |caches: &mut [KvCache<TestBackend>]| {
                let ids = Tensor::<TestBackend, 2, Int>::from_data([[7], [9]], &device);
                let input = DecoderInput {
                    embeds: dec.embed(ids),
                    positions: &[seq as i64 + 1; 2],
                    mask: Some(&step_mask),
                    caches: Some(caches),
                    keep_hidden_states: false,
                    sliding_cache: SlidingCache::default(),
                    outputs: None,
                };
                dec.forward(input).hidden.into_data().to_vec::<f32>().unwrap()
            };
            assert_same(&step(&mut row_caches), &step(&mut full_caches), "decoding after the pass");
        }
    }

    /// Equal up to the order of f32 sums: bit for bit on Flex, but another backend's product may
    /// sum a single row in another order than a block of rows.
    fn assert_same(got: &[f32], want: &[f32], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "{what}: element {i}: {g} vs {w}");
        }
    }

    /// The window changes the result (a decoder that ignored it would pass the test above).
    #[test]
    fn sliding_window_matters() {
        let device = Default::default();
        let c = GemmaConfig::new(50, 16, 24, 1, 4, 2, 6).with_sandwich_norms(true).with_sliding_window(Some(2));
        let windowed = c.init::<TestBackend>(&device);
        let ids = Tensor::<TestBackend, 2, Int>::from_data([[1, 2, 3, 4, 5]], &device);
        let positions: Vec<i64> = (1..=5).collect();
        let mask = AttentionMask::prefix(&[1; 5], 1);
        let run = |d: &Decoder<TestBackend>| {
            d.forward(DecoderInput {
                embeds: d.embed(ids.clone()),
                positions: &positions,
                mask: Some(&mask),
                caches: None,
                keep_hidden_states: false,
                sliding_cache: SlidingCache::default(),
                outputs: None,
            })
            .hidden
            .into_data()
            .to_vec::<f32>()
            .unwrap()
        };
        // Parameters initialise lazily: run once before cloning so both share the same weights.
        let a = run(&windowed);
        let mut global = windowed.clone();
        global.layers[0].sliding_window = None;
        let b = run(&global);
        // Query 0 sees the whole bidirectional prefix in both; the last query does not.
        assert!((a[0] - b[0]).abs() < 1e-6);
        assert!(a.iter().zip(&b).skip(64).any(|(x, y)| (x - y).abs() > 1e-3));
    }
}
