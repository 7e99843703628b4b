//! Pillow's own pixels, recomputed: `fixtures/pixels/*.tsv` were written by
//! `tools/pixels_reference.py` with Pillow 13.0.0 (the version the golden fixtures pin).

use std::path::{Path, PathBuf};

use robovlm_pixels::{Error, RgbImage};
use sha2::{Digest, Sha256};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/pixels")
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The rows of a tab-separated table, comments skipped.
fn table(name: &str) -> Vec<Vec<String>> {
    let path = fixtures().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

/// `source_pixels` of `tools/pixels_reference.py`: 16×16 tiles alternating hashed noise and a
/// smooth ramp (all arithmetic modulo 2³²).
fn source_pixels(w: usize, h: usize) -> RgbImage {
    let mut data = Vec::with_capacity(w * h * 3);
    let seed = (w as u32).wrapping_mul(0x27D4_EB2F).wrapping_add((h as u32).wrapping_mul(0x1656_67B1));
    for y in 0..h as u32 {
        for x in 0..w as u32 {
            for c in 0..3u32 {
                let v = if ((x >> 4) + (y >> 4)) & 1 == 0 {
                    let mut v = x
                        .wrapping_mul(0x9E37_79B1)
                        .wrapping_add(y.wrapping_mul(0x85EB_CA77))
                        .wrapping_add(c.wrapping_mul(0xC2B2_AE3D))
                        .wrapping_add(seed);
                    v ^= v >> 15;
                    v = v.wrapping_mul(0x2C1B_3C6D);
                    v ^= v >> 12;
                    v & 255
                } else {
                    (x * 2 + y * 3 + c * 85) & 255
                };
                data.push(v as u8);
            }
        }
    }
    RgbImage::new(w, h, data).unwrap()
}

#[test]
fn bicubic_resize_matches_pillow_on_the_sweep() {
    let rows = table("resize_sweep.tsv");
    assert!(rows.len() >= 2000, "the sweep must cover at least 2,000 combinations, found {}", rows.len());
    let mut source: Option<((usize, usize), RgbImage)> = None;
    let mut failures = Vec::new();
    for row in &rows {
        let n: Vec<usize> = row[..4].iter().map(|v| v.parse().unwrap()).collect();
        let (w, h, out_w, out_h) = (n[0], n[1], n[2], n[3]);
        if source.as_ref().map(|(size, _)| *size) != Some((w, h)) {
            source = Some(((w, h), source_pixels(w, h)));
        }
        let img = &source.as_ref().unwrap().1;
        let got = sha256_hex(img.resize_bicubic(out_w, out_h).as_bytes());
        if got[..16] != row[4] {
            failures.push(format!("{w}x{h} -> {out_w}x{out_h}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} resizes differ from Pillow; first: {} (all: {:?})",
        failures.len(),
        rows.len(),
        failures[0],
        &failures[..failures.len().min(20)]
    );
}

/// Files Pillow reads that we refuse on purpose, each with the format the error must name.
const REFUSED: &[(&str, &str)] = &[
    ("gif_37x23.gif", "GIF"),
    ("tiff_37x23.tiff", "TIFF"),
    ("bmp_rgb555_37x23.bmp", "BMP"),
    ("bmp_rgb565_37x23.bmp", "BMP"),
];

#[test]
fn decoding_matches_pillow_or_refuses_by_name() {
    let rows = table("decode.tsv");
    assert!(rows.len() >= 200, "expected the full decode table, found {} rows", rows.len());
    let mut failures = Vec::new();
    for row in &rows {
        let (name, pillow_mode) = (&row[0], &row[1]);
        let path = fixtures().join("decode").join(name);
        let ours = RgbImage::open(&path);
        let verdict = match (pillow_mode.as_str(), ours) {
            ("error", Ok(img)) => Err(format!("Pillow refuses it, we decoded {}x{}", img.width(), img.height())),
            ("error", Err(_)) => Ok(()),
            (_, result) => match (REFUSED.iter().find(|(f, _)| f == name), result) {
                (Some((_, format)), Err(e)) if e.to_string().contains(format) => Ok(()),
                (Some(_), Err(e)) => Err(format!("refused without naming the format: {e}")),
                (Some(_), Ok(_)) => Err("listed as refused but decoded".to_owned()),
                (None, Err(e)) => Err(format!("Pillow decodes it ({pillow_mode}), we fail: {e}")),
                (None, Ok(img)) => {
                    let (w, h): (usize, usize) = (row[2].parse().unwrap(), row[3].parse().unwrap());
                    if (img.width(), img.height()) != (w, h) {
                        Err(format!("size {}x{}, Pillow {w}x{h}", img.width(), img.height()))
                    } else if sha256_hex(img.as_bytes()) != row[4] {
                        Err(format!("pixels differ from Pillow's ({pillow_mode})"))
                    } else {
                        Ok(())
                    }
                }
            },
        };
        if let Err(why) = verdict {
            failures.push(format!("{name}: {why}"));
        }
    }
    assert!(failures.is_empty(), "{} of {} files:\n{}", failures.len(), rows.len(), failures.join("\n"));
}

#[test]
fn errors_name_the_file() {
    let path = fixtures().join("decode/jpeg_truncated_scan_64x48.jpg");
    let e = RgbImage::open(&path).unwrap_err();
    assert!(matches!(e, Error::File { .. }), "{e:?}");
    let text = e.to_string();
    assert!(text.contains("jpeg_truncated_scan_64x48.jpg") && text.contains("truncated"), "{text}");
}
