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
