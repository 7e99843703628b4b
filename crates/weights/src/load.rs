//! Applying a [`Checkpoint`] to a Burn module by key-prefix rules.

use std::collections::BTreeMap;
use std::path::Path;

use burn::prelude::*;
use burn::store::{ApplyError, KeyRemapper, ModuleAdapter, ModuleSnapshot, PyTorchToBurnAdapter, TensorSnapshot};
use burn::tensor::DType;

use crate::checkpoint::Checkpoint;
use crate::error::{LoadError, LoadErrorKind};

/// How a module's tensors are found in the checkpoint.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadSpec<'a> {
    /// `(checkpoint key prefix, module path prefix)` rules, literal strings, applied in order.
    pub prefixes: &'a [(&'a str, &'a str)],
    /// Further regex renames applied after the prefixes (e.g. PyTorch's flat LSTM names).
    pub renames: &'a [(&'a str, &'a str)],
    /// Module roots: a leftover tensor mapped under one of them is an unexpected tensor.
    pub roots: &'a [&'a str],
    /// Key suffixes of checkpoint tensors that are deliberately not parameters (buffers).
    pub ignored_suffixes: &'a [&'a str],
    /// Match `Vec`-of-enum and enum entries without the variant name (PyTorch `nn.Sequential`
    /// indices, a head's decoder kind).
    pub skip_enum_variants: bool,
    /// Float dtype the tensors are cast to; `None` = the default device's float dtype (the
    /// compute precision). Modules that always compute in one precision say so here.
    pub dtype: Option<DType>,
}

/// Casts every floating-point tensor to the compute precision as it is read: burn-store keeps
/// stored dtypes, and a bf16 tensor in an f32 model fails at its first matmul (ndarray cannot
/// hold one), as would an f32 tensor among f16 ones.
#[derive(Debug, Clone, Copy)]
struct CastTo(DType);

impl ModuleAdapter for CastTo {
    fn adapt(&self, snapshot: &TensorSnapshot) -> TensorSnapshot {
        let target = self.0;
        if snapshot.dtype == target || !matches!(snapshot.dtype, DType::F16 | DType::BF16 | DType::F32 | DType::F64) {
            return snapshot.clone();
        }
        let read = snapshot.clone_data_fn();
        TensorSnapshot::from_closure(
            std::rc::Rc::new(move || Ok(read()?.convert_dtype(target))),
            target,
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

/// The first few names of a long list, and how many more.
fn abbreviate(names: &[String]) -> String {
    const SHOWN: usize = 6;
    let head = names.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > SHOWN { format!("{head} and {} more", names.len() - SHOWN) } else { head }
}

/// Loads `checkpoint` into `module` under `spec`. Every module parameter must be found; a
/// tensor mapped under one of `spec.roots` that no parameter takes is an error unless its key
/// ends with one of `spec.ignored_suffixes`. Errors name the file and the tensors.
///
/// Floating-point tensors are cast to `spec.dtype`, else to the default device's float dtype
/// (the compute precision the binary set before creating any tensor: f32 unless `--dtype` says
/// otherwise), whatever their stored dtype.
pub fn load<B: Backend, M: ModuleSnapshot<B>>(
    module: &mut M,
    checkpoint: &Checkpoint,
    spec: &LoadSpec<'_>,
) -> Result<(), LoadError> {
    let first = checkpoint.path();
    let target: DType =
        spec.dtype.unwrap_or_else(|| burn::tensor::get_device_settings::<B>(&B::Device::default()).float_dtype.into());
    let mut patterns: Vec<(String, String)> =
        spec.prefixes.iter().map(|(from, to)| (format!("^{}", regex_literal(from)), (*to).to_owned())).collect();
    patterns.extend(spec.renames.iter().map(|(from, to)| ((*from).to_owned(), (*to).to_owned())));
    let remapper = KeyRemapper::from_patterns(patterns)
        .map_err(|e| LoadError::new(first, LoadErrorKind::Format, format!("bad key pattern: {e}")))?;
    let (snapshots, origins): (Vec<TensorSnapshot>, Vec<&Path>) = checkpoint.snapshots().into_iter().unzip();
    let keys: Vec<String> = snapshots.iter().map(TensorSnapshot::full_path).collect();
    let (snapshots, renames) = remapper.remap(snapshots);
    // Module path → (checkpoint key, file), for messages.
    let key_of: BTreeMap<String, usize> =
        renames.iter().filter_map(|(new, old)| keys.iter().position(|k| k == old).map(|i| (new.clone(), i))).collect();
    let locate = |path: &str| key_of.get(path).map_or((first, path.to_owned()), |&i| (origins[i], keys[i].clone()));
    let adapter: Box<dyn ModuleAdapter> = Box::new(PyTorchToBurnAdapter.chain(CastTo(target)));
    let report = module.apply(snapshots, None, Some(adapter), spec.skip_enum_variants);
    if let Some(e) = report.errors.first() {
        // Name the checkpoint key and its file, not the module path burn-store reports.
        let (path, reason) = match e {
            ApplyError::ShapeMismatch { path, expected, found } => {
                // Shapes in the checkpoint's own layout: Linear weights were transposed on the
                // way in (PyTorch stores [out, in]).
                let stored = checkpoint.meta(&locate(path).1).map_or_else(|| found.to_vec(), |(s, _)| s);
                let mut expected = expected.to_vec();
                if stored.len() == 2 && found.as_slice() != stored.as_slice() {
                    expected.reverse();
                }
                (path, format!("shape {stored:?} in the checkpoint, the model (its config) expects {expected:?}"))
            }
            ApplyError::DTypeMismatch { path, expected, found } => {
                (path, format!("dtype {found:?} in the checkpoint, the model expects {expected:?}"))
            }
            ApplyError::AdapterError { path, message } | ApplyError::LoadError { path, message } => {
                (path, message.clone())
            }
        };
        let (file, key) = locate(path);
        return Err(LoadError::tensor(file, &key, LoadErrorKind::Mismatch, reason));
    }
    // burn-store lists a LayerNorm's `weight`/`bias` as unused even when it applied them as
    // `gamma`/`beta` (its PyTorch alternative names); those are not leftovers.
    let applied_as_norm = |k: &str| {
        let alt = k
            .strip_suffix(".weight")
            .map(|b| format!("{b}.gamma"))
            .or_else(|| k.strip_suffix(".bias").map(|b| format!("{b}.beta")));
        alt.is_some_and(|a| report.applied.contains(&a))
    };
    let unexpected: Vec<(&Path, String)> = report
        .unused
        .iter()
        .filter(|k| spec.roots.iter().any(|r| k.starts_with(r)))
        .filter(|k| !spec.ignored_suffixes.iter().any(|s| k.ends_with(s)) && !applied_as_norm(k))
        .map(|k| locate(k))
        .collect();
    if let Some((file, _)) = unexpected.first() {
        let names: Vec<String> = unexpected.iter().map(|(_, k)| k.clone()).collect();
        return Err(LoadError::new(
            file,
            LoadErrorKind::Unexpected,
            format!("unexpected tensors: {}", abbreviate(&names)),
        ));
    }
    let missing: Vec<String> = report.missing.iter().map(|(p, _)| p.clone()).collect();
    if !missing.is_empty() {
        let prefixes: Vec<&str> = spec.prefixes.iter().map(|(p, _)| *p).collect();
        return Err(LoadError::new(
            first,
            LoadErrorKind::Missing,
            format!("missing tensors (module paths, checkpoint prefixes {prefixes:?}): {}", abbreviate(&missing)),
        ));
    }
    Ok(())
}
