//! The AVX-512 BF16 micro-kernel: `vdpbf16ps` on 32-column weight panels.
//!
//! `unsafe` is allowed in this file only (the workspace denies it): SIMD loads and stores take
//! raw pointers, and a `#[target_feature]` function may only be called once the CPU is known to
//! have the feature. Each `unsafe` states what makes it sound.
#![allow(unsafe_code)]

use std::arch::x86_64::{
    __m512, __m512bh, __m512i, _mm512_dpbf16_ps, _mm512_loadu_ps, _mm512_loadu_si512, _mm512_mask_storeu_ps,
    _mm512_set1_epi32, _mm512_setzero_ps, _mm512_storeu_ps,
};

use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};

use crate::packed::{NR, PANEL_PAIR};

/// How far ahead (pairs of the panel, 128 bytes each) a one-row tile prefetches its panel: 8 KiB,
/// two pages on. A one-row product (a decode step's GEMV) reads every weight byte once, from
/// memory, and the hardware's streamer does not cross a 4 KiB page; measured over Gemma-2B's
/// per-layer products (6 layers, 1.3 GB, interleaved): 57–61 → 50–53 ms, 23 → 26 GB/s on 2
/// cores (32 pairs the same, 16 and 256 worse, 128 in between).
const GEMV_AHEAD: usize = 64;

/// One `R × 32` tile: `c[r][0..cols] = Σ_p a[r][p] · panel[p]` for every `r < R`, where
/// `a[r][p]` is the bf16 pair at `a + r·lda + 2p` (row-major activations read in place).
///
/// # Safety
/// The CPU must support `avx512f` and `avx512bf16` ([`crate::CpuFeatures`]). `a` must hold `R`
/// rows of `2 · pairs` values at stride `lda`, `panel` `pairs * 64` values, and `c` must be valid
/// for writes of `cols ≤ 32` values at each of `R` rows spaced `ldc` apart — and, with
/// `accumulate` (the sums continue from `c`'s values instead of zero), reads of 32 values.
#[target_feature(enable = "avx512f,avx512bf16")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn tile<const R: usize>(
    pairs: usize,
    a: *const u16,
    lda: usize,
    panel: *const u16,
    c: *mut f32,
    ldc: usize,
    cols: usize,
    accumulate: bool,
) {
    let mut acc: [[__m512; 2]; R] = [[_mm512_setzero_ps(); 2]; R];
    if accumulate {
        for (r, acc) in acc.iter_mut().enumerate() {
            // SAFETY: with `accumulate` the caller promises 32 readable values per row.
            unsafe { *acc = [_mm512_loadu_ps(c.add(r * ldc)), _mm512_loadu_ps(c.add(r * ldc + 16))] };
        }
    }
    // SAFETY: r < R rows exist at stride lda (caller's contract).
    let rows: [*const u16; R] = std::array::from_fn(|r| unsafe { a.add(r * lda) });
    for p in 0..pairs {
        if R == 1 {
            // A hint: addresses past the panel are never loaded from (a prefetch does not fault).
            let ahead = panel.wrapping_add((p + GEMV_AHEAD) * PANEL_PAIR).cast::<i8>();
            _mm_prefetch::<_MM_HINT_T0>(ahead);
            _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64));
        }
        // SAFETY: p < pairs, so both 64-byte loads lie inside the panel's `pairs * 64` values.
        let (b0, b1) = unsafe {
            let b = panel.add(p * PANEL_PAIR);
            (bh(_mm512_loadu_si512(b.cast())), bh(_mm512_loadu_si512(b.add(NR).cast())))
        };
        for (row, acc) in rows.iter().zip(acc.iter_mut()) {
            // SAFETY: values 2p and 2p + 1 of the row exist (p < pairs); x86 reads unaligned.
            let pair = unsafe { row.add(2 * p).cast::<u32>().read_unaligned() };
            let a = bh(_mm512_set1_epi32(pair as i32));
            acc[0] = _mm512_dpbf16_ps(acc[0], a, b0);
            acc[1] = _mm512_dpbf16_ps(acc[1], a, b1);
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        // SAFETY: row r < R is writable for `cols` values (caller's contract); the second half is
        // touched only when cols > 16, masked to the columns that exist.
        unsafe {
            let row = c.add(r * ldc);
            if cols >= NR {
                _mm512_storeu_ps(row, acc[0]);
                _mm512_storeu_ps(row.add(16), acc[1]);
            } else {
                _mm512_mask_storeu_ps(row, lanes(cols), acc[0]);
                if cols > 16 {
                    _mm512_mask_storeu_ps(row.add(16), lanes(cols - 16), acc[1]);
                }
            }
        }
    }
}

/// Mask of the first `n` (≤ 16) lanes.
fn lanes(n: usize) -> u16 {
    if n >= 16 { u16::MAX } else { (1u16 << n) - 1 }
}

/// Reinterprets 32 packed bf16 values (as integers) as the dot-product operand type.
#[inline(always)]
fn bh(v: __m512i) -> __m512bh {
    // SAFETY: both are 512-bit plain-data vectors; every bit pattern is a valid value of either.
    unsafe { std::mem::transmute::<__m512i, __m512bh>(v) }
}
