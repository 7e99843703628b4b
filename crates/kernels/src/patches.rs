//! Non-overlapping image patches gathered as rows: the left operand of a patch embedding
//! computed as a matrix product.
//!
//! A stride-`p` convolution with a `p × p` kernel (SigLIP's patch embedding) is
//! `rows · Wᵀ` with one row per patch holding its `channels · p · p` pixels in the conv
//! weight's own flattening (channel, then kernel row, then kernel column). Built with tensor
//! ops that is a reshape, a six-dimensional permute and a strided copy on one thread (0.44 ms
//! of a 224-px frame, more than the product's own work at 4 layers); here each patch row is
//! `channels · p` contiguous runs of `p` pixels, copied on every core.

use rayon::prelude::*;

use crate::error::{Error, Result};

/// `out[b, gy·gw + gx, (c·p + y)·p + x] = pixels[b, c, gy·p + y, gx·p + x]` for the `gh × gw`
/// whole patches of `p × p` pixels (`gh = h / p`, `gw = w / p`; a remainder of rows or columns
/// that makes no whole patch is left out, as a `padding="valid"` convolution does).
///
/// # Shapes
/// - `pixels`: row-major `[batch, channels, h, w]`
/// - `out`: row-major `[batch, gh·gw, channels·p·p]`, fully overwritten
pub fn patch_rows<T: Copy + Send + Sync>(pixels: &[T], shape: [usize; 4], p: usize, out: &mut [T]) -> Result<()> {
    let [batch, channels, h, w] = shape;
    let bad = || Error::Shape { operand: "pixels", shape: format!("{shape:?} in patches of {p}") };
    if p == 0 {
        return Err(bad());
    }
    let (gh, gw) = (h / p, w / p);
    let len = shape.iter().try_fold(1usize, |a, d| a.checked_mul(*d)).ok_or_else(bad)?;
    if pixels.len() != len {
        return Err(Error::Length { operand: "pixels", shape: format!("{shape:?}"), expected: len, got: pixels.len() });
    }
    let row = [channels, p, p].iter().try_fold(1usize, |a, d| a.checked_mul(*d)).ok_or_else(bad)?;
    let want = [batch, gh, gw, row].iter().try_fold(1usize, |a, d| a.checked_mul(*d)).ok_or_else(bad)?;
    if out.len() != want {
        let shape = format!("[{batch}, {}, {row}]", gh * gw);
        return Err(Error::Length { operand: "out", shape, expected: want, got: out.len() });
    }
    if want == 0 {
        return Ok(());
    }
    // One job per (batch row, row of patches): `gw` output rows, read from `p` image rows of
    // each channel.
    out.par_chunks_mut(gw * row).enumerate().for_each(|(job, out)| {
        let (b, gy) = (job / gh, job % gh);
        for (gx, patch) in out.chunks_exact_mut(row).enumerate() {
            for (run, dst) in patch.chunks_exact_mut(p).enumerate() {
                let (c, y) = (run / p, run % p);
                let start = ((b * channels + c) * h + gy * p + y) * w + gx * p;
                dst.copy_from_slice(&pixels[start..start + p]);
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the definition, element by element, with a remainder of rows and columns that
    /// makes no whole patch.
    #[test]
    fn rows_follow_the_definition() {
        let shape @ [batch, channels, h, w] = [2, 3, 11, 13];
        let p = 4;
        let pixels: Vec<u32> = (0..(batch * channels * h * w) as u32).collect();
        let (gh, gw) = (h / p, w / p);
        let mut out = vec![u32::MAX; batch * gh * gw * channels * p * p];
        patch_rows(&pixels, shape, p, &mut out).unwrap();
        let mut i = 0;
        for b in 0..batch {
            for gy in 0..gh {
                for gx in 0..gw {
                    for c in 0..channels {
                        for y in 0..p {
                            for x in 0..p {
                                assert_eq!(out[i], pixels[((b * channels + c) * h + gy * p + y) * w + gx * p + x]);
                                i += 1;
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn bad_shapes_are_refused() {
        let pixels = [0u8; 12];
        let mut out = [0u8; 12];
        assert!(patch_rows(&pixels, [1, 3, 2, 2], 0, &mut out).is_err(), "patch 0");
        assert!(patch_rows(&pixels, [1, 3, 2, 3], 2, &mut out).is_err(), "pixels length");
        assert!(patch_rows(&pixels, [1, 3, 2, 2], 2, &mut out[..11]).is_err(), "out length");
        assert!(patch_rows(&pixels, [usize::MAX, 3, 2, 2], 2, &mut out).is_err(), "overflow");
        // An image smaller than one patch has no rows.
        assert!(patch_rows(&pixels, [1, 3, 2, 2], 3, &mut []).is_ok());
    }
}
