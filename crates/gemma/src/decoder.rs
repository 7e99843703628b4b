//! The Gemma decoder: embedding → layers → final norm, plus logits through the (tied) head.

use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::DType;

use crate::config::GemmaConfig;
use crate::decoder_layer::DecoderLayer;
use crate::kv_cache::KvCache;
use crate::rms_norm::RmsNorm;
use crate::rope::Rope;
use crate::row_matmul;

/// `GemmaModel` (+ the LM head of `GemmaForCausalLM`). Stateless: KV caches are passed in.
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
}

/// What one decoder pass returns.
#[derive(Debug, Clone)]
pub struct DecoderOutput<B: Backend> {
    /// Output after the final norm, `[batch, seq, hidden]`.
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
    /// Additive attention bias `[batch, 1, seq, keys]` (see `crate::mask`); `None` = no mask.
    pub bias: Option<Tensor<B, 4>>,
    /// One cache per layer, or `None` for a stateless pass.
    pub caches: Option<&'a mut [KvCache<B>]>,
    /// Keep every layer's output (HF `output_hidden_states`).
    pub keep_hidden_states: bool,
}

impl<B: Backend> Decoder<B> {
    pub(crate) fn new(c: &GemmaConfig, device: &B::Device) -> Self {
        Self {
            embed_tokens: EmbeddingConfig::new(c.vocab_size, c.hidden_size).init(device),
            layers: (0..c.num_hidden_layers).map(|_| DecoderLayer::new(c, device)).collect(),
            norm: RmsNorm::new(c.hidden_size, c.rms_norm_eps, device),
            lm_head: (!c.tie_word_embeddings)
                .then(|| LinearConfig::new(c.hidden_size, c.vocab_size).with_bias(false).init(device)),
            rope_theta: c.rope_theta,
            head_dim: c.head_dim,
            max_position_embeddings: c.max_position_embeddings,
        }
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
    /// If `positions` or the caches do not match the input's shape (caller bugs).
    pub fn forward(&self, input: DecoderInput<'_, B>) -> DecoderOutput<B> {
        let DecoderInput { embeds, positions, bias, caches, keep_hidden_states } = input;
        let [batch, seq, hidden] = embeds.dims();
        assert_eq!(positions.len(), batch * seq, "positions must be [batch, seq]");
        let normalizer = f64::from((hidden as f32).sqrt());
        // The residual stream is kept in f32 whatever the compute precision: Gemma's activations
        // grow past f16's range (≈ 6.5e4) in deep layers; only the blocks run in half precision.
        let mut x = embeds.cast(DType::F32).mul_scalar(normalizer);
        let rope = Rope::new(self.head_dim, self.rope_theta).tables::<B>(positions, batch, &x.device());
        let mut hidden_states = Vec::new();
        let mut caches = caches.map(|c| {
            assert_eq!(c.len(), self.layers.len(), "one KV cache per layer");
            c.iter_mut()
        });
        for layer in &self.layers {
            if keep_hidden_states {
                hidden_states.push(x.clone());
            }
            let cache = caches.as_mut().and_then(|c| c.next());
            x = layer.forward(x, &rope, bias.as_ref(), cache);
        }
        let last_layer_prenorm = keep_hidden_states.then(|| x.clone());
        let hidden = self.norm.forward(x);
        if keep_hidden_states {
            // Like the per-layer entries (the residual stream), in f32.
            hidden_states.push(hidden.clone().cast(DType::F32));
        }
        DecoderOutput { hidden, hidden_states, last_layer_prenorm }
    }

    /// Logits: `hidden · embed_tokensᵀ` (tied) or through `lm_head`. No soft-capping (Gemma v1).
    ///
    /// # Shapes
    /// - `hidden`: `[batch, seq, hidden]`; returns `[batch, seq, vocab]`
    pub fn logits(&self, hidden: Tensor<B, 3>) -> Tensor<B, 3> {
        match &self.lm_head {
            Some(head) => row_matmul::linear(head, hidden),
            None => {
                let [batch, seq, d] = hidden.dims();
                let w = self.embed_tokens.weight.val(); // [vocab, hidden]
                let vocab = w.dims()[0];
                row_matmul::tied_logits(hidden.reshape([batch * seq, d]), w).reshape([batch, seq, vocab])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::AttentionMask;
    use robovlm_test_utils::TestBackend;

    /// Decoding one token with the cache equals recomputing the whole sequence with the
    /// causal-suffix mask (prefix bidirectional, new token causal).
    #[test]
    fn cached_decode_equals_full_recompute() {
        let device = Default::default();
        let c = GemmaConfig::new(50, 16, 24, 2, 4, 2, 6);
        let dec = c.init::<TestBackend>(&device);
        let ids: Vec<i64> = vec![3, 7, 11, 13, 17];
        let (prefix, total) = (4, ids.len());
        let embeds = |ids: &[i64]| dec.embed(Tensor::from_data(TensorData::new(ids.to_vec(), [1, ids.len()]), &device));
        let positions: Vec<i64> = (1..=total as i64).collect();

        // Full pass: prefix bidirectional, last token attends everything up to itself.
        let mut allowed = AttentionMask::prefix(&vec![1; total], 1);
        for k in prefix..total {
            for q in 0..prefix {
                allowed.allowed[q * total + k] = false;
            }
        }
        let full = dec.forward(DecoderInput {
            embeds: embeds(&ids),
            positions: &positions,
            bias: Some(allowed.to_bias(&device)),
            caches: None,
            keep_hidden_states: false,
        });

        let mut caches: Vec<KvCache<TestBackend>> = (0..2).map(|_| KvCache::new()).collect();
        let _ = dec.forward(DecoderInput {
            embeds: embeds(&ids[..prefix]),
            positions: &positions[..prefix],
            bias: Some(AttentionMask::prefix(&vec![1; prefix], 1).to_bias(&device)),
            caches: Some(&mut caches),
            keep_hidden_states: false,
        });
        let step = dec.forward(DecoderInput {
            embeds: embeds(&ids[prefix..]),
            positions: &positions[prefix..],
            bias: Some(AttentionMask::causal_decode(&vec![1; total], 1, prefix, 1).to_bias(&device)),
            caches: Some(&mut caches),
            keep_hidden_states: false,
        });
        assert_eq!(caches[0].len(), total);
        let a = full.hidden.slice([0..1, prefix..total, 0..16]).into_data().to_vec::<f32>().unwrap();
        let b = step.hidden.into_data().to_vec::<f32>().unwrap();
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-5, "{a:?} vs {b:?}");
        }
        caches.iter_mut().for_each(KvCache::reset);
        assert!(caches[0].is_empty());
    }
}
