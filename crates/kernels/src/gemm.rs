//! `out = lhs · W` with `W` packed in bf16: the driver (checks, operands, threads).
#![allow(unsafe_code)] // the AVX-512 tiles are `unsafe fn`s; see `call_tile`

use std::mem::MaybeUninit;

use half::bf16;
use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;

use crate::cpu::CpuFeatures;
use crate::elementwise;
use crate::error::{Error, Result};
#[cfg(target_arch = "x86_64")]
use crate::kernel::amx::{self, Tiles};
use crate::kernel::{self, AMX_BLOCK as BLOCK, AMX_ROWS, AMX_STEP, Fetch, MR};
use crate::packed::{NR, PANEL_PAIR, PackedBf16, aligned_window};

/// Which micro-kernel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// AMX tiles, `tdpbf16ps` (Intel Sapphire Rapids+), for every whole 16 rows of a product;
    /// the AVX-512 BF16 kernel for the rows left over (fewer than 16: a decode step's one row).
    Amx,
    /// `vdpbf16ps` (AVX-512 BF16: AMD Zen 4+, Intel Cooper Lake / Sapphire Rapids+).
    Avx512Bf16,
    /// Plain Rust with the same operations in the same order (any CPU).
    Portable,
}

impl Isa {
    /// The fastest kernel this CPU (and OS) runs.
    pub fn best() -> Isa {
        [Isa::Amx, Isa::Avx512Bf16].into_iter().find(|isa| isa.available()).unwrap_or(Isa::Portable)
    }

    /// Whether this CPU can run it (AMX: also whether the OS granted the tile registers).
    pub fn available(self) -> bool {
        let cpu = CpuFeatures::get();
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Amx => cpu.amx_bf16 && cpu.avx512_bf16 && kernel::amx::granted(),
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Amx => false,
            Isa::Avx512Bf16 => cpu.avx512_bf16,
            Isa::Portable => true,
        }
    }

    /// A native kernel, not the portable stand-in: the CPU has AVX-512 BF16 (with AVX-512F), which
    /// the crate's other bf16 kernels (attention, norms, element-wise) need as well.
    pub fn native(self) -> bool {
        self != Isa::Portable
    }
}

/// `out[m, n] = Σ_k bf16(lhs[m, k]) · W[k, n]`, accumulated in f32, on the fastest kernel.
///
/// `lhs` is row-major `[m, k]` f32 and is rounded to bf16 on the fly (as PyTorch does when a
/// bf16 model receives activations); `out` is row-major `[m, n]` and fully overwritten. Threads:
/// rayon's global pool, split over 32-column panels, so one decode row (`m = 1`, a GEMV) reads
/// each weight byte once and uses every core.
///
/// # Shapes
/// - `lhs`: `[m, k]`, `weights`: `[k, n]` (packed), `out`: `[m, n]`.
pub fn matmul(lhs: &[f32], m: usize, weights: &PackedBf16, out: &mut [f32]) -> Result<()> {
    matmul_with(Isa::best(), lhs, m, weights, out)
}

/// [`matmul`] on a chosen kernel (tests and benchmarks compare them). A kernel this CPU lacks
/// falls back to [`Isa::Portable`].
pub fn matmul_with(isa: Isa, lhs: &[f32], m: usize, weights: &PackedBf16, out: &mut [f32]) -> Result<()> {
    let (k, n) = (weights.k(), weights.n());
    check("lhs", lhs.len(), m, k)?;
    check("out", out.len(), m, n)?;
    let a = padded_rows(lhs, m, k, |v| bf16::from_f32(v).to_bits());
    run(isa, Lhs { values: &a, lda: 2 * weights.pairs() }, m, weights, copy_to(out, n));
    Ok(())
}

/// A `run` finisher that copies each block of accumulators into the `m × n` f32 `out`.
fn copy_to(out: &mut [f32], n: usize) -> impl Fn(usize, usize, usize, usize, &[f32]) + Sync {
    let out = SharedOut(out.as_mut_ptr());
    move |j, m0, rows, cols, acc| {
        for r in 0..rows {
            // SAFETY: row m0 + r, columns j*32..j*32+cols of `out` (m × n values, checked by the
            // caller) belong to this job only, and `out` outlives the (joined) parallel section.
            let row = unsafe { std::slice::from_raw_parts_mut(out.at((m0 + r) * n + j * NR), cols) };
            row.copy_from_slice(&acc[r * NR..r * NR + cols]);
        }
    }
}

/// `out[m, n] = bf16(Σ_k lhs[m, k] · W[k, n] + bias[n])` with bf16 activations in and out:
/// what a bf16 `nn.Linear` computes (f32 sums, one rounding at the end), without copies of
/// either activation — the tiles read `lhs` where it lies (an even `k`; an odd one is copied
/// once, padded), and the bias and rounding happen in each thread's own tiles.
///
/// # Shapes
/// - `lhs`: `[m, k]`, `weights`: `[k, n]` (packed), `bias`: `[n]`, `out`: `[m, n]`.
pub fn matmul_bf16(lhs: &[bf16], m: usize, weights: &PackedBf16, bias: Option<&[f32]>, out: &mut [bf16]) -> Result<()> {
    matmul_bf16_then(lhs, m, weights, bias, Epilogue::Round, out)
}

/// What [`matmul_bf16_then`] does to each sum before storing it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Epilogue<'a> {
    /// `bf16(sum + bias)`: a bf16 `nn.Linear`.
    Round,
    /// `bf16(gelu_tanh(bf16(sum + bias)))`: the linear layer, then [`crate::gelu_tanh_bf16`] on
    /// its bf16 output — the same values, without writing the product out and reading it back
    /// (SigLIP's fc1: 2.2 MB each way per image and layer).
    GeluTanh,
    /// `bf16(gelu_tanh(gate) · bf16(sum + bias))` with `gate` the `m × n` row-major values of
    /// another product: [`crate::gelu_tanh_mul_bf16`]`(gate, up)` where this product is `up` —
    /// Gemma's GeGLU without storing `up` (8.9 MB per prompt and layer) and reading both back.
    GeluTanhMul {
        /// `gelu_tanh`'s operand, `[m, n]`.
        gate: &'a [bf16],
    },
}

/// [`matmul_bf16`] with the given [`Epilogue`] applied in each thread's tiles.
///
/// # Shapes
/// - `lhs`: `[m, k]`, `weights`: `[k, n]` (packed), `bias`: `[n]`, `out`: `[m, n]`.
pub fn matmul_bf16_then(
    lhs: &[bf16],
    m: usize,
    weights: &PackedBf16,
    bias: Option<&[f32]>,
    epilogue: Epilogue,
    out: &mut [bf16],
) -> Result<()> {
    check("out", out.len(), m, weights.n())?;
    // SAFETY: `out` holds the m × n values just checked.
    unsafe { product_bf16(lhs, m, weights, bias, epilogue, SharedOut(out.as_mut_ptr().cast::<f32>())) }
}

/// [`matmul_bf16_then`] into a new `m × n` vector, which is never zeroed first: every value
/// is written once, by the epilogue. (A zeroed result cost as much as a tenth of the product:
/// SigLIP's q projection 0.43 vs 0.34 ms — `calloc` clears memory that is written anyway.)
///
/// # Shapes
/// - `lhs`: `[m, k]`, `weights`: `[k, n]` (packed), `bias`: `[n]`; returns `[m, n]`.
pub fn matmul_bf16_vec(
    lhs: &[bf16],
    m: usize,
    weights: &PackedBf16,
    bias: Option<&[f32]>,
    epilogue: Epilogue,
) -> Result<Vec<bf16>> {
    let len = m
        .checked_mul(weights.n())
        .ok_or_else(|| Error::Shape { operand: "out", shape: format!("[{m}, {}]", weights.n()) })?;
    let mut out = Vec::<bf16>::with_capacity(len);
    // SAFETY: the capacity holds the m × n values `product_bf16` writes.
    unsafe { product_bf16(lhs, m, weights, bias, epilogue, SharedOut(out.as_mut_ptr().cast::<f32>()))? };
    // SAFETY: `product_bf16` returned Ok, so it wrote every one of the m × n values: its jobs
    // cover every panel (all n columns) and, in each, rows 0..m.
    unsafe { out.set_len(len) };
    Ok(out)
}

/// The body of [`matmul_bf16_then`] and [`matmul_bf16_vec`]: checks the operands, then writes
/// every value of the `m × n` result at `out` (uninitialised memory is fine) — or nothing, on
/// an error.
///
/// # Safety
/// `out` must be valid for writes of `m × n` bf16 values that no one else accesses meanwhile.
unsafe fn product_bf16(
    lhs: &[bf16],
    m: usize,
    weights: &PackedBf16,
    bias: Option<&[f32]>,
    epilogue: Epilogue,
    out: SharedOut,
) -> Result<()> {
    let (k, n) = (weights.k(), weights.n());
    check("lhs", lhs.len(), m, k)?;
    if let Some(bias) = bias {
        check("bias", bias.len(), 1, n)?;
    }
    if let Epilogue::GeluTanhMul { gate } = epilogue {
        check("gate", gate.len(), m, n)?;
    }
    let padded;
    let lhs = if k % 2 == 0 {
        Lhs { values: lhs.reinterpret_cast(), lda: k }
    } else {
        padded = padded_rows(lhs, m, k, bf16::to_bits);
        Lhs { values: &padded, lda: k + 1 }
    };
    let store = Store { bias, epilogue, out, n };
    let wide = CpuFeatures::get().avx512f;
    run(Isa::best(), lhs, m, weights, |j, m0, rows, cols, acc| {
        // SAFETY: rows m0..m0 + rows, columns j*32..j*32+cols of `out` (m × n bf16 values, the
        // caller's contract) belong to this job only; `wide`: the CPU has AVX-512F.
        unsafe {
            if wide {
                round_block_avx512(&store, j, m0, rows, cols, acc);
            } else {
                round_block(&store, j, m0, rows, cols, acc);
            }
        }
    });
    Ok(())
}

/// What every block of one [`product_bf16`] call is stored with: the whole bias, the epilogue,
/// the `m × n` output and its row length.
struct Store<'a> {
    bias: Option<&'a [f32]>,
    epilogue: Epilogue<'a>,
    out: SharedOut,
    n: usize,
}

/// Rows `m0..m0 + rows` of panel `j` (`cols` sums per row, at stride 32 in `acc`) plus the bias,
/// rounded to bf16 (and the epilogue applied) into the output: one call and one CPU check per
/// block, not per 32-value row (an AMX image encode's samples in the rounding: 4.8 % per row,
/// 3.8 % per block; the rest is the stores of the output).
///
/// # Safety
/// Those rows and columns of `store.out` must be writable and written by no one else.
#[inline(always)]
unsafe fn round_block(store: &Store<'_>, j: usize, m0: usize, rows: usize, cols: usize, acc: &[f32]) {
    let Store { bias, epilogue, out, n } = *store;
    let bias = bias.map(|b| &b[j * NR..j * NR + cols]);
    let first = m0 * n + j * NR;
    for (r, acc) in acc.chunks_exact(NR).take(rows).enumerate() {
        // SAFETY: the caller's contract (the values may be uninitialised: they are only written).
        let row =
            unsafe { std::slice::from_raw_parts_mut(out.at_bf16(first + r * n).cast::<MaybeUninit<bf16>>(), cols) };
        match epilogue {
            Epilogue::Round => elementwise::round_into_inline(&acc[..cols], bias, row),
            Epilogue::GeluTanh => elementwise::round_gelu_into_inline(&acc[..cols], bias, row),
            Epilogue::GeluTanhMul { gate } => {
                // The gate's rows are a row of the output apart (32 KiB in Gemma's GeGLU, a new
                // page each, which the hardware prefetchers do not follow): ask for the one
                // GATE_AHEAD rows on (both lines its 64 bytes may straddle) while this one runs.
                #[cfg(target_arch = "x86_64")]
                if r + GATE_AHEAD < rows {
                    use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
                    let ahead = gate.as_ptr().wrapping_add(first + (r + GATE_AHEAD) * n).cast::<i8>();
                    // SAFETY: a prefetch is a hint that never faults; the row is one of this
                    // block's (the address is still built with wrapping arithmetic).
                    unsafe {
                        _mm_prefetch::<_MM_HINT_T0>(ahead);
                        _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(2 * NR - 1));
                    }
                }
                let gate = &gate[first + r * n..][..cols];
                elementwise::round_gelu_mul_into_inline(&acc[..cols], bias, gate, row)
            }
        }
    }
}

/// Rows ahead at which [`round_block`] prefetches a GeGLU's gate: 8 and 16 measured the same
/// (Gemma's gate/up product with the epilogue: 11.9 → 11.0 ms hot, 12.7 → 11.8 with the
/// weights from memory).
const GATE_AHEAD: usize = 8;

/// [`round_block`] compiled for AVX-512 (16 values per instruction).
///
/// # Safety
/// As [`round_block`]; the CPU must have AVX-512F.
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma"))]
unsafe fn round_block_avx512(store: &Store<'_>, j: usize, m0: usize, rows: usize, cols: usize, acc: &[f32]) {
    // SAFETY: the caller's contract.
    unsafe { round_block(store, j, m0, rows, cols, acc) }
}

/// A left operand as the tiles read it: `m` rows of bf16 bits at stride `lda`, each holding at
/// least `2·pairs` values (the `k` values, then a zero where `k` is odd) — so pair `p` of row
/// `r` is the two values at `r·lda + 2p`. Activations with an even `k` are this already.
#[derive(Clone, Copy)]
pub(crate) struct Lhs<'a> {
    pub(crate) values: &'a [u16],
    pub(crate) lda: usize,
}

impl Lhs<'_> {
    /// What one tile reads: rows `m0..m0 + rows`, pairs `k0..k0 + kc` of each — `rows - 1`
    /// strides plus the last row's `2·kc` values, the slice [`call_tile`] is handed.
    fn block(&self, m0: usize, rows: usize, k0: usize, kc: usize) -> &[u16] {
        &self.values[m0 * self.lda + 2 * k0..(m0 + rows - 1) * self.lda + 2 * (k0 + kc)]
    }
}

/// `out = A · W` (f32, `m × n`, row-major) on the calling thread: for callers that are
/// themselves one job among many (attention's heads). The tiles store their sums straight
/// into `out` (no accumulator block copied row by row: a tenth of attention's time went there).
pub(crate) fn product_serial(a: Lhs<'_>, m: usize, weights: &PackedBf16, out: &mut [f32]) -> Result<()> {
    let (n, pairs) = (weights.n(), weights.pairs());
    check_lhs(a, m, pairs)?;
    check("out", out.len(), m, n)?;
    let isa = Isa::best();
    SCRATCH.with_borrow_mut(|(tiled, block)| {
        let tiled = amx_tiles(isa, a, m, pairs, tiled, false, false);
        let _tiles = configure(isa, m);
        // Rows AMX computes (its whole 16-row groups); the rest run on the 8-row tiles.
        let amx_rows = if tiled.is_some() { m / AMX_ROWS * AMX_ROWS } else { 0 };
        for j in 0..weights.panels() {
            let (panel, cols) = (weights.panel(j), NR.min(n - j * NR));
            if cols == NR {
                // SAFETY: rows 0..m of the m × n output hold 32 columns from column 32j; `a`,
                // `tiled` and the panel as `rows_block` requires.
                unsafe {
                    rows_block(
                        isa,
                        a,
                        tiled,
                        0,
                        m,
                        0,
                        pairs,
                        panel,
                        out[j * NR..].as_mut_ptr(),
                        n,
                        cols,
                        false,
                        Fetch { ahead: true, ..Fetch::NONE },
                    )
                };
                continue;
            }
            // AMX writes whole 32-column rows: a partial panel's AMX rows go through `block`.
            for b0 in (0..amx_rows).step_by(MC) {
                let rows = MC.min(amx_rows - b0);
                block.resize(MC * NR, 0.0);
                // SAFETY: `block` holds `rows ≤ MC` rows of NR values.
                unsafe {
                    rows_block(
                        isa,
                        a,
                        tiled,
                        b0,
                        rows,
                        0,
                        pairs,
                        panel,
                        block.as_mut_ptr(),
                        NR,
                        cols,
                        false,
                        Fetch { ahead: b0 == 0, ..Fetch::NONE },
                    )
                };
                for r in 0..rows {
                    out[(b0 + r) * n + j * NR..][..cols].copy_from_slice(&block[r * NR..r * NR + cols]);
                }
            }
            if amx_rows < m {
                // SAFETY: rows amx_rows..m of the output hold `cols` columns from column 32j (the
                // 8-row tiles write `cols` values per row); `a` and the panel as required.
                unsafe {
                    let c = out[amx_rows * n + j * NR..].as_mut_ptr();
                    rows_block(isa, a, None, amx_rows, m - amx_rows, 0, pairs, panel, c, n, cols, false, Fetch::NONE)
                };
            }
        }
    });
    Ok(())
}

thread_local! {
    /// [`product_serial`]'s buffers, kept between calls: the AMX-tiled rows and a block of sums.
    static SCRATCH: std::cell::RefCell<(Vec<u16>, Vec<f32>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// The tiles configured for a job on the AMX kernel with at least one whole 16-row tile.
#[cfg(target_arch = "x86_64")]
fn configure(isa: Isa, m: usize) -> Option<Tiles> {
    // SAFETY: `Isa::Amx` runs only where it is available (the CPU has AMX-BF16, the OS granted
    // the tiles); the returned value is dropped at the end of the job, which uses no other tiles.
    (isa == Isa::Amx && m >= AMX_ROWS).then(|| unsafe { Tiles::configure() })
}

/// No tiles off x86-64 ([`Isa::Amx`] is never available there).
#[cfg(not(target_arch = "x86_64"))]
fn configure(_: Isa, _: usize) -> Option<()> {
    None
}

thread_local! {
    /// The calling thread's buffer for [`amx_tiles`], kept between products: a fresh one per
    /// product was zeroed (0.65 % of an AMX image encode's samples) and faulted in every time.
    static TILED: std::cell::RefCell<Vec<u16>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's [`TILED`] buffer, or with a fresh one while that is in use (a
/// product started from inside another product's job).
fn with_tiled_buf<R>(f: impl FnOnce(&mut Vec<u16>) -> R) -> R {
    TILED.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => f(&mut buf),
        Err(_) => f(&mut Vec::new()),
    })
}

/// The activations' whole 16-row groups in AMX tile order: group `g`'s step `s` (rows
/// `16g..16g + 16`, pairs `16s..16s + 16`) is one contiguous, 64-byte aligned 1 KiB block at
/// `(g·steps + s)·512` values, the pairs past `k` zero.
#[derive(Clone, Copy)]
pub(crate) struct Tiled<'a> {
    values: &'a [u16],
    steps: usize,
}

/// For the AMX kernel (`m ≥ 16`): `a`'s whole 16-row groups copied into `buf` as [`Tiled`]
/// blocks (in parallel over groups when `parallel`); with `pad`, the rows left over as one more
/// group, its rows past `m` zero (their sums are zero and discarded: one AMX group costs less
/// than running the leftover rows on the `vdpbf16ps` tiles, which stream every panel again for
/// them — Gemma's 273rd row). Read in place, a tile row is 64 bytes at the
/// activations' stride — split across two cache lines wherever a row is not 64-byte aligned (half
/// of SigLIP fc2's rows whatever the buffer), one of 16 strided streams — and a `k` that ends
/// mid-step would read past each row; copied, each tile load is 16 consecutive lines and the
/// last step's padding is zero. (One pass over `m × k` values: 0.3 % of a 4 + 2-layer bench's
/// samples.)
fn amx_tiles<'t>(
    isa: Isa,
    a: Lhs<'_>,
    m: usize,
    pairs: usize,
    buf: &'t mut Vec<u16>,
    parallel: bool,
    pad: bool,
) -> Option<Tiled<'t>> {
    if isa != Isa::Amx || m < AMX_ROWS {
        return None;
    }
    let groups = if pad { m.div_ceil(AMX_ROWS) } else { m / AMX_ROWS };
    let steps = pairs.div_ceil(AMX_STEP);
    let len = groups * steps * BLOCK;
    let offset = aligned_window(buf, len);
    let values = &mut buf[offset..offset + len];
    let fill = |(g, group): (usize, &mut [u16])| fill_group(a, m, pairs, g, group);
    if parallel {
        values.par_chunks_exact_mut(steps * BLOCK).enumerate().for_each(fill);
    } else {
        values.chunks_exact_mut(steps * BLOCK).enumerate().for_each(fill);
    }
    Some(Tiled { values, steps })
}

/// Tile row width (bf16 values): one step's 16 pairs, 64 bytes.
const TILE_ROW: usize = 2 * AMX_STEP;

/// Group `g` of [`amx_tiles`]: its `steps` blocks, each written whole before the next (16
/// contiguous 64-byte rows; the reads are 16 sequential row streams), on AVX-512 where the CPU
/// has it (one 64-byte move per tile row; the baseline build moved 16 bytes at a time, and the
/// row-major order scattered each row's writes over all blocks: 4 % of an image encode).
fn fill_group(a: Lhs<'_>, m: usize, pairs: usize, g: usize, group: &mut [u16]) {
    #[cfg(target_arch = "x86_64")]
    if CpuFeatures::get().avx512f {
        // SAFETY: the CPU has AVX-512F (checked just above), all the wrapper enables.
        return unsafe { fill_group_avx512(a, m, pairs, g, group) };
    }
    fill_group_inline(a, m, pairs, g, group)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
fn fill_group_avx512(a: Lhs<'_>, m: usize, pairs: usize, g: usize, group: &mut [u16]) {
    fill_group_inline(a, m, pairs, g, group)
}

#[inline(always)]
fn fill_group_inline(a: Lhs<'_>, m: usize, pairs: usize, g: usize, group: &mut [u16]) {
    for (s, block) in group.chunks_exact_mut(BLOCK).enumerate() {
        let (first, last) = (s * TILE_ROW, ((s + 1) * TILE_ROW).min(2 * pairs));
        for (r, dst) in block.as_chunks_mut::<TILE_ROW>().0.iter_mut().enumerate() {
            let row = g * AMX_ROWS + r;
            if row >= m {
                // The padding rows of the last group (`pad`).
                *dst = [0; TILE_ROW];
                continue;
            }
            let src = &a.values[row * a.lda + first..row * a.lda + last];
            match <&[u16; TILE_ROW]>::try_from(src).ok() {
                Some(src) => *dst = *src,
                None => {
                    // The last step of a `k` that ends mid-step: its pairs, then zeros.
                    dst[..src.len()].copy_from_slice(src);
                    dst[src.len()..].fill(0);
                }
            }
        }
    }
}

/// Rows `m0..m0 + rows` of one panel's sums over pairs `k0..k0 + kc` into `c` (row `r` of the
/// block at `c + r·ldc`): whole 16-row groups on AMX when `isa` is [`Isa::Amx`], the rest on the
/// 8-row tiles. `panel` starts at pair `k0` and runs to the panel's padded end.
///
/// # Safety
/// `a` holds the rows and pairs as [`Lhs::block`] reads them; with AMX, `tiled` holds them as
/// [`amx_tiles`] builds them, `m0` and `k0` are multiples of 16; `c` is valid for `rows`
/// rows at stride `ldc` of `cols` values — of 32 with AMX and `rows ≥ 16` — and, with
/// `accumulate`, readable for 32 values per row.
#[allow(clippy::too_many_arguments)]
unsafe fn rows_block(
    isa: Isa,
    a: Lhs<'_>,
    tiled: Option<Tiled<'_>>,
    m0: usize,
    rows: usize,
    k0: usize,
    kc: usize,
    panel: &[u16],
    c: *mut f32,
    ldc: usize,
    cols: usize,
    accumulate: bool,
    fetch: Fetch,
) {
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if let (Isa::Amx, Some(tiled)) = (isa, tiled) {
        let steps = kc.div_ceil(AMX_STEP);
        debug_assert!(
            m0.is_multiple_of(AMX_ROWS) && k0.is_multiple_of(AMX_STEP) && panel.len() >= steps * AMX_STEP * PANEL_PAIR
        );
        let group_stride = tiled.steps * BLOCK;
        while rows - done >= AMX_ROWS {
            let (group, first_step) = ((m0 + done) / AMX_ROWS, k0 / AMX_STEP);
            let blocks = &tiled.values[group * group_stride + first_step * BLOCK..];
            // SAFETY: the caller's contract: 16 (or 32) rows from `m0 + done` exist in `tiled` (its
            // steps cover k0..k0 + kc) and in `c`; the panel holds every step's pairs (padded).
            unsafe {
                let c = c.add(done * ldc);
                // Only the first tile call brings the panel slice into cache.
                let (act, wts) = (blocks.as_ptr(), panel.as_ptr());
                let fetch = Fetch { ahead: fetch.ahead && done == 0, ..fetch };
                if rows - done >= 2 * AMX_ROWS {
                    amx::tile::<2>(steps, act, group_stride, wts, c, ldc, accumulate, fetch);
                    done += 2 * AMX_ROWS;
                } else {
                    amx::tile::<1>(steps, act, group_stride, wts, c, ldc, accumulate, fetch);
                    done += AMX_ROWS;
                }
            }
        }
    }
    for r0 in (done..rows).step_by(MR) {
        let tile_rows = MR.min(rows - r0);
        let block = a.block(m0 + r0, tile_rows, k0, kc);
        // SAFETY: the caller's contract for rows m0 + r0.. (a subset of the block's).
        unsafe { call_tile(isa, kc, tile_rows, block, a.lda, panel, c.add(r0 * ldc), ldc, cols, accumulate) };
    }
}

/// `m` rows given by `row(i)` (at least `k` values each; `bits`: their bf16 bits) copied into
/// `a` (resized; reusing buffers avoids page faults) as rows of `k` rounded up to even, the
/// padding zero: the [`Lhs`] of a source the tiles cannot read in place.
#[inline(always)]
pub(crate) fn copy_rows<'a, 'r, T: Copy + 'r>(
    a: &'a mut Vec<u16>,
    m: usize,
    k: usize,
    row: impl Fn(usize) -> &'r [T],
    bits: impl Fn(T) -> u16,
) -> Lhs<'a> {
    let lda = k.next_multiple_of(2);
    a.clear();
    a.resize(m * lda, 0);
    if lda > 0 {
        for (i, dst) in a.chunks_exact_mut(lda).enumerate() {
            dst.iter_mut().zip(&row(i)[..k]).for_each(|(d, s)| *d = bits(*s));
        }
    }
    Lhs { values: a, lda }
}

/// The `m × k` row-major `lhs` as bf16 bits (`bits`) in rows of `k` rounded up to even, the
/// padding zero (parallel over rows).
fn padded_rows<T: Copy + Sync>(lhs: &[T], m: usize, k: usize, bits: impl Fn(T) -> u16 + Sync) -> Vec<u16> {
    let lda = k.next_multiple_of(2);
    let mut a = vec![0u16; m * lda];
    if a.is_empty() {
        return a;
    }
    a.par_chunks_mut(lda).zip(lhs.par_chunks(k)).for_each(|(dst, src)| {
        dst.iter_mut().zip(src).for_each(|(d, s)| *d = bits(*s));
    });
    a
}

/// Rows per block of accumulators handed to `finish` (a 64 × 32 f32 stack buffer).
const MC: usize = 64;

/// The driver shared by the entry points: a job per 32-column panel (jobs never overlap; in
/// parallel on rayon's pool), row blocks of `MR` inside, their sums gathered per `MC`
/// rows in a stack buffer, then `finish(j, m0, rows, cols, acc)` receives those `rows × 32` f32
/// sums (`cols` of each row valid). Panels up to 512 KiB stay in L2 across the row tiles; longer
/// ones go to [`run_blocked`], as does every AMX product with a whole 16-row tile. `a` must hold
/// `m` rows as [`check_lhs`] states (the entry points build it from checked lengths).
fn run<F>(isa: Isa, a: Lhs<'_>, m: usize, weights: &PackedBf16, finish: F)
where
    F: Fn(usize, usize, usize, usize, &[f32]) + Sync,
{
    let isa = if isa.available() { isa } else { Isa::Portable };
    let (pairs, n) = (weights.pairs(), weights.n());
    if (pairs > BLOCKED_PAIRS || isa == Isa::Amx && m >= AMX_ROWS) && m > MR {
        return run_blocked(isa, a, m, weights, finish);
    }
    // Here AMX has no whole 16-row group (m < 16): its rows run on the 8-row tiles, untiled.
    (0..weights.panels()).into_par_iter().for_each(|j| {
        let panel = weights.panel(j);
        let cols = NR.min(n - j * NR);
        let mut acc = [0f32; MC * NR];
        for mc in (0..m).step_by(MC) {
            let block_rows = MC.min(m - mc);
            // SAFETY: `acc` holds `block_rows ≤ MC` rows of NR values at stride NR; `a` holds `m`
            // rows of `2·pairs` values (the entry points checked it).
            unsafe {
                rows_block(
                    isa,
                    a,
                    None,
                    mc,
                    block_rows,
                    0,
                    pairs,
                    panel,
                    acc.as_mut_ptr(),
                    NR,
                    cols,
                    false,
                    Fetch::NONE,
                )
            };
            finish(j, mc, block_rows, cols, &acc[..block_rows * NR]);
        }
    });
}

/// k-slices per pass (pairs): a row tile's slice of the lhs (8 × 4 KiB) stays in L1 and a
/// group's panel slices (GROUP × 128 KiB) in L2 while every row tile passes over them.
const KC: usize = 1024;
/// Inner dimensions (pairs) above which [`run_blocked`] takes over: panels beyond 512 KiB no
/// longer stay in L2 across row tiles (Gemma's down projection, k = 16384: +11 %), while shorter
/// ones lose to the slices' extra accumulator traffic (SigLIP's fc2, k = 4304: −10 % blocked).
const BLOCKED_PAIRS: usize = 4 * KC;
/// k-slices (pairs) on AMX: a panel's slice (16 KiB) stays in L1 while the job's row blocks
/// pass over it (see [`run_blocked`]; 64 and 256 measured slower).
const AMX_KC: usize = 128;
/// Panels per job in the blocked driver: each pass over the lhs serves this many panels.
const GROUP: usize = 4;

thread_local! {
    /// The blocked driver's accumulators (`GROUP × m × 32` f32, `m` rounded up to 16 on AMX),
    /// kept between calls.
    static ACC: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// [`run`] for a long inner dimension (`pairs > BLOCKED_PAIRS`) and on AMX: jobs of `GROUP`
/// panels, k in slices (`KC` pairs, [`AMX_KC`] on AMX), the sums of all `m` rows carried in
/// f32 between slices (stored and reloaded exactly, so the sums are the unblocked ones, in the
/// same order). Without it every row tile streams whole panels (1 MiB for Gemma's down
/// projection) through the caches again.
///
/// The loop order keeps one operand of every micro-kernel call in L1, because a tile load from
/// L2 is what the AMX unit waits for: with both operands from L2 a 2 × 2-tile step streams
/// 4 KiB per 64 cycles of products and runs at about half the rate of one with its weights in
/// L1 (a standalone loop: 1.5 vs 2.0 TFLOP/s per core with the accumulators stored per call).
/// So on AMX each panel's 16 KiB slice stays in L1 while every 32-row block passes over it
/// (the row blocks from L2), and the *next* slice is prefetched meanwhile ([`fetch_for`]).
/// Measured against 32-row blocks passing over the group's 1024-pair slices: SigLIP's six
/// products over 27 layers' weights 158–169 → 136–145 ms, Gemma's gate/up/down over 4 layers
/// 174–193 → 117–119 ms (gate 15.6 → 9.4 ms per layer); slices of 64 or 256 pairs slower. The
/// 8-row AVX-512 tiles keep the lhs slice in L1 instead, passing over the group's panels.
fn run_blocked<F>(isa: Isa, a: Lhs<'_>, m: usize, weights: &PackedBf16, finish: F)
where
    F: Fn(usize, usize, usize, usize, &[f32]) + Sync,
{
    let (pairs, n, panels) = (weights.pairs(), weights.n(), weights.panels());
    // Panels per job: the group size whose jobs load the busiest thread least (jobs taken in
    // turn), the largest on a tie — SigLIP's 36 panels on 2 threads: 3 (6 jobs each), where 4
    // leaves one thread 5 jobs against 4.
    let threads = rayon::current_num_threads().max(1);
    let busiest = |g: usize| panels.div_ceil(g).div_ceil(threads) * g;
    let group = (1..=GROUP).rev().min_by_key(|g| busiest(*g)).unwrap_or(1);
    with_tiled_buf(|buf| {
        let tiled = amx_tiles(isa, a, m, pairs, buf, true, true);
        // On AMX every row runs on the tiles, the last group padded with zero rows (`amx_tiles`);
        // their sums are computed into `acc` and never handed to `finish`.
        let rows_total = if tiled.is_some() { m.next_multiple_of(AMX_ROWS) } else { m };
        (0..panels.div_ceil(group)).into_par_iter().for_each(|g| {
            let panels = g * group..((g + 1) * group).min(panels);
            let _tiles = configure(isa, m);
            ACC.with_borrow_mut(|acc| {
                // Not cleared: the first slice (k0 = 0) writes every value before any is read.
                acc.resize(group * rows_total * NR, 0.0);
                let step = if isa == Isa::Amx { 2 * AMX_ROWS } else { MR };
                let blocks = rows_total.div_ceil(step);
                let slice = if isa == Isa::Amx { AMX_KC } else { KC };
                // Whether the previous job on this thread prefetched this one's first slice.
                let warm = PREFETCHED.replace(0) == weights.panel(panels.start).as_ptr() as usize;
                let call = |j: usize, acc: &mut [f32], m0: usize, k0: usize, fetch: Fetch| {
                    let rows = step.min(rows_total - m0);
                    let panel = &weights.panel(j)[k0 * PANEL_PAIR..];
                    let c = &mut acc[m0 * NR..(m0 + rows) * NR];
                    // SAFETY: `c` holds `rows` full rows of NR values (read and written); `a`
                    // holds `m` rows of `2·pairs` values, `tiled` its groups (all of
                    // `rows_total`: the AMX tiles take every row of a block whose rows are a
                    // multiple of 16, so no row past `m` is read from `a`); the panel slice runs
                    // from pair k0 to the panel's padded end.
                    unsafe {
                        let kc = slice.min(pairs - k0);
                        rows_block(isa, a, tiled, m0, rows, k0, kc, panel, c.as_mut_ptr(), NR, NR, k0 > 0, fetch)
                    };
                };
                for k0 in (0..pairs).step_by(slice) {
                    if isa == Isa::Amx {
                        // AMX: each panel slice (16 KiB) stays in L1 while every row block
                        // passes over it, the row blocks streaming from L2.
                        for (j, acc) in panels.clone().zip(acc.chunks_exact_mut(rows_total * NR)) {
                            let next = next_slice(weights, &panels, j, k0);
                            for (b, m0) in (0..rows_total).step_by(step).enumerate() {
                                call(j, acc, m0, k0, fetch_for(next, blocks, b, k0 == 0 && j == panels.start && !warm));
                            }
                        }
                    } else {
                        // Each 8-row tile passes over the group's panel slices while its slice
                        // of the lhs stays in L1.
                        for m0 in (0..rows_total).step_by(step) {
                            for (j, acc) in panels.clone().zip(acc.chunks_exact_mut(rows_total * NR)) {
                                call(j, acc, m0, k0, Fetch::NONE);
                            }
                        }
                    }
                }
                if tiled.is_some() && blocks > 1 && panels.end < weights.panels() {
                    PREFETCHED.set(weights.panel(panels.end).as_ptr() as usize);
                }
                for (j, acc) in panels.zip(acc.chunks_exact(rows_total * NR)) {
                    finish(j, 0, m, NR.min(n - j * NR), &acc[..m * NR]);
                }
            });
        });
    });
}

thread_local! {
    /// The address of the first panel whose first slice this thread's last blocked job
    /// prefetched ([`fetch_for`]), 0 for none: the next job starting there skips
    /// [`Fetch::ahead`].
    static PREFETCHED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The panel slice a blocked AMX job reads after panel `j`'s slice from pair `k0` (the job
/// takes slices in order, and in each the group's panels in order), or after the job's last,
/// the first slice of the next job (taken in turn on the thread: rayon runs a thread's share
/// of the range in order, and a wrong guess costs only bandwidth): its first line and line
/// count, `None` past the last panel.
fn next_slice(
    weights: &PackedBf16,
    panels: &std::ops::Range<usize>,
    j: usize,
    k0: usize,
) -> Option<(*const i8, usize)> {
    let pairs = weights.pairs();
    let (next_j, next_k) = if j + 1 < panels.end {
        (j + 1, k0)
    } else if k0 + AMX_KC < pairs {
        (panels.start, k0 + AMX_KC)
    } else {
        (panels.end, 0)
    };
    // Two 64-byte lines per pair (a pair of the panel is 32 columns × 2 values × 2 bytes).
    (next_j < weights.panels())
        .then(|| (weights.panel(next_j)[next_k * PANEL_PAIR..].as_ptr().cast::<i8>(), 2 * AMX_KC.min(pairs - next_k)))
}

/// What row block `b` (of `blocks`) of a blocked AMX job prefetches while it computes. Blocks
/// after the first find the slice in cache, so each brings in an even share of the `next`
/// one ([`next_slice`]) — memory works while the tiles do, instead of the first row block of
/// every slice waiting for it. The first reads ahead of itself only where no one prefetched
/// its slice (`cold`: the job's first slice, unless the previous job fetched it), or where
/// there is no second block to spread the next slice over.
fn fetch_for(next: Option<(*const i8, usize)>, blocks: usize, b: usize, cold: bool) -> Fetch {
    match next {
        _ if b == 0 => Fetch { ahead: cold || blocks < 2, ..Fetch::NONE },
        Some((first, lines)) => {
            let share = lines.div_ceil(blocks - 1);
            let from = (b - 1) * share;
            Fetch {
                ahead: false,
                next: first.wrapping_add(64 * from),
                next_lines: share.min(lines.saturating_sub(from)),
            }
        }
        None => Fetch::NONE,
    }
}

#[allow(clippy::too_many_arguments)]
unsafe fn call_tile(
    isa: Isa,
    pairs: usize,
    rows: usize,
    block: &[u16],
    lda: usize,
    panel: &[u16],
    c: *mut f32,
    ldc: usize,
    cols: usize,
    accumulate: bool,
) {
    debug_assert_eq!(block.len(), (rows - 1) * lda + 2 * pairs);
    match isa {
        // (AMX blocks are `rows_block`'s; the rows it leaves over come here as AVX-512 rows.)
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Bf16 | Isa::Amx => {
            use kernel::avx512::tile;
            let (a, b) = (block.as_ptr(), panel.as_ptr());
            // SAFETY: `matmul_with` selects this kernel only when the CPU has AVX-512 BF16; the
            // block holds `rows` rows of 2·pairs values at stride lda, the panel pairs × 64, `c`
            // as the caller promised.
            unsafe {
                match rows {
                    8 => tile::<8>(pairs, a, lda, b, c, ldc, cols, accumulate),
                    7 => tile::<7>(pairs, a, lda, b, c, ldc, cols, accumulate),
                    6 => tile::<6>(pairs, a, lda, b, c, ldc, cols, accumulate),
                    5 => tile::<5>(pairs, a, lda, b, c, ldc, cols, accumulate),
                    4 => tile::<4>(pairs, a, lda, b, c, ldc, cols, accumulate),
                    3 => tile::<3>(pairs, a, lda, b, c, ldc, cols, accumulate),
                    2 => tile::<2>(pairs, a, lda, b, c, ldc, cols, accumulate),
                    _ => tile::<1>(pairs, a, lda, b, c, ldc, cols, accumulate),
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        Isa::Avx512Bf16 | Isa::Amx => unreachable!("AVX-512 is never available off x86_64"),
        Isa::Portable => {
            // SAFETY: the caller's contract covers exactly this slice: `rows - 1` full strides plus
            // `cols` values of the last row.
            let c = unsafe { std::slice::from_raw_parts_mut(c, (rows - 1) * ldc + cols) };
            kernel::portable::tile(pairs, rows, block, lda, panel, c, ldc, cols, accumulate)
        }
    }
}

fn check(operand: &'static str, len: usize, rows: usize, cols: usize) -> Result<()> {
    let shape = || format!("[{rows}, {cols}]");
    let expected = rows.checked_mul(cols).ok_or_else(|| Error::Shape { operand, shape: shape() })?;
    if expected != len {
        return Err(Error::Length { operand, shape: shape(), expected, got: len });
    }
    Ok(())
}

/// `a` holds `m` rows of `2·pairs` values at stride `lda ≥ 2·pairs` (the last row may end there).
fn check_lhs(a: Lhs<'_>, m: usize, pairs: usize) -> Result<()> {
    let shape = || format!("[{m} rows of {} at stride {}]", 2 * pairs, a.lda);
    let expected = match m {
        0 => Some(0),
        _ => (m - 1).checked_mul(a.lda).and_then(|v| v.checked_add(2 * pairs)),
    };
    match expected {
        Some(expected) if a.lda >= 2 * pairs && a.values.len() >= expected => Ok(()),
        Some(expected) => Err(Error::Length { operand: "lhs", shape: shape(), expected, got: a.values.len() }),
        None => Err(Error::Shape { operand: "lhs", shape: shape() }),
    }
}

/// The output pointer, shared by jobs that write disjoint tiles.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);

// SAFETY: jobs write disjoint tiles (one panel each), and `matmul_with` borrows the output
// mutably for the whole parallel section.
unsafe impl Send for SharedOut {}
// SAFETY: as above.
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// # Safety
    /// `offset` must lie inside the output.
    unsafe fn at(self, offset: usize) -> *mut f32 {
        // SAFETY: the caller's contract.
        unsafe { self.0.add(offset) }
    }

    /// The same output seen as bf16 values (`matmul_bf16` stores its pointer here).
    ///
    /// # Safety
    /// `offset` (in bf16 values) must lie inside the output.
    unsafe fn at_bf16(self, offset: usize) -> *mut bf16 {
        // SAFETY: the caller's contract.
        unsafe { self.0.cast::<bf16>().add(offset) }
    }
}
