//! Errors of the siglip crate.

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Configuration and weight-loading errors; each names the field or tensor at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `vision_config` value is missing, malformed or unsupported.
    #[error("vision_config.{field}: {message}")]
    Config {
        /// The key.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// Weights could not be loaded into the tower (the error names the file and tensors).
    #[error(transparent)]
    Weights(#[from] robovlm_weights::LoadError),
}
