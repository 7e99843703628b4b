//! Architecture of a continuous action head (RoboVLMs `act_head` + the top-level window/chunk).

use burn::prelude::*;

use crate::head::ActionHead;

/// Which RoboVLMs policy head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadKind {
    /// `LSTMDecoder`: multi-layer LSTM over the history window.
    Lstm,
    /// `FCDecoder`: a per-step MLP, no memory.
    Fc,
    /// `GPTDecoder`: a GPT-2 stack over the history window.
    Gpt,
}

/// How the per-step tokens are reduced before the head (`down_sample`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownSample {
    /// Flatten the `latent` tokens (`"none"`).
    None,
    /// Adaptive max pool over tokens to `latent` (`"pooling"`).
    Pooling,
}

/// Architecture of a continuous head. Field names follow RoboVLMs' `act_head` keys; the
/// RoboVLMs JSON is parsed by `robovlm-core`.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadConfig {
    /// Head type.
    pub kind: HeadKind,
    /// Width of the VLM feature per token (`in_features`, the text hidden size).
    pub in_features: usize,
    /// Width of the head (`hidden_size`).
    pub hidden_size: usize,
    /// Action dimensions including the gripper (`action_dim`, 7).
    pub action_dim: usize,
    /// Future steps predicted per step (`fwd_pred_next_n`, the chunk length).
    pub fwd_pred_next_n: usize,
    /// History window (`window_size`).
    pub window_size: usize,
    /// Tokens per step after down-sampling (`latent`).
    pub latent: usize,
    /// Token reduction (`down_sample`).
    pub down_sample: DownSample,
    /// LSTM layers (`num_layers`, RoboVLMs default 4).
    pub num_layers: usize,
    /// GPT blocks (RoboVLMs' `get_gpt_model` default 8).
    pub gpt_layers: usize,
    /// GPT attention heads (default 8).
    pub gpt_heads: usize,
}

impl HeadConfig {
    /// A head with RoboVLMs' defaults for everything but the essentials.
    pub fn new(
        kind: HeadKind,
        in_features: usize,
        hidden_size: usize,
        fwd_pred_next_n: usize,
        window_size: usize,
    ) -> Self {
        Self {
            kind,
            in_features,
            hidden_size,
            action_dim: 7,
            fwd_pred_next_n,
            window_size,
            latent: 1,
            down_sample: DownSample::None,
            num_layers: 4,
            gpt_layers: 8,
            gpt_heads: 8,
        }
    }

    /// Arm dimensions (`action_dim - 1`).
    pub fn arm_dim(&self) -> usize {
        self.action_dim - 1
    }

    /// Builds a randomly initialised head; load weights afterwards.
    ///
    /// # Panics
    /// On zero sizes, an action dimension below 2, or GPT heads not dividing the width.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ActionHead<B> {
        assert!(self.action_dim >= 2, "action_dim must include arm and gripper");
        assert!(self.latent > 0 && self.window_size > 0 && self.fwd_pred_next_n > 0, "sizes must be positive");
        assert!(
            self.kind != HeadKind::Gpt || (self.hidden_size * self.latent).is_multiple_of(self.gpt_heads),
            "gpt heads must divide hidden_size * latent"
        );
        ActionHead::new(self, device)
    }
}
