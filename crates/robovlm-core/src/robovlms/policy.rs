//! [`RoboPolicy`]: any RoboVLMs policy, loaded from its files in one call. The config is parsed
//! once and decides the kind; callers step episodes and run batches without choosing between
//! continuous and discrete heads.

use action_heads::HeadOutput;
use burn::prelude::*;
use robovlm_pixels::RgbImage;

use super::backbone::Backbone;
use super::checkpoint::{PolicyCheckpoint, PolicyFiles};
use super::config::{HeadSpec, RoboVlmsConfig};
use super::continuous::{ContinuousPolicy, PolicyStep, VlmForward, VlmOutputs};
use super::discrete::{DiscreteBatch, DiscretePolicy, DiscreteStep, DiscreteTraining};
use super::episode::Episode;
use crate::error::{Error, Result};

/// A loaded RoboVLMs policy of either kind.
#[derive(Debug)]
pub enum RoboPolicy<B: Backend> {
    /// LSTM / FC / GPT head reading the learned action token (keeps per-episode history).
    Continuous(ContinuousPolicy<B>),
    /// `DiscreteDecoder`: actions decoded as language-model tokens (no history).
    Discrete(DiscretePolicy<B>),
}

/// One control step.
#[derive(Debug, Clone)]
pub struct RoboStep<B: Backend> {
    /// The action sent to the robot (`action_dim` values: arm un-normalised, gripper ±1).
    pub action: Vec<f32>,
    /// The whole predicted chunk post-processed the same way, `[chunk][action_dim]` (row 0 =
    /// `action`; a discrete policy predicts one action).
    pub chunk: Vec<Vec<f32>>,
    /// The kind-specific intermediates (head outputs or generated action ids).
    pub detail: StepDetail<B>,
}

/// The kind-specific part of a [`RoboStep`].
#[derive(Debug, Clone)]
pub enum StepDetail<B: Backend> {
    /// A continuous policy's VLM pass, head outputs and post-processing.
    Continuous(Box<PolicyStep<B>>),
    /// A discrete policy's prompt, logits and generated action ids.
    Discrete(Box<DiscreteStep<B>>),
}

/// Labels of one training sample: `window + chunk − 1` normalised action rows and their validity
/// (a discrete policy's batch is built from them; a continuous one ignores them).
#[derive(Debug, Clone, PartialEq)]
pub struct ActionLabels {
    /// `[window + chunk − 1][action_dim]`.
    pub actions: Vec<Vec<f32>>,
    /// One flag per row.
    pub mask: Vec<bool>,
}

/// What a batch forward produced.
#[derive(Debug, Clone)]
pub enum BatchOutput<B: Backend> {
    /// The VLM pass and the head outputs over the windows.
    Continuous {
        /// The VLM pass, `rows = batch × window`.
        vlm: VlmForward<B>,
        /// Head outputs `[batch, window, chunk, ·]`.
        head: HeadOutput<B>,
    },
    /// The training ids built from the labels, and the language model's forward over them.
    Discrete {
        /// Ids, labels and mask per frame.
        batch: DiscreteBatch,
        /// Embeddings, merged labels and logits.
        training: DiscreteTraining<B>,
    },
}

impl<B: Backend> RoboPolicy<B> {
    /// Loads config, backbone directory and checkpoint. Backbone weights come from the
    /// checkpoint; only config, tokenizer and processor come from the backbone directory.
    pub fn load(files: &PolicyFiles, device: &B::Device) -> Result<Self> {
        let config = RoboVlmsConfig::from_file(&files.config)?;
        let checkpoint = PolicyCheckpoint::open(&files.checkpoint)?;
        let backbone = Backbone::load(&config, files, &checkpoint, device)?;
        Ok(match config.head {
            HeadSpec::Continuous { .. } => {
                Self::Continuous(ContinuousPolicy::load(config, backbone, &checkpoint, device)?)
            }
            HeadSpec::Discrete { .. } => Self::Discrete(DiscretePolicy::load(config, backbone, &checkpoint)?),
        })
    }

    /// The policy's config.
    pub fn config(&self) -> &RoboVlmsConfig {
        match self {
            Self::Continuous(p) => p.config(),
            Self::Discrete(p) => p.config(),
        }
    }

    /// The backbone (model, processor, divisor).
    pub fn backbone(&self) -> &Backbone<B> {
        match self {
            Self::Continuous(p) => p.backbone(),
            Self::Discrete(p) => p.backbone(),
        }
    }

    /// What a continuous policy's VLM passes compute (default: the action token's hidden state
    /// only; [`VlmOutputs::All`] fills [`VlmForward::last_hidden`]). Discrete policies return
    /// no hidden states and ignore it.
    pub fn set_vlm_outputs(&mut self, outputs: VlmOutputs) {
        if let Self::Continuous(p) = self {
            p.set_vlm_outputs(outputs);
        }
    }

    /// Starts a new episode (clears a continuous head's history; discrete policies keep none).
    pub fn reset(&mut self) {
        if let Self::Continuous(p) = self {
            p.reset();
        }
    }

    /// One control step: frame + instruction → the robot's action, carrying the built-in
    /// episode's history (see [`RoboPolicy::step_in`] for caller-owned episodes).
    pub fn step(&mut self, frame: &RgbImage, instruction: &str) -> Result<RoboStep<B>> {
        Ok(match self {
            Self::Continuous(p) => continuous_step(p.step(frame, instruction)?),
            Self::Discrete(p) => discrete_step(p.infer(frame, instruction)?),
        })
    }

    /// A fresh episode for [`RoboPolicy::step_in`].
    pub fn new_episode(&self) -> Episode<B> {
        Episode::new()
    }

    /// One control step of a caller-owned `episode`: many episodes (a server's sessions) can
    /// run on one loaded policy, each with its own history.
    pub fn step_in(&self, episode: &mut Episode<B>, frame: &RgbImage, instruction: &str) -> Result<RoboStep<B>> {
        Ok(match self {
            Self::Continuous(p) => continuous_step(p.step_in(episode, frame, instruction)?),
            Self::Discrete(p) => {
                let s = discrete_step(p.infer(frame, instruction)?);
                episode.steps += 1;
                s
            }
        })
    }

    /// Preprocesses frames (any size) into `[rows, 3, H, W]`.
    pub fn pixels(&self, frames: &[RgbImage]) -> Result<Tensor<B, 4>> {
        self.backbone().pixels(frames)
    }

    /// Batch forward over windows (the training / evaluation path): `pixels`
    /// `[batch, window, 3, H, W]`, one instruction per sample, and — for a discrete policy,
    /// whose inputs are built from them — the action labels of each sample.
    pub fn forward_batch(
        &self,
        pixels: Tensor<B, 5>,
        instructions: &[&str],
        labels: Option<&[ActionLabels]>,
    ) -> Result<BatchOutput<B>> {
        match self {
            Self::Continuous(p) => {
                let (vlm, head) = p.forward_batch(pixels, instructions)?;
                Ok(BatchOutput::Continuous { vlm, head })
            }
            Self::Discrete(p) => {
                let labels =
                    labels.ok_or_else(|| Error::Input("a discrete policy's batch needs action labels".into()))?;
                if labels.len() != instructions.len() {
                    return Err(Error::Input(format!(
                        "{} label sets for {} instructions",
                        labels.len(),
                        instructions.len()
                    )));
                }
                let samples = instructions
                    .iter()
                    .zip(labels)
                    .map(|(i, l)| p.training_sample(i, &l.actions, &l.mask))
                    .collect::<Result<Vec<_>>>()?;
                let batch = DiscretePolicy::<B>::collate(&samples);
                let training = p.forward_training(pixels, &batch)?;
                Ok(BatchOutput::Discrete { batch, training })
            }
        }
    }
}

fn continuous_step<B: Backend>(s: PolicyStep<B>) -> RoboStep<B> {
    RoboStep {
        action: s.action.emitted.clone(),
        chunk: s.action.chunk_emitted.clone(),
        detail: StepDetail::Continuous(Box::new(s)),
    }
}

fn discrete_step<B: Backend>(s: DiscreteStep<B>) -> RoboStep<B> {
    RoboStep { action: s.action.clone(), chunk: vec![s.action.clone()], detail: StepDetail::Discrete(Box::new(s)) }
}
