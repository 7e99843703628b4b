//! What every RoboVLMs policy is built on: the PaliGemma backbone (weights from the policy
//! checkpoint), the processor of the backbone directory (config, tokenizer, preprocessing) and
//! RoboVLMs' image-feature divisor.

use burn::prelude::*;
use robovlm_pixels::RgbImage;

use super::checkpoint::{PolicyCheckpoint, PolicyFiles};
use super::config::RoboVlmsConfig;
use crate::error::{Error, Result};
use crate::paligemma::{PaliGemma, PaliGemmaConfig, PaliGemmaProcessor};

/// The loaded backbone of a policy.
#[derive(Debug)]
pub struct Backbone<B: Backend> {
    /// The PaliGemma model.
    pub model: PaliGemma<B>,
    /// Tokenizer and image preprocessing of the backbone directory.
    pub processor: PaliGemmaProcessor,
    /// The backbone directory's `config.json`.
    pub config: PaliGemmaConfig,
    /// Image features are divided by the square root of this (RoboVLMs: the top-level
    /// `hidden_size`, 2048 when absent; fixtures README §4.4).
    pub divisor: f64,
    device: B::Device,
}

impl<B: Backend> Backbone<B> {
    /// Loads the processor and config from the backbone directory (`files.backbone`, else the
    /// config's `vlm.pretrained_model_name_or_path`) and the weights from the checkpoint.
    pub(crate) fn load(
        config: &RoboVlmsConfig,
        files: &PolicyFiles,
        checkpoint: &PolicyCheckpoint,
        device: &B::Device,
    ) -> Result<Self> {
        let dir = config.backbone_dir(files.backbone.as_deref())?;
        let processor = PaliGemmaProcessor::from_dir(&dir)?;
        let pg_config = PaliGemmaConfig::from_file(&dir.join("config.json"))?;
        let model = PaliGemma::load_checkpoint(&checkpoint.checkpoint, &checkpoint.backbone, &pg_config, device)?;
        Ok(Self { model, processor, divisor: pg_config.robovlms_divisor(), config: pg_config, device: device.clone() })
    }

    /// The device the backbone lives on.
    pub fn device(&self) -> &B::Device {
        &self.device
    }

    /// Preprocesses frames (any size, resized as the processor does) into `[rows, 3, H, W]`.
    pub fn pixels(&self, frames: &[RgbImage]) -> Result<Tensor<B, 4>> {
        if frames.is_empty() {
            return Err(Error::Input("no frames given".into()));
        }
        let images = frames
            .iter()
            .map(|f| Ok(self.processor.image_processor().process(f)?.to_tensor::<B>(&self.device)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Tensor::cat(images, 0))
    }

    /// Image features ÷ sqrt(divisor), `[rows, tokens, hidden]`.
    ///
    /// # Shapes
    /// - `pixels`: `[rows, 3, H, W]`
    pub fn encode(&self, pixels: Tensor<B, 4>) -> Tensor<B, 3> {
        self.model.image.forward(pixels, self.divisor)
    }

    /// Token embeddings of row-major ids `[rows, len]` (unscaled).
    pub fn embed(&self, ids: &[u32], rows: usize) -> Tensor<B, 3> {
        let len = ids.len() / rows.max(1);
        let ids = Tensor::<B, 2, Int>::from_data(
            TensorData::new(ids.iter().map(|&i| i64::from(i)).collect::<Vec<_>>(), [rows, len]),
            &self.device,
        );
        self.model.language.embed(ids)
    }
}
