//! Loading the projector from an HF safetensors file given its key prefix
//! (`multi_modal_projector.` in transformers 4.47 PaliGemma checkpoints).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::store::{ModuleAdapter, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore, TensorSnapshot};
use burn::tensor::DType;

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
        let err = |path: &Path, message: String| Error { path: path.to_owned(), message };
        let escaped: String = prefix.chars().flat_map(|c| if c == '.' { vec!['\\', '.'] } else { vec![c] }).collect();
        let (mut expected, mut applied) = (BTreeSet::new(), BTreeSet::new());
        for &path in files {
            if !path.is_file() {
                return Err(err(path, "file not found".into()));
            }
            let mut store = SafetensorsStore::from_file(path)
                .with_from_adapter(PyTorchToBurnAdapter.chain(CastToF32))
                .with_key_remapping(format!("^{escaped}"), "")
                .allow_partial(true);
            let report = self.load_from(&mut store).map_err(|e| err(path, e.to_string()))?;
            if let Some(e) = report.errors.first() {
                return Err(err(path, format!("{e} (prefix `{prefix}`)")));
            }
            expected.extend(report.missing.iter().map(|(p, _)| p.clone()));
            expected.extend(report.applied.iter().cloned());
            applied.extend(report.applied);
        }
        let missing: Vec<String> = expected.difference(&applied).map(|p| format!("{prefix}{p}")).collect();
        match (files.first(), missing.is_empty()) {
            (Some(_), true) => Ok(()),
            (first, _) => Err(err(
                first.copied().unwrap_or(Path::new("<no weight files>")),
                format!("missing tensors: {}", missing.join(", ")),
            )),
        }
    }
}

/// Casts half-precision storage to F32 as it is read: burn-store keeps stored dtypes, and a BF16
/// tensor in an f32 model fails at its first matmul (ndarray cannot even hold one).
#[derive(Debug, Clone, Copy)]
struct CastToF32;

impl ModuleAdapter for CastToF32 {
    fn adapt(&self, snapshot: &TensorSnapshot) -> TensorSnapshot {
        if !matches!(snapshot.dtype, DType::F16 | DType::BF16 | DType::F64) {
            return snapshot.clone();
        }
        let read = snapshot.clone_data_fn();
        TensorSnapshot::from_closure(
            std::rc::Rc::new(move || Ok(read()?.convert_dtype(DType::F32))),
            DType::F32,
            snapshot.shape.clone(),
            snapshot.path_stack.clone().unwrap_or_default(),
            snapshot.container_stack.clone().unwrap_or_default(),
            snapshot.tensor_id.unwrap_or_default(),
        )
    }

    fn clone_box(&self) -> Box<dyn ModuleAdapter> {
        Box::new(*self)
    }
}
