//! PaliGemma composition: vision tower → projector → ÷ sqrt(divisor) → image features, spliced
//! into the Gemma token embeddings at the `<image>` positions.

use std::path::Path;

use burn::prelude::*;
use gemma::{AttentionMask, Decoder, DecoderInput, DecoderOutput};
use projector::{Projector, ProjectorConfig};
use robovlm_weights::Checkpoint;
use siglip::VisionTower;

use super::checkpoint::KeyLayout;
use super::config::PaliGemmaConfig;
use super::processor::PromptBatch;
use crate::error::{Error, Result};

/// The image path of PaliGemma: SigLIP tower and projector, with their weights.
#[derive(Module, Debug)]
pub struct ImageEncoder<B: Backend> {
    /// SigLIP tower.
    pub vision: VisionTower<B>,
    /// Multimodal projector.
    pub projector: Projector<B>,
}

/// Every intermediate of the image path, for parity and debugging.
#[derive(Debug, Clone)]
pub struct ImageFeatures<B: Backend> {
    /// Tower embeddings `[batch, tokens, vision_hidden]`.
    pub vision_embeddings: Tensor<B, 3>,
    /// Each tower layer's output.
    pub vision_layer_outputs: Vec<Tensor<B, 3>>,
    /// Tower output after `post_layernorm`.
    pub vision_last_hidden_state: Tensor<B, 3>,
    /// Projector output `[batch, tokens, text_hidden]`.
    pub projector_output: Tensor<B, 3>,
    /// Projector output ÷ sqrt(divisor): what replaces the `<image>` embeddings.
    pub scaled: Tensor<B, 3>,
}

impl<B: Backend> ImageEncoder<B> {
    /// Builds the image path of `config` and loads its weights from `checkpoint`, whose keys
    /// follow `layout`.
    pub fn load(
        checkpoint: &Checkpoint,
        layout: &KeyLayout,
        config: &PaliGemmaConfig,
        device: &B::Device,
    ) -> Result<Self> {
        let mut vision = config.vision.init::<B>(device);
        vision.load_weights(checkpoint, &[(&layout.vision, "")])?;
        let mut projector = ProjectorConfig::new(config.vision.hidden_size, config.projection_dim).init::<B>(device);
        projector.load_weights(checkpoint, &[(&layout.projector, "")])?;
        Ok(Self { vision, projector })
    }

    /// Encodes images into the features that replace the `<image>` embeddings. Keeps no
    /// intermediates: this is the inference hot path (one call per frame or prompt).
    ///
    /// `divisor`: transformers divides by `sqrt(text_config.hidden_size)`, RoboVLMs by
    /// `sqrt(config.hidden_size)` (top level, default 2048) — the caller chooses.
    ///
    /// # Shapes
    /// - `pixels`: `[batch, 3, image_size, image_size]`; returns `[batch, tokens, text_hidden]`
    pub fn forward(&self, pixels: Tensor<B, 4>, divisor: f64) -> Tensor<B, 3> {
        Self::scale(self.projector.forward(self.vision.forward(pixels)), divisor)
    }

    /// Like [`Self::forward`], keeping every intermediate (parity and debugging).
    ///
    /// # Shapes
    /// - `pixels`: `[batch, 3, image_size, image_size]`
    pub fn forward_with_intermediates(&self, pixels: Tensor<B, 4>, divisor: f64) -> ImageFeatures<B> {
        let out = self.vision.forward_with_intermediates(pixels);
        let projector_output = self.projector.forward(out.last_hidden_state.clone());
        let scaled = Self::scale(projector_output.clone(), divisor);
        ImageFeatures {
            vision_embeddings: out.embeddings,
            vision_layer_outputs: out.layer_outputs,
            vision_last_hidden_state: out.last_hidden_state,
            projector_output,
            scaled,
        }
    }

    /// `x / sqrt(divisor)`; PyTorch divides by the float32 scalar `hidden_size**0.5`, in f32
    /// for a half-precision `x` ([`robovlm_ops::div_scalar_f32`]).
    fn scale(x: Tensor<B, 3>, divisor: f64) -> Tensor<B, 3> {
        robovlm_ops::div_scalar_f32(x, divisor.sqrt() as f32)
    }
}

/// The whole PaliGemma model: image path plus the Gemma decoder.
#[derive(Module, Debug)]
pub struct PaliGemma<B: Backend> {
    /// Vision tower and projector.
    pub image: ImageEncoder<B>,
    /// Gemma decoder (logits through the tied embedding unless the config unties it).
    pub language: Decoder<B>,
}

impl<B: Backend> PaliGemma<B> {
    /// Loads an HF PaliGemma directory's weights (`model.safetensors` or its shards; either key
    /// layout) for `config` (its `config.json`, already parsed).
    pub fn load(dir: &Path, config: &PaliGemmaConfig, device: &B::Device) -> Result<Self> {
        let checkpoint = Checkpoint::discover(dir)?;
        Self::load_checkpoint(&checkpoint, &KeyLayout::detect(&checkpoint), config, device)
    }

    /// Loads the weights from an open checkpoint whose keys follow `layout` (e.g. the backbone
    /// inside a RoboVLMs checkpoint), then [`robovlm_ops::pack_weights`].
    pub fn load_checkpoint(
        checkpoint: &Checkpoint,
        layout: &KeyLayout,
        config: &PaliGemmaConfig,
        device: &B::Device,
    ) -> Result<Self> {
        let image = ImageEncoder::load(checkpoint, layout, config, device)?;
        let text = config.text()?;
        let mut language = text.init::<B>(device);
        let mut prefixes = vec![(layout.language.as_str(), "")];
        if !text.tie_word_embeddings {
            prefixes.push((layout.lm_head.as_str(), "lm_head."));
        }
        language.load_weights(checkpoint, &prefixes)?;
        // Where the bf16 CPU fast path applies, its packed copy becomes the only copy of each
        // projection weight (half the memory; a no-op on other backends and dtypes).
        Ok(robovlm_ops::pack_weights(Self { image, language }))
    }

    /// Token embeddings with `<image>` rows replaced by `features`, in order over the flattened
    /// batch (transformers' `masked_scatter`).
    ///
    /// # Shapes
    /// - `ids`: row-major `[batch, seq]`; `features`: `[images, tokens, hidden]` with
    ///   `images · tokens` = number of `<image>` ids; returns `[batch, seq, hidden]`
    pub fn merge_embeddings(
        &self,
        ids: &[u32],
        batch: usize,
        image_token: u32,
        features: Option<Tensor<B, 3>>,
        device: &B::Device,
    ) -> Result<Tensor<B, 3>> {
        let seq = ids.len() / batch.max(1);
        let ids_t = Tensor::<B, 2, Int>::from_data(
            TensorData::new(ids.iter().map(|&i| i as i64).collect::<Vec<_>>(), [batch, seq]),
            device,
        );
        let embeds = self.language.embed(ids_t);
        let n_image = ids.iter().filter(|&&i| i == image_token).count();
        let Some(features) = features else {
            return if n_image == 0 {
                Ok(embeds)
            } else {
                Err(Error::Input(format!("{n_image} <image> tokens but no image given")))
            };
        };
        let [images, tokens, hidden] = features.dims();
        if n_image != images * tokens {
            return Err(Error::Input(format!(
                "the prompt has {n_image} <image> tokens but {images} image(s) give {} features",
                images * tokens
            )));
        }
        let table =
            Tensor::cat(vec![features.reshape([images * tokens, hidden]), Tensor::zeros([1, hidden], device)], 0);
        let mut next = 0i64;
        let index: Vec<i64> = ids
            .iter()
            .map(|&i| {
                if i == image_token {
                    next += 1;
                    next - 1
                } else {
                    (images * tokens) as i64
                }
            })
            .collect();
        let gathered = table
            .select(0, Tensor::from_data(TensorData::new(index, [batch * seq]), device))
            .reshape([batch, seq, hidden]);
        let is_image: Vec<bool> = ids.iter().map(|&i| i == image_token).collect();
        let mask = Tensor::<B, 2, Bool>::from_data(TensorData::new(is_image, [batch, seq]), device)
            .unsqueeze_dim::<3>(2)
            .expand([batch, seq, hidden]);
        Ok(embeds.mask_where(mask, gathered))
    }
}

/// A full PaliGemma forward pass over a prompt batch, with what went into the decoder.
#[derive(Debug, Clone)]
pub struct PaliGemmaOutput<B: Backend> {
    /// Merged input embeddings (unscaled), `[batch, seq, hidden]`.
    pub inputs_embeds: Tensor<B, 3>,
    /// Position ids used, `[batch, seq]` row-major.
    pub positions: Vec<i64>,
    /// The attention mask applied.
    pub mask: AttentionMask,
    /// Decoder output (hidden states on request).
    pub decoder: DecoderOutput<B>,
    /// Logits `[batch, seq, vocab]`.
    pub logits: Tensor<B, 3>,
}

impl<B: Backend> PaliGemma<B> {
    /// The forward pass transformers 4.47.1 runs for `model(**inputs)`: `<image>` rows replaced
    /// by `features`, positions `1..=seq`, the inference prefix mask — or, with `training` and
    /// token types present, the training mask (with its left-pad quirk).
    pub fn forward_prompt(
        &self,
        ids: &PromptBatch,
        image_token: u32,
        features: Option<Tensor<B, 3>>,
        training: bool,
        keep_hidden_states: bool,
        device: &B::Device,
    ) -> Result<PaliGemmaOutput<B>> {
        self.language.check_length(ids.seq, "prompt")?;
        let inputs_embeds = self.merge_embeddings(&ids.input_ids, ids.batch, image_token, features, device)?;
        let positions = position_ids(&ids.attention_mask, ids.batch, false);
        let mask = match (&ids.token_type_ids, training) {
            (Some(tt), true) => AttentionMask::paligemma_training(&ids.attention_mask, tt, ids.batch),
            _ => AttentionMask::prefix(&ids.attention_mask, ids.batch),
        };
        let decoder = self.language.forward(DecoderInput {
            embeds: inputs_embeds.clone(),
            positions: &positions,
            mask: Some(&mask),
            caches: None,
            keep_hidden_states,
            sliding_cache: Default::default(),
            outputs: None,
        });
        let logits = self.language.logits(decoder.hidden.clone());
        Ok(PaliGemmaOutput { inputs_embeds, positions, mask, decoder, logits })
    }
}

/// Position ids as transformers' PaliGemma uses them: `1..=seq` for an unpadded forward
/// (`cache_position + 1`), or — for generation over a left-padded batch — `cumsum(mask) - 1`
/// with pads at 1, plus 1 (first real token = 1, pads = 2).
pub fn position_ids(attention_mask: &[u32], batch: usize, padded_generation: bool) -> Vec<i64> {
    if padded_generation {
        return gemma::generation_positions(attention_mask, batch, 1);
    }
    let seq = attention_mask.len() / batch.max(1);
    (0..batch).flat_map(|_| 1..=seq as i64).collect()
}
