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
    #[error("invalid JSON in {}: {message}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's message (line and column included; quoted file content shortened).
        message: String,
    },
    /// A file is larger than any real one of its kind (a mistaken path, `/dev/zero`, ...).
    #[error("{} is larger than {limit} bytes, far above any real {what}", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// What the file was expected to be.
        what: &'static str,
        /// The limit in bytes.
        limit: u64,
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
    /// The policy produced NaN or infinity: never sent to a robot.
    #[error(
        "refusing to emit a non-finite action at step {step} of the episode (NaN or infinity in the policy's output; check the checkpoint)"
    )]
    NonFiniteAction {
        /// 0-based step within the episode.
        step: usize,
    },
    /// A caller-supplied input is unusable (empty prompt, empty batch, ...).
    #[error("invalid input: {0}")]
    Input(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }

    /// A bad configuration value; quoted values from the file are shortened in the message.
    pub(crate) fn config(path: impl Into<PathBuf>, field: &str, message: impl Into<String>) -> Self {
        Self::Config {
            path: path.into(),
            field: field.to_owned(),
            message: robovlm_weights::redact_quotes(&message.into()),
        }
    }
}

/// Largest JSON file read (configs, shard indexes): real ones are a few kilobytes.
pub(crate) const MAX_JSON_BYTES: u64 = 16 << 20;

/// Reads a whole file, refusing more than `limit` bytes (checked while reading, so a device
/// file or a growing pipe cannot exhaust memory).
pub(crate) fn read_file(path: &std::path::Path, limit: u64, what: &'static str) -> Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > limit {
        return Err(Error::TooLarge { path: path.to_owned(), what, limit });
    }
    Ok(bytes)
}

/// Reads and parses a JSON file into `T`, with errors naming the file and never echoing more
/// than a few characters of it.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<T> {
    let bytes = read_file(path, MAX_JSON_BYTES, "JSON config")?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::Json { path: path.to_owned(), message: robovlm_weights::redact_quotes(&e.to_string()) })
}
