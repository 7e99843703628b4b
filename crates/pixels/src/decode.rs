//! Format detection, bounded file reading and dispatch to the per-format decoders.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::{RgbImage, bmp, jpeg, png, webp};

/// The encodings recognised by their leading bytes (as Pillow identifies files: by content,
/// never by extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JPEG (JFIF/EXIF/Adobe), decoded by libjpeg-turbo's code.
    Jpeg,
    /// PNG.
    Png,
    /// Windows bitmap.
    Bmp,
    /// WebP (lossy or lossless, still).
    WebP,
    /// GIF: recognised to refuse it clearly.
    Gif,
    /// TIFF: recognised to refuse it clearly.
    Tiff,
}

impl Format {
    /// Identifies the format from the first bytes.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        match bytes {
            [0xFF, 0xD8, 0xFF, ..] => Some(Self::Jpeg),
            [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => Some(Self::Png),
            [b'B', b'M', ..] => Some(Self::Bmp),
            [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => Some(Self::WebP),
            [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => Some(Self::Gif),
            [b'I', b'I', 0x2A, 0x00, ..] | [b'M', b'M', 0x00, 0x2A, ..] => Some(Self::Tiff),
            _ => None,
        }
    }
}

/// Decodes `bytes` as `PIL.Image.open(...).convert("RGB")` would.
pub(crate) fn decode(bytes: &[u8], limits: &Limits) -> Result<RgbImage> {
    limits.check_file_bytes(bytes.len() as u64)?;
    let format = Format::sniff(bytes).ok_or(Error::Unrecognised)?;
    match format {
        Format::Jpeg => jpeg::decode(bytes, limits),
        Format::Png => png::decode(bytes, limits),
        Format::Bmp => bmp::decode(bytes, limits),
        Format::WebP => webp::decode(bytes, limits),
        Format::Gif => Err(Error::unsupported("GIF", "GIF images are not supported; convert the frame to PNG")),
        Format::Tiff => Err(Error::unsupported("TIFF", "TIFF images are not supported; convert the frame to PNG")),
    }
}

/// Reads a whole file, refusing more than `limits.max_file_bytes` (checked while reading, so
/// `/dev/zero` or a growing pipe cannot exhaust memory).
pub(crate) fn read_bounded(path: &Path, limits: &Limits) -> Result<Vec<u8>> {
    let read = || -> Result<Vec<u8>> {
        let file = std::fs::File::open(path)?;
        let meta = file.metadata()?;
        // A device (`/dev/zero`, `/dev/urandom`) never ends: refused before reading. Pipes are
        // read, within the limit.
        if !meta.is_file() && !std::os::unix::fs::FileTypeExt::is_fifo(&meta.file_type()) {
            return Err(Error::Read(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a regular file (a directory or a device)",
            )));
        }
        let declared = meta.len();
        limits.check_file_bytes(declared)?;
        let mut bytes = Vec::with_capacity(usize::try_from(declared).unwrap_or(0));
        file.take(limits.max_file_bytes.saturating_add(1)).read_to_end(&mut bytes)?;
        limits.check_file_bytes(bytes.len() as u64)?;
        Ok(bytes)
    };
    read().map_err(|e| e.in_file(path))
}

/// Expands samples with `channels` per pixel to RGB the way `convert("RGB")` does: grey is
/// replicated, alpha is dropped (not blended: Pillow drops it too).
pub(crate) fn to_rgb(samples: &[u8], channels: usize) -> Vec<u8> {
    match channels {
        3 => samples.to_vec(),
        1 | 2 => samples.chunks_exact(channels).flat_map(|p| [p[0]; 3]).collect(),
        _ => samples.chunks_exact(channels).flat_map(|p| [p[0], p[1], p[2]]).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_by_content() {
        assert_eq!(Format::sniff(b"\xFF\xD8\xFF\xE0rest"), Some(Format::Jpeg));
        assert_eq!(Format::sniff(b"\x89PNG\r\n\x1a\nrest"), Some(Format::Png));
        assert_eq!(Format::sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(Format::WebP));
        assert_eq!(Format::sniff(b"GIF89a"), Some(Format::Gif));
        assert_eq!(Format::sniff(b"\xFF\xD8"), None);
        assert_eq!(Format::sniff(b""), None);
    }

    #[test]
    fn unknown_and_refused_formats_are_named() {
        let e = decode(b"hello world", &Limits::default()).unwrap_err().to_string();
        assert!(e.contains("not a recognised image") && !e.contains("hello"), "{e}");
        let e = decode(b"GIF89a\x01\x00\x01\x00", &Limits::default()).unwrap_err().to_string();
        assert!(e.starts_with("GIF:"), "{e}");
    }

    #[test]
    fn to_rgb_replicates_grey_and_drops_alpha() {
        assert_eq!(to_rgb(&[7, 9], 1), [7, 7, 7, 9, 9, 9]);
        assert_eq!(to_rgb(&[7, 0], 2), [7, 7, 7]);
        assert_eq!(to_rgb(&[1, 2, 3, 0], 4), [1, 2, 3]);
    }

    #[test]
    fn file_reads_are_bounded() {
        let e = read_bounded(Path::new("/dev/zero"), &Limits::default()).unwrap_err().to_string();
        assert!(e.contains("/dev/zero") && e.contains("not a regular file"), "{e}");
        let big = std::env::temp_dir().join(format!("robovlm-pixels-big-{}", std::process::id()));
        std::fs::write(&big, vec![0u8; 2000]).unwrap();
        let limits = Limits { max_file_bytes: 1000, ..Limits::default() };
        let e = read_bounded(&big, &limits).unwrap_err().to_string();
        std::fs::remove_file(&big).unwrap();
        assert!(e.contains("above the limit of 1000"), "{e}");
    }

    /// A tiny PNG that declares 20000×20000 pixels (Pillow's decompression-bomb case) is refused
    /// from its header, before any pixel memory is allocated.
    #[test]
    fn decompression_bombs_are_refused_from_the_header() {
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut chunk = |kind: &[u8], body: &[u8]| {
            let typed = [kind, body].concat();
            png.extend_from_slice(&(body.len() as u32).to_be_bytes());
            png.extend_from_slice(&typed);
            png.extend_from_slice(&crc32(&typed).to_be_bytes());
        };
        chunk(b"IHDR", &[&20_000u32.to_be_bytes()[..], &20_000u32.to_be_bytes(), &[8, 0, 0, 0, 0]].concat());
        chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]); // an empty zlib stream
        chunk(b"IEND", &[]);
        let e = decode(&png, &Limits::default()).unwrap_err().to_string();
        assert!(e.contains("decompression bomb") && e.contains("400000000"), "{e}");
    }

    /// CRC-32 (IEEE), for building PNG chunks in tests.
    fn crc32(bytes: &[u8]) -> u32 {
        !bytes.iter().fold(!0u32, |c, &b| {
            (0..8).fold(c ^ u32::from(b), |c, _| if c & 1 == 1 { (c >> 1) ^ 0xEDB8_8320 } else { c >> 1 })
        })
    }
}
