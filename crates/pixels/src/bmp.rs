//! BMP as Pillow decodes it.
//!
//! The `image` crate's BMP decoder gives Pillow's bytes for the variants below (checked by
//! `tests/pillow_sweep.rs`); the others are refused by name rather than risk other pixels:
//! 16-bit BMPs, for one, differ (Pillow expands 5-bit channels with `v * 255 / 31`).

use crate::RgbImage;
use crate::error::{Error, Result};
use crate::limits::Limits;

const FORMAT: &str = "BMP";

/// `(bits per pixel, compression)` pairs that decode exactly as in Pillow: palettes of 1, 4
/// and 8 bits, 8-bit RLE, 24-bit BGR and 32-bit BGRX/BGRA (alpha dropped), all uncompressed
/// unless stated.
const SUPPORTED: &[(u16, u32)] = &[(1, 0), (4, 0), (8, 0), (8, 1), (24, 0), (32, 0)];

/// Decodes a BMP file to RGB as `Image.open(f).convert("RGB")` does.
pub(crate) fn decode(bytes: &[u8], limits: &Limits) -> Result<RgbImage> {
    let (bpp, compression) = variant(bytes)?;
    if !SUPPORTED.contains(&(bpp, compression)) {
        return Err(Error::unsupported(
            FORMAT,
            format!("{bpp}-bit BMP with compression {compression} is not supported; convert the frame to PNG"),
        ));
    }
    crate::via_image::decode(bytes, image::ImageFormat::Bmp, FORMAT, limits)
}

/// Reads `(bits per pixel, compression)` from the DIB header (OS/2 1.x or Windows).
fn variant(bytes: &[u8]) -> Result<(u16, u32)> {
    let u16_at = |o: usize| bytes.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| bytes.get(o..o + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let short = || Error::corrupt(FORMAT, "file too short for a BMP header");
    match u32_at(14).ok_or_else(short)? {
        12 => Ok((u16_at(24).ok_or_else(short)?, 0)),
        size if size >= 40 => Ok((u16_at(28).ok_or_else(short)?, u32_at(30).ok_or_else(short)?)),
        size => Err(Error::corrupt(FORMAT, format!("unknown DIB header size {size}"))),
    }
}
