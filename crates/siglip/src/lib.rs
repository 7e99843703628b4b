#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod attention;
pub mod config;
pub mod embeddings;
pub mod encoder_layer;
pub mod error;
pub mod hf;
pub mod mlp;
pub mod vision_tower;
pub mod weights;


pub use config::VisionConfig;
pub use error::{Error, Result};
pub use vision_tower::{Encoder, VisionTower, VisionTowerOutput};
