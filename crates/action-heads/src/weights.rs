//! Loading a head from a safetensors checkpoint given the key prefix of `act_head`
//! (`model.act_head.` in RoboVLMs checkpoints).
//!
//! Module paths equal RoboVLMs' keys except two PyTorch layouts: `nn.LSTM`'s flat
//! `rnn.weight_ih_l{k}` (ours: `rnn.layers.{k}.weight_ih`) and `nn.Sequential` entries, whose
//! enum variant is skipped in paths. GPT-2's causal-mask buffers are ignored on purpose.

use std::path::Path;

use burn::prelude::*;
use robovlm_weights::{LoadSpec, load};

use crate::error::{Error, Result};
use crate::head::{ActionHead, HEAD_DTYPE};

/// Checkpoint tensors that are not parameters, each with its reason.
pub const IGNORED: &[(&str, &str)] = &[
    (".attn.bias", "GPT-2 causal-mask buffer (uint8 lower triangle); the mask is built in forward"),
    (".attn.masked_bias", "GPT-2 masked-score buffer (-1e4); a constant in forward"),
];

impl<B: Backend> ActionHead<B> {
    /// Loads every head tensor stored under `prefix` (e.g. `model.act_head.`), in f32 whatever
    /// the backbone's precision (see [`HEAD_DTYPE`]).
    pub fn load_safetensors(&mut self, path: &Path, prefix: &str) -> Result<()> {
        let ignored: Vec<&str> = IGNORED.iter().map(|(s, _)| *s).collect();
        let spec = LoadSpec {
            prefixes: &[(prefix, "")],
            renames: &[(r"^rnn\.(weight_ih|weight_hh|bias_ih|bias_hh)_l(\d+)$", "rnn.layers.$2.$1")],
            roots: &["rnn.", "mlp.", "fc.", "gpt.", "actions.", "gripper."],
            ignored_suffixes: &ignored,
            skip_enum_variants: true,
            dtype: Some(HEAD_DTYPE),
        };
        load(self, &[path], &spec).map_err(|e| Error::Weights { path: e.path, message: e.message })
    }
}
