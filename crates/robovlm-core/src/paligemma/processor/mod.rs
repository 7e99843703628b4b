//! `PaliGemmaProcessor`: the tokenizer, the image processor and the prompt format of one HF
//! PaliGemma model directory.

mod image;
mod prompt;
mod tokenizer;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use image::{ImageProcessor, ImageProcessorConfig, ProcessedImage};
pub use prompt::{IGNORE_INDEX, PromptBatch, PromptBuilder, paligemma_prompt_text};
pub use tokenizer::{SpecialTokens, TextTokenizer};

use crate::error::{Error, Result, read_json};

/// The image placeholder token of PaliGemma's tokenizer.
pub const IMAGE_TOKEN: &str = "<image>";

/// The few `config.json` keys the processor needs (the model crates parse the rest).
#[derive(Debug, Deserialize)]
struct HfTopLevel {
    image_token_index: Option<u32>,
    #[serde(default)]
    vision_config: HfVisionGrid,
}

/// transformers' `SiglipVisionConfig` defaults for the two keys that fix the token count.
#[derive(Debug, Deserialize)]
#[serde(default)]
struct HfVisionGrid {
    image_size: usize,
    patch_size: usize,
}

impl Default for HfVisionGrid {
    fn default() -> Self {
        Self { image_size: 224, patch_size: 16 }
    }
}

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
    /// and `config.json` from an HF PaliGemma directory.
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
        let top: HfTopLevel = read_json(&config_path)?;
        let image_token_id = tokenizer.token_id(IMAGE_TOKEN).ok_or_else(|| Error::Tokenizer {
            path: tokenizer.path().to_owned(),
            message: format!("{IMAGE_TOKEN} is not in the vocabulary"),
        })?;
        if let Some(id) = top.image_token_index
            && id != image_token_id
        {
            return Err(Error::config(
                &config_path,
                "image_token_index",
                format!("is {id} but the tokenizer maps {IMAGE_TOKEN} to {image_token_id}"),
            ));
        }
        let grid = &top.vision_config;
        if grid.patch_size == 0 || grid.image_size % grid.patch_size != 0 {
            return Err(Error::config(
                &config_path,
                "vision_config.patch_size",
                format!("{} does not divide image_size {}", grid.patch_size, grid.image_size),
            ));
        }
        let num_image_tokens = images.config().image_seq_length.unwrap_or((grid.image_size / grid.patch_size).pow(2));
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
