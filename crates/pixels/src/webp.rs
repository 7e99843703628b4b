//! WebP as Pillow decodes it.

use crate::RgbImage;
use crate::error::Result;
use crate::limits::Limits;

const FORMAT: &str = "WebP";

/// Decodes a WebP file to RGB as `Image.open(f).convert("RGB")` does.
pub(crate) fn decode(bytes: &[u8], limits: &Limits) -> Result<RgbImage> {
    crate::via_image::decode(bytes, image::ImageFormat::WebP, FORMAT, limits)
}
