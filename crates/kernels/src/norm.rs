//! Row normalisations producing bf16, computed in f32 and parallel over rows: Gemma's RMSNorm
//! (read from its f32 residual stream) and LayerNorm (SigLIP, bf16 in).
//!
//! Burn's Flex runs each of the norm's steps (square, mean, add, sqrt, reciprocal, two products,
//! casts) as its own single-threaded pass; here each row is read once for its statistics and
//! once to write, on every core.

#![allow(unsafe_code)] // calls of the AVX-512 builds of the row loops (`rms_rows_avx512`, `layer_rows_avx512`)

use half::bf16;
use rayon::prelude::*;

use crate::cpu::CpuFeatures;
use crate::elementwise::{fold_lanes, to_bf16};
use crate::error::{Error, Result};

/// Rows per parallel job (rows are a few thousand values: a few rows amortise scheduling).
const ROWS: usize = 4;

/// `out = bf16(x / √(mean(x²) + eps) · scale)` per row of `hidden` values, as transformers'
/// `GemmaRMSNorm` in f32 (`scale` is `1 + weight`, already in f32).
pub fn rms_norm_bf16(x: &[f32], scale: &[f32], eps: f32, out: &mut [bf16]) -> Result<()> {
    let hidden = rows_of(x.len(), scale.len(), out.len())?;
    out.par_chunks_mut(ROWS * hidden).zip(x.par_chunks(ROWS * hidden)).for_each(|(out, x)| {
        #[cfg(target_arch = "x86_64")]
        if CpuFeatures::get().avx512f {
            // SAFETY: the CPU has AVX-512F (checked just above) and the rest the build enables.
            return unsafe { rms_rows_avx512(x, scale, eps, out) };
        }
        rms_rows(x, scale, eps, out)
    });
    Ok(())
}

#[inline(always)]
fn rms_rows(x: &[f32], scale: &[f32], eps: f32, out: &mut [bf16]) {
    let hidden = scale.len();
    for (out, x) in out.chunks_exact_mut(hidden).zip(x.chunks_exact(hidden)) {
        let mean_sq = fold_lanes(x, 0.0, |v| v * v, |a, b| a + b) / hidden as f32;
        let inv = 1.0 / (mean_sq + eps).sqrt();
        out.iter_mut().zip(x.iter().zip(scale)).for_each(|(o, (v, s))| *o = to_bf16(v * inv * s));
    }
}

/// [`rms_rows`] compiled for AVX-512 (its loops vectorise 16 wide; the same operations in the
/// same order, so the same bits). A named function: a closure this size handed to a
/// `target_feature` wrapper is not inlined into it and would run 4 wide.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
fn rms_rows_avx512(x: &[f32], scale: &[f32], eps: f32, out: &mut [bf16]) {
    rms_rows(x, scale, eps, out)
}

/// `out = bf16((x − mean) / √(var + eps) · gamma + beta)` per row (biased variance, as
/// `nn.LayerNorm`), `x` in bf16, statistics and affine in f32.
pub fn layer_norm_bf16(x: &[bf16], gamma: &[f32], beta: Option<&[f32]>, eps: f32, out: &mut [bf16]) -> Result<()> {
    let hidden = rows_of(x.len(), gamma.len(), out.len())?;
    if let Some(beta) = beta
        && beta.len() != hidden
    {
        return Err(Error::Length { operand: "beta", shape: format!("[{hidden}]"), expected: hidden, got: beta.len() });
    }
    out.par_chunks_mut(ROWS * hidden).zip(x.par_chunks(ROWS * hidden)).for_each(|(out, x)| {
        let mut row = vec![0f32; hidden];
        #[cfg(target_arch = "x86_64")]
        if CpuFeatures::get().avx512f {
            // SAFETY: the CPU has AVX-512F (checked just above) and the rest the build enables.
            return unsafe { layer_rows_avx512(x, gamma, beta, eps, out, &mut row) };
        }
        layer_rows(x, gamma, beta, eps, out, &mut row)
    });
    Ok(())
}

/// Rows of `x` normalised into `out`, through the f32 buffer `row` (`hidden` = `gamma.len()`).
#[inline(always)]
fn layer_rows(x: &[bf16], gamma: &[f32], beta: Option<&[f32]>, eps: f32, out: &mut [bf16], row: &mut [f32]) {
    let hidden = gamma.len();
    for (out, x) in out.chunks_exact_mut(hidden).zip(x.chunks_exact(hidden)) {
        row.iter_mut().zip(x).for_each(|(r, v)| *r = v.to_f32());
        let mean = fold_lanes(row, 0.0, |v| v, |a, b| a + b) / hidden as f32;
        let var = fold_lanes(row, 0.0, |v| (v - mean) * (v - mean), |a, b| a + b) / hidden as f32;
        let inv = 1.0 / (var + eps).sqrt();
        match beta {
            Some(beta) => out
                .iter_mut()
                .zip(row.iter().zip(gamma.iter().zip(beta)))
                .for_each(|(o, (r, (g, b)))| *o = to_bf16((r - mean) * inv * g + b)),
            None => {
                out.iter_mut().zip(row.iter().zip(gamma)).for_each(|(o, (r, g))| *o = to_bf16((r - mean) * inv * g))
            }
        }
    }
}

/// [`layer_rows`] compiled for AVX-512 (see [`rms_rows_avx512`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
fn layer_rows_avx512(x: &[bf16], gamma: &[f32], beta: Option<&[f32]>, eps: f32, out: &mut [bf16], row: &mut [f32]) {
    layer_rows(x, gamma, beta, eps, out, row)
}

/// The row width (`scale`'s length), after checking `x` and `out` hold whole rows of it.
fn rows_of(x: usize, hidden: usize, out: usize) -> Result<usize> {
    if hidden == 0 || !x.is_multiple_of(hidden) {
        return Err(Error::Length {
            operand: "x",
            shape: format!("[rows, {hidden}]"),
            expected: x.next_multiple_of(hidden.max(1)),
            got: x,
        });
    }
    if out != x {
        return Err(Error::Length { operand: "out", shape: format!("[rows, {hidden}]"), expected: x, got: out });
    }
    Ok(hidden)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_norm_matches_the_formula() {
        let x: Vec<f32> = (0..3 * 40).map(|i| ((i * 17) % 23) as f32 - 11.0).collect();
        let scale: Vec<f32> = (0..40).map(|i| 1.0 + i as f32 / 40.0).collect();
        let mut out = vec![bf16::ZERO; x.len()];
        rms_norm_bf16(&x, &scale, 1e-6, &mut out).unwrap();
        for (r, row) in x.chunks(40).enumerate() {
            let rms = (row.iter().map(|v| f64::from(v * v)).sum::<f64>() / 40.0 + 1e-6).sqrt();
            for i in 0..40 {
                let want = f64::from(row[i]) / rms * f64::from(scale[i]);
                let got = out[r * 40 + i].to_f64();
                assert!((got - want).abs() <= want.abs() * 2f64.powi(-8) + 1e-6, "{got} vs {want}");
            }
        }
        assert!(rms_norm_bf16(&x[1..], &scale, 1e-6, &mut out[1..]).is_err());
    }

    #[test]
    fn layer_norm_matches_the_formula() {
        let x: Vec<bf16> = (0..2 * 30).map(|i| bf16::from_f32(((i * 7) % 13) as f32 / 4.0 + 100.0)).collect();
        let gamma: Vec<f32> = (0..30).map(|i| 0.5 + i as f32 / 30.0).collect();
        let beta: Vec<f32> = (0..30).map(|i| i as f32 / 10.0 - 1.0).collect();
        let mut out = vec![bf16::ZERO; x.len()];
        layer_norm_bf16(&x, &gamma, Some(&beta), 1e-6, &mut out).unwrap();
        for (r, row) in x.chunks(30).enumerate() {
            let v: Vec<f64> = row.iter().map(|x| x.to_f64()).collect();
            let mean = v.iter().sum::<f64>() / 30.0;
            let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 30.0;
            for i in 0..30 {
                let want = (v[i] - mean) / (var + 1e-6).sqrt() * f64::from(gamma[i]) + f64::from(beta[i]);
                let got = out[r * 30 + i].to_f64();
                assert!((got - want).abs() <= want.abs() * 2f64.powi(-8) + 1e-5, "{got} vs {want}");
            }
        }
        assert!(layer_norm_bf16(&x, &gamma, Some(&beta[1..]), 1e-6, &mut out).is_err());
    }
}
