//! Micro-kernels: one `rows × 32` output tile from a packed-A block and one weight panel.
//!
//! Both kernels compute the same sums in the same order — for every column, per row pair
//! `(2p, 2p + 1)`: `acc += a[2p+1]·b[2p+1]`, then `acc += a[2p]·b[2p]`, each product exact in f32
//! (bf16 × bf16 fits f32's mantissa) and each add rounded to nearest even — which is what
//! `vdpbf16ps` is specified to do. So the portable kernel is a faithful stand-in on CPUs without
//! AVX-512 BF16 and a check of the vector one.

#[cfg(target_arch = "x86_64")]
pub(crate) mod amx;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512;
pub(crate) mod portable;

/// Rows of a full micro-kernel tile. 8 rows × 2 vectors = 16 accumulators: enough independent
/// `vdpbf16ps` chains to cover its latency, with registers to spare for the two weight vectors
/// and the broadcast.
pub(crate) const MR: usize = 8;

/// AMX activation rows per tile.
pub(crate) const AMX_ROWS: usize = 16;
/// Pairs per AMX step: an activation tile row is 64 bytes = 16 bf16 pairs, a weight tile 16
/// pairs tall (packed panels are padded to a multiple of it).
pub(crate) const AMX_STEP: usize = 16;
/// Values (bf16) in one AMX activation block: 16 rows × one step's 16 pairs = 1 KiB, the unit
/// in which `gemm::amx_tiles` lays activations out and the AMX kernel loads them.
pub(crate) const AMX_BLOCK: usize = AMX_ROWS * 2 * AMX_STEP;
const _: () = assert!(crate::packed::PAIR_ALIGN.is_multiple_of(AMX_STEP));

/// What an AMX tile call (`amx::tile`) asks the caches for while it computes: hints only (a
/// prefetch never faults, so the addresses need not be valid).
///
/// Why two kinds: a product's weights come from memory once, and a row block that waits for
/// them leaves the tile unit idle (SigLIP's products over 27 layers' weights: 44 % of the tile
/// kernel's samples in the first row block, an eighth of the work). [`Fetch::next`] spreads the
/// *next* slice's lines over the row blocks that reuse the current one (from L2), so memory and
/// tiles overlap; [`Fetch::ahead`] remains for a slice nobody fetched in advance.
#[derive(Clone, Copy)]
pub(crate) struct Fetch {
    /// Prefetch the call's own panel a few steps ahead (into L1): its weights are coming from
    /// memory now.
    pub(crate) ahead: bool,
    /// The first of `next_lines` 64-byte lines a later call reads, prefetched into L2 evenly
    /// over this call's steps.
    pub(crate) next: *const i8,
    /// How many lines from `next`.
    pub(crate) next_lines: usize,
}

impl Fetch {
    /// Nothing fetched in advance: the weights are in cache (or nothing better is known).
    pub(crate) const NONE: Fetch = Fetch { ahead: false, next: std::ptr::null(), next_lines: 0 };
}
