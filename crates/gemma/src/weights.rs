//! Loading the decoder from a checkpoint given where its tensors live: the module tree mirrors the
//! checkpoint below `language_model.model.` (transformers 4.47) or `model.language_model.`
//! (≥ 4.52), so loading is a few prefix rules the caller supplies.

use burn::prelude::*;
use robovlm_weights::{Checkpoint, LoadSpec, load};

use crate::decoder::Decoder;
use crate::error::Result;

impl<B: Backend> Decoder<B> {
    /// Loads the decoder. `prefixes` maps checkpoint key prefixes to module paths, e.g.
    /// `[("language_model.model.", ""), ("language_model.lm_head.", "lm_head.")]`. Missing or
    /// misshapen tensors and unexpected ones under a mapped prefix are errors naming them.
    pub fn load_weights(&mut self, checkpoint: &Checkpoint, prefixes: &[(&str, &str)]) -> Result<()> {
        let spec =
            LoadSpec { prefixes, roots: &["embed_tokens.", "layers.", "norm.", "lm_head."], ..LoadSpec::default() };
        Ok(load(self, checkpoint, &spec)?)
    }
}
