#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod projector;
mod weights;

#[cfg(test)]
mod test_utils;

pub use projector::{Projector, ProjectorConfig};
pub use weights::Error;
