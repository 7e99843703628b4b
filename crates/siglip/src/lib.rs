#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod attention;
mod config;
mod embeddings;
mod encoder_layer;
mod error;
mod hf;
mod mlp;
mod vision_tower;
mod weights;

pub use config::VisionConfig;
pub use error::{Error, Result};
pub use vision_tower::{VisionTower, VisionTowerOutput};
