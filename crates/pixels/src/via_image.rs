//! Decoding through the `image` crate, for the formats whose decoders there give Pillow's bytes
//! (BMP, WebP; checked by `tests/pillow_sweep.rs`).

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, ImageReader};

use crate::RgbImage;
use crate::decode::to_rgb;
use crate::error::{Error, Result};
use crate::limits::Limits;

/// Decodes `bytes` as `format` (named `name` in errors), refusing images above the pixel limit
/// before their pixels are allocated.
pub(crate) fn decode(bytes: &[u8], format: ImageFormat, name: &'static str, limits: &Limits) -> Result<RgbImage> {
    let corrupt = |e: image::ImageError| Error::corrupt(name, e);
    let reader = || ImageReader::with_format(Cursor::new(bytes), format);
    let (width, height) = reader().into_dimensions().map_err(corrupt)?;
    limits.check_pixels(u64::from(width), u64::from(height))?;
    let mut reader = reader();
    reader.no_limits(); // bounded by the pixel check above
    let (channels, samples) = match reader.decode().map_err(corrupt)? {
        DynamicImage::ImageLuma8(i) => (1, i.into_raw()),
        DynamicImage::ImageLumaA8(i) => (2, i.into_raw()),
        DynamicImage::ImageRgb8(i) => (3, i.into_raw()),
        DynamicImage::ImageRgba8(i) => (4, i.into_raw()),
        other => return Err(Error::unsupported(name, format!("{:?} pixels are not supported", other.color()))),
    };
    RgbImage::new(width as usize, height as usize, to_rgb(&samples, channels))
}
