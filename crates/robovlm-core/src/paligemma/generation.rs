//! PaliGemma text generation: the prompt's `<image>` rows replaced by image features, then
//! gemma's generator (KV cache, bidirectional prefill, causal decode) with PaliGemma's 1-based
//! positions — transformers 4.47.1 `generate()`.

use burn::prelude::*;
use gemma::{GenerationConfig, GenerationOutput, Generator};

use super::model::PaliGemma;
use super::processor::PromptBatch;
use crate::error::Result;

impl<B: Backend> PaliGemma<B> {
    /// A generator over the language model with PaliGemma's 1-based positions; it owns the KV
    /// caches and can be reused across calls.
    pub fn generator(&self) -> Generator<'_, B> {
        Generator::new(&self.language).with_position_offset(1)
    }

    /// Generates from a prompt batch (left-padded, as the processor builds it) and its image
    /// features `[images, tokens, hidden]` (already divided by the divisor).
    pub fn generate(
        &self,
        prompt: &PromptBatch,
        image_token: u32,
        features: Option<Tensor<B, 3>>,
        config: &GenerationConfig,
        device: &B::Device,
    ) -> Result<GenerationOutput> {
        let embeds = self.merge_embeddings(&prompt.input_ids, prompt.batch, image_token, features, device)?;
        Ok(self.generator().generate(embeds, &prompt.attention_mask, config)?)
    }
}
