//! Continuous RoboPaligemma policies (LSTM / FC / GPT heads): the post-norm hidden state at a
//! learned action token feeds the action head (fixtures README §4).
//!
//! Sequence assembly per frame (`history_type` "post"): `[emb(text[0] = <eos>)] + image
//! features + [emb(text[1 : L-1])] + [action_token] + [emb(text[L-1])]` ([`super::sequence`]),
//! image features = `projector(vision(x)) / sqrt(hidden_size)` with the **top-level**
//! `hidden_size` (2048 when absent), the whole sequence bidirectional with pad keys masked,
//! positions `1..=L`, and the action hidden state taken after the final norm.

use action_heads::{ActionHead, HeadOutput};
use burn::prelude::*;
use gemma::{AttentionMask, DecoderInput};
use robovlm_pixels::RgbImage;
use robovlm_weights::LoadErrorKind;

use super::backbone::Backbone;
use super::checkpoint::PolicyCheckpoint;
use super::config::RoboVlmsConfig;
use super::episode::Episode;
use super::postprocess::{ProcessedAction, postprocess};
use super::prompt::instruction_batch;
use super::sequence::{splice, splice_row};
use crate::error::{Error, Result};
use crate::paligemma::{PaliGemma, PromptBatch};

/// The VLM half of one forward pass over `rows` frames.
#[derive(Debug, Clone)]
pub struct VlmForward<B: Backend> {
    /// Sequence handed to Gemma (unscaled), `[rows, seq, hidden]`.
    pub inputs_embeds: Tensor<B, 3>,
    /// 2-D mask after inserting image and action tokens, `[rows, seq]`.
    pub attention_mask: Vec<u32>,
    /// The attention mask Gemma applied.
    pub allowed: AttentionMask,
    /// Post-norm hidden states, `[rows, seq, hidden]`, with [`VlmOutputs::All`]; `None` with
    /// [`VlmOutputs::ActionToken`] (only the action row was computed).
    pub last_hidden: Option<Tensor<B, 3>>,
    /// Hidden state at the action token, `[rows, 1, hidden]`.
    pub action_hidden: Tensor<B, 3>,
}

/// Which positions' final hidden states a VLM pass computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VlmOutputs {
    /// The action token's only — all the head reads. Gemma's last layer then runs its queries,
    /// output projection and MLP on that one row (keys and values still over every position):
    /// the same action hidden state for about one layer's work less.
    #[default]
    ActionToken,
    /// Every position's, in [`VlmForward::last_hidden`] (parity checks, analysis).
    All,
}

/// One rollout step's result.
#[derive(Debug, Clone)]
pub struct PolicyStep<B: Backend> {
    /// The VLM pass of this frame.
    pub vlm: VlmForward<B>,
    /// Raw head outputs, `[1, 1, chunk, ·]`.
    pub head: HeadOutput<B>,
    /// Arm chunk `[chunk][arm_dim]` (tanh outputs).
    pub arm: Vec<Vec<f32>>,
    /// Gripper logits `[chunk]`.
    pub gripper_logits: Vec<f32>,
    /// Post-processing, ending in the emitted 7-DoF action.
    pub action: ProcessedAction,
}

/// A loaded continuous policy, with one built-in episode for [`ContinuousPolicy::step`];
/// [`ContinuousPolicy::step_in`] runs any number of caller-owned episodes on the same weights.
#[derive(Debug)]
pub struct ContinuousPolicy<B: Backend> {
    backbone: Backbone<B>,
    action_token: Tensor<B, 1>,
    head: ActionHead<B>,
    config: RoboVlmsConfig,
    episode: Episode<B>,
    outputs: VlmOutputs,
}

impl<B: Backend> ContinuousPolicy<B> {
    /// Builds the head of `config` and loads it, the action token and the backbone.
    pub(crate) fn load(
        config: RoboVlmsConfig,
        backbone: Backbone<B>,
        checkpoint: &PolicyCheckpoint,
        device: &B::Device,
    ) -> Result<Self> {
        let missing = |what: &str| {
            checkpoint.error(None, LoadErrorKind::Missing, format!("no {what} (a continuous policy needs it)"))
        };
        let head_prefix = checkpoint.head.as_deref().ok_or_else(|| missing("act_head.* tensors"))?;
        let token_key = checkpoint.action_token.as_deref().ok_or_else(|| missing("action_token tensor"))?;
        let hidden = backbone.config.text_hidden_size;
        let (shape, token) = checkpoint.checkpoint.read_f32(token_key)?;
        if shape != [hidden] {
            let reason = format!("shape {shape:?}, expected [{hidden}] (the text hidden size)");
            return Err(checkpoint.error(Some(token_key), LoadErrorKind::Mismatch, reason));
        }
        let head_config = config.head_config(hidden).ok_or_else(|| {
            Error::config(&config.path, "act_head.type", "a discrete head has no continuous head to load")
        })?;
        let mut head = head_config.init::<B>(device);
        head.load_weights(&checkpoint.checkpoint, &[(head_prefix, "")])?;
        Ok(Self {
            backbone,
            action_token: Tensor::from_data(TensorData::new(token, [hidden]), device),
            head,
            config,
            episode: Episode::new(),
            outputs: VlmOutputs::default(),
        })
    }

    /// The policy's config.
    pub fn config(&self) -> &RoboVlmsConfig {
        &self.config
    }

    /// The backbone (model, processor, divisor).
    pub fn backbone(&self) -> &Backbone<B> {
        &self.backbone
    }

    /// What the VLM passes of [`Self::step`], [`Self::step_in`], [`Self::forward_vlm`] and
    /// [`Self::forward_batch`] compute (default: the action token only).
    pub fn set_vlm_outputs(&mut self, outputs: VlmOutputs) {
        self.outputs = outputs;
    }

    /// Starts a new episode (clears the head's history).
    pub fn reset(&mut self) {
        self.episode.reset();
    }

    /// The VLM pass: one row per frame, `instructions[row]` its text.
    ///
    /// # Shapes
    /// - `pixels`: `[rows, 3, H, W]`
    pub fn forward_vlm(&self, pixels: Tensor<B, 4>, instructions: &[&str]) -> Result<VlmForward<B>> {
        let rows = pixels.dims()[0];
        if instructions.len() != rows {
            return Err(Error::Input(format!("{} instructions for {rows} frames", instructions.len())));
        }
        let text = instruction_batch(self.backbone.processor.tokenizer(), instructions)?;
        // The sequence is the instruction, the image tokens and the action token.
        let len = text.seq.saturating_add(self.backbone.processor.num_image_tokens()).saturating_add(1);
        self.backbone.model.language.check_length(len, "instruction + image + action token")?;
        let device = self.backbone.device();
        Ok(forward_vlm_ids(
            &self.backbone.model,
            &self.action_token,
            self.backbone.divisor,
            pixels,
            &text,
            self.outputs,
            device,
        ))
    }

    /// One control step of the built-in episode: frame + instruction → action, carrying the
    /// head's history.
    pub fn step(&mut self, frame: &RgbImage, instruction: &str) -> Result<PolicyStep<B>> {
        let mut episode = std::mem::take(&mut self.episode);
        let result = self.step_in(&mut episode, frame, instruction);
        self.episode = episode;
        result
    }

    /// One control step of a caller-owned `episode`.
    pub fn step_in(&self, episode: &mut Episode<B>, frame: &RgbImage, instruction: &str) -> Result<PolicyStep<B>> {
        let vlm = self.forward_vlm(self.backbone.pixels(std::slice::from_ref(frame))?, &[instruction])?;
        let head = self.head.step(vlm.action_hidden.clone(), &mut episode.head);
        let chunk = head.arm.dims()[2];
        let to_vec = |t: Tensor<B, 4>| {
            t.into_data().convert::<f32>().into_vec::<f32>().map_err(|e| Error::Input(format!("{e:?}")))
        };
        let arm_flat = to_vec(head.arm.clone())?;
        let gripper_logits = to_vec(head.gripper.clone())?;
        let arm: Vec<Vec<f32>> = arm_flat.chunks(arm_flat.len() / chunk).map(<[f32]>::to_vec).collect();
        let action = postprocess(&arm, &gripper_logits, self.config.normalization.as_ref());
        let step = episode.steps;
        episode.steps += 1;
        // `postprocess` turns a NaN gripper logit into a valid-looking ±1, so the raw outputs
        // are checked as well as the emitted action.
        let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
        if !(finite(&arm_flat) && finite(&gripper_logits) && action.chunk_emitted.iter().all(|r| finite(r))) {
            return Err(Error::NonFiniteAction { step });
        }
        Ok(PolicyStep { vlm, head, arm, gripper_logits, action })
    }

    /// Batch forward over windows (training / evaluation of the loss path): `pixels`
    /// `[batch, time, 3, H, W]`, one instruction per sample; the head runs from a zero state.
    pub fn forward_batch(&self, pixels: Tensor<B, 5>, instructions: &[&str]) -> Result<(VlmForward<B>, HeadOutput<B>)> {
        let [b, t, c, h, w] = pixels.dims();
        if instructions.len() != b {
            return Err(Error::Input(format!("{} instructions for a batch of {b}", instructions.len())));
        }
        let per_row: Vec<&str> = instructions.iter().flat_map(|i| std::iter::repeat_n(*i, t)).collect();
        let vlm = self.forward_vlm(pixels.reshape([b * t, c, h, w]), &per_row)?;
        let d = vlm.action_hidden.dims()[2];
        let head = self.head.forward(vlm.action_hidden.clone().reshape([b, t, 1, d]));
        Ok((vlm, head))
    }
}

/// The RoboPaligemma VLM pass from tokenised instructions (`<eos>` text `\n`, right-padded, as
/// [`instruction_batch`] builds them): `[first token, image tokens, rest of the text but the
/// last token, action token, last token]` through Gemma with a bidirectional prefix mask; the
/// hidden state at the action token is what the head reads (`outputs`: whether the other
/// positions' are computed too). No logits are computed.
///
/// Public so that benchmarks can drive the exact policy path with random weights and ids.
///
/// # Shapes
/// - `pixels`: `[rows, 3, H, W]`; `text`: `rows` rows of at least 2 tokens
///
/// # Panics
/// If `pixels` and `text` disagree on `rows` ([`ContinuousPolicy::forward_vlm`] checks this for
/// users).
pub fn forward_vlm_ids<B: Backend>(
    backbone: &PaliGemma<B>,
    action_token: &Tensor<B, 1>,
    divisor: f64,
    pixels: Tensor<B, 4>,
    text: &PromptBatch,
    outputs: VlmOutputs,
    device: &B::Device,
) -> VlmForward<B> {
    let (rows, l) = (text.batch, text.seq);
    let ids = Tensor::<B, 2, Int>::from_data(
        TensorData::new(text.input_ids.iter().map(|&i| i64::from(i)).collect::<Vec<_>>(), [rows, l]),
        device,
    );
    let emb = backbone.language.embed(ids);
    let d = emb.dims()[2];
    let image = backbone.image.forward(pixels, divisor);
    let n = image.dims()[1];
    let token = action_token.clone().reshape([1, 1, d]).expand([rows, 1, d]);
    let inputs_embeds = splice(emb, image, Some(token));
    let seq = l + n + 1;
    let mask: Vec<u32> = text.attention_mask.chunks(l).flat_map(|row| splice_row(row, n, 1, Some(1))).collect();
    let allowed = AttentionMask::prefix(&mask, rows);
    let positions: Vec<i64> = (0..rows).flat_map(|_| 1..=seq as i64).collect();
    // `splice` puts the action token before the text's last token: the second-to-last position.
    let action = seq - 2..seq - 1;
    let out = backbone.language.forward(DecoderInput {
        embeds: inputs_embeds.clone(),
        positions: &positions,
        mask: Some(&allowed),
        caches: None,
        keep_hidden_states: false,
        sliding_cache: Default::default(),
        outputs: (outputs == VlmOutputs::ActionToken).then_some(action.clone()),
    });
    let (action_hidden, last_hidden) = match outputs {
        VlmOutputs::ActionToken => (out.hidden, None),
        VlmOutputs::All => (out.hidden.clone().slice([0..rows, action, 0..d]), Some(out.hidden)),
    };
    VlmForward { inputs_embeds, attention_mask: mask, allowed, last_hidden, action_hidden }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::robovlms::PolicyFiles;
    use robovlm_test_utils::{TestBackend, fixtures_dir};

    /// The default step (the action token's row only through Gemma's last layer) reads the
    /// full pass's action hidden state, so the head and the action are unchanged; only
    /// [`VlmOutputs::All`] returns every position.
    #[test]
    fn action_token_rows_equal_the_full_pass() {
        let dir = fixtures_dir().join("robovlms_lstm");
        let device = Default::default();
        let files = PolicyFiles::in_dir(&dir).unwrap();
        let crate::RoboPolicy::Continuous(mut policy) =
            crate::RoboPolicy::<TestBackend>::load(&files, &device).unwrap()
        else {
            panic!("robovlms_lstm is a continuous policy");
        };
        let frame = RgbImage::open(&dir.join("inputs/frame_e0_t0.png")).unwrap();
        let mut step = |outputs| {
            policy.set_vlm_outputs(outputs);
            policy.step_in(&mut Episode::new(), &frame, "open the drawer").unwrap()
        };
        let (row, all) = (step(VlmOutputs::ActionToken), step(VlmOutputs::All));
        assert!(row.vlm.last_hidden.is_none());
        let [rows, seq, d] = all.vlm.last_hidden.clone().unwrap().dims();
        assert_eq!((rows, row.vlm.action_hidden.dims()), (1, [1, 1, d]));
        assert!(seq > 2);
        let host = |t: Tensor<TestBackend, 3>| t.into_data().convert::<f32>().to_vec::<f32>().unwrap();
        // Bit for bit on Flex; other backends' products may sum one row in another order.
        let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-5 * y.abs().max(1.0));
        let (a, b) = (host(row.vlm.action_hidden), host(all.vlm.action_hidden));
        assert!(a.len() == b.len() && close(&a, &b), "{a:?} vs {b:?}");
        assert!(
            close(&row.action.emitted, &all.action.emitted),
            "{:?} vs {:?}",
            row.action.emitted,
            all.action.emitted
        );
    }
}
