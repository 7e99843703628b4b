//! JPEG exactly as Pillow decodes it.
//!
//! Pillow decodes JPEG with libjpeg-turbo at its defaults: ISLOW integer IDCT, fancy
//! (triangle-filter) chroma upsampling, block smoothing for progressive files, libjpeg's own
//! colour-space guess (JFIF → YCbCr, Adobe transform 0 → RGB, transform 2 → YCCK) and its
//! fixed-point YCbCr → RGB tables. Any re-implementation differs in the last bit somewhere
//! (the `image` crate's decoder differed on 250–5,600 of 14,700 values of a 70×70 frame), so
//! this module runs libjpeg-turbo's own decoder: the C code vendored by `mozjpeg-sys`
//! (MozJPEG = libjpeg-turbo + encoder changes; its decoder is libjpeg-turbo's), compiled by
//! `cc` from source with no system library, CMake or NASM. `tests/pillow_sweep.rs` checks it
//! against Pillow 13.0.0 (libjpeg-turbo 3.2.0) on 4:4:4, 4:2:2, 4:2:0, 4:4:0, 4:1:1,
//! progressive, restart-marker, grayscale, CMYK, YCCK and Adobe-RGB files.
//!
//! Pillow's rules mirrored on top of the decoder (`JpegImagePlugin.py`, `Convert.c`):
//! 1 component → `L` (replicated to RGB), 3 → `RGB`, 4 → `CMYK` read with Adobe's inverted
//! polarity (`CMYK;I`) and converted with `cmyk2rgb`; a file whose last scan is not followed by
//! an end-of-image marker is "truncated" (Pillow refuses it; libjpeg alone would pad the
//! missing part with grey and only warn). EXIF orientation is not applied.

use std::panic::{AssertUnwindSafe, catch_unwind};

use mozjpeg::{ColorSpace, Decompress, NO_MARKERS};

use crate::RgbImage;
use crate::decode::to_rgb;
use crate::error::{Error, Result};
use crate::limits::Limits;

const FORMAT: &str = "JPEG";

/// Decodes a JPEG file to RGB as `Image.open(f).convert("RGB")` does.
pub(crate) fn decode(bytes: &[u8], limits: &Limits) -> Result<RgbImage> {
    check_structure(bytes)?;
    // libjpeg reports fatal errors through `error_exit`; mozjpeg turns them into an unwind
    // (with `resume_unwind`, so no panic hook runs) that stops here.
    match catch_unwind(AssertUnwindSafe(|| decode_checked(bytes, limits))) {
        Ok(result) => result,
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("libjpeg error");
            Err(Error::corrupt(FORMAT, message.trim_start_matches("libjpeg fatal error: ")))
        }
    }
}

fn decode_checked(bytes: &[u8], limits: &Limits) -> Result<RgbImage> {
    let io = |e: std::io::Error| Error::corrupt(FORMAT, e);
    let header = Decompress::with_markers(NO_MARKERS).from_mem(bytes).map_err(io)?;
    let (width, height) = header.size();
    limits.check_pixels(width as u64, height as u64)?;
    let components = header.components().len();
    let out_space = match components {
        1 => ColorSpace::JCS_GRAYSCALE,
        3 => ColorSpace::JCS_RGB,
        4 => ColorSpace::JCS_CMYK,
        n => {
            return Err(Error::unsupported(
                FORMAT,
                format!("{n}-component images are not supported (Pillow: 1, 3 or 4)"),
            ));
        }
    };
    let mut started = header.to_colorspace(out_space).map_err(io)?;
    let samples: Vec<u8> = started.read_scanlines().map_err(io)?;
    started.finish().map_err(io)?;
    let rgb = match components {
        4 => cmyk_inverted_to_rgb(&samples),
        n => to_rgb(&samples, n),
    };
    RgbImage::new(width, height, rgb)
}

/// Pillow reads 4-component JPEGs as `CMYK;I` (Adobe's inverted polarity: every sample is
/// `255 - v`) and `convert("RGB")` applies `cmyk2rgb`:
/// `255 - k' - round(c' · (255 - k') / 255)` per channel, with `MULDIV255`'s rounding.
fn cmyk_inverted_to_rgb(samples: &[u8]) -> Vec<u8> {
    let muldiv255 = |a: i32, b: i32| {
        let t = a * b + 128;
        ((t >> 8) + t) >> 8
    };
    samples
        .chunks_exact(4)
        .flat_map(|p| {
            let [c, m, y, k] = [p[0], p[1], p[2], p[3]].map(|v| 255 - i32::from(v));
            let nk = 255 - k;
            [c, m, y].map(|v| (nk - muldiv255(v, nk)).clamp(0, 255) as u8)
        })
        .collect()
}

/// Walks the marker structure: refuses what Pillow refuses before libjpeg would guess (no end
/// of image after the last scan: "image file is truncated"), and names frame types that
/// libjpeg-turbo 2 cannot decode (lossless, hierarchical) instead of reporting a bare marker.
fn check_structure(bytes: &[u8]) -> Result<()> {
    let truncated = || Error::corrupt(FORMAT, "image file is truncated (no end-of-image marker after the last scan)");
    let mut i = 2; // after SOI
    let mut seen_scan = false;
    loop {
        // A marker: 0xFF (any number of fill bytes) then its code.
        match bytes.get(i) {
            Some(0xFF) => {}
            Some(_) => return Err(Error::corrupt(FORMAT, format!("expected a marker at byte {i}"))),
            None => return Err(truncated()),
        }
        while bytes.get(i) == Some(&0xFF) {
            i += 1;
        }
        let code = *bytes.get(i).ok_or_else(truncated)?;
        i += 1;
        match code {
            0xD9 if seen_scan => return Ok(()),
            0xD9 => return Err(Error::corrupt(FORMAT, "end of image before any scan")),
            0xD0..=0xD7 | 0x01 => continue, // RSTn, TEM: no length
            0xC3 | 0xC7 | 0xCB | 0xCF => {
                return Err(Error::unsupported(
                    FORMAT,
                    "lossless JPEG is not supported; re-encode as PNG or baseline JPEG",
                ));
            }
            0xC5 | 0xC6 | 0xCD | 0xCE => {
                return Err(Error::unsupported(
                    FORMAT,
                    "hierarchical JPEG is not supported; re-encode as baseline JPEG",
                ));
            }
            _ => {}
        }
        let len = match bytes.get(i..i + 2) {
            Some(&[hi, lo]) => usize::from(u16::from_be_bytes([hi, lo])),
            _ => return Err(truncated()),
        };
        if len < 2 {
            return Err(Error::corrupt(FORMAT, format!("marker 0xFF{code:02X} has length {len}")));
        }
        i += len;
        if code == 0xDA {
            seen_scan = true;
            // Entropy-coded data follows (it may start with a stuffed 0xFF00): skip to the next
            // marker that is neither a stuffed byte nor a restart marker.
            let next = bytes
                .get(i..)
                .unwrap_or_default()
                .windows(2)
                .position(|w| w[0] == 0xFF && w[1] != 0x00 && !(0xD0..=0xD7).contains(&w[1]));
            i += next.ok_or_else(truncated)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmyk_follows_pillow_cmyk2rgb() {
        // Stored (inverted) 255 = ink 0: white. Stored 0 everywhere = full ink: black.
        assert_eq!(cmyk_inverted_to_rgb(&[255, 255, 255, 255]), [255, 255, 255]);
        assert_eq!(cmyk_inverted_to_rgb(&[0, 0, 0, 0]), [0, 0, 0]);
        // c' = 100, k' = 50: nk = 205, 205 - muldiv255(100, 205) = 205 - 80 = 125.
        assert_eq!(cmyk_inverted_to_rgb(&[155, 255, 255, 205]), [125, 205, 205]);
    }

    #[test]
    fn structure_walk_catches_truncation() {
        assert!(check_structure(b"\xFF\xD8").is_err());
        assert!(check_structure(b"\xFF\xD8\xFF\xDA\x00\x02\x12\x34\xFF\x00\x56").is_err());
        assert!(check_structure(b"\xFF\xD8\xFF\xDA\x00\x02\x12\xFF\xD3\x34\xFF\xD9junk").is_ok());
        // Entropy data may begin with a stuffed 0xFF00 (found in a progressive CMYK file).
        assert!(check_structure(b"\xFF\xD8\xFF\xDA\x00\x02\xFF\x00\x12\xFF\xFF\xD9").is_ok());
        let e = check_structure(b"\xFF\xD8\xFF\xC3\x00\x02").unwrap_err().to_string();
        assert!(e.contains("lossless"), "{e}");
        assert!(check_structure(b"\xFF\xD8\xFF\xE0\x00\x01").is_err(), "length below 2");
    }
}
