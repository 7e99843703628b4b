//! Errors of the gemma crate.

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Configuration and weight-loading errors; each names the field or tensor at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `text_config` value is missing, malformed or unsupported.
    #[error("text_config.{field}: {message}")]
    Config {
        /// The key.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// Weights could not be loaded into the decoder (the error names the file and tensors).
    #[error(transparent)]
    Weights(#[from] robovlm_weights::LoadError),
    /// An input is unusable (too long for the model, mask shape, sampling settings).
    #[error("invalid input: {0}")]
    Input(String),
}
