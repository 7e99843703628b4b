//! Architecture of the Gemma decoder.

use burn::prelude::*;

use crate::decoder::Decoder;

/// Architecture of a Gemma (v1) decoder as used by PaliGemma.
///
/// Field names follow HF `text_config` (`GemmaConfig`); JSON goes through [`GemmaConfig::from_hf_value`], which
/// applies transformers' defaults for absent keys (notably `head_dim` 256).
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
}

impl GemmaConfig {
    /// Gemma-2B as inside `google/paligemma-3b-pt-224` (`text_config` of its config.json with
    /// transformers' defaults: head_dim 256, rope_theta 10000, rms_norm_eps 1e-6).
    pub fn paligemma_3b() -> Self {
        Self::new(257216, 2048, 16384, 18, 8, 1, 256)
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
            self.num_key_value_heads > 0 && self.num_attention_heads % self.num_key_value_heads == 0,
            "num_key_value_heads must divide num_attention_heads"
        );
        assert!(self.head_dim % 2 == 0, "head_dim must be even for RoPE");
        Decoder::new(self, device)
    }
}
