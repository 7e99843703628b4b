//! PyTorch / Lightning checkpoints (`.pt`, `.pth`, `.ckpt`, `.bin`), read with burn-store's
//! `PytorchReader`: a pickle *parser* that collects tensor records and never executes pickled
//! code (no `__reduce__` calls, no imports). Tensor data stays in the file until a loader asks
//! for it, so no converted copy is written anywhere.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::store::TensorSnapshot;
use burn_store::pytorch::PytorchReader;

use crate::error::{LoadError, LoadErrorKind};

/// An opened PyTorch checkpoint: its tensors by key (lazily read).
pub(crate) struct PytorchFile {
    pub path: PathBuf,
    pub tensors: BTreeMap<String, TensorSnapshot>,
}

impl std::fmt::Debug for PytorchFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PytorchFile").field("path", &self.path).field("tensors", &self.tensors.len()).finish()
    }
}

impl PytorchFile {
    /// Opens a checkpoint. Lightning files keep their tensors under `state_dict`; a bare state
    /// dict is accepted too.
    pub fn open(path: &Path) -> Result<Self, LoadError> {
        let reader =
            PytorchReader::with_top_level_key(path, "state_dict").or_else(|_| PytorchReader::new(path)).map_err(
                |e| LoadError::new(path, LoadErrorKind::Format, format!("not a readable PyTorch checkpoint ({e})")),
            )?;
        let tensors = reader
            .into_tensors()
            .into_iter()
            .map(|(key, mut snapshot)| {
                // The reader leaves the module path empty; loaders match on it (as PytorchStore does).
                snapshot.path_stack = Some(key.split('.').map(str::to_owned).collect());
                snapshot.container_stack = None;
                snapshot.tensor_id = None;
                (key, snapshot)
            })
            .collect();
        Ok(Self { path: path.to_owned(), tensors })
    }
}
