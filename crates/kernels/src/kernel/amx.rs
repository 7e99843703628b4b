//! The AMX micro-kernel: `tdpbf16ps` on 16 × 16 f32 tiles (Intel Sapphire Rapids and later).
//!
//! One call computes a `16·R16 × 32` block: two weight tiles (16 pairs × 16 columns each, read
//! straight from a packed panel at a 128-byte stride: the panel layout *is* AMX's pair-interleaved
//! B layout), `R16` activation tiles (16 rows × 16 pairs, copied once per product into tile
//! order: see `gemm::amx_tiles`) and `2·R16` accumulator tiles, per step of 16 pairs. A
//! `tdpbf16ps` is 16·16·32 multiply-adds — 64 `vdpbf16ps` — so one core's AMX unit outruns its
//! AVX-512 units several times over (register-only peaks here: 7.6 vs 0.24 TFLOP/s on 2 cores);
//! feeding it is the hard part: streaming from L2 the tiles reach two thirds of that peak, with
//! the weights coming from L3 (each product's one pass over them) about a third.
//!
//! Rust has no stable AMX intrinsics, so the instructions are inline assembly (stable); the tile
//! registers are invisible to the compiler, which is why every block here is one `unsafe fn`
//! that configures nothing itself: [`Tiles`] loads the one tile configuration for a job and
//! releases it when the job ends.
//!
//! Numerics: each product of two bf16 values is exact in f32 and the sums are f32, rounded to
//! nearest even — but the hardware adds a pair's two products (and the running sum) in its own
//! order and internal width, so the results are not bit-identical to `vdpbf16ps`'s; both stay
//! within the f32 error bound of a k-term sum (tests/gemm.rs checks every kernel against it).
#![allow(unsafe_code)]

use std::arch::asm;
use std::arch::x86_64::{_MM_HINT_T0, _MM_HINT_T1, _mm_prefetch};
use std::sync::OnceLock;

use super::{AMX_BLOCK as BLOCK, AMX_ROWS as ROWS, AMX_STEP as STEP, Fetch};
use crate::packed::PANEL_PAIR;

/// Whether the OS lets this process use the tile registers. Linux hands out the (8 KiB) tile
/// state only on request (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`, kernels ≥ 5.16);
/// asked once, for the whole process. Without it the first tile instruction would kill the
/// process with SIGILL, so the kernel is used only when this says yes.
pub(crate) fn granted() -> bool {
    static GRANTED: OnceLock<bool> = OnceLock::new();
    *GRANTED.get_or_init(request)
}

#[cfg(target_os = "linux")]
fn request() -> bool {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: this request only extends the set of register states the process may use; it
    // touches no memory of ours.
    unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 }
}

#[cfg(not(target_os = "linux"))]
fn request() -> bool {
    false
}

/// The tile configuration (palette 1): tiles 0–7 all 16 rows × 64 bytes — accumulators
/// (16 × 16 f32), activations (16 rows × 16 pairs) and weights (16 pairs × 16 columns × 2).
#[repr(C, align(64))]
struct Config {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 16],
    rows: [u8; 16],
}

static CONFIG: Config = Config {
    palette: 1,
    start_row: 0,
    reserved: [0; 14],
    colsb: [64, 64, 64, 64, 64, 64, 64, 64, 0, 0, 0, 0, 0, 0, 0, 0],
    rows: [16, 16, 16, 16, 16, 16, 16, 16, 0, 0, 0, 0, 0, 0, 0, 0],
};

/// The tiles configured on this thread while it lives (one job: many [`tile`] calls); released
/// (`tilerelease`, the registers back to their initial state) when dropped.
pub(crate) struct Tiles(());

impl Tiles {
    /// # Safety
    /// The CPU must have AMX-BF16 and [`granted`] must have returned true. Nothing else may
    /// use the tile registers on this thread until the value is dropped.
    pub(crate) unsafe fn configure() -> Tiles {
        // SAFETY: the caller's contract; `CONFIG` is a valid 64-byte palette-1 configuration.
        unsafe { asm!("ldtilecfg [{0}]", in(reg) &CONFIG, options(nostack, readonly, preserves_flags)) };
        Tiles(())
    }
}

impl Drop for Tiles {
    fn drop(&mut self) {
        // SAFETY: a `Tiles` exists only after a successful `configure` on this thread.
        unsafe { asm!("tilerelease", options(nostack, nomem, preserves_flags)) };
    }
}

/// How far ahead (steps) [`tile`] prefetches the panel on a first pass ([`Fetch::ahead`]):
/// 8 KiB, past the 4 KiB page boundary where the hardware's streamer stops. (Weights come from memory once per
/// product; measured, interleaved A/B, weights rotating through more than L3: Gemma's gate/up
/// 1.84 → 1.95 TFLOP/s, SigLIP's fc1 1.77 → 1.84; 2, 8 and 16 steps no better.)
const PREFETCH_STEPS: usize = 4;

/// One `16·R16 × 32` block (`R16` ∈ {1, 2}): `c[r][0..32] (+)= Σ_p a[r][p] · panel[p]` over
/// `steps` steps of 16 pairs. The activations are in tile order: step `s` of the first 16 rows
/// is the 1 KiB block at `a + 512s` (16 rows of 64 bytes), of the next 16 rows the one at
/// `a + group + 512s` (values); the panel's pairs continue into its zero padding where `k` ends
/// mid-step.
///
/// # Safety
/// A [`Tiles`] must be alive on this thread. `a` must hold `steps` blocks of 512 values (and as
/// many from `a + group` when `R16 = 2`); `panel` `16·steps` pairs (64 values each); `c` must
/// be valid for reads (with `accumulate`) and writes of 32 f32 at each of `16·R16` rows spaced
/// `ldc` apart. `fetch` says what to prefetch meanwhile.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn tile<const R16: usize>(
    steps: usize,
    a: *const u16,
    group: usize,
    panel: *const u16,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    fetch: Fetch,
) {
    let (c_stride, b_stride, a_stride) = (4 * ldc, 2 * PANEL_PAIR, 4 * STEP);
    let next_per_step = fetch.next_lines.div_ceil(steps.max(1));
    // SAFETY (whole body): every address is inside the regions the caller promised, as noted.
    unsafe {
        let c_low = c.wrapping_add(ROWS * ldc); // rows 16..32 (used only with R16 = 2)
        if accumulate {
            asm!("tileloadd tmm0, [{0} + {1}*1]", in(reg) c, in(reg) c_stride, options(nostack, readonly));
            asm!("tileloadd tmm1, [{0} + {1}*1]", in(reg) c.add(16), in(reg) c_stride, options(nostack, readonly));
            if R16 == 2 {
                asm!("tileloadd tmm2, [{0} + {1}*1]", in(reg) c_low, in(reg) c_stride, options(nostack, readonly));
                asm!("tileloadd tmm3, [{0} + {1}*1]", in(reg) c_low.add(16), in(reg) c_stride, options(nostack, readonly));
            }
        } else {
            asm!("tilezero tmm0", "tilezero tmm1", "tilezero tmm2", "tilezero tmm3", options(nostack, nomem));
        }
        for s in 0..steps {
            // Each product is issued as soon as its two operands are loaded (A0·B0 needs two
            // loads, then each further load completes one or two products).
            let (rows, b) = (a.add(s * BLOCK), panel.add(s * STEP * PANEL_PAIR));
            if fetch.ahead {
                // The panel's step `s + PREFETCH_STEPS` (2 KiB), a hint only: addresses past the
                // panel's end are never loaded from (a prefetch does not fault).
                let ahead = panel.wrapping_add((s + PREFETCH_STEPS) * STEP * PANEL_PAIR).cast::<i8>();
                for line in 0..STEP * PANEL_PAIR * 2 / 64 {
                    _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64 * line));
                }
            }
            // This step's share of the next slice, into L2 (where the later call finds it; L1
            // holds this call's operands).
            for line in (s * next_per_step..(s + 1) * next_per_step).take_while(|l| *l < fetch.next_lines) {
                _mm_prefetch::<_MM_HINT_T1>(fetch.next.wrapping_add(64 * line));
            }
            // Weights: pairs 16s.. of the panel, columns 0..16 then 16..32 (64 bytes in). B0
            // before A0, measured faster (SigLIP's fc1 1.26 → 1.17 ms, Gemma's gate 9.0 → 8.7
            // with hot weights; 1–2 % with weights from memory). The likely reason: a tile load
            // waits for the products still reading its register, the previous step's last
            // reader of tmm6 (its second product) ends before that of tmm4 (its third), and
            // loads issue in order — so A0 first held B0 back.
            asm!("tileloadd tmm6, [{0} + {1}*1]", in(reg) b, in(reg) b_stride, options(nostack, readonly));
            asm!("tileloadd tmm4, [{0} + {1}*1]", in(reg) rows, in(reg) a_stride, options(nostack, readonly));
            asm!("tdpbf16ps tmm0, tmm4, tmm6", options(nostack, nomem));
            if R16 == 2 {
                asm!("tileloadd tmm5, [{0} + {1}*1]", in(reg) rows.add(group), in(reg) a_stride, options(nostack, readonly));
                asm!("tdpbf16ps tmm2, tmm5, tmm6", options(nostack, nomem));
            }
            asm!("tileloadd tmm7, [{0} + {1}*1]", in(reg) b.add(32), in(reg) b_stride, options(nostack, readonly));
            asm!("tdpbf16ps tmm1, tmm4, tmm7", options(nostack, nomem));
            if R16 == 2 {
                asm!("tdpbf16ps tmm3, tmm5, tmm7", options(nostack, nomem));
            }
        }
        asm!("tilestored [{0} + {1}*1], tmm0", in(reg) c, in(reg) c_stride, options(nostack));
        asm!("tilestored [{0} + {1}*1], tmm1", in(reg) c.add(16), in(reg) c_stride, options(nostack));
        if R16 == 2 {
            asm!("tilestored [{0} + {1}*1], tmm2", in(reg) c_low, in(reg) c_stride, options(nostack));
            asm!("tilestored [{0} + {1}*1], tmm3", in(reg) c_low.add(16), in(reg) c_stride, options(nostack));
        }
    }
}
