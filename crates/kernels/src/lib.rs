#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod attention;
mod cpu;
mod elementwise;
mod error;
mod gemm;
mod kernel;
mod matmul_nt;
mod norm;
mod packed;
mod patches;
mod peak;
mod pool;
mod rope;

pub use attention::{
    AttentionBias, AttentionShape, Heads, HeadsLayout, OutLayout, attention_bf16, attention_bf16_strided,
};
pub use cpu::CpuFeatures;
pub use elementwise::{add_bf16, add_f32_bf16, div_scalar_bf16, gelu_tanh_bf16, gelu_tanh_mul_bf16};
pub use error::{Error, Result};
pub use gemm::{Epilogue, Isa, matmul, matmul_bf16, matmul_bf16_then, matmul_bf16_vec, matmul_with};
/// bf16 as this crate takes it (`half::bf16`, the type Burn re-exports).
pub use half::bf16;
pub use matmul_nt::{MATMUL_NT_MAX_ROWS, matmul_nt_f32};
pub use norm::{layer_norm_bf16, rms_norm_bf16};
pub use packed::PackedBf16;
pub use patches::patch_rows;
pub use peak::{PeakKind, peak_gflops};
pub use pool::on_pool;
pub use rope::{RopeTables, rope_bf16};
