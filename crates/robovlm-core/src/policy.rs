//! The RoboVLMs RoboPaligemma policy: a PaliGemma backbone whose post-norm hidden state at a
//! learned action token feeds an action head (fixtures README §4).
//!
//! Sequence assembly per frame (continuous heads, `history_type` "post"):
//! `[emb(text[0] = <eos>)] + image features + [emb(text[1 : L-1])] + [action_token] +
//! [emb(text[L-1])]`, image features = `projector(vision(x)) / sqrt(hidden_size)` with the
//! **top-level** `hidden_size` (2048 when absent), the whole sequence bidirectional with pad
//! keys masked, positions `1..=L`, and the action hidden state taken after the final norm.

use std::path::{Path, PathBuf};

use action_heads::{ActionHead, HeadOutput, HeadState};
use burn::prelude::*;
use gemma::{AttentionMask, DecoderInput};

use crate::checkpoint::CheckpointFile;
use crate::config::{DEFAULT_TOP_LEVEL_HIDDEN_SIZE, PaliGemmaConfig};
use crate::error::{Error, Result};
use robovlm_pixels::RgbImage;
use crate::paligemma::PaliGemma;
use crate::policy_weights::find_prefix;
use crate::postprocess::{ProcessedAction, postprocess};
use crate::processor::PaliGemmaProcessor;
use crate::prompt::PromptBatch;
use crate::robovlms_config::{HeadSpec, RoboVlmsConfig};
use crate::robovlms_prompt::instruction_batch;
use crate::weights::{KeyLayout, WeightFiles, read_tensor_f32, safetensors_keys};

/// The files a policy is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyFiles {
    /// The RoboVLMs config JSON.
    pub config: PathBuf,
    /// The checkpoint: safetensors, or a PyTorch/Lightning `.pt`/`.ckpt` (read without
    /// executing pickle code, see [`crate::checkpoint`]).
    pub checkpoint: PathBuf,
    /// The PaliGemma directory for config, tokenizer and processor (`None`: from the config's
    /// `vlm.pretrained_model_name_or_path`, relative to the config file).
    pub backbone: Option<PathBuf>,
}

impl PolicyFiles {
    /// A policy directory: `robovlm_config.json` plus `policy.safetensors` (preferred) or
    /// `policy.pt`.
    pub fn in_dir(dir: &Path) -> Result<Self> {
        let config = dir.join("robovlm_config.json");
        if !config.is_file() {
            return Err(Error::io(
                &config,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no robovlm_config.json in the policy directory"),
            ));
        }
        let checkpoint = ["policy.safetensors", "policy.pt", "policy.ckpt"]
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                Error::io(
                    dir.join("policy.safetensors"),
                    std::io::Error::new(std::io::ErrorKind::NotFound, "no policy.safetensors or policy.pt"),
                )
            })?;
        Ok(Self { config, checkpoint, backbone: None })
    }
}

/// The VLM half of one forward pass over `rows` frames.
#[derive(Debug, Clone)]
pub struct VlmForward<B: Backend> {
    /// Sequence handed to Gemma (unscaled), `[rows, seq, hidden]`.
    pub inputs_embeds: Tensor<B, 3>,
    /// 2-D mask after inserting image and action tokens, `[rows, seq]`.
    pub attention_mask: Vec<u32>,
    /// The attention mask Gemma applied.
    pub allowed: AttentionMask,
    /// Post-norm hidden states, `[rows, seq, hidden]`.
    pub last_hidden: Tensor<B, 3>,
    /// Hidden state at the action token, `[rows, 1, hidden]`.
    pub action_hidden: Tensor<B, 3>,
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

/// A loaded RoboPaligemma policy with its per-episode state.
#[derive(Debug)]
pub struct Policy<B: Backend> {
    backbone: PaliGemma<B>,
    action_token: Tensor<B, 1>,
    head: ActionHead<B>,
    processor: PaliGemmaProcessor,
    config: RoboVlmsConfig,
    divisor: f64,
    state: HeadState<B>,
    device: B::Device,
}

fn read_dims(err: impl Fn(String) -> Error, v: &[usize], want: usize) -> Result<()> {
    if v != [want] {
        return Err(err(format!("shape {v:?}, expected [{want}]")));
    }
    Ok(())
}

/// What every RoboVLMs policy loads: config, the backbone directory's processor and config, the
/// checkpoint's tensor names, and the backbone weights from the checkpoint.
pub(crate) struct LoadedBackbone<B: Backend> {
    pub checkpoint: CheckpointFile,
    pub config: RoboVlmsConfig,
    pub processor: PaliGemmaProcessor,
    pub pg_config: PaliGemmaConfig,
    pub backbone: PaliGemma<B>,
    pub keys: Vec<String>,
}

/// Loads the shared parts. `parts` are the non-backbone key prefixes the checkpoint may hold
/// (e.g. `act_head.`, `action_token`); any other tensor is reported as unexpected.
pub(crate) fn load_backbone<B: Backend>(
    files: &PolicyFiles,
    parts: &[&str],
    device: &B::Device,
) -> Result<LoadedBackbone<B>> {
    let config = RoboVlmsConfig::from_file(&files.config)?;
    let dir = config.backbone_dir(files.backbone.as_deref())?;
    let processor = PaliGemmaProcessor::from_dir(&dir)?;
    let pg_config = PaliGemmaConfig::from_file(&dir.join("config.json"))?;
    let checkpoint = CheckpointFile::open(&files.checkpoint)?;
    let ckpt = checkpoint.path();
    let keys = safetensors_keys(ckpt)?;
    let key_err = |m: String| Error::Weights(format!("{}: {m}", files.checkpoint.display()));
    let lead = find_prefix(keys.iter().map(String::as_str), "backbone.")
        .ok_or_else(|| key_err("no backbone.* tensors".into()))?;
    let known: Vec<String> = parts.iter().filter_map(|p| find_prefix(keys.iter().map(String::as_str), p)).collect();
    let unexpected: Vec<&String> =
        keys.iter().filter(|k| !k.starts_with(&lead) && !known.iter().any(|p| k.starts_with(p.as_str()))).collect();
    if !unexpected.is_empty() {
        return Err(key_err(format!("unexpected tensors: {unexpected:?}")));
    }
    let weights = WeightFiles { files: vec![ckpt.to_owned()], layout: KeyLayout::v4_47(&lead) };
    let backbone = PaliGemma::load_files(&weights, &pg_config, device)?;
    Ok(LoadedBackbone { checkpoint, config, processor, pg_config, backbone, keys })
}

impl<B: Backend> Policy<B> {
    /// Loads config, backbone files and checkpoint. Backbone weights come from the checkpoint;
    /// only config, tokenizer and processor come from the backbone directory.
    pub fn load(files: &PolicyFiles, device: &B::Device) -> Result<Self> {
        let LoadedBackbone { checkpoint, config, processor, pg_config, backbone, keys } =
            load_backbone::<B>(files, &["act_head.", "action_token"], device)?;
        if !matches!(config.head, HeadSpec::Continuous { .. }) {
            return Err(Error::config(
                &files.config,
                "act_head.type",
                "a discrete policy: load it with `DiscretePolicy`",
            ));
        }
        let ckpt = checkpoint.path();
        let key_err = |m: String| Error::Weights(format!("{}: {m}", files.checkpoint.display()));
        let head_prefix = find_prefix(keys.iter().map(String::as_str), "act_head.")
            .ok_or_else(|| key_err("no act_head.* tensors".into()))?;
        let token_key = find_prefix(keys.iter().map(String::as_str), "action_token")
            .filter(|k| keys.contains(k))
            .ok_or_else(|| key_err("no action_token tensor".into()))?;
        let hidden = pg_config.text_hidden_size;
        let (shape, token) = read_tensor_f32(ckpt, &token_key)?;
        read_dims(|m| key_err(format!("{token_key}: {m}")), &shape, hidden)?;
        let head_config = config.head_config(hidden).expect("continuous head checked above");
        let mut head = head_config.init::<B>(device);
        head.load_safetensors(ckpt, &head_prefix).map_err(|e| Error::Weights(e.to_string()))?;
        let divisor = pg_config.top_level_hidden_size.unwrap_or(DEFAULT_TOP_LEVEL_HIDDEN_SIZE) as f64;
        Ok(Self {
            backbone,
            action_token: Tensor::from_data(TensorData::new(token, [hidden]), device),
            head,
            processor,
            config,
            divisor,
            state: HeadState::new(),
            device: device.clone(),
        })
    }

    /// The policy's config.
    pub fn config(&self) -> &RoboVlmsConfig {
        &self.config
    }

    /// The processor (tokenizer + image preprocessing of the backbone directory).
    pub fn processor(&self) -> &PaliGemmaProcessor {
        &self.processor
    }

    /// The value image features are divided by the square root of.
    pub fn divisor(&self) -> f64 {
        self.divisor
    }

    /// Starts a new episode (clears the head's history).
    pub fn reset(&mut self) {
        self.state.reset();
    }

    /// Preprocesses frames into `[rows, 3, H, W]` on the policy's device. Frames of any size
    /// are resized as the processor does.
    pub fn pixels(&self, frames: &[RgbImage]) -> Result<Tensor<B, 4>> {
        if frames.is_empty() {
            return Err(Error::Input("no frames given".into()));
        }
        let images = frames
            .iter()
            .map(|f| Ok(self.processor.image_processor().process(f)?.to_tensor::<B>(&self.device)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Tensor::cat(images, 0))
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
        let text = instruction_batch(self.processor.tokenizer(), instructions)?;
        Ok(forward_vlm_ids(&self.backbone, &self.action_token, self.divisor, pixels, &text, &self.device))
    }

    /// One control step: frame + instruction → action, carrying the head's history.
    pub fn step(&mut self, frame: &RgbImage, instruction: &str) -> Result<PolicyStep<B>> {
        let vlm = self.forward_vlm(self.pixels(std::slice::from_ref(frame))?, &[instruction])?;
        let head = self.head.step(vlm.action_hidden.clone(), &mut self.state);
        let chunk = head.arm.dims()[2];
        let to_vec = |t: Tensor<B, 4>| {
            t.into_data().convert::<f32>().to_vec::<f32>().map_err(|e| Error::Input(format!("{e:?}")))
        };
        let arm_flat = to_vec(head.arm.clone())?;
        let gripper_logits = to_vec(head.gripper.clone())?;
        let arm: Vec<Vec<f32>> = arm_flat.chunks(arm_flat.len() / chunk).map(<[f32]>::to_vec).collect();
        let action = postprocess(&arm, &gripper_logits, self.config.normalization.as_ref());
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
/// hidden state at the action token is what the head reads. No logits are computed.
///
/// Public so that benchmarks can drive the exact policy path with random weights and ids.
///
/// # Shapes
/// - `pixels`: `[rows, 3, H, W]`; `text`: `rows` rows of at least 2 tokens
///
/// # Panics
/// If `pixels` and `text` disagree on `rows` ([`Policy::forward_vlm`] checks this for users).
pub fn forward_vlm_ids<B: Backend>(
    backbone: &PaliGemma<B>,
    action_token: &Tensor<B, 1>,
    divisor: f64,
    pixels: Tensor<B, 4>,
    text: &PromptBatch,
    device: &B::Device,
) -> VlmForward<B> {
    let rows = text.batch;
    let l = text.seq;
    let ids = Tensor::<B, 2, Int>::from_data(
        TensorData::new(text.input_ids.iter().map(|&i| i64::from(i)).collect::<Vec<_>>(), [rows, l]),
        device,
    );
    let emb = backbone.language.embed(ids);
    let d = emb.dims()[2];
    let image = backbone.image.forward(pixels, divisor);
    let n = image.dims()[1];
    let token = action_token.clone().reshape([1, 1, d]).expand([rows, 1, d]);
    let mut parts = vec![emb.clone().slice([0..rows, 0..1, 0..d]), image];
    if l > 2 {
        parts.push(emb.clone().slice([0..rows, 1..l - 1, 0..d]));
    }
    parts.push(token);
    parts.push(emb.slice([0..rows, l - 1..l, 0..d]));
    let inputs_embeds = Tensor::cat(parts, 1);
    let seq = l + n + 1;
    let mut mask = Vec::with_capacity(rows * seq);
    for r in 0..rows {
        let m = &text.attention_mask[r * l..(r + 1) * l];
        mask.push(m[0]);
        mask.extend(std::iter::repeat_n(1, n));
        mask.extend_from_slice(&m[1..l - 1]);
        mask.push(1);
        mask.push(m[l - 1]);
    }
    let allowed = AttentionMask::prefix(&mask, rows);
    let positions: Vec<i64> = (0..rows).flat_map(|_| 1..=seq as i64).collect();
    let out = backbone.language.forward(DecoderInput {
        embeds: inputs_embeds.clone(),
        positions: &positions,
        bias: Some(allowed.to_bias(device)),
        caches: None,
        keep_hidden_states: false,
    });
    let action_hidden = out.hidden.clone().slice([0..rows, seq - 2..seq - 1, 0..d]);
    VlmForward { inputs_embeds, attention_mask: mask, allowed, last_hidden: out.hidden, action_hidden }
}
