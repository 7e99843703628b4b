//! Fused, threaded element-wise kernels on bf16 tensors: the tanh GELU and GeGLU's
//! `gelu(gate) · up`, one pass each, computed in f32; residual additions; division by a scalar.
//!
//! Burn's Flex runs each element-wise op as its own single-threaded pass (the tanh GELU is
//! eight of them, with a scalar libm `tanhf` per element); here one pass reads bf16, computes in
//! f32 and writes bf16, vectorised and split over rayon's threads.
//!
//! `0.5·x·(1 + tanh(u))` is evaluated as `x / (1 + e^(−2u))` (the same function: `½(1 + tanh u)`
//! is the logistic of `2u`), which has no cancellation for large negative `x`; `e^v` is a
//! branch-free polynomial (Cody–Waite reduction, degree 7, ≤ 2 ulp on the clamped range) so the
//! loop vectorises. GELU's relative error is ≤ 4·10⁻⁶ (most of it the f32 rounding of `u`, which
//! the libm formula shares), far below bf16's rounding of the output (2⁻⁹ ≈ 2·10⁻³).
#![allow(unsafe_code)] // the AVX-512 build of the loop is a `#[target_feature]` function

use std::mem::MaybeUninit;

use half::bf16;
use rayon::prelude::*;

use crate::cpu::CpuFeatures;
use crate::error::{Error, Result};

/// Elements per parallel job: large enough to amortise scheduling, small enough to balance.
const CHUNK: usize = 16 * 1024;

/// `out = gelu_tanh(x)` (`gelu_pytorch_tanh`), element-wise.
pub fn gelu_tanh_bf16(x: &[bf16], out: &mut [bf16]) -> Result<()> {
    same_len("out", x.len(), out.len())?;
    out.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(|(out, x)| run(|| gelu_loop(x, None, out)));
    Ok(())
}

/// `out = gelu_tanh(gate) · up`, element-wise (Gemma's GeGLU), rounded to bf16 once.
pub fn gelu_tanh_mul_bf16(gate: &[bf16], up: &[bf16], out: &mut [bf16]) -> Result<()> {
    same_len("up", gate.len(), up.len())?;
    same_len("out", gate.len(), out.len())?;
    out.par_chunks_mut(CHUNK)
        .zip(gate.par_chunks(CHUNK).zip(up.par_chunks(CHUNK)))
        .for_each(|(out, (gate, up))| run(|| gelu_loop(gate, Some(up), out)));
    Ok(())
}

/// `out[i] = bf16(acc[i] + bias[i])` (without `bias`: `bf16(acc[i])`), rounded to nearest
/// even: a product's f32 sums to its bf16 result, 16 wide where the CPU has AVX-512. (A named
/// function, not a closure handed to [`run`]: a closure that large is not inlined into the
/// AVX-512 build and would run 4 wide.)
pub(crate) fn round_into(acc: &[f32], bias: Option<&[f32]>, out: &mut [bf16]) {
    // SAFETY: `MaybeUninit<bf16>` has bf16's layout, and only initialised values are written
    // through the view (so `out` stays initialised).
    let out = unsafe { &mut *(std::ptr::from_mut(out) as *mut [MaybeUninit<bf16>]) };
    #[cfg(target_arch = "x86_64")]
    if CpuFeatures::get().avx512f {
        // SAFETY: the CPU has AVX-512F (checked just above) and the rest the wrapper enables.
        return unsafe { round_into_avx512(acc, bias, out) };
    }
    round_into_inline(acc, bias, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
fn round_into_avx512(acc: &[f32], bias: Option<&[f32]>, out: &mut [MaybeUninit<bf16>]) {
    round_into_inline(acc, bias, out)
}

/// [`round_into`]'s loop; `out` may be uninitialised (a product's freshly allocated result):
/// every value is written.
#[inline(always)]
pub(crate) fn round_into_inline(acc: &[f32], bias: Option<&[f32]>, out: &mut [MaybeUninit<bf16>]) {
    match bias {
        Some(b) => out.iter_mut().zip(acc.iter().zip(b)).for_each(|(o, (a, b))| _ = o.write(to_bf16(a + b))),
        None => out.iter_mut().zip(acc).for_each(|(o, a)| _ = o.write(to_bf16(*a))),
    }
}

/// [`round_into_inline`] followed by the tanh GELU of each rounded value, rounded again: exactly
/// a bf16 product's output passed through [`gelu_tanh_bf16`], without storing it in between.
#[inline(always)]
pub(crate) fn round_gelu_into_inline(acc: &[f32], bias: Option<&[f32]>, out: &mut [MaybeUninit<bf16>]) {
    let g = |v: f32| to_bf16(gelu(from_bf16(to_bf16(v))));
    match bias {
        Some(b) => out.iter_mut().zip(acc.iter().zip(b)).for_each(|(o, (a, b))| _ = o.write(g(a + b))),
        None => out.iter_mut().zip(acc).for_each(|(o, a)| _ = o.write(g(*a))),
    }
}

/// `out = bf16(gelu_tanh(gate) · bf16(acc + bias))`: a product's sums rounded to its bf16 output
/// `up`, then exactly [`gelu_tanh_mul_bf16`]`(gate, up)`'s value, without storing `up` between.
#[inline(always)]
pub(crate) fn round_gelu_mul_into_inline(
    acc: &[f32],
    bias: Option<&[f32]>,
    gate: &[bf16],
    out: &mut [MaybeUninit<bf16>],
) {
    let g = |up: f32, gate: bf16| to_bf16(gelu(from_bf16(gate)) * from_bf16(to_bf16(up)));
    let values = out.iter_mut().zip(acc.iter().zip(gate));
    match bias {
        Some(b) => values.zip(b).for_each(|((o, (a, g8)), b)| _ = o.write(g(a + b, *g8))),
        None => values.for_each(|(o, (a, g8))| _ = o.write(g(*a, *g8))),
    }
}

/// `out = residual + y` for a bf16 residual stream (SigLIP's): the sum of the two bf16 values in
/// f32, rounded to bf16 once — a bf16 tensor addition — threaded and vectorised.
pub fn add_bf16(residual: &[bf16], y: &[bf16], out: &mut [bf16]) -> Result<()> {
    residual_pass(residual, y, out, add_bf16_inline, add_bf16_avx512)
}

/// `out = residual + f32(y)` for an f32 residual stream (Gemma's) and a bf16 block output: the
/// cast and the addition in one threaded pass.
pub fn add_f32_bf16(residual: &[f32], y: &[bf16], out: &mut [f32]) -> Result<()> {
    residual_pass(residual, y, out, add_f32_bf16_inline, add_f32_bf16_avx512)
}

/// `out = bf16(f32(x) / divisor)`: a bf16 tensor divided by an f32 scalar as PyTorch divides
/// one by a Python float (the division in f32, the scalar never rounded to bf16 — Burn's own
/// bf16 `div_scalar` rounds it first), threaded and vectorised.
pub fn div_scalar_bf16(x: &[bf16], divisor: f32, out: &mut [bf16]) -> Result<()> {
    same_len("out", x.len(), out.len())?;
    out.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(|(out, x)| {
        #[cfg(target_arch = "x86_64")]
        if CpuFeatures::get().avx512f {
            // SAFETY: the CPU has AVX-512F (checked just above) and the rest the build enables.
            return unsafe { div_scalar_avx512(x, divisor, out) };
        }
        div_scalar_inline(x, divisor, out)
    });
    Ok(())
}

#[inline(always)]
fn div_scalar_inline(x: &[bf16], divisor: f32, out: &mut [bf16]) {
    out.iter_mut().zip(x).for_each(|(o, x)| *o = to_bf16(from_bf16(*x) / divisor));
}

/// [`div_scalar_inline`] compiled for AVX-512 (a named function: see `norm::rms_rows_avx512`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
fn div_scalar_avx512(x: &[bf16], divisor: f32, out: &mut [bf16]) {
    div_scalar_inline(x, divisor, out)
}

/// One chunk of a residual pass: `(residual, y, out)`.
type Chunk<R, O> = fn(&[R], &[bf16], &mut [O]);

/// The lengths checked, then one chunk function over matching chunks on every core: its
/// AVX-512 build `avx512` where the CPU has it, `plain` elsewhere.
fn residual_pass<R: Sync, O: Send>(
    residual: &[R],
    y: &[bf16],
    out: &mut [O],
    plain: Chunk<R, O>,
    avx512: unsafe fn(&[R], &[bf16], &mut [O]),
) -> Result<()> {
    same_len("y", residual.len(), y.len())?;
    same_len("out", residual.len(), out.len())?;
    let wide = CpuFeatures::get().avx512f;
    out.par_chunks_mut(CHUNK).zip(residual.par_chunks(CHUNK).zip(y.par_chunks(CHUNK))).for_each(|(out, (r, y))| {
        if wide {
            // SAFETY: the CPU has AVX-512F (checked above) and the rest the build enables.
            unsafe { avx512(r, y, out) }
        } else {
            plain(r, y, out)
        }
    });
    Ok(())
}

#[inline(always)]
fn add_bf16_inline(r: &[bf16], y: &[bf16], out: &mut [bf16]) {
    out.iter_mut().zip(r.iter().zip(y)).for_each(|(o, (r, y))| *o = to_bf16(from_bf16(*r) + from_bf16(*y)));
}

#[inline(always)]
fn add_f32_bf16_inline(r: &[f32], y: &[bf16], out: &mut [f32]) {
    out.iter_mut().zip(r.iter().zip(y)).for_each(|(o, (r, y))| *o = r + from_bf16(*y));
}

/// [`add_bf16_inline`] compiled for AVX-512 (a named function: see `norm::rms_rows_avx512`;
/// off x86-64, where `avx512f` is never reported, the plain loop).
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma"))]
fn add_bf16_avx512(r: &[bf16], y: &[bf16], out: &mut [bf16]) {
    add_bf16_inline(r, y, out)
}

/// [`add_f32_bf16_inline`] compiled for AVX-512 (as [`add_bf16_avx512`]).
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma"))]
fn add_f32_bf16_avx512(r: &[f32], y: &[bf16], out: &mut [f32]) {
    add_f32_bf16_inline(r, y, out)
}

/// Runs `f` compiled for AVX-512 when the CPU has it (the loop then vectorises 16 wide).
pub(crate) fn run<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if CpuFeatures::get().avx512f {
        // SAFETY: the CPU has AVX-512F (checked just above).
        return unsafe { avx512(f) };
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
fn avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[inline(always)]
fn gelu_loop(x: &[bf16], up: Option<&[bf16]>, out: &mut [bf16]) {
    match up {
        None => out.iter_mut().zip(x).for_each(|(o, x)| *o = to_bf16(gelu(from_bf16(*x)))),
        Some(up) => out
            .iter_mut()
            .zip(x.iter().zip(up))
            .for_each(|(o, (g, u))| *o = to_bf16(gelu(from_bf16(*g)) * from_bf16(*u))),
    }
}

/// tanh GELU in f32: `x / (1 + e^(−2u))`, `u = √(2/π)·(x + 0.044715·x³)`.
#[inline(always)]
pub(crate) fn gelu(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    let u = x * (SQRT_2_OVER_PI * 0.044_715 * x).mul_add(x, SQRT_2_OVER_PI);
    x / (1.0 + exp(-2.0 * u))
}

/// `f` folded over `map(x[i])` in 16 independent lanes (64-byte chunks, then the tail), then
/// across them: a reduction the compiler vectorises, unlike a serial fold (one dependent
/// operation per value). The order is fixed, so results are deterministic. Shared by the
/// softmax (maximum, sum) and the norms (sums of values and squares).
#[inline(always)]
pub(crate) fn fold_lanes(x: &[f32], init: f32, map: impl Fn(f32) -> f32, f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [init; 16];
    let chunks = x.chunks_exact(16);
    let tail = chunks.remainder().iter().fold(init, |a, b| f(a, map(*b)));
    for chunk in chunks {
        for (a, x) in acc.iter_mut().zip(chunk) {
            *a = f(*a, map(*x));
        }
    }
    acc.iter().fold(tail, |a, b| f(a, *b))
}

/// `e^v` without branches: `v = n·ln2 + r`, `|r| ≤ ln2/2`, `e^r` by a degree-7 Taylor
/// polynomial (truncation < 2⁻²⁷ on that range), scaled by `2^n` through the exponent bits. The
/// input is clamped to [−87, 88] (beyond which GELU is exactly 0 or x in f32 anyway).
///
/// The reduction and the polynomial (Horner) are fused multiply-adds: half the operations and
/// half the dependent chain of separate products and sums (measured: SigLIP's attention
/// 1.42 → 1.30 ms, its fc1 with the GELU epilogue 1.80 → 1.69 ms), and more accurate. `mul_add`
/// is correctly rounded everywhere, so every build gives the same bits; the AVX-512 builds
/// (which enable `fma`) emit `vfmadd`, a build without FMA calls libm's `fmaf` (correct, slow:
/// the models only take these kernels on CPUs with AVX-512).
#[inline(always)]
pub(crate) fn exp(v: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75; // ln 2 split so that n·LN2_HI is exact
    const LN2_LO: f32 = 1.428_606_8e-6;
    const ROUND: f32 = 12_582_912.0; // 1.5·2²³: adding it rounds to an integer (ties to even)
    let v = v.clamp(-87.0, 88.0);
    let t = v.mul_add(LOG2_E, ROUND);
    let n = t - ROUND;
    let r = (-n).mul_add(LN2_LO, (-n).mul_add(LN2_HI, v));
    let p = (1.0f32 / 5040.0).mul_add(r, 1.0 / 720.0);
    let p = p.mul_add(r, 1.0 / 120.0).mul_add(r, 1.0 / 24.0).mul_add(r, 1.0 / 6.0);
    let p = p.mul_add(r, 0.5).mul_add(r, 1.0).mul_add(r, 1.0);
    // 2^n from t's bits, which hold n in the low mantissa bits (t = 1.5·2²³ + n, |n| ≤ 127):
    // integer ops that vectorise, unlike the saturating `n as i32`.
    let scale = f32::from_bits(t.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127) << 23);
    p * scale
}

#[inline(always)]
pub(crate) fn from_bf16(v: bf16) -> f32 {
    f32::from_bits(u32::from(v.to_bits()) << 16)
}

/// Round to nearest even, NaN kept quiet (as `half::bf16::from_f32`, without its branches).
#[inline(always)]
pub(crate) fn to_bf16(v: f32) -> bf16 {
    let bits = v.to_bits();
    // Wrapping: only NaN patterns can overflow, and they take the other branch.
    let rounded = (bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) >> 16) as u16;
    bf16::from_bits(if v.is_nan() { ((bits >> 16) as u16) | 0x40 } else { rounded })
}

fn same_len(operand: &'static str, expected: usize, got: usize) -> Result<()> {
    if expected == got {
        return Ok(());
    }
    Err(Error::Length { operand, shape: format!("[{expected}] (as the input)"), expected, got })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulps_of_libm() {
        let mut v = -87.0f32;
        while v < 88.0 {
            let (got, want) = (exp(v), v.exp());
            let ulps = (got.to_bits() as i64 - want.to_bits() as i64).abs();
            assert!(ulps <= 2, "exp({v}) = {got}, libm {want} ({ulps} ulps)");
            v += 0.013;
        }
    }

    #[test]
    fn gelu_matches_the_tanh_formula() {
        for i in -2000..2000 {
            let x = i as f32 / 100.0;
            let want = 0.5
                * x as f64
                * (1.0 + ((0.797_884_560_802_865_4 * (x as f64 + 0.044_715 * (x as f64).powi(3))).tanh()));
            let got = gelu(x) as f64;
            assert!((got - want).abs() <= 4e-6 * want.abs() + 1e-12, "gelu({x}) = {got}, want {want}");
        }
        // Beyond the clamp the result is a magnitude below 1e-30 instead of 0 (PyTorch's
        // formula gives -0): both round to zero-like bf16 values the model cannot tell apart.
        assert!(gelu(-200.0).abs() < 1e-30);
        assert_eq!(gelu(200.0), 200.0);
    }

    #[test]
    fn bf16_rounding_matches_half() {
        for bits in (0..u32::MAX).step_by(65_521) {
            let v = f32::from_bits(bits);
            let (ours, theirs) = (to_bf16(v), bf16::from_f32(v));
            assert!(ours == theirs || (v.is_nan() && ours.is_nan()), "{v:e}: {ours} vs {theirs}");
        }
    }

    #[test]
    fn fused_kernels_equal_the_scalar_formula_and_check_lengths() {
        let x: Vec<bf16> = (0..40_000).map(|i| bf16::from_f32((i as f32 - 20_000.0) / 1_500.0)).collect();
        let up: Vec<bf16> = (0..40_000).map(|i| bf16::from_f32(1.0 + (i % 7) as f32 / 8.0)).collect();
        let mut out = vec![bf16::ZERO; x.len()];
        gelu_tanh_bf16(&x, &mut out).unwrap();
        for (o, x) in out.iter().zip(&x) {
            assert_eq!(*o, bf16::from_f32(gelu(x.to_f32())));
        }
        gelu_tanh_mul_bf16(&x, &up, &mut out).unwrap();
        for ((o, x), u) in out.iter().zip(&x).zip(&up) {
            assert_eq!(*o, bf16::from_f32(gelu(x.to_f32()) * u.to_f32()));
        }
        assert!(gelu_tanh_bf16(&x, &mut out[1..]).is_err());
        assert!(gelu_tanh_mul_bf16(&x, &up[1..], &mut out).is_err());
    }

    #[test]
    fn division_is_in_f32_by_the_f32_divisor() {
        let x: Vec<bf16> = (0..40_000).map(|i| bf16::from_f32((i as f32 - 20_000.0) / 300.0)).collect();
        let d = 2048f32.sqrt(); // not a bf16 value: rounding it first would change results
        let mut out = vec![bf16::ZERO; x.len()];
        div_scalar_bf16(&x, d, &mut out).unwrap();
        for (o, x) in out.iter().zip(&x) {
            assert_eq!(*o, bf16::from_f32(x.to_f32() / d));
        }
        assert!(div_scalar_bf16(&x, d, &mut out[1..]).is_err());
    }

    #[test]
    fn residual_additions_equal_the_scalar_formula_and_check_lengths() {
        let a: Vec<bf16> = (0..40_000).map(|i| bf16::from_f32((i as f32 - 20_000.0) / 300.0)).collect();
        let b: Vec<bf16> = (0..40_000).map(|i| bf16::from_f32(((i * 7) % 101) as f32 / 37.0 - 1.3)).collect();
        let mut out = vec![bf16::ZERO; a.len()];
        add_bf16(&a, &b, &mut out).unwrap();
        for ((o, a), b) in out.iter().zip(&a).zip(&b) {
            assert_eq!(*o, bf16::from_f32(a.to_f32() + b.to_f32()));
        }
        let wide: Vec<f32> = a.iter().map(|v| v.to_f32() * 1.000_1).collect();
        let mut sums = vec![0.0; a.len()];
        add_f32_bf16(&wide, &b, &mut sums).unwrap();
        for ((o, a), b) in sums.iter().zip(&wide).zip(&b) {
            assert_eq!(*o, a + b.to_f32());
        }
        assert!(add_bf16(&a, &b[1..], &mut out).is_err());
        assert!(add_f32_bf16(&wide, &b, &mut sums[1..]).is_err());
    }
}
