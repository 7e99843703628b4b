//! Errors of robovlm-pixels: each names the format (and, through [`Error::File`], the file).

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why an image could not be read or built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bytes could not be read (the file is missing, a directory, unreadable); wrapped in
    /// [`Error::File`] with the path.
    #[error("cannot read: {0}")]
    Read(#[from] std::io::Error),
    /// Something went wrong with the image in this file (the source says what).
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What was wrong with its contents.
        #[source]
        source: Box<Error>,
    },
    /// The bytes are not in any format this crate reads.
    #[error("not a recognised image (expected PNG, JPEG, BMP or WebP)")]
    Unrecognised,
    /// The format is recognised but this variant of it is deliberately not decoded, because
    /// its result could differ from Pillow's.
    #[error("{format}: {detail}")]
    Unsupported {
        /// The format (`GIF`, `JPEG`, `BMP`, ...).
        format: &'static str,
        /// What is not supported and what to do instead.
        detail: String,
    },
    /// The decoder rejected the data (truncated or corrupt file).
    #[error("invalid {format} data: {message}")]
    Corrupt {
        /// The format.
        format: &'static str,
        /// The decoder's message.
        message: String,
    },
    /// The image or file exceeds a [`Limits`](crate::Limits) bound.
    #[error("{what} is {size}, above the limit of {limit} ({hint})")]
    TooLarge {
        /// What was measured (`image size in pixels`, `file size in bytes`).
        what: &'static str,
        /// The measured size.
        size: u64,
        /// The limit in force.
        limit: u64,
        /// How to raise the limit.
        hint: &'static str,
    },
    /// Raw pixels that do not describe an RGB image (zero size, wrong length).
    #[error("invalid RGB buffer: {0}")]
    InvalidBuffer(String),
}

impl Error {
    pub(crate) fn corrupt(format: &'static str, message: impl ToString) -> Self {
        Self::Corrupt { format, message: message.to_string() }
    }

    pub(crate) fn unsupported(format: &'static str, detail: impl Into<String>) -> Self {
        Self::Unsupported { format, detail: detail.into() }
    }

    /// Attaches the file the error is about.
    pub(crate) fn in_file(self, path: impl Into<PathBuf>) -> Self {
        Self::File { path: path.into(), source: Box::new(self) }
    }
}
