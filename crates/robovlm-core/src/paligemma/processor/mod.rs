//! `PaliGemmaProcessor`: the tokenizer, the image processor and the prompt format of one HF
//! PaliGemma model directory.

mod image;
mod prompt;
mod tokenizer;

use std::path::{Path, PathBuf};

pub use image::{ImageProcessor, ImageProcessorConfig, ProcessedImage};
pub use prompt::{IGNORE_INDEX, PromptBatch, PromptBuilder, paligemma_prompt_text};
pub use tokenizer::{SpecialTokens, TextTokenizer};

use super::config::PaliGemmaConfig;
use crate::error::{Error, Result};

/// The image placeholder token of PaliGemma's tokenizer.
pub const IMAGE_TOKEN: &str = "<image>";

/// Tokenizer + image preprocessing + prompt format of one PaliGemma model directory.
#[derive(Debug)]
pub struct PaliGemmaProcessor {
    tokenizer: TextTokenizer,
    images: ImageProcessor,
    num_image_tokens: usize,
    image_token_id: u32,
    dir: PathBuf,
}

impl PaliGemmaProcessor {
    /// Loads `tokenizer.json`, `special_tokens_map.json` (optional), `preprocessor_config.json`
    /// and `config.json` from an HF PaliGemma directory, and checks that they agree with each
    /// other and with the model: every token id fits the embedding table, `<image>` is
    /// `image_token_index`, and the preprocessor produces the image size and token count the
    /// vision tower expects (each a clear error here instead of a panic mid-forward).
    ///
    /// The number of image tokens is the preprocessor's `image_seq_length` when present (that is
    /// what `PaliGemmaProcessor` uses), else `(image_size / patch_size)²` from `vision_config`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::io(dir, std::io::Error::new(std::io::ErrorKind::NotFound, "model directory not found")));
        }
        let tokenizer = TextTokenizer::from_file(&dir.join("tokenizer.json"))?;
        let images = ImageProcessor::from_file(&dir.join("preprocessor_config.json"))?;
        let config_path = dir.join("config.json");
        let config = PaliGemmaConfig::from_file(&config_path)?;
        let image_token_id = tokenizer.token_id(IMAGE_TOKEN).ok_or_else(|| Error::Tokenizer {
            path: tokenizer.path().to_owned(),
            message: format!("{IMAGE_TOKEN} is not in the vocabulary"),
        })?;
        if let Some(id) = config.image_token_index
            && id != image_token_id
        {
            return Err(Error::config(
                &config_path,
                "image_token_index",
                format!("is {id} but the tokenizer maps {IMAGE_TOKEN} to {image_token_id}"),
            ));
        }
        let vocab = config.text()?.vocab_size;
        if tokenizer.len() > vocab {
            return Err(Error::config(
                &config_path,
                "text_config.vocab_size",
                format!(
                    "is {vocab} but {} has {} tokens: their ids would index past the embedding table",
                    tokenizer.path().display(),
                    tokenizer.len()
                ),
            ));
        }
        let side = config.vision.image_size;
        let preprocessor = images.config();
        if (preprocessor.height, preprocessor.width) != (side, side) {
            return Err(Error::config(
                dir.join("preprocessor_config.json"),
                "size",
                format!(
                    "is {}x{} but the vision tower takes {side}x{side} images (config.json vision_config.image_size)",
                    preprocessor.width, preprocessor.height
                ),
            ));
        }
        let patches = config.vision.num_patches();
        let num_image_tokens = preprocessor.image_seq_length.unwrap_or(patches);
        if num_image_tokens != patches {
            return Err(Error::config(
                dir.join("preprocessor_config.json"),
                "image_seq_length",
                format!("is {num_image_tokens} but the vision tower makes {patches} tokens per image"),
            ));
        }
        Ok(Self { tokenizer, images, num_image_tokens, image_token_id, dir: dir.to_owned() })
    }

    /// The model directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// The image processor.
    pub fn image_processor(&self) -> &ImageProcessor {
        &self.images
    }

    /// `<image>` tokens per image.
    pub fn num_image_tokens(&self) -> usize {
        self.num_image_tokens
    }

    /// Id of `<image>`.
    pub fn image_token_id(&self) -> u32 {
        self.image_token_id
    }

    /// The prompt builder for this model.
    pub fn prompts(&self) -> PromptBuilder<'_> {
        PromptBuilder::new(&self.tokenizer, self.num_image_tokens, IMAGE_TOKEN)
    }

    /// Inference ids for a batch of prompts (one image each), left-padded.
    pub fn encode_prompts(&self, prompts: &[&str]) -> Result<PromptBatch> {
        self.prompts().inference(prompts)
    }

    /// Opens and preprocesses an image file.
    pub fn process_image(&self, path: &Path) -> Result<ProcessedImage> {
        self.images.process_file(path)
    }
}
