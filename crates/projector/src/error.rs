//! Errors of the projector crate.

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Weight-loading errors (the projector has no configuration of its own to get wrong).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Weights could not be loaded into the projector (the error names the file and tensors).
    #[error(transparent)]
    Weights(#[from] robovlm_weights::LoadError),
}
