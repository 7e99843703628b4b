//! Errors of robovlm-core: every variant names the file, tensor or field at fault.

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while loading or preparing model inputs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file is malformed or does not have the expected shape.
    #[error("invalid JSON in {}: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's message (line and column included).
        #[source]
        source: serde_json::Error,
    },
    /// A configuration value is present but unusable.
    #[error("{}: field `{field}`: {message}", path.display())]
    Config {
        /// The configuration file.
        path: PathBuf,
        /// The offending key (dotted path).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// An image could not be read, decoded or built (the message names the file and format).
    #[error(transparent)]
    Image(#[from] robovlm_pixels::Error),
    /// The tokenizer could not be loaded or failed on some text.
    #[error("tokenizer {}: {message}", path.display())]
    Tokenizer {
        /// The `tokenizer.json` in use.
        path: PathBuf,
        /// The tokenizer library's message.
        message: String,
    },
    /// A checkpoint is unreadable or does not fit the model (names the file and tensors).
    #[error(transparent)]
    Weights(#[from] robovlm_weights::LoadError),
    /// The vision tower rejected its configuration or weights.
    #[error(transparent)]
    Vision(#[from] siglip::Error),
    /// The language model rejected its configuration, weights or a generation input.
    #[error(transparent)]
    Language(#[from] gemma::Error),
    /// The projector's weights could not be loaded.
    #[error(transparent)]
    Projector(#[from] projector::Error),
    /// The action head rejected its configuration or weights.
    #[error(transparent)]
    Head(#[from] action_heads::Error),
    /// A caller-supplied input is unusable (empty prompt, empty batch, ...).
    #[error("invalid input: {0}")]
    Input(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }

    pub(crate) fn config(path: impl Into<PathBuf>, field: &str, message: impl Into<String>) -> Self {
        Self::Config { path: path.into(), field: field.to_owned(), message: message.into() }
    }
}

/// Reads and parses a JSON file into `T`, with errors naming the file.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|source| Error::Json { path: path.to_owned(), source })
}
