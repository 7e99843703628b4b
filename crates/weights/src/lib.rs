#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod checkpoint;
mod data;
mod error;
mod load;
mod pickle;
mod pytorch;
mod safetensors;

pub use checkpoint::Checkpoint;
pub use error::{LoadError, LoadErrorKind, redact_quotes};
pub use load::{LoadSpec, load};
pub use safetensors::write_safetensors;
