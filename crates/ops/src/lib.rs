#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod attention;
mod div_scalar;
#[cfg(feature = "flex")]
mod flex;
mod gelu;
mod linear;
mod matmul_transposed;
mod norm;
mod patches;
mod pool;
mod residual;
mod rope;

pub use attention::{attention, attention_grouped, attention_with};
pub use div_scalar::div_scalar_f32;
pub use gelu::{gelu_tanh, gelu_tanh_mul};
pub use linear::{Linear, PackedWeight, WeightLayout, pack_weights};
pub use matmul_transposed::matmul_transposed;
pub use norm::{layer_norm, rms_norm_to_bf16};
pub use patches::patch_rows;
pub use pool::on_kernel_pool;
pub use residual::residual_add;
pub use rope::rope;
