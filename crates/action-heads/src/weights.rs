//! Loading a head from a checkpoint given the key prefix of `act_head` (`model.act_head.` in
//! RoboVLMs checkpoints).
//!
//! Module paths equal RoboVLMs' keys except three PyTorch layouts: `nn.LSTM`'s flat
//! `rnn.weight_ih_l{k}` (ours: `rnn.layers.{k}.weight_ih`), `nn.Sequential` entries, whose enum
//! variant is skipped in paths, and the decoder kind (`rnn`, `mlp`, `fc`, `gpt` live under our
//! `decoder.`, an enum). GPT-2's causal-mask buffers are ignored on purpose.

use burn::prelude::*;
use robovlm_weights::{Checkpoint, LoadSpec, load};

use crate::error::Result;
use crate::head::{ActionHead, HEAD_DTYPE};

/// Checkpoint tensors that are not parameters, each with its reason.
pub const IGNORED: &[(&str, &str)] = &[
    (".attn.bias", "GPT-2 causal-mask buffer (uint8 lower triangle); the mask is built in forward"),
    (".attn.masked_bias", "GPT-2 masked-score buffer (-1e4); a constant in forward"),
];

impl<B: Backend> ActionHead<B> {
    /// Loads every head tensor, in f32 whatever the backbone's precision (see [`HEAD_DTYPE`]).
    /// `prefixes` maps checkpoint key prefixes to module paths, e.g. `[("model.act_head.", "")]`.
    pub fn load_weights(&mut self, checkpoint: &Checkpoint, prefixes: &[(&str, &str)]) -> Result<()> {
        let ignored: Vec<&str> = IGNORED.iter().map(|(s, _)| *s).collect();
        let spec = LoadSpec {
            prefixes,
            renames: &[
                (r"^rnn\.(weight_ih|weight_hh|bias_ih|bias_hh)_l(\d+)$", "rnn.layers.$2.$1"),
                (r"^(rnn|mlp|fc|gpt)\.", "decoder.$1."),
            ],
            roots: &["decoder.", "actions.", "gripper."],
            ignored_suffixes: &ignored,
            skip_enum_variants: true,
            dtype: Some(HEAD_DTYPE),
        };
        Ok(load(self, checkpoint, &spec)?)
    }
}
