//! Loading the tower from a checkpoint given the key prefix under which its tensors live
//! (`vision_tower.vision_model.` in transformers 4.47 PaliGemma checkpoints). The module tree
//! mirrors the checkpoint, so this is one prefix rule (see `robovlm-weights`).

use burn::prelude::*;
use robovlm_weights::{Checkpoint, LoadSpec, load};

use crate::error::Result;
use crate::vision_tower::VisionTower;

impl<B: Backend> VisionTower<B> {
    /// Loads every tower tensor. `prefixes` maps checkpoint key prefixes to module paths, e.g.
    /// `[("vision_tower.vision_model.", "")]`. Missing or misshapen tensors, and leftover
    /// tensors under the mapped prefix, are errors naming them.
    pub fn load_weights(&mut self, checkpoint: &Checkpoint, prefixes: &[(&str, &str)]) -> Result<()> {
        let spec = LoadSpec { prefixes, roots: &["embeddings.", "encoder.", "post_layernorm."], ..LoadSpec::default() };
        Ok(load(self, checkpoint, &spec)?)
    }
}
