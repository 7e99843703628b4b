//! RoboVLMs discrete policies (`DiscreteDecoder`, fixtures README §4.8): actions are tokens of
//! the language model, decoded greedily and mapped back through the `ActionTokenizer`.
//!
//! Inference: the Phi prompt (`"Input: What {n+1} step actions should the robot take to
//! {instruction}?\nOutput: \n"`, no `<bos>`), image features inserted after token 0 (a prompt
//! token here) and divided by sqrt(top-level hidden size, 2048 when absent), a prefill where
//! every token attends every token, then `action_dim` greedy steps over the **whole**
//! vocabulary with the KV cache. The last action dim (gripper) maps to +1 if > 0 else −1.

use action_heads::ActionTokenizer;
use burn::prelude::*;
use gemma::GenerationConfig;
use robovlm_pixels::RgbImage;
use robovlm_weights::LoadErrorKind;

use super::backbone::Backbone;
use super::checkpoint::PolicyCheckpoint;
use super::config::{HeadSpec, RoboVlmsConfig};
use super::prompt::{discrete_inference_ids, discrete_prompt_text};
use super::sequence::{splice, splice_row};
use crate::error::{Error, Result};

/// One discrete inference with its intermediates.
#[derive(Debug, Clone)]
pub struct DiscreteStep<B: Backend> {
    /// Prompt ids `[seq]` (final `<eos>` dropped).
    pub text_ids: Vec<u32>,
    /// Prefill embeddings `[1, seq + image tokens, hidden]` (unscaled).
    pub prefill_inputs_embeds: Tensor<B, 3>,
    /// Last-position logits at each greedy step, `[action_dim][vocab]`.
    pub step_logits: Vec<Vec<f32>>,
    /// Greedy ids (whole vocabulary).
    pub generated_ids: Vec<u32>,
    /// Decoded action, gripper mapped to ±1.
    pub action: Vec<f32>,
}

/// A loaded discrete RoboVLMs policy.
#[derive(Debug)]
pub struct DiscretePolicy<B: Backend> {
    backbone: Backbone<B>,
    config: RoboVlmsConfig,
    tokenizer: ActionTokenizer,
}

impl<B: Backend> DiscretePolicy<B> {
    /// Wraps the backbone: the `DiscreteDecoder` has no parameters, so a checkpoint holding a
    /// continuous head or an action token belongs to another policy and is refused.
    pub(crate) fn load(config: RoboVlmsConfig, backbone: Backbone<B>, checkpoint: &PolicyCheckpoint) -> Result<Self> {
        let HeadSpec::Discrete { n_bin, min_action, max_action } = config.head else {
            return Err(Error::config(&config.path, "act_head.type", "not a DiscreteDecoder"));
        };
        if let Some(part) = checkpoint.head.as_deref().or(checkpoint.action_token.as_deref()) {
            let reason = format!("unexpected tensors under {part} (a discrete policy has no head parameters)");
            return Err(checkpoint.error(None, LoadErrorKind::Unexpected, reason));
        }
        let tok = backbone.processor.tokenizer();
        let tokenizer = ActionTokenizer::new(tok.base_vocab_size(), tok.special_count(), n_bin, min_action, max_action);
        Ok(Self { backbone, config, tokenizer })
    }

    /// The backbone (model, processor, divisor).
    pub fn backbone(&self) -> &Backbone<B> {
        &self.backbone
    }

    /// The action tokenizer.
    pub fn action_tokenizer(&self) -> &ActionTokenizer {
        &self.tokenizer
    }

    /// The policy's config.
    pub fn config(&self) -> &RoboVlmsConfig {
        &self.config
    }

    /// Predicts one action for a frame.
    pub fn infer(&self, frame: &RgbImage, instruction: &str) -> Result<DiscreteStep<B>> {
        let processor = &self.backbone.processor;
        let ids = discrete_inference_ids(processor.tokenizer(), instruction, self.config.fwd_pred_next_n)?;
        if ids.is_empty() {
            return Err(Error::Input("the discrete prompt tokenised to nothing".into()));
        }
        let image = self.backbone.encode(self.backbone.pixels(std::slice::from_ref(frame))?);
        let embeds = splice(self.backbone.embed(&ids, 1), image, None);
        let seq = embeds.dims()[1];
        let special = processor.tokenizer().special();
        let config = GenerationConfig {
            max_new_tokens: self.config.action_dim,
            sampling: None,
            // RoboVLMs decodes exactly action_dim tokens, never stopping early.
            eos_token: None,
            pad_token: special.pad,
            keep_logits: true,
            ..Default::default()
        };
        let out = self.backbone.model.generator().generate(embeds.clone(), &vec![1; seq], &config)?;
        let generated_ids = out.new_ids.into_iter().next().unwrap_or_default();
        let mut action: Vec<f32> =
            generated_ids.iter().map(|&id| self.tokenizer.decode(i64::from(id)) as f32).collect();
        if let Some(g) = action.last_mut() {
            *g = if *g > 0.0 { 1.0 } else { -1.0 };
        }
        Ok(DiscreteStep {
            text_ids: ids,
            prefill_inputs_embeds: embeds,
            step_logits: out.step_logits.into_iter().next().unwrap_or_default(),
            generated_ids,
            action,
        })
    }
}

/// The training batch of a discrete policy (RoboVLMs' `wrap_instruction_and_action` + collater).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscreteBatch {
    /// Samples.
    pub batch: usize,
    /// Frames per sample (window).
    pub window: usize,
    /// Padded sequence length per frame.
    pub len: usize,
    /// `[batch, window, len]` ids, right-padded with 0.
    pub ids: Vec<u32>,
    /// `[batch, window, len]` labels: -100 except the action tokens and the final `<eos>`.
    pub labels: Vec<i64>,
    /// `[batch, window, len]` 1 real / 0 pad.
    pub mask: Vec<u32>,
}

/// The training forward of a discrete policy over a [`DiscreteBatch`].
#[derive(Debug, Clone)]
pub struct DiscreteTraining<B: Backend> {
    /// `[batch, window · (len + image tokens), hidden]`: per frame, image features after token 0,
    /// frames concatenated along the sequence.
    pub inputs_embeds: Tensor<B, 3>,
    /// The merged 2-D mask `[batch, seq]`.
    pub attention_mask: Vec<u32>,
    /// The attention mask applied (bidirectional, pad keys masked).
    pub allowed: gemma::AttentionMask,
    /// Labels with -100 for the image tokens, frames concatenated, `[batch, seq]`.
    pub merged_labels: Vec<i64>,
    /// Logits `[batch, seq, vocab]`.
    pub logits: Tensor<B, 3>,
}

impl<B: Backend> DiscretePolicy<B> {
    /// Builds the training ids of one sample: `actions` are the `window + chunk` normalised
    /// action rows (`[action_dim]` each), `action_mask` their validity.
    pub fn training_sample(
        &self,
        instruction: &str,
        actions: &[Vec<f32>],
        action_mask: &[bool],
    ) -> Result<(Vec<Vec<u32>>, Vec<Vec<i64>>)> {
        let (window, chunk, dim) = (self.config.window_size, self.config.fwd_pred_next_n, self.config.action_dim);
        if actions.len() < window + chunk - 1
            || action_mask.len() < actions.len()
            || actions.iter().any(|a| a.len() != dim)
        {
            return Err(Error::Input(format!(
                "need {} action rows of {dim} values with a mask each",
                window + chunk - 1
            )));
        }
        let tok = self.backbone.processor.tokenizer();
        let eos = tok.id_to_token(tok.special().eos).ok_or_else(|| Error::Input("no eos token".into()))?;
        let prompt = discrete_prompt_text(instruction, chunk, &eos);
        let input_ids = tok.encode(&prompt, true)?;
        let Some((&last, head)) = input_ids.split_last() else {
            return Err(Error::Input("the discrete prompt tokenised to nothing".into()));
        };
        let action_ids: Vec<u32> =
            actions.iter().flatten().map(|&a| self.tokenizer.encode(f64::from(a)) as u32).collect();
        let predict_stop =
            self.config.raw.get("predict_stop_token").and_then(serde_json::Value::as_bool).unwrap_or(true);
        let (mut all_ids, mut all_labels) = (Vec::new(), Vec::new());
        for i in 0..window {
            let step_ids = &action_ids[i * dim..(i + chunk) * dim];
            let invalid = action_mask[i..i + chunk].iter().filter(|&&m| !m).count() * dim;
            let ids: Vec<u32> =
                head.iter().copied().chain(step_ids.iter().copied()).chain(std::iter::once(last)).collect();
            let n = ids.len();
            let mut labels: Vec<i64> = ids.iter().map(|&x| i64::from(x)).collect();
            labels[..n - step_ids.len() - 1].iter_mut().for_each(|l| *l = -100);
            if invalid > 0 {
                labels[n - invalid - 1..n - 1].iter_mut().for_each(|l| *l = -100);
            }
            if !predict_stop {
                labels[n - 1] = -100;
            }
            all_ids.push(ids);
            all_labels.push(labels);
        }
        Ok((all_ids, all_labels))
    }

    /// Collates samples (each `window` sequences) right-padded to the longest.
    pub fn collate(samples: &[(Vec<Vec<u32>>, Vec<Vec<i64>>)]) -> DiscreteBatch {
        let window = samples.first().map_or(0, |s| s.0.len());
        let len = samples.iter().flat_map(|s| s.0.iter().map(Vec::len)).max().unwrap_or(0);
        let mut b =
            DiscreteBatch { batch: samples.len(), window, len, ids: Vec::new(), labels: Vec::new(), mask: Vec::new() };
        for (ids, labels) in samples {
            for (row, lab) in ids.iter().zip(labels) {
                let pad = len - row.len();
                b.ids.extend(row.iter().copied().chain(std::iter::repeat_n(0, pad)));
                b.labels.extend(lab.iter().copied().chain(std::iter::repeat_n(-100, pad)));
                b.mask.extend(std::iter::repeat_n(1, row.len()).chain(std::iter::repeat_n(0, pad)));
            }
        }
        b
    }

    /// Training forward: `pixels` `[batch, window, 3, H, W]`.
    pub fn forward_training(&self, pixels: Tensor<B, 5>, batch: &DiscreteBatch) -> Result<DiscreteTraining<B>> {
        let [bs, t, c, h, w] = pixels.dims();
        if bs != batch.batch || t != batch.window {
            return Err(Error::Input(format!(
                "pixels [{bs}, {t}] do not match the batch [{}, {}]",
                batch.batch, batch.window
            )));
        }
        let (rows, l) = (bs * t, batch.len);
        let per_frame = l.saturating_add(self.backbone.processor.num_image_tokens());
        self.backbone.model.language.check_length(per_frame.saturating_mul(t), "training window (prompts + images)")?;
        let image = self.backbone.encode(pixels.reshape([rows, c, h, w]));
        let n = image.dims()[1];
        let emb = splice(self.backbone.embed(&batch.ids, rows), image, None);
        let d = emb.dims()[2];
        let seq = t * (l + n);
        let inputs_embeds = emb.reshape([bs, seq, d]);
        let mask: Vec<u32> = batch.mask.chunks(l).flat_map(|m| splice_row(m, n, 1, None)).collect();
        let merged: Vec<i64> = batch.labels.chunks(l).flat_map(|lab| splice_row(lab, n, -100, None)).collect();
        let allowed = gemma::AttentionMask::prefix(&mask, bs);
        let positions: Vec<i64> = (0..bs).flat_map(|_| 1..=seq as i64).collect();
        let language = &self.backbone.model.language;
        let out = language.forward(gemma::DecoderInput {
            embeds: inputs_embeds.clone(),
            positions: &positions,
            mask: Some(&allowed),
            caches: None,
            keep_hidden_states: false,
            sliding_cache: Default::default(),
            outputs: None,
        });
        let logits = language.logits(out.hidden);
        Ok(DiscreteTraining { inputs_embeds, attention_mask: mask, allowed, merged_labels: merged, logits })
    }
}
