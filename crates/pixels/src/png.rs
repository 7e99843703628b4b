//! PNG exactly as Pillow decodes it.
//!
//! PNG is lossless, so only the mode rules matter (Pillow `PngImagePlugin.py`, `Unpack.c`,
//! `Convert.c`):
//! - 1/2/4-bit grey expands to 0..255 (×255, ×85, ×17), palettes are looked up, 8-bit samples
//!   are taken as they are; alpha and `tRNS` transparency are dropped, never blended;
//! - 16-bit RGB, RGBA and grey+alpha keep the **high byte** (Pillow's `;16B` unpackers);
//! - 16-bit grey opens as mode `I;16`, whose `convert("RGB")` **clamps** to 255 (`I16_RGB`),
//!   so a typical 16-bit depth/grey image turns mostly white — reproduced, because that is what
//!   the Python pipeline feeds the model.
//!
//! Gamma (`gAMA`), ICC profiles and `sRGB` chunks are ignored, as in Pillow.

use crate::RgbImage;
use crate::decode::to_rgb;
use crate::error::{Error, Result};
use crate::limits::Limits;

const FORMAT: &str = "PNG";

/// Decodes a PNG file to RGB as `Image.open(f).convert("RGB")` does.
pub(crate) fn decode(bytes: &[u8], limits: &Limits) -> Result<RgbImage> {
    let corrupt = |e: ::png::DecodingError| Error::corrupt(FORMAT, e);
    let mut decoder = ::png::Decoder::new(std::io::Cursor::new(bytes));
    // Palette lookup, low-bit-depth expansion and tRNS → alpha; 16 bits stay 16 bits.
    decoder.set_transformations(::png::Transformations::EXPAND);
    // The pixel limit below is the real bound; this only stops the decoder's own buffers
    // (e.g. huge text chunks) from growing without one.
    decoder.set_limits(::png::Limits {
        bytes: usize::try_from(limits.max_file_bytes.saturating_mul(8)).unwrap_or(usize::MAX),
    });
    let mut reader = decoder.read_info().map_err(corrupt)?;
    let (width, height) = reader.info().size();
    limits.check_pixels(u64::from(width), u64::from(height))?;
    let grey16 =
        reader.info().color_type == ::png::ColorType::Grayscale && reader.info().bit_depth == ::png::BitDepth::Sixteen;
    let (color, depth) = reader.output_color_type();
    let size = reader.output_buffer_size().ok_or_else(|| Error::corrupt(FORMAT, "image size overflows"))?;
    let mut buf = vec![0u8; size];
    let frame = reader.next_frame(&mut buf).map_err(corrupt)?;
    buf.truncate(frame.buffer_size());
    let channels = color.samples();
    let samples: Vec<u8> = match depth {
        ::png::BitDepth::Eight => buf,
        // `I;16` → RGB clamps; every other 16-bit mode keeps the high (first, big-endian) byte.
        ::png::BitDepth::Sixteen if grey16 => {
            buf.chunks_exact(2).map(|s| u8::try_from(u16::from_be_bytes([s[0], s[1]])).unwrap_or(255)).collect()
        }
        ::png::BitDepth::Sixteen => buf.chunks_exact(2).map(|s| s[0]).collect(),
        other => return Err(Error::corrupt(FORMAT, format!("unexpected {other:?}-bit output after expansion"))),
    };
    RgbImage::new(width as usize, height as usize, to_rgb(&samples, channels))
}
