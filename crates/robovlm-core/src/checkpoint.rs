//! Reading RoboVLMs checkpoints: safetensors directly; PyTorch/Lightning `.pt`/`.ckpt` files
//! through burn-store's `PytorchReader`, a pickle *parser* that reads tensor records and never
//! executes pickled code (no `__reduce__` calls, no imports). A `.pt` is converted once into a
//! temporary safetensors file so that every loader has one input format; the file is deleted
//! when the [`CheckpointFile`] is dropped.

use std::path::{Path, PathBuf};

use burn::tensor::DType;
use burn_store::pytorch::PytorchReader;

use crate::error::{Error, Result};

/// A checkpoint in safetensors form (the original, or a temporary conversion).
#[derive(Debug)]
pub struct CheckpointFile {
    path: PathBuf,
    temporary: bool,
}

impl CheckpointFile {
    /// Opens a checkpoint: `.safetensors` as is; `.pt`/`.pth`/`.ckpt` converted (Lightning
    /// files keep tensors under `state_dict`; a bare state dict is accepted too).
    pub fn open(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::io(path, std::io::Error::new(std::io::ErrorKind::NotFound, "checkpoint not found")));
        }
        match path.extension().and_then(|e| e.to_str()) {
            Some("pt" | "pth" | "ckpt" | "bin") => Self::convert(path),
            _ => Ok(Self { path: path.to_owned(), temporary: false }),
        }
    }

    /// The safetensors path to read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn convert(path: &Path) -> Result<Self> {
        let bad = |m: String| Error::Weights(format!("{}: {m}", path.display()));
        let reader = PytorchReader::with_top_level_key(path, "state_dict")
            .or_else(|_| PytorchReader::new(path))
            .map_err(|e| bad(format!("not a readable PyTorch checkpoint ({e})")))?;
        let mut tensors: Vec<(String, burn::tensor::TensorData)> = Vec::with_capacity(reader.len());
        for (name, snapshot) in reader.tensors() {
            let data = snapshot.to_data().map_err(|e| bad(format!("tensor {name}: {e:?}")))?;
            tensors.push((name.clone(), data));
        }
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        let views = tensors
            .iter()
            .map(|(name, data)| {
                let dtype = match data.dtype {
                    DType::F32 => safetensors::Dtype::F32,
                    DType::F64 => safetensors::Dtype::F64,
                    DType::F16 => safetensors::Dtype::F16,
                    DType::BF16 => safetensors::Dtype::BF16,
                    DType::I64 => safetensors::Dtype::I64,
                    DType::I32 => safetensors::Dtype::I32,
                    DType::U8 => safetensors::Dtype::U8,
                    DType::Bool(_) => safetensors::Dtype::BOOL,
                    other => return Err(bad(format!("tensor {name}: dtype {other:?} is not supported"))),
                };
                let view = safetensors::tensor::TensorView::new(dtype, data.shape.to_vec(), data.as_bytes())
                    .map_err(|e| bad(format!("tensor {name}: {e}")))?;
                Ok((name.clone(), view))
            })
            .collect::<Result<Vec<_>>>()?;
        let out = std::env::temp_dir().join(format!(
            "robovlm-{}-{}.safetensors",
            std::process::id(),
            path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
        ));
        safetensors::serialize_to_file(views, None, &out)
            .map_err(|e| bad(format!("converting to {}: {e}", out.display())))?;
        Ok(Self { path: out, temporary: true })
    }
}

impl Drop for CheckpointFile {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
