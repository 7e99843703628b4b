//! `Y = X·Wᵀ` in f32 for a few rows `X: [m, cols]` and a row-major `W: [rows, cols]` (PyTorch's
//! layout for LSTM weights): the memory-bound products of a recurrent head, on every core.
//!
//! Burn's Flex runs these through a general GEMM made for large matrices: ≈ 28 GB/s for one row
//! against the LSTM head's `4096 × 1024` recurrent weight, and slower still for the window's 8
//! input rows against `W_ih`. Here each weight row is read once (it then stays in L1 for the `m`
//! dot products), every core takes its share of the rows, and a matrix that fits the last-level
//! cache (16.8 MB here, reused by every step of the window) is read at cache speed. Each output
//! is one dot product over contiguous memory with 4 × 16 f32 lanes of fused multiply-adds, summed
//! in a fixed order — deterministic, and as accurate as any f32 dot product (a different order
//! from Burn's, so results differ from its in the last bits).
#![allow(unsafe_code)] // the AVX-512 build of the loop is a `#[target_feature]` function

use rayon::prelude::*;

use crate::cpu::CpuFeatures;
use crate::error::{Error, Result};

/// Weight rows per parallel job.
const ROWS: usize = 64;

/// Most input rows [`matmul_nt_f32`] takes (beyond that a blocked GEMM is the right tool).
pub const MATMUL_NT_MAX_ROWS: usize = 16;

/// `out[i·rows + r] = Σ_c x[i·cols + c]·w[r·cols + c]` for `m ≤ MATMUL_NT_MAX_ROWS` input rows.
/// Needs AVX-512F (`Err(Error::Unsupported)` without it, so that callers keep their own path: a
/// portable build would only be slower than theirs).
pub fn matmul_nt_f32(x: &[f32], m: usize, w: &[f32], rows: usize, cols: usize, out: &mut [f32]) -> Result<()> {
    let shape = || format!("x [{m}, {cols}], w [{rows}, {cols}]");
    let bad = || Error::Shape { operand: "matmul_nt", shape: shape() };
    if m == 0 || m > MATMUL_NT_MAX_ROWS {
        return Err(bad());
    }
    let (w_len, x_len, out_len) = (rows.checked_mul(cols), m.checked_mul(cols), m.checked_mul(rows));
    let (Some(w_len), Some(x_len), Some(out_len)) = (w_len, x_len, out_len) else { return Err(bad()) };
    for (operand, got, expected) in [("w", w.len(), w_len), ("x", x.len(), x_len), ("out", out.len(), out_len)] {
        if got != expected {
            return Err(Error::Length { operand, shape: shape(), expected, got });
        }
    }
    if !CpuFeatures::get().avx512f {
        return Err(Error::Unsupported { what: "matmul_nt_f32 without AVX-512F" });
    }
    if cols == 0 || rows == 0 {
        out.fill(0.0);
        return Ok(());
    }
    // Jobs write `[rows of w, m]` (contiguous per job); one row needs no transpose back.
    let mut transposed = if m == 1 { Vec::new() } else { vec![0f32; out_len] };
    let target: &mut [f32] = if m == 1 { out } else { &mut transposed };
    target.par_chunks_mut(ROWS * m).zip(w.par_chunks(ROWS * cols)).for_each(|(out, w)| {
        // SAFETY: the CPU has AVX-512F (checked above), all `rows_avx512` enables.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            rows_avx512(w, x, cols, out)
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("AVX-512F is never reported off x86_64")
    });
    if m > 1 {
        for (r, values) in transposed.chunks_exact(m).enumerate() {
            for (i, v) in values.iter().enumerate() {
                out[i * rows + r] = *v;
            }
        }
    }
    Ok(())
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn rows_avx512(w: &[f32], x: &[f32], cols: usize, out: &mut [f32]) {
    let m = x.len() / cols;
    for (out, row) in out.chunks_exact_mut(m).zip(w.chunks_exact(cols)) {
        for (o, x) in out.iter_mut().zip(x.chunks_exact(cols)) {
            *o = dot(row, x);
        }
    }
}

/// `Σ a[i]·b[i]` over equal-length slices: four accumulators of 16 lanes over 64-value chunks,
/// the rest 16 (then a masked 16) at a time into the first, then summed in a fixed order.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::{
        _mm512_add_ps, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_maskz_loadu_ps, _mm512_reduce_add_ps, _mm512_setzero_ps,
    };
    let n = a.len().min(b.len());
    let (a, b) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    while i + 64 <= n {
        for (k, acc) in acc.iter_mut().enumerate() {
            // SAFETY: i + 16k + 16 ≤ i + 64 ≤ n: both 16-value loads are inside the slices.
            let (x, y) = unsafe { (_mm512_loadu_ps(a.add(i + 16 * k)), _mm512_loadu_ps(b.add(i + 16 * k))) };
            *acc = _mm512_fmadd_ps(x, y, *acc);
        }
        i += 64;
    }
    while i + 16 <= n {
        // SAFETY: i + 16 ≤ n.
        let (x, y) = unsafe { (_mm512_loadu_ps(a.add(i)), _mm512_loadu_ps(b.add(i))) };
        acc[0] = _mm512_fmadd_ps(x, y, acc[0]);
        i += 16;
    }
    if i < n {
        let mask = (1u16 << (n - i)) - 1; // n − i < 16
        // SAFETY: the mask selects the n − i values left; masked-off lanes are not read.
        let (x, y) = unsafe { (_mm512_maskz_loadu_ps(mask, a.add(i)), _mm512_maskz_loadu_ps(mask, b.add(i))) };
        acc[0] = _mm512_fmadd_ps(x, y, acc[0]);
    }
    _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against an f64 evaluation (to f32 rounding of a dot product), for one and several rows,
    /// a column tail and a partial last job; wrong sizes refused.
    #[test]
    fn matches_f64_and_checks_sizes() {
        let (rows, cols) = (130, 203);
        let w: Vec<f32> = (0..rows * cols).map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0).collect();
        for m in [1, 3, MATMUL_NT_MAX_ROWS] {
            let x: Vec<f32> = (0..m * cols).map(|i| ((i * 11) % 13) as f32 / 6.0 - 1.0).collect();
            let mut out = vec![0f32; m * rows];
            match matmul_nt_f32(&x, m, &w, rows, cols, &mut out) {
                Err(Error::Unsupported { .. }) => {
                    assert!(!CpuFeatures::get().avx512f);
                    return;
                }
                other => other.unwrap(),
            }
            for i in 0..m {
                for r in 0..rows {
                    let terms = (0..cols).map(|c| f64::from(w[r * cols + c]) * f64::from(x[i * cols + c]));
                    let (want, scale): (f64, f64) = terms.fold((0.0, 0.0), |(s, a), t| (s + t, a + t.abs()));
                    let got = f64::from(out[i * rows + r]);
                    assert!((got - want).abs() <= scale * 1e-6, "m {m}, [{i}, {r}]: {got} vs {want}");
                }
            }
            assert!(matmul_nt_f32(&x[1..], m, &w, rows, cols, &mut out).is_err());
            assert!(matmul_nt_f32(&x, m, &w[1..], rows, cols, &mut out).is_err());
        }
        let mut out = vec![0f32; 17 * rows];
        assert!(matmul_nt_f32(&vec![0.0; 17 * cols], 17, &w, rows, cols, &mut out).is_err(), "too many rows");
    }
}
