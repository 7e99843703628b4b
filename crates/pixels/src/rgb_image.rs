//! The one image type: 8-bit RGB, row-major, what `PIL.Image.convert("RGB")` holds.

use std::path::Path;

use crate::decode;
use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::resize;

/// An 8-bit RGB image, row-major `height × width × 3` (HWC), as Pillow's mode `"RGB"` and a
/// NumPy `uint8` array of shape `[H, W, 3]` lay it out.
///
/// Build one from a file ([`RgbImage::open`]), from encoded bytes ([`RgbImage::decode`]) or
/// from pixels already in memory ([`RgbImage::new`]: a camera driver's frame, a server
/// request's array) — all three give the same type, so every frame goes through the same
/// preprocessing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    width: usize,
    height: usize,
    data: Vec<u8>,
}

impl RgbImage {
    /// Wraps raw RGB bytes (`height × width × 3`, row-major, no padding).
    ///
    /// # Errors
    /// If a side is zero or `data.len() != width × height × 3`.
    ///
    /// ```
    /// use robovlm_pixels::RgbImage;
    ///
    /// // A 2×1 frame: one red pixel, one blue pixel.
    /// let frame = RgbImage::new(2, 1, vec![255, 0, 0, 0, 0, 255])?;
    /// assert_eq!((frame.width(), frame.height()), (2, 1));
    /// assert!(RgbImage::new(2, 2, vec![0; 5]).is_err());
    /// # Ok::<(), robovlm_pixels::Error>(())
    /// ```
    pub fn new(width: usize, height: usize, data: Vec<u8>) -> Result<Self> {
        if width == 0 || height == 0 {
            return Err(Error::InvalidBuffer(format!("{width}x{height} has no pixels")));
        }
        let expected = width.checked_mul(height).and_then(|n| n.checked_mul(3));
        if expected != Some(data.len()) {
            return Err(Error::InvalidBuffer(format!(
                "{} bytes for a {width}x{height} RGB image (expected width × height × 3)",
                data.len()
            )));
        }
        Ok(Self { width, height, data })
    }

    /// Wraps an `[H, W, 3]` uint8 array given as its shape and row-major bytes, the layout a
    /// NumPy image array has (`shape`, `tobytes()`).
    ///
    /// # Errors
    /// If the shape is not `[H, W, 3]` with positive sides or the length does not match it.
    pub fn from_hwc(shape: &[usize], data: Vec<u8>) -> Result<Self> {
        match *shape {
            [h, w, 3] => Self::new(w, h, data),
            _ => Err(Error::InvalidBuffer(format!("shape {shape:?} is not [height, width, 3]"))),
        }
    }

    /// Decodes an encoded image (PNG, JPEG, BMP or WebP) the way
    /// `PIL.Image.open(f).convert("RGB")` does, under the default [`Limits`].
    ///
    /// EXIF orientation is not applied: Pillow does not apply it on open either.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        decode::decode(bytes, &Limits::default())
    }

    /// [`RgbImage::decode`] with explicit limits.
    pub fn decode_with_limits(bytes: &[u8], limits: &Limits) -> Result<Self> {
        decode::decode(bytes, limits)
    }

    /// Reads and decodes an image file under the default [`Limits`]; errors name the file.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with_limits(path, &Limits::default())
    }

    /// [`RgbImage::open`] with explicit limits.
    pub fn open_with_limits(path: &Path, limits: &Limits) -> Result<Self> {
        let bytes = decode::read_bounded(path, limits)?;
        decode::decode(&bytes, limits).map_err(|e| e.in_file(path))
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// The interleaved RGB bytes, row-major.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// Takes the interleaved RGB bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.data
    }

    /// `Image.resize((width, height), Image.BICUBIC)`, bit for bit (see [`crate::resize`]).
    /// The same size returns a copy, as Pillow does.
    ///
    /// # Panics
    /// If `width` or `height` is zero.
    pub fn resize_bicubic(&self, width: usize, height: usize) -> Self {
        assert!(width > 0 && height > 0, "resize to {width}x{height}: sides must be positive");
        if (width, height) == (self.width, self.height) {
            return self.clone();
        }
        let data = resize::resize_bicubic_rgb(&self.data, self.width, self.height, width, height);
        Self { width, height, data }
    }
}
