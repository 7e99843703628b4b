#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod error;
pub mod paligemma;
pub mod robovlms;

pub use error::{Error, Result};
pub use paligemma::{
    ImageProcessor, ImageProcessorConfig, PaliGemma, PaliGemmaConfig, PaliGemmaProcessor, ProcessedImage, PromptBatch,
    TextTokenizer,
};
pub use robovlm_pixels::{self as pixels, RgbImage};
pub use robovlms::{PolicyFiles, RoboPolicy, RoboStep, RoboVlmsConfig, StepDetail};
pub use {action_heads, gemma, projector, robovlm_weights as weights, siglip};
