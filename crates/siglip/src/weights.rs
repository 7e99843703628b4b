//! Loading the tower from an HF safetensors file, given the key prefix under which the tower's
//! tensors live (`vision_tower.vision_model.` in transformers 4.47 PaliGemma checkpoints).
//!
//! The module tree mirrors the checkpoint, so loading is a prefix strip plus burn-store's
//! standard PyTorch adapter (Linear `[out,in]` → `[in,out]`, LayerNorm `weight/bias` →
//! `gamma/beta`); stored F16/BF16/F64 values are cast to F32 at load time, because a half
//! precision tensor inside an f32 model fails at its first matmul.

use std::collections::BTreeSet;
use std::path::Path;

use burn::prelude::*;
use burn::store::{ModuleAdapter, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore, TensorSnapshot};
use burn::tensor::DType;

use crate::error::{Error, Result};
use crate::vision_tower::VisionTower;

/// Casts every floating-point tensor to F32 as it is read.
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

/// The first few names of a long list, and how many more.
fn abbreviate(names: &[String]) -> String {
    const SHOWN: usize = 6;
    let head = names.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > SHOWN { format!("{head} and {} more", names.len() - SHOWN) } else { head }
}

/// Escapes a literal key prefix for burn-store's regex remapper.
fn regex_literal(s: &str) -> String {
    s.chars().fold(String::new(), |mut out, c| {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
        out
    })
}

impl<B: Backend> VisionTower<B> {
    /// Loads every tower tensor stored under `prefix` in one or more safetensors files (a
    /// sharded checkpoint is several). Missing or misshapen tensors, and leftover tensors under
    /// the prefix, are errors naming them.
    pub fn load_safetensors(&mut self, files: &[&Path], prefix: &str) -> Result<()> {
        let first = files.first().copied().unwrap_or(Path::new("<no weight files>"));
        let weights_err = |path: &Path, message: String| Error::Weights { path: path.to_owned(), message };
        let (mut expected, mut applied) = (BTreeSet::new(), BTreeSet::new());
        for &path in files {
            if !path.is_file() {
                return Err(weights_err(path, "file not found".into()));
            }
            let mut store = SafetensorsStore::from_file(path)
                .with_from_adapter(PyTorchToBurnAdapter.chain(CastToF32))
                .with_key_remapping(format!("^{}", regex_literal(prefix)), "")
                .allow_partial(true);
            let report = self.load_from(&mut store).map_err(|e| weights_err(path, e.to_string()))?;
            if let Some(e) = report.errors.first() {
                return Err(weights_err(path, format!("{e} (prefix `{prefix}`)")));
            }
            let ours = ["embeddings.", "encoder.", "post_layernorm."];
            // burn-store lists a LayerNorm's `weight`/`bias` as unused even when it applied them
            // as `gamma`/`beta` (its PyTorch alternative names); those are not leftovers.
            let applied_as = |k: &str| {
                let alt = k.strip_suffix(".weight").map(|b| format!("{b}.gamma"))
                    .or_else(|| k.strip_suffix(".bias").map(|b| format!("{b}.beta")));
                alt.is_some_and(|a| report.applied.contains(&a))
            };
            let unexpected: Vec<String> = report
                .unused
                .iter()
                .filter(|k| ours.iter().any(|o| k.starts_with(o)) && !applied_as(k))
                .map(|k| format!("{prefix}{k}"))
                .collect();
            if !unexpected.is_empty() {
                return Err(weights_err(path, format!("unexpected tensors: {}", abbreviate(&unexpected))));
            }
            expected.extend(report.missing.iter().map(|(p, _)| p.clone()));
            expected.extend(report.applied.iter().cloned());
            applied.extend(report.applied);
        }
        let missing: Vec<String> = expected.difference(&applied).map(|p| format!("{prefix}{p}")).collect();
        if !missing.is_empty() || files.is_empty() {
            return Err(weights_err(first, format!("missing tensors: {}", abbreviate(&missing))));
        }
        Ok(())
    }
}
