#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod checkpoint;
mod error;
mod load;
mod pytorch;
mod safetensors;

pub use checkpoint::Checkpoint;
pub use error::{LoadError, LoadErrorKind};
pub use load::{LoadSpec, load};
pub use safetensors::write_safetensors;
