//! Pillow-exact BICUBIC resize of 8-bit RGB images.
//!
//! PaliGemma's `SiglipImageProcessor` resizes with `PIL.Image.resize(..., resample=BICUBIC)` and
//! the model saw the uint8 result. A different resampler (the `image` crate's CatmullRom, or
//! float bicubic) moves logits by more than 1.0 on the tiny fixture model, so this module
//! reproduces Pillow's `libImaging/Resample.c` exactly: the same separable two-pass algorithm,
//! the widened antialiasing support when downscaling, the 22-bit fixed-point coefficients and
//! the rounding/clamping of each pass to uint8. `fast_image_resize` was considered: its filters
//! follow Pillow's, but it does not promise bit-exact results, and parity here is checked bit
//! for bit (`*.resized_uint8`).
//!
//! Reference: Pillow `src/libImaging/Resample.c` (`precompute_coeffs`,
//! `normalize_coeffs_8bpc`, `ImagingResampleHorizontal_8bpc`, `ImagingResampleVertical_8bpc`).

/// Fixed-point precision of Pillow's 8-bit resampling coefficients (`32 - 8 - 2`).
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Pillow's bicubic kernel support radius (in source pixels, before widening).
const BICUBIC_SUPPORT: f64 = 2.0;

/// Pillow's bicubic kernel (Keys cubic convolution with `a = -0.5`).
fn bicubic_filter(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Per-output-pixel source window and fixed-point weights along one axis.
struct Coefficients {
    /// Kernel slots per output pixel (`weights.len() / out_size`).
    ksize: usize,
    /// `(first source index, number of source pixels)` per output pixel.
    bounds: Vec<(usize, usize)>,
    /// Fixed-point weights, `ksize` per output pixel.
    weights: Vec<i32>,
}

/// Mirrors `precompute_coeffs` followed by `normalize_coeffs_8bpc` for the full-image box.
fn precompute_coeffs(in_size: usize, out_size: usize) -> Coefficients {
    let scale = in_size as f64 / out_size as f64;
    // Downscaling widens the kernel so every source pixel contributes (antialiasing).
    let filterscale = scale.max(1.0);
    let support = BICUBIC_SUPPORT * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // C's `(int)` truncates toward zero; negative starts are clamped to 0 right after.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let count = xmax.saturating_sub(xmin);
        let mut ww = 0.0;
        for (x, slot) in k.iter_mut().enumerate().take(count) {
            let w = bicubic_filter((x as f64 + xmin as f64 - center + 0.5) * ss);
            *slot = w;
            ww += w;
        }
        for (x, &w) in k.iter().enumerate().take(count) {
            let w = if ww != 0.0 { w / ww } else { w };
            let fixed = w * f64::from(1u32 << PRECISION_BITS);
            // `normalize_coeffs_8bpc`: round half away from zero, then truncate.
            weights[xx * ksize + x] = if w < 0.0 { (fixed - 0.5) as i32 } else { (fixed + 0.5) as i32 };
        }
        bounds.push((xmin, count));
    }
    Coefficients { ksize, bounds, weights }
}

/// Pillow's `clip8`: drop the fixed-point fraction (floor) and clamp to `0..=255`.
fn clip8(acc: i64) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Rounding offset every accumulator starts from (`1 << (PRECISION_BITS - 1)`).
const HALF: i64 = 1 << (PRECISION_BITS - 1);

/// Resizes an interleaved RGB (3 bytes per pixel, row-major) image with Pillow's BICUBIC filter.
///
/// Returns the `out_width × out_height × 3` result. Same-size input is returned unchanged, as
/// `PIL.Image.resize` does.
///
/// # Panics
/// If `rgb.len() != width * height * 3` or any size is zero (caller bugs; the image loader
/// guarantees both).
pub fn resize_bicubic_rgb(rgb: &[u8], width: usize, height: usize, out_width: usize, out_height: usize) -> Vec<u8> {
    const C: usize = 3;
    assert_eq!(rgb.len(), width * height * C, "RGB buffer does not match {width}x{height}");
    assert!(width > 0 && height > 0 && out_width > 0 && out_height > 0, "zero-sized resize");

    let vert = precompute_coeffs(height, out_height);
    // Pillow's horizontal pass only processes the source rows the vertical pass will read.
    let row_first = vert.bounds[0].0;
    let row_last = vert.bounds[out_height - 1].0 + vert.bounds[out_height - 1].1;

    let (mut src, mut src_w, mut row_offset) = (rgb.to_vec(), width, 0usize);
    if out_width != width {
        let horiz = precompute_coeffs(width, out_width);
        let rows = row_last - row_first;
        let mut tmp = vec![0u8; out_width * rows * C];
        for (y, out_row) in tmp.chunks_exact_mut(out_width * C).enumerate() {
            let in_row = &rgb[(y + row_first) * width * C..(y + row_first + 1) * width * C];
            for (xx, px) in out_row.chunks_exact_mut(C).enumerate() {
                let (xmin, count) = horiz.bounds[xx];
                let k = &horiz.weights[xx * horiz.ksize..xx * horiz.ksize + count];
                for (c, out) in px.iter_mut().enumerate() {
                    let acc = k
                        .iter()
                        .enumerate()
                        .fold(HALF, |acc, (x, &w)| acc + i64::from(in_row[(xmin + x) * C + c]) * i64::from(w));
                    *out = clip8(acc);
                }
            }
        }
        (src, src_w, row_offset) = (tmp, out_width, row_first);
    }
    if out_height == height {
        return src;
    }
    let mut out = vec![0u8; out_width * out_height * C];
    for (yy, out_row) in out.chunks_exact_mut(src_w * C).enumerate() {
        let (ymin, count) = vert.bounds[yy];
        let ymin = ymin - row_offset;
        let k = &vert.weights[yy * vert.ksize..yy * vert.ksize + count];
        for (i, out) in out_row.iter_mut().enumerate() {
            let acc = k
                .iter()
                .enumerate()
                .fold(HALF, |acc, (y, &w)| acc + i64::from(src[(ymin + y) * src_w * C + i]) * i64::from(w));
            *out = clip8(acc);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_size_is_identity() {
        let img: Vec<u8> = (0..4 * 3 * 3).map(|v| (v * 7 % 256) as u8).collect();
        assert_eq!(resize_bicubic_rgb(&img, 4, 3, 4, 3), img);
    }

    #[test]
    fn constant_image_stays_constant() {
        let img = vec![200u8; 7 * 5 * 3];
        for (w, h) in [(3, 2), (14, 11), (7, 9), (2, 5)] {
            assert!(resize_bicubic_rgb(&img, 7, 5, w, h).iter().all(|&v| v == 200), "{w}x{h}");
        }
    }

    #[test]
    fn weights_sum_to_one_in_fixed_point() {
        for (i, o) in [(97, 56), (40, 56), (61, 56), (5, 3)] {
            let c = precompute_coeffs(i, o);
            for xx in 0..o {
                let sum: i32 = c.weights[xx * c.ksize..(xx + 1) * c.ksize].iter().sum();
                assert!((sum - (1 << PRECISION_BITS)).abs() <= c.ksize as i32, "{i}->{o} px {xx}: {sum}");
            }
        }
    }

    #[test]
    fn overshoot_is_clamped() {
        // A hard edge upscaled with a negative-lobed kernel overshoots; Pillow clamps to 0..=255.
        let img: Vec<u8> = [0u8, 0, 0, 255, 255, 255].repeat(2);
        let out = resize_bicubic_rgb(&img, 2, 2, 8, 2);
        assert_eq!(out[0], 0);
        assert_eq!(out[out.len() - 1], 255);
    }
}
