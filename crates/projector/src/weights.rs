//! Loading the projector from HF safetensors files given its key prefix
//! (`multi_modal_projector.` in transformers 4.47 PaliGemma checkpoints).

use std::path::{Path, PathBuf};

use burn::prelude::*;
use robovlm_weights::{LoadSpec, load};

use crate::projector::Projector;

/// A projector weight is missing, misshapen or unreadable.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct Error {
    /// The safetensors file.
    pub path: PathBuf,
    /// What is wrong, naming the tensor.
    pub message: String,
}

impl<B: Backend> Projector<B> {
    /// Loads `<prefix>linear.{weight,bias}` from one or more safetensors files (shards);
    /// half-precision storage is cast to F32.
    pub fn load_safetensors(&mut self, files: &[&Path], prefix: &str) -> Result<(), Error> {
        let spec = LoadSpec { prefixes: &[(prefix, "")], roots: &["linear."], ..LoadSpec::default() };
        load(self, files, &spec).map_err(|e| Error { path: e.path, message: e.message })
    }
}
