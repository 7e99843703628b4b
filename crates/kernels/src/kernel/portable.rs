//! The reference micro-kernel in plain Rust: same layout, same order of operations as the
//! AVX-512 BF16 one (see the module above), for CPUs without it and for testing it.

use crate::packed::{NR, PANEL_PAIR};

/// `c[r][0..cols] = Σ_p a[r][p] · panel[p]` for `r < rows`.
///
/// `a` holds `rows` rows of `2 · pairs` bf16 values at stride `lda` (pair `p` of a row: values
/// `2p`, `2p + 1`); `c` is the output row-major with row stride `ldc`, starting at the tile's
/// first element. With `accumulate` the sums continue from `c`'s values instead of zero.
#[allow(clippy::too_many_arguments)]
pub(crate) fn tile(
    pairs: usize,
    rows: usize,
    a: &[u16],
    lda: usize,
    panel: &[u16],
    c: &mut [f32],
    ldc: usize,
    cols: usize,
    accumulate: bool,
) {
    for r in 0..rows {
        let mut acc = [0f32; NR];
        if accumulate {
            acc[..cols].copy_from_slice(&c[r * ldc..r * ldc + cols]);
        }
        let row = &a[r * lda..r * lda + 2 * pairs];
        for (p, pair) in row.chunks_exact(2).enumerate() {
            let (a_even, a_odd) = (bf16_to_f32(pair[0]), bf16_to_f32(pair[1]));
            let b = &panel[p * PANEL_PAIR..(p + 1) * PANEL_PAIR];
            for (j, acc) in acc.iter_mut().enumerate() {
                *acc += a_odd * bf16_to_f32(b[2 * j + 1]);
                *acc += a_even * bf16_to_f32(b[2 * j]);
            }
        }
        c[r * ldc..r * ldc + cols].copy_from_slice(&acc[..cols]);
    }
}

fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}
