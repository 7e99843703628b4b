#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod attention;
pub mod config;
pub mod decoder;
pub mod decoder_layer;
pub mod error;
pub mod hf;
pub mod kv_cache;
pub mod mask;
pub mod matvec;
pub mod mlp;
pub mod rms_norm;
pub mod rope;
pub mod weights;


pub use config::GemmaConfig;
pub use decoder::{Decoder, DecoderInput, DecoderOutput};
pub use error::{Error, Result};
pub use kv_cache::KvCache;
pub use mask::AttentionMask;
pub use rms_norm::RmsNorm;
