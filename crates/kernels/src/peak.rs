//! The machine's measured arithmetic peak, the yardstick for the kernels' GFLOP/s.
//!
//! Each thread runs a loop of independent multiply-adds on registers only (no memory traffic,
//! enough chains to hide latency), so the rate is what the execution units sustain. Reported
//! per dtype: bf16 `vdpbf16ps` (64 FLOP per instruction: 16 lanes × 2 products × 2), AMX bf16
//! `tdpbf16ps` (16 384 FLOP per instruction: 16 × 16 outputs × 32 products × 2) and f32
//! `vfmadd` (32 FLOP per 512-bit instruction).
#![allow(unsafe_code)] // calls `#[target_feature]` functions after checking the CPU has them

use std::time::Instant;

use rayon::prelude::*;

use crate::cpu::CpuFeatures;

/// Which instruction the peak is measured with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeakKind {
    /// `vdpbf16ps` on 512-bit vectors (needs AVX-512 BF16).
    Bf16Dot,
    /// `vfmadd231ps` on 512-bit vectors (needs AVX-512F).
    F32Fma,
    /// `tdpbf16ps` on AMX tiles, four independent accumulator tiles (needs AMX-BF16 and the
    /// OS's grant of the tile registers: [`crate::Isa::Amx`] available).
    AmxBf16,
}

/// GFLOP/s sustained by `threads` threads (each in rayon's pool) running `kind` for about
/// `millis` milliseconds, or `None` if this CPU lacks the instruction.
pub fn peak_gflops(kind: PeakKind, threads: usize, millis: u64) -> Option<f64> {
    let features = CpuFeatures::get();
    let supported = match kind {
        PeakKind::Bf16Dot => features.avx512_bf16,
        PeakKind::F32Fma => features.avx512f,
        PeakKind::AmxBf16 => crate::Isa::Amx.available(),
    };
    if !supported || threads == 0 {
        return None;
    }
    // Calibrate the iteration count on one thread, then run every thread for the same count.
    let mut iterations = 1u64 << 16;
    loop {
        let start = Instant::now();
        run(kind, iterations);
        if start.elapsed().as_millis() as u64 * 4 >= millis || iterations >= 1 << 40 {
            break;
        }
        iterations *= 2;
    }
    let iterations = iterations * 4;
    let start = Instant::now();
    (0..threads).into_par_iter().for_each(|_| run(kind, iterations));
    let seconds = start.elapsed().as_secs_f64();
    Some(iterations as f64 * kind.flop_per_iteration() * threads as f64 / seconds / 1e9)
}

/// Independent accumulator chains per loop iteration.
const CHAINS: usize = 16;

impl PeakKind {
    fn flop_per_iteration(self) -> f64 {
        match self {
            PeakKind::Bf16Dot => 64.0 * CHAINS as f64,
            PeakKind::F32Fma => 32.0 * CHAINS as f64,
            PeakKind::AmxBf16 => 16384.0 * 4.0,
        }
    }
}

fn run(kind: PeakKind, iterations: u64) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `peak_gflops` runs a kind only after checking the CPU has its instruction.
    unsafe {
        let sink = match kind {
            PeakKind::Bf16Dot => x86::bf16_dot(iterations),
            PeakKind::F32Fma => x86::f32_fma(iterations),
            PeakKind::AmxBf16 => x86::amx_bf16(iterations),
        };
        std::hint::black_box(sink);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (kind, iterations);
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::{
        __m512, __m512bh, __m512i, _mm512_dpbf16_ps, _mm512_fmadd_ps, _mm512_reduce_add_ps, _mm512_set1_epi32,
        _mm512_set1_ps,
    };
    use std::hint::black_box;

    use super::CHAINS;

    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) fn bf16_dot(iterations: u64) -> f32 {
        // 0x3c00_3c00: the bf16 pair (2^-7, 2^-7); the sums stay finite and normal.
        // SAFETY: plain-data reinterpretation of a 512-bit integer vector.
        let a = unsafe { std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(black_box(0x3c00_3c00))) };
        let mut acc = [_mm512_set1_ps(0.0); CHAINS];
        for _ in 0..iterations {
            for acc in &mut acc {
                *acc = _mm512_dpbf16_ps(*acc, a, a);
            }
        }
        acc.iter().map(|v| _mm512_reduce_add_ps(*v)).sum()
    }

    /// Four accumulator tiles, each `+= tmm4 · tmm6` (zero operands: the rate does not depend
    /// on the values), `iterations` times.
    ///
    /// # Safety
    /// AMX-BF16 must be available and granted (`Isa::Amx.available()`).
    pub(super) unsafe fn amx_bf16(iterations: u64) -> f32 {
        // SAFETY: the caller's contract; the tiles are configured and released here.
        unsafe {
            let _tiles = crate::kernel::amx::Tiles::configure();
            std::arch::asm!("tilezero tmm4", "tilezero tmm6", options(nostack, nomem));
            for _ in 0..iterations {
                std::arch::asm!(
                    "tdpbf16ps tmm0, tmm4, tmm6",
                    "tdpbf16ps tmm1, tmm4, tmm6",
                    "tdpbf16ps tmm2, tmm4, tmm6",
                    "tdpbf16ps tmm3, tmm4, tmm6",
                    options(nostack, nomem)
                );
            }
        }
        0.0
    }

    #[target_feature(enable = "avx512f")]
    pub(super) fn f32_fma(iterations: u64) -> f32 {
        let a: __m512 = _mm512_set1_ps(black_box(0.999_999));
        let mut acc = [_mm512_set1_ps(0.0); CHAINS];
        for _ in 0..iterations {
            for acc in &mut acc {
                *acc = _mm512_fmadd_ps(*acc, a, a);
            }
        }
        acc.iter().map(|v| _mm512_reduce_add_ps(*v)).sum()
    }
}
