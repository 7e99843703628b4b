//! Scaled dot-product attention on bf16 heads, both products on the packed bf16 kernels.
//!
//! Numerics are robovlm's f32 attention island on bf16 operands: scores `q·kᵀ` accumulated in
//! f32 (bf16 products are exact in f32), scale, optional soft-cap `c·tanh(s/c)` *before* the
//! additive bias, softmax in f32, and `p·v` with the f32 probabilities split into two bf16 parts
//! (hi + lo, 16 significant bits) accumulated in f32, rounded to bf16 once. (transformers' eager
//! bf16 attention rounds the probabilities to bf16 first; keeping them is closer to the f32
//! references and costs one more small product.) Grouped-query attention reads key/value head
//! `h / (heads / kv_heads)` for query head `h` without copying it.
//!
//! Work is organised for two cores as much as for many: keys and values are packed once per
//! key/value head (not once per query head: Gemma's 8 query heads share 1), then jobs of up to
//! 64 query rows run on the calling thread's share of rayon's pool — each job's score tile
//! (rows × keys f32) stays in cache, and its softmax is a vectorised pass (the exponential is
//! the branch-free polynomial of the GELU kernels, ≤ 2 ulp). Operands are read at arbitrary
//! strides and the result is written head-major or token-major, so a model's
//! `[batch, tokens, heads·head_dim]` projections enter and leave without head split/merge copies.
#![allow(unsafe_code)] // one call of the AVX-512 build of a job (`rows_avx512`)

use half::bf16;
use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;

use crate::cpu::CpuFeatures;
use crate::elementwise::{exp, fold_lanes, round_into, to_bf16};
use crate::error::{Error, Result};
use crate::gemm::{Isa, Lhs, copy_rows, product_serial};
use crate::kernel::{AMX_ROWS, MR};
use crate::packed::PackedBf16;

/// Sizes of one attention call: `q`/`out` `[batch, heads, queries, head_dim]`, `k`/`v`
/// `[batch, kv_heads, keys, head_dim]` (logical shapes; see [`HeadsLayout`] for the memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionShape {
    /// Batch rows.
    pub batch: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (divides `heads`).
    pub kv_heads: usize,
    /// Query positions.
    pub queries: usize,
    /// Key positions.
    pub keys: usize,
    /// Width of one head.
    pub head_dim: usize,
}

/// An additive f32 bias `[batch, heads, queries, keys]`, possibly broadcast: a stride of 0 over
/// batch or heads reuses the same `[queries, keys]` tile.
#[derive(Debug, Clone, Copy)]
pub struct AttentionBias<'a> {
    /// The values.
    pub values: &'a [f32],
    /// Elements between consecutive batch rows (0: broadcast).
    pub batch_stride: usize,
    /// Elements between consecutive heads (0: broadcast).
    pub head_stride: usize,
}

/// Where a `[batch, heads, rows, head_dim]` operand's values sit in its slice: element
/// `(b, h, r, c)` is at `offset + b·batch + h·head + r·row + c` (the head dimension is
/// contiguous). Any strides are accepted, zero included (a broadcast), as long as every element
/// lies inside the slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadsLayout {
    /// Index of element `(0, 0, 0, 0)`.
    pub offset: usize,
    /// Elements between consecutive batch rows.
    pub batch: usize,
    /// Elements between consecutive heads.
    pub head: usize,
    /// Elements between consecutive rows (positions) of one head.
    pub row: usize,
}

impl HeadsLayout {
    /// Row-major `[batch, heads, rows, head_dim]`.
    pub fn head_major(heads: usize, rows: usize, head_dim: usize) -> Self {
        HeadsLayout { offset: 0, batch: heads * rows * head_dim, head: rows * head_dim, row: head_dim }
    }

    /// Row-major `[batch, rows, heads, head_dim]`: a projection's `[batch, rows, heads·head_dim]`
    /// output seen per head, without a copy.
    pub fn token_major(heads: usize, rows: usize, head_dim: usize) -> Self {
        HeadsLayout { offset: 0, batch: rows * heads * head_dim, head: head_dim, row: heads * head_dim }
    }

    pub(crate) fn at(&self, b: usize, h: usize, r: usize) -> usize {
        self.offset + b * self.batch + h * self.head + r * self.row
    }

    /// The slice length that holds every element of a `[batch, heads, rows, d]` operand (`None`
    /// on overflow; 0 when a dimension is empty).
    pub(crate) fn extent(&self, batch: usize, heads: usize, rows: usize, d: usize) -> Option<usize> {
        if batch == 0 || heads == 0 || rows == 0 || d == 0 {
            return Some(0);
        }
        let last = (batch - 1)
            .checked_mul(self.batch)?
            .checked_add((heads - 1).checked_mul(self.head)?)?
            .checked_add((rows - 1).checked_mul(self.row)?)?;
        self.offset.checked_add(last)?.checked_add(d)
    }
}

/// One bf16 operand: its values and where they sit.
#[derive(Debug, Clone, Copy)]
pub struct Heads<'a> {
    /// The storage (may hold more than the operand).
    pub values: &'a [bf16],
    /// The operand's layout in `values`.
    pub layout: HeadsLayout,
}

/// How [`attention_bf16_strided`] writes its `[batch, heads, queries, head_dim]` result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutLayout {
    /// Row-major `[batch, heads, queries, head_dim]`.
    HeadMajor,
    /// Row-major `[batch, queries, heads, head_dim]`: ready for the output projection as
    /// `[batch, queries, heads·head_dim]`.
    TokenMajor,
}

/// `out = softmax(scale·q·kᵀ (soft-capped) + bias)·v` on contiguous head-major operands, see
/// the module docs and [`attention_bf16_strided`].
#[allow(clippy::too_many_arguments)]
pub fn attention_bf16(
    q: &[bf16],
    k: &[bf16],
    v: &[bf16],
    bias: Option<AttentionBias<'_>>,
    shape: AttentionShape,
    scale: f32,
    softcap: Option<f32>,
    out: &mut [bf16],
) -> Result<()> {
    let AttentionShape { heads, kv_heads, queries, keys, head_dim: d, .. } = shape;
    let q = Heads { values: q, layout: HeadsLayout::head_major(heads, queries, d) };
    let k = Heads { values: k, layout: HeadsLayout::head_major(kv_heads, keys, d) };
    let v = Heads { values: v, layout: HeadsLayout::head_major(kv_heads, keys, d) };
    // Contiguous operands must be exactly their size (a longer slice is a caller's mistake).
    for (operand, len, heads, rows) in [
        ("q", q.values.len(), heads, queries),
        ("k", k.values.len(), kv_heads, keys),
        ("v", v.values.len(), kv_heads, keys),
    ] {
        let want = [shape.batch, heads, rows, d].iter().try_fold(1usize, |a, b| a.checked_mul(*b));
        match want {
            Some(want) if want == len => {}
            Some(want) => {
                return Err(Error::Length { operand, shape: format!("{shape:?}"), expected: want, got: len });
            }
            None => return Err(Error::Shape { operand: "attention", shape: format!("{shape:?}") }),
        }
    }
    attention_bf16_strided(q, k, v, bias, shape, scale, softcap, out, OutLayout::HeadMajor)
}

/// [`attention_bf16`] on operands at any strides (e.g. per-head views of `[batch, tokens,
/// heads·head_dim]` projections), the result written `out_layout` into `out` (exactly
/// `batch·heads·queries·head_dim` values).
#[allow(clippy::too_many_arguments)]
pub fn attention_bf16_strided(
    q: Heads<'_>,
    k: Heads<'_>,
    v: Heads<'_>,
    bias: Option<AttentionBias<'_>>,
    shape: AttentionShape,
    scale: f32,
    softcap: Option<f32>,
    out: &mut [bf16],
    out_layout: OutLayout,
) -> Result<()> {
    let AttentionShape { batch, heads, kv_heads, queries, keys, head_dim: d } = shape;
    let bad_shape = || Error::Shape { operand: "attention", shape: format!("{shape:?}") };
    if heads == 0 || kv_heads == 0 || heads % kv_heads != 0 || d == 0 || keys == 0 {
        return Err(bad_shape());
    }
    let q_len = [batch, heads, queries, d].iter().try_fold(1usize, |a, b| a.checked_mul(*b)).ok_or_else(bad_shape)?;
    if out.len() != q_len {
        return Err(Error::Length { operand: "out", shape: format!("{shape:?}"), expected: q_len, got: out.len() });
    }
    for (operand, x, heads, rows) in [("q", q, heads, queries), ("k", k, kv_heads, keys), ("v", v, kv_heads, keys)] {
        let need = x.layout.extent(batch, heads, rows, d).ok_or_else(bad_shape)?;
        if x.values.len() < need {
            return Err(Error::Length { operand, shape: format!("{shape:?}"), expected: need, got: x.values.len() });
        }
    }
    let tile = queries.checked_mul(keys).ok_or_else(bad_shape)?;
    if let Some(b) = bias.filter(|_| batch > 0 && tile > 0) {
        let last = (batch - 1)
            .checked_mul(b.batch_stride)
            .and_then(|x| x.checked_add((heads - 1).checked_mul(b.head_stride)?))
            .and_then(|x| x.checked_add(tile))
            .unwrap_or(usize::MAX);
        if b.values.len() < last {
            return Err(Error::Length {
                operand: "bias",
                shape: format!("{shape:?}"),
                expected: last,
                got: b.values.len(),
            });
        }
    }
    if batch == 0 || queries == 0 {
        return Ok(());
    }
    // Keys as `[d × keys]` panels for the scores, values as `[keys × d]` for p·v, once per
    // (batch, key/value head). With fewer pairs than threads the packing itself is parallel.
    let pack_kv = |bk: usize, parallel: bool| {
        let (b, g) = (bk / kv_heads, bk % kv_heads);
        let (kb, vb, ks, vs) = (k.layout.at(b, g, 0), v.layout.at(b, g, 0), k.layout.row, v.layout.row);
        let (keys_bits, values_bits): (&[u16], &[u16]) = (k.values.reinterpret_cast(), v.values.reinterpret_cast());
        // Key j is column j of kᵀ ([d × keys]); value row j is row j of [keys × d].
        let key = |j: usize| &keys_bits[kb + j * ks..][..d];
        let value = |j: usize| &values_bits[vb + j * vs..][..d];
        (PackedBf16::pack_columns(d, keys, parallel, key), PackedBf16::pack_rows(keys, d, parallel, value))
    };
    let pairs = batch * kv_heads;
    let packed: Vec<(PackedBf16, PackedBf16)> = if pairs >= rayon::current_num_threads() {
        (0..pairs).into_par_iter().map(|bk| pack_kv(bk, false)).collect()
    } else {
        (0..pairs).map(|bk| pack_kv(bk, true)).collect()
    };
    let job = Job { q, packed: &packed, bias, shape, group: heads / kv_heads, scale, softcap };
    // One query row is the same memory in both layouts: take the per-head split (parallel).
    if out_layout == OutLayout::HeadMajor || queries == 1 {
        out.par_chunks_mut(queries * d).enumerate().for_each(|(bh, out)| {
            let (b, h) = (bh / heads, bh % heads);
            SCRATCH.with_borrow_mut(|scratch| {
                for (i, out) in out.chunks_mut(MAX_ROWS * d).enumerate() {
                    let o = job.rows(b, h, i * MAX_ROWS, out.len() / d, scratch);
                    round_into(o, None, out);
                }
            });
        });
    } else {
        // Token-major rows hold every head: jobs are blocks of query rows.
        let unit = if Isa::best() == Isa::Amx { AMX_ROWS } else { MR };
        let per_job = rows_per_job(queries, rayon::current_num_threads(), unit);
        out.par_chunks_mut(queries * heads * d).enumerate().for_each(|(b, out)| {
            out.par_chunks_mut(per_job * heads * d).enumerate().for_each(|(i, out)| {
                let rows = out.len() / (heads * d);
                SCRATCH.with_borrow_mut(|scratch| {
                    for h in 0..heads {
                        let o = job.rows(b, h, i * per_job, rows, scratch);
                        for (r, o) in o.chunks_exact(d).enumerate() {
                            let dst = &mut out[(r * heads + h) * d..][..d];
                            round_into(o, None, dst);
                        }
                    }
                });
            });
        });
    }
    Ok(())
}

/// Query rows per job: a 64 × keys f32 score tile stays in L2 for any context we run.
const MAX_ROWS: usize = 64;

/// Rows per job of the token-major split: the multiple of `unit` (the kernel's row tile: 8 for
/// the `vdpbf16ps` tiles, 16 for AMX) up to [`MAX_ROWS`] whose jobs load the busiest thread
/// least (in row tiles, `threads` taking jobs in turn), the largest on a tie — bigger jobs read
/// each head's packed keys and values fewer times. (Gemma's 275 prompt rows on 2 threads: 48-row
/// jobs, 18 tiles on the busiest thread, where a fixed "4 jobs per thread" gave 40-row jobs and
/// 20. With AMX the unit matters: counted in 8-row tiles, 272 rows chose 8-row jobs — below
/// AMX's 16 rows, so the whole attention ran on `vdpbf16ps`, 2.6 instead of 1.0 ms.)
fn rows_per_job(queries: usize, threads: usize, unit: usize) -> usize {
    let busiest = |rows: usize| queries.div_ceil(rows).div_ceil(threads.max(1)) * (rows / unit);
    (1..=MAX_ROWS / unit).rev().map(|t| unit * t).min_by_key(|rows| busiest(*rows)).unwrap_or(unit)
}

/// What every job of one call shares.
struct Job<'a> {
    q: Heads<'a>,
    packed: &'a [(PackedBf16, PackedBf16)],
    bias: Option<AttentionBias<'a>>,
    shape: AttentionShape,
    group: usize,
    scale: f32,
    softcap: Option<f32>,
}

impl Job<'_> {
    /// Query rows `i0..i0 + rows` of head `h` in batch row `b`: `rows × head_dim` f32 values
    /// (to be rounded to bf16 once, by the caller), in this thread's scratch buffers.
    fn rows<'s>(&self, b: usize, h: usize, i0: usize, rows: usize, scratch: &'s mut Scratch) -> &'s [f32] {
        #[cfg(target_arch = "x86_64")]
        if CpuFeatures::get().avx512f {
            // SAFETY: the CPU has AVX-512F (checked just above), all `rows_avx512` enables.
            return unsafe { rows_avx512(self, b, h, i0, rows, scratch) };
        }
        self.rows_inline(b, h, i0, rows, scratch)
    }

    #[inline(always)]
    fn rows_inline<'s>(&self, b: usize, h: usize, i0: usize, rows: usize, s: &'s mut Scratch) -> &'s [f32] {
        let AttentionShape { kv_heads, keys, queries, head_dim: d, .. } = self.shape;
        let (kt, vp) = &self.packed[b * kv_heads + h / self.group];
        let (values, base, stride) = (self.q.values, self.q.layout.at(b, h, i0), self.q.layout.row);
        // Query rows are read in place where they are whole bf16 pairs at a usable stride.
        let q = if d % 2 == 0 && stride >= d {
            Lhs { values: values[base..].reinterpret_cast(), lda: stride }
        } else {
            copy_rows(&mut s.lhs, rows, d, |r| &values[base + r * stride..][..d], bf16::to_bits)
        };
        let scores = resized(&mut s.scores, rows * keys);
        // Shapes were checked by the caller, so the products cannot fail.
        product_serial(q, rows, kt, scores).expect("checked shape");
        let bias = self.bias.map(|x| &x.values[b * x.batch_stride + h * x.head_stride..][..queries * keys]);
        // p·v with f32 probabilities (the f32 island): p = hi + lo with both parts bf16
        // (|lo| ≤ 2⁻⁹·|p|, so hi + lo carries 16 significant bits), one product over the
        // stacked [hi; lo] rows, the two halves added in f32. The softmax writes the parts
        // directly (its normalising pass is the split). Rows of `keys` rounded up to even (the
        // padding zero) are the product's operand as is.
        let lds = keys.next_multiple_of(2);
        let split = resized(&mut s.split, 2 * rows * lds);
        let (hi, lo) = split.split_at_mut(rows * lds);
        let rows_iter = scores.chunks_exact_mut(keys).zip(hi.chunks_exact_mut(lds)).zip(lo.chunks_exact_mut(lds));
        for (r, ((row, hi), lo)) in rows_iter.enumerate() {
            let bias = bias.map(|bias| &bias[(i0 + r) * keys..][..keys]);
            softmax_split_row(row, bias, self.scale, self.softcap, &mut hi[..keys], &mut lo[..keys]);
            if lds > keys {
                (hi[keys], lo[keys]) = (0, 0);
            }
        }
        let o = resized(&mut s.out, 2 * rows * d);
        product_serial(Lhs { values: split, lda: lds }, 2 * rows, vp, o).expect("checked shape");
        let (hi, lo) = o.split_at_mut(rows * d);
        hi.iter_mut().zip(lo.iter()).for_each(|(h, l)| *h += l);
        hi
    }
}

/// One thread's working buffers, kept between calls: fresh multi-kilobyte allocations per job
/// cost more in page faults than the products themselves (measured: a third of the time).
#[derive(Default)]
struct Scratch {
    lhs: Vec<u16>,
    scores: Vec<f32>,
    split: Vec<u16>,
    out: Vec<f32>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}

/// `v` with exactly `len` elements (contents unspecified: every caller overwrites them).
fn resized<T: Copy + Default>(v: &mut Vec<T>, len: usize) -> &mut [T] {
    v.resize(len, T::default());
    &mut v[..len]
}

/// [`Job::rows`] compiled for AVX-512 (the packing, softmax and rounding loops are inlined here
/// and vectorise 16 wide; a closure handed to a `target_feature` wrapper would not be inlined).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
fn rows_avx512<'s>(job: &Job<'_>, b: usize, h: usize, i0: usize, rows: usize, scratch: &'s mut Scratch) -> &'s [f32] {
    job.rows_inline(b, h, i0, rows, scratch)
}

/// `p = softmax(cap(scale·row) + bias)` split into bf16 parts, `hi = bf16(p)` and
/// `lo = bf16(p − hi)` (`row` is overwritten with the exponentials); a row with no finite score
/// is all zeros. Three passes that write (scale/cap and bias; exponential and sum; normalise and
/// split) and one that reads (the maximum), each a straight loop the compiler vectorises (sums
/// and maxima over 16 lanes) — the values of separate passes per step, fewer trips over the row.
#[inline(always)]
fn softmax_split_row(
    row: &mut [f32],
    bias: Option<&[f32]>,
    scale: f32,
    softcap: Option<f32>,
    hi: &mut [u16],
    lo: &mut [u16],
) {
    match (softcap, bias) {
        (Some(c), Some(bias)) => row.iter_mut().zip(bias).for_each(|(s, b)| *s = c * tanh(*s * scale / c) + b),
        (Some(c), None) => row.iter_mut().for_each(|s| *s = c * tanh(*s * scale / c)),
        (None, Some(bias)) => row.iter_mut().zip(bias).for_each(|(s, b)| *s = *s * scale + b),
        (None, None) => row.iter_mut().for_each(|s| *s *= scale),
    }
    let max = fold_lanes(row, f32::NEG_INFINITY, |v| v, f32::max);
    if !max.is_finite() {
        hi.fill(0);
        lo.fill(0);
        return;
    }
    let inv = 1.0 / map_fold_lanes(row, 0.0, |s| exp(s - max), |a, b| a + b);
    for ((p, hi), lo) in row.iter().zip(hi.iter_mut()).zip(lo.iter_mut()) {
        let p = p * inv;
        let rounded = to_bf16(p);
        *hi = rounded.to_bits();
        *lo = to_bf16(p - rounded.to_f32()).to_bits();
    }
}

/// [`fold_lanes`] that also stores each mapped value back: `x[i] = map(x[i])`, folded in the
/// same lane order (so the sum is the one a separate pass would give).
#[inline(always)]
fn map_fold_lanes(x: &mut [f32], init: f32, map: impl Fn(f32) -> f32, f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [init; 16];
    let mut chunks = x.chunks_exact_mut(16);
    for chunk in &mut chunks {
        for (a, x) in acc.iter_mut().zip(chunk) {
            *x = map(*x);
            *a = f(*a, *x);
        }
    }
    let tail = chunks.into_remainder().iter_mut().fold(init, |a, x| {
        *x = map(*x);
        f(a, *x)
    });
    acc.iter().fold(tail, |a, b| f(a, *b))
}

/// `tanh(y) = 1 − 2 / (1 + e^{2y})` on the clamped polynomial exponential: vectorisable;
/// absolute error ≤ 2·10⁻⁷ (it is the soft-cap `c·tanh(s/c)`, where an absolute error is what
/// matters), exactly ±1 far out.
#[inline(always)]
fn tanh(y: f32) -> f32 {
    1.0 - 2.0 / (1.0 + exp(2.0 * y))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(n: usize, seed: usize) -> Vec<bf16> {
        (0..n).map(|i| bf16::from_f32(((i * 29 + seed * 7) % 23) as f32 / 8.0 - 1.4)).collect()
    }

    /// `softmax(cap(scale·q·kᵀ) + bias)·v` evaluated directly in f64 (head-major operands,
    /// bias `[batch, 1, queries, keys]`).
    fn direct(
        shape: AttentionShape,
        (q, k, v): (&[bf16], &[bf16], &[bf16]),
        bias: &[f32],
        scale: f32,
        cap: f32,
    ) -> Vec<f64> {
        let AttentionShape { batch, heads, kv_heads, queries: nq, keys: nk, head_dim: d } = shape;
        let mut out = vec![0f64; batch * heads * nq * d];
        for bi in 0..batch {
            for h in 0..heads {
                let kv = bi * kv_heads + h / (heads / kv_heads);
                for i in 0..nq {
                    let qrow = &q[((bi * heads + h) * nq + i) * d..][..d];
                    let s: Vec<f64> = (0..nk)
                        .map(|j| {
                            let krow = &k[(kv * nk + j) * d..][..d];
                            let dot: f64 = qrow.iter().zip(krow).map(|(a, b)| a.to_f64() * b.to_f64()).sum();
                            let x = dot * f64::from(scale);
                            f64::from(cap) * (x / f64::from(cap)).tanh() + f64::from(bias[(bi * nq + i) * nk + j])
                        })
                        .collect();
                    let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = s.iter().map(|x| (x - max).exp()).collect();
                    let sum: f64 = e.iter().sum();
                    for c in 0..d {
                        let o: f64 = (0..nk).map(|j| e[j] / sum * v[(kv * nk + j) * d + c].to_f64()).sum();
                        out[((bi * heads + h) * nq + i) * d + c] = o;
                    }
                }
            }
        }
        out
    }

    /// Against a direct f64 evaluation of the same formula, with GQA, a broadcast bias with
    /// masked keys, and a soft-cap; small, and large enough for several row blocks per head
    /// and odd key and head widths.
    #[test]
    fn matches_a_direct_evaluation() {
        for shape in [
            AttentionShape { batch: 2, heads: 4, kv_heads: 2, queries: 5, keys: 7, head_dim: 12 },
            AttentionShape { batch: 2, heads: 3, kv_heads: 1, queries: 70, keys: 67, head_dim: 9 },
        ] {
            let AttentionShape { batch, heads, kv_heads, queries, keys, head_dim: d } = shape;
            let q = grid(batch * heads * queries * d, 1);
            let (k, v) = (grid(batch * kv_heads * keys * d, 2), grid(batch * kv_heads * keys * d, 3));
            let mut bias = vec![0f32; batch * queries * keys]; // [batch, 1, q, k]
            bias.iter_mut().enumerate().filter(|(i, _)| i % keys == 3).for_each(|(_, b)| *b = f32::MIN);
            let b = AttentionBias { values: &bias, batch_stride: queries * keys, head_stride: 0 };
            let (scale, cap) = (0.3f32, 2.0f32);
            let mut out = vec![bf16::ZERO; q.len()];
            attention_bf16(&q, &k, &v, Some(b), shape, scale, Some(cap), &mut out).unwrap();
            let want = direct(shape, (&q, &k, &v), &bias, scale, cap);
            for (i, (got, want)) in out.iter().zip(want).enumerate() {
                let got = got.to_f64();
                assert!((got - want).abs() <= 2f64.powi(-8) * want.abs() + 1e-5, "{shape:?} [{i}]: {got} vs {want}");
            }
        }
    }

    /// Token-major operands (per-head views of `[batch, tokens, heads·d]`) and a token-major
    /// result give exactly the contiguous call's values, in either output layout.
    #[test]
    fn strided_operands_and_token_major_output_equal_the_contiguous_call() {
        let shape = AttentionShape { batch: 2, heads: 4, kv_heads: 2, queries: 70, keys: 33, head_dim: 6 };
        let AttentionShape { batch, heads, kv_heads, queries, keys, head_dim: d } = shape;
        let (q, k, v) = (
            grid(batch * heads * queries * d, 4),
            grid(batch * kv_heads * keys * d, 5),
            grid(batch * kv_heads * keys * d, 6),
        );
        let mut want = vec![bf16::ZERO; q.len()];
        attention_bf16(&q, &k, &v, None, shape, 0.5, None, &mut want).unwrap();
        // The same values stored token-major, behind an offset.
        let token_major = |x: &[bf16], heads: usize, rows: usize| {
            let mut t = vec![bf16::from_f32(9.0); 3 + x.len()];
            for b in 0..batch {
                for h in 0..heads {
                    for r in 0..rows {
                        let src = &x[((b * heads + h) * rows + r) * d..][..d];
                        t[3 + ((b * rows + r) * heads + h) * d..][..d].copy_from_slice(src);
                    }
                }
            }
            t
        };
        let (qt, kt, vt) =
            (token_major(&q, heads, queries), token_major(&k, kv_heads, keys), token_major(&v, kv_heads, keys));
        fn view(values: &[bf16], heads: usize, rows: usize, d: usize) -> Heads<'_> {
            Heads { values, layout: HeadsLayout { offset: 3, ..HeadsLayout::token_major(heads, rows, d) } }
        }
        let (qv, kv, vv) = (view(&qt, heads, queries, d), view(&kt, kv_heads, keys, d), view(&vt, kv_heads, keys, d));
        let mut head_major = vec![bf16::ZERO; q.len()];
        attention_bf16_strided(qv, kv, vv, None, shape, 0.5, None, &mut head_major, OutLayout::HeadMajor).unwrap();
        assert_eq!(head_major, want);
        let mut tokens = vec![bf16::ZERO; q.len()];
        attention_bf16_strided(qv, kv, vv, None, shape, 0.5, None, &mut tokens, OutLayout::TokenMajor).unwrap();
        assert_eq!(tokens, token_major(&want, heads, queries)[3..]);
        // A view reaching past its slice is refused, naming the operand.
        let short = Heads { values: &qt[..qt.len() - 1], ..qv };
        let err = attention_bf16_strided(short, kv, vv, None, shape, 0.5, None, &mut tokens, OutLayout::TokenMajor);
        assert!(matches!(err, Err(Error::Length { operand: "q", .. })), "{err:?}");
    }

    /// Jobs are whole row tiles, at most `MAX_ROWS`, and balance the threads (the shapes the
    /// doc comment names, a one-row decode, more threads than rows).
    #[test]
    fn rows_per_job_balances_whole_tiles() {
        assert_eq!(rows_per_job(275, 2, MR), 48);
        assert_eq!(rows_per_job(256, 2, MR), 64);
        assert_eq!(rows_per_job(1, 2, MR), 8);
        assert_eq!(rows_per_job(100, 64, MR), 8);
        // AMX: whole 16-row tiles (Gemma's 272 prompt rows were split into 8-row jobs).
        assert_eq!(rows_per_job(272, 2, AMX_ROWS), 48);
        assert_eq!(rows_per_job(256, 2, AMX_ROWS), 64);
        assert_eq!(rows_per_job(1, 2, AMX_ROWS), 16);
        for unit in [MR, AMX_ROWS] {
            for (q, t) in [(0, 1), (7, 0), (272, 2), (300, 3), (4096, 16)] {
                let rows = rows_per_job(q, t, unit);
                assert!(
                    rows.is_multiple_of(unit) && (unit..=MAX_ROWS).contains(&rows),
                    "{q} rows on {t} threads: {rows}"
                );
            }
        }
    }

    /// The soft-cap's vectorisable tanh is within 2·10⁻⁷ of the true one, and ±1 far out.
    #[test]
    fn tanh_is_accurate_in_absolute_terms() {
        let mut y = -20.0f32;
        while y < 20.0 {
            let err = (f64::from(tanh(y)) - f64::from(y).tanh()).abs();
            assert!(err <= 2e-7, "tanh({y}): error {err:e}");
            y += 0.0037;
        }
        assert_eq!((tanh(100.0), tanh(-100.0)), (1.0, -1.0));
    }

    #[test]
    fn bad_shapes_are_refused() {
        let shape = AttentionShape { batch: 1, heads: 3, kv_heads: 2, queries: 1, keys: 1, head_dim: 2 };
        let x = vec![bf16::ZERO; 6];
        let mut out = vec![bf16::ZERO; 6];
        assert!(attention_bf16(&x, &x, &x, None, shape, 1.0, None, &mut out).is_err());
        let shape = AttentionShape { kv_heads: 3, ..shape };
        assert!(attention_bf16(&x, &x[..5], &x, None, shape, 1.0, None, &mut out).is_err());
        let b = AttentionBias { values: &[0.0], batch_stride: 0, head_stride: 1 };
        assert!(attention_bf16(&x, &x, &x, Some(b), shape, 1.0, None, &mut out).is_err());
    }
}
