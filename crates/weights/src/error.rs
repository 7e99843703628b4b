//! The one error type of weight loading: which file, which tensor, what kind of problem.

use std::path::{Path, PathBuf};

/// What kind of problem a [`LoadError`] reports, for callers that react differently (a missing
/// file vs. a corrupt one vs. a checkpoint that does not fit the model).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadErrorKind {
    /// The file cannot be opened or read.
    Io,
    /// The file is not a valid checkpoint (bad header, offsets, index, pickle).
    Format,
    /// The model has parameters the checkpoint does not provide.
    Missing,
    /// The checkpoint has tensors under the model's prefixes that no parameter takes.
    Unexpected,
    /// A tensor's shape or dtype does not fit the parameter or the request.
    Mismatch,
}

/// A checkpoint could not be read or does not fit the module it is loaded into.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {}{reason}", file.display(), tensor.as_ref().map(|t| format!("tensor {t}: ")).unwrap_or_default())]
pub struct LoadError {
    /// The file at fault (the first file when the problem spans shards).
    pub file: PathBuf,
    /// The tensor at fault, when one is.
    pub tensor: Option<String>,
    /// The kind of problem.
    pub kind: LoadErrorKind,
    /// What is wrong, in words (names the tensors or fields).
    pub reason: String,
}

impl LoadError {
    pub(crate) fn new(file: &Path, kind: LoadErrorKind, reason: impl Into<String>) -> Self {
        Self { file: file.to_owned(), tensor: None, kind, reason: reason.into() }
    }

    pub(crate) fn tensor(file: &Path, tensor: &str, kind: LoadErrorKind, reason: impl Into<String>) -> Self {
        Self { file: file.to_owned(), tensor: Some(tensor.to_owned()), kind, reason: reason.into() }
    }

    pub(crate) fn io(file: &Path, e: &std::io::Error) -> Self {
        Self::new(file, LoadErrorKind::Io, e.to_string())
    }
}
