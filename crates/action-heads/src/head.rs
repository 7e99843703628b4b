//! The continuous action head: down-sampling, the decoder (LSTM / FC / GPT) and the arm and
//! gripper MLPs, with RoboVLMs' history rules for step-wise inference.
//!
//! Reference: RoboVLMs `robovlms/model/policy_head/base_policy.py` (`LSTMDecoder`, `FCDecoder`,
//! `GPTDecoder`) at commit 8adc1d28.

use burn::module::{ModuleMapper, Param};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::{DType, get_device_settings};
use robovlm_ops::on_kernel_pool;

use crate::config::{DownSample, HeadConfig, HeadKind};
use crate::gpt::Gpt;
use crate::history::HeadState;
use crate::lstm::Lstm;
use crate::mlp::{SeqLayer, Sequential, forward_layers};

/// The precision heads compute in, whatever the backbone's (`--dtype`): a head is small
/// (≤ 60 M parameters, a few ms per step) and its outputs drive the robot directly, so f16
/// buys nothing there and its rounding (measured: arm actions off by 1.2e-2 on the GPT fixture)
/// would be paid in action accuracy. Inputs are cast on entry; outputs are f32.
pub const HEAD_DTYPE: DType = DType::F32;

/// Casts every float parameter to [`HEAD_DTYPE`].
struct ToHeadDtype;

impl<B: Backend> ModuleMapper<B> for ToHeadDtype {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        param.map(|t| t.cast(HEAD_DTYPE))
    }
}

/// The sequence model between the down-sampled tokens and the action MLPs, one per head kind.
/// Each variant's fields are named like the checkpoint's (`act_head.rnn.*`, `act_head.mlp.*`,
/// `act_head.fc.*` + `act_head.gpt.*`); the loader maps them under `decoder.`.
#[derive(Module, Debug)]
pub enum Decoder<B: Backend> {
    /// `LSTMDecoder`.
    Lstm(LstmDecoder<B>),
    /// `FCDecoder`.
    Fc(FcDecoder<B>),
    /// `GPTDecoder`.
    Gpt(GptDecoder<B>),
}

/// `LSTMDecoder`'s recurrent stack.
#[derive(Module, Debug)]
pub struct LstmDecoder<B: Backend> {
    /// `rnn`: multi-layer LSTM in PyTorch's packed layout.
    pub rnn: Lstm<B>,
}

/// `FCDecoder`'s per-step MLP.
#[derive(Module, Debug)]
pub struct FcDecoder<B: Backend> {
    /// `mlp`: Linear(in·latent → in·latent/2), ReLU, Linear(→ hidden·latent).
    pub mlp: Vec<SeqLayer<B>>,
}

/// `GPTDecoder`: an optional input projection, then GPT-2 blocks over the window.
#[derive(Module, Debug)]
pub struct GptDecoder<B: Backend> {
    /// `fc` (absent when it is the identity: `hidden_size == in_features`).
    pub fc: Option<Linear<B>>,
    /// `gpt`.
    pub gpt: Gpt<B>,
}

impl<B: Backend> GptDecoder<B> {
    fn project(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        match &self.fc {
            Some(fc) => fc.forward(x),
            None => x,
        }
    }
}

/// A continuous RoboVLMs policy head: down-sampling, the [`Decoder`] and the arm and gripper
/// MLPs (field names follow the checkpoint's `act_head.*`).
#[derive(Module, Debug)]
pub struct ActionHead<B: Backend> {
    /// The sequence model (LSTM, FC or GPT).
    pub decoder: Decoder<B>,
    /// `MLPTanhHead`: arm actions in [-1, 1], `fwd_pred_next_n · (action_dim − 1)` outputs.
    pub actions: Sequential<B>,
    /// `MLPSigmoidHead` (no sigmoid applied): gripper logits, `fwd_pred_next_n` outputs.
    pub gripper: Sequential<B>,
    /// History window.
    pub window_size: usize,
    /// Chunk length.
    pub fwd_pred_next_n: usize,
    /// Tokens per step kept by down-sampling.
    pub latent: usize,
    /// Adaptive max pooling over tokens (`down_sample = "pooling"`) instead of flattening.
    pub pooling: bool,
}

/// Head predictions for `[batch, time]` steps.
#[derive(Debug, Clone)]
pub struct HeadOutput<B: Backend> {
    /// Arm actions after tanh, `[batch, time, chunk, arm_dim]`.
    pub arm: Tensor<B, 4>,
    /// Gripper logits (no sigmoid), `[batch, time, chunk, 1]`.
    pub gripper: Tensor<B, 4>,
}

impl<B: Backend> ActionHead<B> {
    pub(crate) fn new(c: &HeadConfig, device: &B::Device) -> Self {
        let (inp, hid) = (c.in_features * c.latent, c.hidden_size * c.latent);
        let decoder = match c.kind {
            HeadKind::Lstm => Decoder::Lstm(LstmDecoder { rnn: Lstm::new(inp, hid, c.num_layers, device) }),
            HeadKind::Fc => Decoder::Fc(FcDecoder { mlp: Sequential::new(&[inp, inp / 2, hid], false, device).mlp }),
            HeadKind::Gpt => Decoder::Gpt(GptDecoder {
                // RoboVLMs: `nn.Linear(in_features, hidden_size)` unless equal (then Identity).
                fc: (c.hidden_size != c.in_features)
                    .then(|| LinearConfig::new(c.in_features, c.hidden_size).init(device)),
                gpt: Gpt::new(hid, c.window_size, c.gpt_layers, c.gpt_heads, device),
            }),
        };
        let mut head = Self {
            decoder,
            actions: Sequential::policy_head(hid, c.fwd_pred_next_n * c.arm_dim(), true, device),
            gripper: Sequential::policy_head(hid, c.fwd_pred_next_n, false, device),
            window_size: c.window_size,
            fwd_pred_next_n: c.fwd_pred_next_n,
            latent: c.latent,
            pooling: c.down_sample == DownSample::Pooling,
        };
        // Parameters are created in the device's precision; a half-precision run moves them to
        // the head's (loading from a checkpoint replaces them with f32 tensors anyway).
        if DType::from(get_device_settings::<B>(device).float_dtype) != HEAD_DTYPE {
            head = head.map(&mut ToHeadDtype);
        }
        head
    }

    /// The decoder kind.
    pub fn kind(&self) -> HeadKind {
        match self.decoder {
            Decoder::Lstm(_) => HeadKind::Lstm,
            Decoder::Fc(_) => HeadKind::Fc,
            Decoder::Gpt(_) => HeadKind::Gpt,
        }
    }

    /// `down_sample`: `[batch, time, tokens, d]` → `[batch, time, latent·d]`.
    fn reduce(&self, tokens: Tensor<B, 4>) -> Tensor<B, 3> {
        let [b, t, n, d] = tokens.dims();
        if !self.pooling {
            return tokens.reshape([b, t, n * d]);
        }
        // nn.AdaptiveMaxPool1d(latent) over tokens, then "(b l) d n -> b l (n d)".
        let pooled: Vec<Tensor<B, 4>> = (0..self.latent)
            .map(|i| {
                let (start, end) = (i * n / self.latent, ((i + 1) * n).div_ceil(self.latent));
                tokens.clone().slice([0..b, 0..t, start..end, 0..d]).max_dim(2)
            })
            .collect();
        Tensor::cat(pooled, 2).reshape([b, t, self.latent * d])
    }

    fn outputs(&self, x: Tensor<B, 3>) -> HeadOutput<B> {
        let [b, t, _] = x.dims();
        let n = self.fwd_pred_next_n;
        let arm = self.actions.forward(x.clone());
        let arm_dim = arm.dims()[2] / n;
        HeadOutput { arm: arm.reshape([b, t, n, arm_dim]), gripper: self.gripper.forward(x).reshape([b, t, n, 1]) }
    }

    /// Training / batch forward over whole windows from a zero state (no history kept).
    ///
    /// # Shapes
    /// - `tokens`: `[batch, time, tokens, in_features]` (the action-token hidden states, any
    ///   float dtype; computed in [`HEAD_DTYPE`])
    pub fn forward(&self, tokens: Tensor<B, 4>) -> HeadOutput<B> {
        on_kernel_pool::<B, _>(|| self.forward_here(tokens))
    }

    /// [`Self::forward`] on the calling thread.
    fn forward_here(&self, tokens: Tensor<B, 4>) -> HeadOutput<B> {
        let x = self.reduce(tokens.cast(HEAD_DTYPE));
        let x = match &self.decoder {
            Decoder::Lstm(d) => d.rnn.forward(x, None).0,
            Decoder::Fc(d) => forward_layers(&d.mlp, x),
            Decoder::Gpt(d) => d.gpt.forward(d.project(x)),
        };
        self.outputs(x)
    }

    /// One rollout step with RoboVLMs' history rule (`history_type = "post"`):
    /// - LSTM: while the history holds ≤ `window_size` steps, advance from the kept `(h, c)`;
    ///   past it, drop the oldest and re-run the last `window_size` steps from zero, keeping no
    ///   state (so every later step re-runs the window);
    /// - GPT: always run over the current history (≤ `window_size` items, positions from 0);
    /// - FC: no memory.
    ///
    /// # Shapes
    /// - `tokens`: `[batch, tokens, in_features]` for this step; returns time = 1
    pub fn step(&self, tokens: Tensor<B, 3>, state: &mut HeadState<B>) -> HeadOutput<B> {
        on_kernel_pool::<B, _>(|| self.step_here(tokens, state))
    }

    /// [`Self::step`] on the calling thread.
    fn step_here(&self, tokens: Tensor<B, 3>, state: &mut HeadState<B>) -> HeadOutput<B> {
        let x = self.reduce(tokens.cast(HEAD_DTYPE).unsqueeze_dim::<4>(1));
        let x = match &self.decoder {
            Decoder::Fc(d) => forward_layers(&d.mlp, x),
            Decoder::Lstm(LstmDecoder { rnn }) => {
                state.push(x.clone());
                if state.len() <= self.window_size {
                    let (out, kept) = rnn.forward(x, state.lstm.take());
                    state.lstm = Some(kept);
                    out
                } else {
                    state.keep_last(self.window_size);
                    state.lstm = None;
                    let (out, _) = rnn.forward(state.window(), None);
                    last_step(out)
                }
            }
            Decoder::Gpt(d) => {
                state.push(d.project(x));
                state.keep_last(self.window_size);
                last_step(d.gpt.forward(state.window()))
            }
        };
        self.outputs(x)
    }
}

fn last_step<B: Backend>(x: Tensor<B, 3>) -> Tensor<B, 3> {
    let [b, t, d] = x.dims();
    x.slice([0..b, t - 1..t, 0..d])
}

#[cfg(test)]
mod tests {
    use super::*;
    use robovlm_test_utils::TestBackend;

    fn close(a: &Tensor<TestBackend, 4>, b: &Tensor<TestBackend, 4>) -> bool {
        let (a, b) = (a.to_data().to_vec::<f32>().unwrap(), b.to_data().to_vec::<f32>().unwrap());
        a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-5)
    }

    /// While the history fits the window, stepping equals the batch forward over the steps so
    /// far; past it, a step equals a fresh batch forward over the last `window` steps.
    #[test]
    fn lstm_history_rule() {
        let d = Default::default();
        let c = HeadConfig::new(HeadKind::Lstm, 6, 4, 2, 3);
        let head = c.init::<TestBackend>(&d);
        let feats: Vec<Tensor<TestBackend, 3>> =
            (0..5).map(|i| Tensor::random([1, 1, 6], burn::tensor::Distribution::Normal(i as f64, 1.0), &d)).collect();
        let mut state = HeadState::new();
        for t in 0..5 {
            let step = head.step(feats[t].clone(), &mut state);
            let from = (t + 1).saturating_sub(3);
            let window: Vec<_> = feats[from..=t].iter().map(|f| f.clone().unsqueeze_dim::<4>(1)).collect();
            let batch = head.forward(Tensor::cat(window, 1));
            let [b, tt, n, a] = batch.arm.dims();
            let last = batch.arm.slice([0..b, tt - 1..tt, 0..n, 0..a]);
            assert!(close(&step.arm, &last), "step {t}");
            assert_eq!(state.len(), (t + 1).min(3));
            assert_eq!(state.has_recurrent_state(), t < 3, "state kept only while the window fits");
        }
        state.reset();
        assert!(state.is_empty() && !state.has_recurrent_state());
    }

    #[test]
    fn output_shapes_for_every_kind() {
        let d = Default::default();
        for kind in [HeadKind::Lstm, HeadKind::Fc, HeadKind::Gpt] {
            let mut c = HeadConfig::new(kind, 16, 8, 3, 4);
            c.gpt_layers = 2;
            c.gpt_heads = 2;
            let head = c.init::<TestBackend>(&d);
            let out = head.forward(Tensor::zeros([2, 4, 1, 16], &d));
            assert_eq!(out.arm.dims(), [2, 4, 3, 6], "{kind:?}");
            assert_eq!(out.gripper.dims(), [2, 4, 3, 1], "{kind:?}");
        }
        // Pooling reduces any token count to `latent`.
        let mut c = HeadConfig::new(HeadKind::Fc, 16, 8, 1, 2);
        c.down_sample = DownSample::Pooling;
        let out = c.init::<TestBackend>(&d).forward(Tensor::zeros([1, 2, 5, 16], &d));
        assert_eq!(out.arm.dims(), [1, 2, 1, 6]);
    }
}
