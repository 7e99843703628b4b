//! PaliGemma (transformers 4.47.1 `PaliGemmaForConditionalGeneration`): the HF directory's
//! configs and key layouts, the processor (Pillow-exact pixels, tokenizer, prompt format), the
//! composed model (SigLIP → projector → ÷ sqrt(divisor) → Gemma), generation and the training
//! loss.

mod checkpoint;
mod config;
mod generation;
mod model;
pub mod processor;
mod training;

pub use checkpoint::KeyLayout;
pub use config::{DEFAULT_TOP_LEVEL_HIDDEN_SIZE, PaliGemmaConfig};
pub use model::{ImageEncoder, ImageFeatures, PaliGemma, PaliGemmaOutput, position_ids};
pub use processor::{
    IGNORE_INDEX, ImageProcessor, ImageProcessorConfig, PaliGemmaProcessor, ProcessedImage, PromptBatch, PromptBuilder,
    SpecialTokens, TextTokenizer,
};
pub use training::paligemma_loss;
