//! Image preprocessing as `SiglipImageProcessor` does it, driven by `preprocessor_config.json`.
//!
//! Steps (transformers 4.47.1, `image_processing_siglip.py` + `image_transforms.py`):
//! Pillow BICUBIC resize to `size` (aspect ratio ignored) rounded to uint8, `x * rescale_factor`
//! computed in float64 and cast to float32, `(x - mean) / std` in float32 with the file's
//! constants, HWC → CHW.

use std::path::{Path, PathBuf};

use burn::prelude::{Backend, Tensor, TensorData};
use serde::Deserialize;

use robovlm_pixels::RgbImage;

use crate::error::{Error, Result, read_json};

/// Pillow's resample code for BICUBIC, the only filter implemented.
const PIL_BICUBIC: u32 = 3;

/// Serde mirror of `preprocessor_config.json` with transformers' `SiglipImageProcessor`
/// defaults for absent keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
struct HfPreprocessorConfig {
    do_resize: bool,
    do_rescale: bool,
    do_normalize: bool,
    resample: u32,
    rescale_factor: f64,
    image_mean: Vec<f64>,
    image_std: Vec<f64>,
    size: HfSize,
    image_seq_length: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
struct HfSize {
    height: usize,
    width: usize,
}

impl Default for HfPreprocessorConfig {
    fn default() -> Self {
        Self {
            do_resize: true,
            do_rescale: true,
            do_normalize: true,
            resample: PIL_BICUBIC,
            rescale_factor: 1.0 / 255.0,
            image_mean: vec![0.5; 3],
            image_std: vec![0.5; 3],
            size: HfSize { height: 224, width: 224 },
            image_seq_length: None,
        }
    }
}

/// Validated image preprocessing settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageProcessorConfig {
    /// Output height in pixels (`size.height`).
    pub height: usize,
    /// Output width in pixels (`size.width`).
    pub width: usize,
    /// Whether to resize at all (`do_resize`); when false the input must already match.
    pub do_resize: bool,
    /// `rescale_factor`, applied when `do_rescale`.
    pub rescale_factor: Option<f64>,
    /// Per-channel `(mean, std)`, applied when `do_normalize`.
    pub normalize: Option<([f64; 3], [f64; 3])>,
    /// `image_seq_length` when the file states it (image tokens per image).
    pub image_seq_length: Option<usize>,
}

impl ImageProcessorConfig {
    /// Reads `preprocessor_config.json`, applying transformers' defaults for absent keys.
    pub fn from_file(path: &Path) -> Result<Self> {
        let hf: HfPreprocessorConfig = read_json(path)?;
        if hf.resample != PIL_BICUBIC {
            return Err(Error::config(
                path,
                "resample",
                format!("only BICUBIC (3) is implemented, found {}", hf.resample),
            ));
        }
        // The vision tower's own bound (SigLIP image_size ≤ 16384); the processor checks the
        // exact size against the model when both are loaded.
        const MAX_SIDE: usize = 1 << 14;
        if !(1..=MAX_SIDE).contains(&hf.size.height) || !(1..=MAX_SIDE).contains(&hf.size.width) {
            return Err(Error::config(path, "size", format!("height and width must be in 1..={MAX_SIDE}")));
        }
        let channels = |field: &str, v: &[f64]| -> Result<[f64; 3]> {
            <[f64; 3]>::try_from(v)
                .map_err(|_| Error::config(path, field, format!("expected 3 values (RGB), found {}", v.len())))
        };
        let normalize = if hf.do_normalize {
            let (mean, std) = (channels("image_mean", &hf.image_mean)?, channels("image_std", &hf.image_std)?);
            if std.iter().any(|&s| s == 0.0 || !s.is_finite()) {
                return Err(Error::config(path, "image_std", "values must be finite and non-zero"));
            }
            Some((mean, std))
        } else {
            None
        };
        Ok(Self {
            height: hf.size.height,
            width: hf.size.width,
            do_resize: hf.do_resize,
            rescale_factor: hf.do_rescale.then_some(hf.rescale_factor),
            normalize,
            image_seq_length: hf.image_seq_length,
        })
    }
}

/// What preprocessing produced for one image.
#[derive(Debug, Clone)]
pub struct ProcessedImage {
    /// The resized uint8 image, `[height, width, 3]` (HWC), as Pillow returned it.
    pub resized: Vec<u8>,
    /// Model input, `[3, height, width]` (CHW), float32.
    pub pixel_values: Vec<f32>,
    /// Output height.
    pub height: usize,
    /// Output width.
    pub width: usize,
}

impl ProcessedImage {
    /// The model input on a device: `[1, 3, height, width]`.
    pub fn to_tensor<B: Backend>(&self, device: &B::Device) -> Tensor<B, 4> {
        let shape = [1, 3, self.height, self.width];
        Tensor::from_data(TensorData::new(self.pixel_values.clone(), shape), device)
    }
}

/// `SiglipImageProcessor`: resize, rescale, normalise.
#[derive(Debug, Clone)]
pub struct ImageProcessor {
    config: ImageProcessorConfig,
    source: PathBuf,
}

impl ImageProcessor {
    /// Builds a processor from validated settings; `source` names them in errors.
    pub fn new(config: ImageProcessorConfig, source: impl Into<PathBuf>) -> Self {
        Self { config, source: source.into() }
    }

    /// Loads `preprocessor_config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        Ok(Self::new(ImageProcessorConfig::from_file(path)?, path))
    }

    /// The settings in use.
    pub fn config(&self) -> &ImageProcessorConfig {
        &self.config
    }

    /// Preprocesses one image: a decoded file or a frame already in memory (a camera driver's
    /// or a server request's `[H, W, 3]` uint8 array) — the same path, no file round trip.
    ///
    /// ```
    /// use robovlm_core::{ImageProcessor, ImageProcessorConfig, RgbImage};
    ///
    /// let config = ImageProcessorConfig {
    ///     height: 56,
    ///     width: 56,
    ///     do_resize: true,
    ///     rescale_factor: Some(1.0 / 255.0),
    ///     normalize: Some(([0.5; 3], [0.5; 3])),
    ///     image_seq_length: None,
    /// };
    /// // Usually: ImageProcessor::from_file(Path::new("model/preprocessor_config.json"))?
    /// let processor = ImageProcessor::new(config, "preprocessor_config.json");
    ///
    /// // A 480x640 camera frame, row-major RGB bytes (NumPy: frame.shape, frame.tobytes()).
    /// let frame = RgbImage::from_hwc(&[480, 640, 3], vec![128; 480 * 640 * 3])?;
    /// let out = processor.process(&frame)?;
    /// assert_eq!((out.height, out.width, out.pixel_values.len()), (56, 56, 3 * 56 * 56));
    /// assert!(out.pixel_values.iter().all(|&v| (v - (128.0 / 255.0 - 0.5) / 0.5).abs() < 1e-6));
    /// # Ok::<(), robovlm_core::Error>(())
    /// ```
    pub fn process(&self, image: &RgbImage) -> Result<ProcessedImage> {
        let (h, w) = (self.config.height, self.config.width);
        let resized = if (image.width(), image.height()) == (w, h) {
            image.as_bytes().to_vec()
        } else if self.config.do_resize {
            image.resize_bicubic(w, h).into_bytes()
        } else {
            return Err(Error::Input(format!(
                "image is {}x{} but {} sets do_resize=false and size {w}x{h}",
                image.width(),
                image.height(),
                self.source.display()
            )));
        };
        let plane = h * w;
        let mut pixel_values = vec![0f32; 3 * plane];
        for (i, px) in resized.chunks_exact(3).enumerate() {
            for (c, &v) in px.iter().enumerate() {
                // transformers rescales in float64 and casts to float32, then normalises in float32.
                let mut x = match self.config.rescale_factor {
                    Some(s) => (f64::from(v) * s) as f32,
                    None => f32::from(v),
                };
                if let Some((mean, std)) = &self.config.normalize {
                    x = (x - mean[c] as f32) / std[c] as f32;
                }
                pixel_values[c * plane + i] = x;
            }
        }
        Ok(ProcessedImage { resized, pixel_values, height: h, width: w })
    }

    /// Opens and preprocesses an image file (decoded as `PIL.Image.open(f).convert("RGB")`,
    /// see [`RgbImage::open`]).
    pub fn process_file(&self, path: &Path) -> Result<ProcessedImage> {
        self.process(&RgbImage::open(path)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use robovlm_test_utils::TestBackend;

    #[test]
    fn tensor_is_chw_with_a_batch_axis() {
        let config = ImageProcessorConfig {
            height: 1,
            width: 2,
            do_resize: true,
            rescale_factor: Some(1.0 / 255.0),
            normalize: Some(([0.5; 3], [0.5; 3])),
            image_seq_length: None,
        };
        let img = RgbImage::new(2, 1, vec![0, 255, 0, 255, 0, 255]).unwrap();
        let out = ImageProcessor::new(config, "test").process(&img).unwrap();
        // Channel planes: R = [-1, 1], G = [1, -1], B = [-1, 1].
        assert_eq!(out.pixel_values, vec![-1.0, 1.0, 1.0, -1.0, -1.0, 1.0]);
        let t = out.to_tensor::<TestBackend>(&Default::default());
        assert_eq!(t.dims(), [1, 3, 1, 2]);
        assert_eq!(t.into_data().to_vec::<f32>().unwrap(), out.pixel_values);
    }
}
