#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod attention;
mod config;
mod decoder;
mod decoder_layer;
mod error;
mod generation;
mod hf;
mod kv_cache;
mod mask;
mod mlp;
mod rms_norm;
mod rope;
mod row_matmul;
mod sampling;
mod weights;

pub use config::GemmaConfig;
pub use decoder::{Decoder, DecoderInput, DecoderOutput};
pub use decoder_layer::DecoderLayer;
pub use error::{Error, Result};
pub use generation::{GenerationConfig, GenerationOutput, Generator, generation_positions};
pub use kv_cache::KvCache;
pub use mask::{AttentionMask, SlidingCache};
pub use rms_norm::RmsNorm;
pub use rope::{Rope, RopeTables};
pub use sampling::Sampling;
