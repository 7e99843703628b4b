//! The reference micro-kernel in plain Rust: same layout, same order of operations as the
//! AVX-512 BF16 one (see the module above), for CPUs without it and for testing it.

use crate::packed::{NR, PANEL_PAIR};

/// `c[r][0..cols] = Σ_p a_block[p][r] · panel[p]` for `r < rows`.
///
/// `a_block` holds `pairs × rows` bf16 pairs (low half = even row of the pair); `c` is the output
/// row-major with row stride `ldc`, starting at the tile's first element.
pub(crate) fn tile(pairs: usize, rows: usize, a_block: &[u32], panel: &[u16], c: &mut [f32], ldc: usize, cols: usize) {
    for r in 0..rows {
        let mut acc = [0f32; NR];
        for p in 0..pairs {
            let pair = a_block[p * rows + r];
            let (a_even, a_odd) = (bf16_to_f32(pair as u16), bf16_to_f32((pair >> 16) as u16));
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
