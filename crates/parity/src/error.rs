//! Errors of the parity harness (a case that cannot be read at all; per-tensor problems are
//! reported as failures, not errors).

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A case folder or file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A case cannot be used: a file or folder is unreadable, a JSON file invalid, references
    /// missing or inconsistent.
    #[error("{}: {message}", path.display())]
    Case {
        /// The file or folder at fault.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A reference file could not be read.
    #[error(transparent)]
    Weights(#[from] robovlm_core::weights::LoadError),
}
