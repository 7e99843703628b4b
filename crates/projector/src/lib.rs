#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod projector;
mod weights;


pub use projector::{Projector, ProjectorConfig};
pub use weights::Error;
