//! Bounds on what a decoder may read and allocate, checked before the work is done.

use crate::error::{Error, Result};

/// Pillow's `Image.MAX_IMAGE_PIXELS` (`1024 * 1024 * 1024 // 4 // 3`): above it Pillow warns,
/// above twice it Pillow raises `DecompressionBombError`.
pub const PILLOW_MAX_IMAGE_PIXELS: u64 = 1024 * 1024 * 1024 / 4 / 3;

/// Upper bounds for decoding untrusted images.
///
/// The defaults refuse what Pillow refuses (an image above `2 × MAX_IMAGE_PIXELS`, about 179
/// million pixels: a 0.4 MB PNG can declare 20000×20000) and files above 512 MiB. The size is
/// read from the header, so a bomb is refused before any pixel is allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest `width × height` accepted.
    pub max_pixels: u64,
    /// Largest file (or byte buffer) accepted, in bytes.
    pub max_file_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_pixels: 2 * PILLOW_MAX_IMAGE_PIXELS, max_file_bytes: 512 << 20 }
    }
}

impl Limits {
    /// No bounds beyond what the machine allows (for trusted inputs and tests).
    pub const fn unlimited() -> Self {
        Self { max_pixels: u64::MAX, max_file_bytes: u64::MAX }
    }

    /// Refuses an image whose declared size exceeds `max_pixels` (or overflows).
    pub(crate) fn check_pixels(&self, width: u64, height: u64) -> Result<()> {
        let hint = "a possible decompression bomb; raise Limits::max_pixels if the image is trusted";
        within("image size in pixels", width.saturating_mul(height), self.max_pixels, hint)
    }

    /// Refuses more than `max_file_bytes` of input.
    pub(crate) fn check_file_bytes(&self, bytes: u64) -> Result<()> {
        within("file size in bytes", bytes, self.max_file_bytes, "raise Limits::max_file_bytes if the file is trusted")
    }
}

fn within(what: &'static str, size: u64, limit: u64, hint: &'static str) -> Result<()> {
    if size > limit { Err(Error::TooLarge { what, size, limit, hint }) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pillows_bomb_rule() {
        let limits = Limits::default();
        assert!(limits.check_pixels(13_377, 13_377).is_ok()); // 178,944,129 <= 178,956,970
        assert!(limits.check_pixels(20_000, 20_000).is_err());
        assert!(limits.check_pixels(u64::MAX, 2).is_err(), "overflow is refused, not wrapped");
    }
}
