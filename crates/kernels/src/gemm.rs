//! `out = lhs · W` with `W` packed in bf16: the driver (checks, activation packing, threads).
#![allow(unsafe_code)] // the AVX-512 tiles are `unsafe fn`s; see `call_tile`

use half::bf16;
use rayon::prelude::*;

use crate::cpu::CpuFeatures;
use crate::error::{Error, Result};
use crate::kernel::{self, MR};
use crate::packed::{NR, PackedBf16};

/// Which micro-kernel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// `vdpbf16ps` (AVX-512 BF16: AMD Zen 4+, Intel Cooper Lake / Sapphire Rapids+).
    Avx512Bf16,
    /// Plain Rust with the same operations in the same order (any CPU).
    Portable,
}

impl Isa {
    /// The fastest kernel this CPU runs.
    pub fn best() -> Isa {
        if CpuFeatures::get().avx512_bf16 { Isa::Avx512Bf16 } else { Isa::Portable }
    }

    /// Whether this CPU can run it.
    pub fn available(self) -> bool {
        match self {
            Isa::Avx512Bf16 => CpuFeatures::get().avx512_bf16,
            Isa::Portable => true,
        }
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
    let isa = if isa.available() { isa } else { Isa::Portable };
    let pairs = weights.pairs();
    let a = pack_lhs(lhs, m, k);
    let out = SharedOut(out.as_mut_ptr());
    // A job per panel: every job writes its own 32 columns of every row, so jobs never overlap.
    (0..weights.panels()).into_par_iter().for_each(|j| {
        let panel = weights.panel(j);
        let cols = NR.min(n - j * NR);
        for m0 in (0..m).step_by(MR) {
            let rows = MR.min(m - m0);
            let block = &a[m0 * pairs..(m0 + rows) * pairs];
            // SAFETY: rows m0..m0+rows and columns j*32..j*32+cols are inside `out` (checked to be
            // m × n above) and written by this job only.
            unsafe { call_tile(isa, pairs, rows, block, panel, out.at(m0 * n + j * NR), n, cols) };
        }
    });
    Ok(())
}

/// Dispatches one tile to the kernel for `rows` (a const generic on the AVX-512 path, so its
/// accumulators stay in registers).
///
/// # Safety
/// `c` must be valid for writes of `cols` values at `rows` rows spaced `ldc` apart, and no other
/// thread may touch them meanwhile.
#[allow(clippy::too_many_arguments)]
unsafe fn call_tile(
    isa: Isa,
    pairs: usize,
    rows: usize,
    block: &[u32],
    panel: &[u16],
    c: *mut f32,
    ldc: usize,
    cols: usize,
) {
    debug_assert_eq!(block.len(), pairs * rows);
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Bf16 => {
            use kernel::avx512::tile;
            let (a, b) = (block.as_ptr(), panel.as_ptr());
            // SAFETY: `matmul_with` selects this kernel only when the CPU has AVX-512 BF16; the
            // block holds pairs × rows values, the panel pairs × 64, `c` as the caller promised.
            unsafe {
                match rows {
                    8 => tile::<8>(pairs, a, b, c, ldc, cols),
                    7 => tile::<7>(pairs, a, b, c, ldc, cols),
                    6 => tile::<6>(pairs, a, b, c, ldc, cols),
                    5 => tile::<5>(pairs, a, b, c, ldc, cols),
                    4 => tile::<4>(pairs, a, b, c, ldc, cols),
                    3 => tile::<3>(pairs, a, b, c, ldc, cols),
                    2 => tile::<2>(pairs, a, b, c, ldc, cols),
                    _ => tile::<1>(pairs, a, b, c, ldc, cols),
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        Isa::Avx512Bf16 => unreachable!("AVX-512 is never available off x86_64"),
        Isa::Portable => {
            // SAFETY: the caller's contract covers exactly this slice: `rows - 1` full strides plus
            // `cols` values of the last row.
            let c = unsafe { std::slice::from_raw_parts_mut(c, (rows - 1) * ldc + cols) };
            kernel::portable::tile(pairs, rows, block, panel, c, ldc, cols)
        }
    }
}

/// Rounds `lhs` to bf16 pairs, in blocks of `MR` rows: block `b` holds `[pair][row]`, so a tile
/// reads its broadcasts sequentially. An odd `k` is padded with zero.
fn pack_lhs(lhs: &[f32], m: usize, k: usize) -> Vec<u32> {
    let pairs = k.div_ceil(2);
    let mut a = vec![0u32; m * pairs];
    if a.is_empty() {
        return a;
    }
    a.par_chunks_mut(MR * pairs).enumerate().for_each(|(b, block)| {
        let rows = block.len() / pairs;
        for r in 0..rows {
            let row = &lhs[(b * MR + r) * k..(b * MR + r + 1) * k];
            for p in 0..pairs {
                let even = bf16::from_f32(row[2 * p]).to_bits();
                let odd = row.get(2 * p + 1).map_or(0, |v| bf16::from_f32(*v).to_bits());
                block[p * rows + r] = u32::from(even) | (u32::from(odd) << 16);
            }
        }
    });
    a
}

fn check(operand: &'static str, len: usize, rows: usize, cols: usize) -> Result<()> {
    let shape = || format!("[{rows}, {cols}]");
    let expected = rows.checked_mul(cols).ok_or_else(|| Error::Shape { operand, shape: shape() })?;
    if expected != len {
        return Err(Error::Length { operand, shape: shape(), expected, got: len });
    }
    Ok(())
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
}
