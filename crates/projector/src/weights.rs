//! Loading the projector from a checkpoint given its key prefix (`multi_modal_projector.` in
//! transformers 4.47 PaliGemma checkpoints).

use burn::prelude::*;
use robovlm_weights::{Checkpoint, LoadSpec, load};

use crate::error::Result;
use crate::projector::Projector;

impl<B: Backend> Projector<B> {
    /// Loads `linear.{weight,bias}`. `prefixes` maps checkpoint key prefixes to module paths,
    /// e.g. `[("multi_modal_projector.", "")]`; half-precision storage is cast to the compute
    /// precision.
    pub fn load_weights(&mut self, checkpoint: &Checkpoint, prefixes: &[(&str, &str)]) -> Result<()> {
        let spec = LoadSpec { prefixes, roots: &["linear."], ..LoadSpec::default() };
        Ok(load(self, checkpoint, &spec)?)
    }
}
