#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod discrete_policy;
pub mod error;
pub mod generation;
pub mod image_processor;
pub mod paligemma;
pub mod policy;
pub mod policy_weights;
pub mod postprocess;
pub mod processor;
pub mod prompt;
pub mod robovlms_config;
pub mod robovlms_prompt;
pub mod tokenizer;
pub mod training;
pub mod weights;

pub use action_heads;
pub use error::{Error, Result};
pub use gemma;
pub use image_processor::{ImageProcessor, ImageProcessorConfig, ProcessedImage};
pub use robovlm_pixels::{self as pixels, RgbImage};
pub use projector;
pub use siglip;

pub use config::PaliGemmaConfig;
pub use discrete_policy::{DiscreteBatch, DiscretePolicy, DiscreteStep, DiscreteTraining};
pub use generation::{GenerationConfig, GenerationOutput, Generator, Sampling};
pub use paligemma::{ImageEncoder, ImageFeatures, PaliGemma, PaliGemmaOutput, position_ids};
pub use policy::{Policy, PolicyFiles, PolicyStep, VlmForward, forward_vlm_ids};
pub use processor::PaliGemmaProcessor;
pub use prompt::{PromptBatch, PromptBuilder};
pub use tokenizer::{SpecialTokens, TextTokenizer};

