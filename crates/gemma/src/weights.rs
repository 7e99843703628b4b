//! Loading the decoder from HF safetensors files (one or several shards) given where its
//! tensors live: the module tree mirrors the checkpoint below `language_model.model.` (4.47) or
//! `model.language_model.` (≥ 4.52), so loading is a few prefix rules the caller supplies.
//! Linear weights are transposed by burn-store's PyTorch adapter; F16/BF16/F64 storage is cast
//! to F32 at load time (a half-precision tensor in an f32 model fails at its first matmul).

use std::collections::BTreeSet;
use std::path::Path;

use burn::prelude::*;
use burn::store::{ModuleAdapter, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore, TensorSnapshot};
use burn::tensor::DType;

use crate::decoder::Decoder;
use crate::error::{Error, Result};

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

fn regex_literal(s: &str) -> String {
    s.chars().fold(String::new(), |mut out, c| {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
        out
    })
}

fn abbreviate(names: &[String]) -> String {
    const SHOWN: usize = 6;
    let head = names.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > SHOWN { format!("{head} and {} more", names.len() - SHOWN) } else { head }
}

/// Module roots: a leftover tensor mapped under one of them is an unexpected checkpoint tensor.
const ROOTS: [&str; 4] = ["embed_tokens.", "layers.", "norm.", "lm_head."];

impl<B: Backend> Decoder<B> {
    /// Loads the decoder. `prefixes` maps checkpoint key prefixes to module paths, e.g.
    /// `[("language_model.model.", ""), ("language_model.lm_head.", "lm_head.")]`. Missing or
    /// misshapen tensors and unexpected ones under a mapped prefix are errors naming them.
    pub fn load_safetensors(&mut self, files: &[&Path], prefixes: &[(&str, &str)]) -> Result<()> {
        let first = files.first().copied().unwrap_or(Path::new("<no weight files>"));
        let err = |path: &Path, message: String| Error::Weights { path: path.to_owned(), message };
        let (mut expected, mut applied) = (BTreeSet::new(), BTreeSet::new());
        for &path in files {
            if !path.is_file() {
                return Err(err(path, "file not found".into()));
            }
            let mut store = SafetensorsStore::from_file(path)
                .with_from_adapter(PyTorchToBurnAdapter.chain(CastToF32))
                .allow_partial(true);
            for (from, to) in prefixes {
                store = store.with_key_remapping(format!("^{}", regex_literal(from)), to.to_string());
            }
            let report = self.load_from(&mut store).map_err(|e| err(path, e.to_string()))?;
            if let Some(e) = report.errors.first() {
                return Err(err(path, e.to_string()));
            }
            let unexpected: Vec<String> =
                report.unused.iter().filter(|k| ROOTS.iter().any(|r| k.starts_with(r))).cloned().collect();
            if !unexpected.is_empty() {
                return Err(err(path, format!("unexpected tensors (after prefix mapping): {}", abbreviate(&unexpected))));
            }
            expected.extend(report.missing.iter().map(|(p, _)| p.clone()));
            expected.extend(report.applied.iter().cloned());
            applied.extend(report.applied);
        }
        let missing: Vec<String> = expected.difference(&applied).cloned().collect();
        if !missing.is_empty() || files.is_empty() {
            return Err(err(first, format!("missing tensors (module paths): {}", abbreviate(&missing))));
        }
        Ok(())
    }
}
