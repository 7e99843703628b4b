#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod error;
mod projector;
mod weights;

pub use error::{Error, Result};
pub use projector::{Projector, ProjectorConfig};
