//! Loading the tower from HF safetensors files given the key prefix under which its tensors
//! live (`vision_tower.vision_model.` in transformers 4.47 PaliGemma checkpoints). The module
//! tree mirrors the checkpoint, so this is one prefix rule (see `robovlm-weights`).

use std::path::Path;

use burn::prelude::*;
use robovlm_weights::{LoadSpec, load};

use crate::error::{Error, Result};
use crate::vision_tower::VisionTower;

impl<B: Backend> VisionTower<B> {
    /// Loads every tower tensor stored under `prefix` in one or more safetensors files (a
    /// sharded checkpoint is several). Missing or misshapen tensors, and leftover tensors under
    /// the prefix, are errors naming them.
    pub fn load_safetensors(&mut self, files: &[&Path], prefix: &str) -> Result<()> {
        let spec = LoadSpec {
            prefixes: &[(prefix, "")],
            roots: &["embeddings.", "encoder.", "post_layernorm."],
            ..LoadSpec::default()
        };
        load(self, files, &spec).map_err(|e| Error::Weights { path: e.path, message: e.message })
    }
}
