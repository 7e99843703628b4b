//! Architecture of the Gemma decoder.

use burn::prelude::*;

use crate::decoder::Decoder;

/// Architecture of a Gemma 1 or Gemma 2 decoder as PaliGemma and PaliGemma 2 use them.
///
/// Field names follow HF `text_config` (`GemmaConfig` / `Gemma2Config`); JSON goes through
/// [`GemmaConfig::from_hf_value`], which reads `model_type` and applies that version's
/// transformers defaults for absent keys (notably `head_dim` 256, and for Gemma 2 the soft-caps,
/// window and `query_pre_attn_scalar`). One decoder code base covers both: Gemma 2 is Gemma 1
/// plus the optional features below (`sandwich_norms`, the soft-caps, `sliding_window`,
/// `query_pre_attn_scalar`), each `None`/`false` for Gemma 1.
#[derive(Config, Debug, PartialEq)]
pub struct GemmaConfig {
    /// Embedding rows; may exceed the tokenizer's size (padded vocabularies).
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Inner width of the GeGLU MLP.
    pub intermediate_size: usize,
    /// Decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads shared by groups of query heads (1 = multi-query).
    pub num_key_value_heads: usize,
    /// Width of one head; independent of `hidden_size / num_attention_heads`.
    pub head_dim: usize,
    /// RoPE base.
    #[config(default = 10000.0)]
    pub rope_theta: f64,
    /// RMSNorm epsilon.
    #[config(default = 1e-6)]
    pub rms_norm_eps: f64,
    /// Longest sequence the model supports.
    #[config(default = 8192)]
    pub max_position_embeddings: usize,
    /// Logits through the embedding matrix (true) or a separate `lm_head`.
    #[config(default = true)]
    pub tie_word_embeddings: bool,
    /// Biases on q/k/v/o projections.
    #[config(default = false)]
    pub attention_bias: bool,
    /// Attention scores are scaled by `query_pre_attn_scalar^-0.5` (Gemma 2); `None` = by
    /// `head_dim^-0.5` (Gemma 1). Never substituted by `head_dim` when set: the 28B PaliGemma 2
    /// uses 144 with head_dim 128.
    #[config(default = "None")]
    pub query_pre_attn_scalar: Option<f64>,
    /// `c · tanh(scores / c)` on the attention scores, before the mask (Gemma 2).
    #[config(default = "None")]
    pub attn_logit_softcapping: Option<f64>,
    /// `c · tanh(logits / c)` on the output logits (Gemma 2).
    #[config(default = "None")]
    pub final_logit_softcapping: Option<f64>,
    /// Even layers (0, 2, …) attend only keys within this many positions to the left
    /// (Gemma 2: `is_sliding = not layer_idx % 2`); `None` = every layer global.
    #[config(default = "None")]
    pub sliding_window: Option<usize>,
    /// Gemma 2's four norms per layer: the attention and MLP outputs are normed before they are
    /// added back (`post_attention_layernorm`, `post_feedforward_layernorm`) and the MLP input by
    /// `pre_feedforward_layernorm`. Gemma 1 (false): `post_attention_layernorm` is the pre-MLP norm.
    #[config(default = false)]
    pub sandwich_norms: bool,
}

impl GemmaConfig {
    /// Gemma-2B as inside `google/paligemma-3b-pt-224` (`text_config` of its config.json with
    /// transformers' defaults: head_dim 256, rope_theta 10000, rms_norm_eps 1e-6).
    pub fn paligemma_3b() -> Self {
        Self::new(257216, 2048, 16384, 18, 8, 1, 256)
    }

    /// Gemma-2-2B as inside `google/paligemma2-3b-pt-224` (Gemma2Config defaults: hidden 2304,
    /// 26 layers, 8 heads / 4 KV heads, head_dim 256, query_pre_attn_scalar 256, window 4096,
    /// soft-caps 50 / 30; PaliGemma 2's vocabulary 257216).
    pub fn paligemma2_3b() -> Self {
        Self::new(257216, 2304, 9216, 26, 8, 4, 256)
            .with_query_pre_attn_scalar(Some(256.0))
            .with_attn_logit_softcapping(Some(50.0))
            .with_final_logit_softcapping(Some(30.0))
            .with_sliding_window(Some(4096))
            .with_sandwich_norms(true)
    }

    /// Whether layer `index` attends through the sliding window.
    pub fn is_sliding(&self, index: usize) -> bool {
        self.sliding_window.is_some() && index.is_multiple_of(2)
    }

    /// Query heads per key/value head.
    pub fn group_size(&self) -> usize {
        self.num_attention_heads / self.num_key_value_heads
    }

    /// Builds a randomly initialised decoder; load weights afterwards.
    ///
    /// # Panics
    /// If `num_key_value_heads` does not divide `num_attention_heads` ([`GemmaConfig::from_hf_value`] rejects
    /// such configs with an error first).
    pub fn init<B: Backend>(&self, device: &B::Device) -> Decoder<B> {
        assert!(
            self.num_key_value_heads > 0 && self.num_attention_heads.is_multiple_of(self.num_key_value_heads),
            "num_key_value_heads must divide num_attention_heads"
        );
        assert!(self.head_dim.is_multiple_of(2), "head_dim must be even for RoPE");
        Decoder::new(self, device)
    }
}
