//! The bridge from generic Burn tensors to Flex's storage, for the CPU fast paths
//! (`robovlm-kernels`). Only compiled with the `flex` feature.
//!
//! A tensor's backend primitive is downcast (`Any`, no `unsafe`) to `FlexTensor`; on any other
//! backend the tensor comes back untouched and the caller takes Burn's path.

use std::any::Any;
use std::sync::OnceLock;

use burn::prelude::*;
use burn::tensor::{Bytes, DType, TensorPrimitive, bf16};
use burn_flex::{FlexTensor, Layout};
use robovlm_kernels::{Heads, HeadsLayout, Isa, OutLayout};

/// Whether `B`'s float tensors are Flex's (a pass on `B` runs the CPU kernels' way).
pub(crate) fn is_flex<B: Backend>() -> bool {
    std::any::TypeId::of::<B::FloatTensorPrimitive>() == std::any::TypeId::of::<FlexTensor>()
}

/// Whether the fast paths may run: AVX-512 BF16 present (without it the portable kernels are
/// slower than Flex's own f32 GEMM) and not switched off with `ROBOVLM_KERNELS=off` (A/B benches).
pub(crate) fn enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| {
        // (AVX-512 BF16 is detected together with AVX-512F, which the element-wise kernels use.)
        Isa::best().native() && std::env::var("ROBOVLM_KERNELS").map_or(true, |v| v != "off")
    })
}

/// The Flex tensor inside `x`, or `x` back when it is another backend's (or quantized).
pub(crate) fn to_flex<B: Backend, const D: usize>(x: Tensor<B, D>) -> Result<FlexTensor, Tensor<B, D>> {
    let primitive = match x.into_primitive() {
        TensorPrimitive::Float(p) => p,
        quantized => return Err(Tensor::from_primitive(quantized)),
    };
    let any: Box<dyn Any> = Box::new(primitive);
    match any.downcast::<FlexTensor>() {
        Ok(flex) => Ok(*flex),
        Err(any) => Err(Tensor::from_primitive(TensorPrimitive::Float(
            *any.downcast::<B::FloatTensorPrimitive>().expect("the primitive we boxed"),
        ))),
    }
}

/// Back to a `Tensor<B, D>`; only called with tensors `to_flex` produced, so `B` is Flex.
pub(crate) fn from_flex<B: Backend, const D: usize>(flex: FlexTensor) -> Tensor<B, D> {
    let any: Box<dyn Any> = Box::new(flex);
    let primitive = any.downcast::<B::FloatTensorPrimitive>().expect("B's float primitive is FlexTensor");
    Tensor::from_primitive(TensorPrimitive::Float(*primitive))
}

/// `t` with a row-major layout and no offset, so [`FlexTensor::as_slice`] sees every value.
pub(crate) fn contiguous(t: &FlexTensor) -> FlexTensor {
    if t.is_contiguous() { t.clone() } else { t.to_contiguous() }
}

/// The values of a bf16 tensor in row-major order, as f32 (exact).
pub(crate) fn bf16_values(t: &FlexTensor) -> Option<Vec<f32>> {
    Some(contiguous(t).as_slice::<bf16>()?.iter().map(|v| v.to_f32()).collect())
}

/// A new row-major f32 Flex tensor.
pub(crate) fn f32_tensor<const D: usize>(values: Vec<f32>, shape: [usize; D]) -> FlexTensor {
    FlexTensor::new(Bytes::from_elems(values), Layout::contiguous(Shape::from(shape)), DType::F32)
}

/// A new row-major bf16 Flex tensor.
pub(crate) fn bf16_tensor<const D: usize>(values: Vec<bf16>, shape: [usize; D]) -> FlexTensor {
    FlexTensor::new(Bytes::from_elems(values), Layout::contiguous(Shape::from(shape)), DType::BF16)
}

/// A `[batch, heads, rows, d]` bf16 operand for the kernels.
pub(crate) fn operand((t, layout): &(FlexTensor, HeadsLayout)) -> Heads<'_> {
    Heads { values: t.storage::<bf16>(), layout: *layout }
}

/// `t` (a `[batch, heads, rows, d]` bf16 tensor) and its layout for the kernels: its own strides
/// when they are non-negative with `d` contiguous (per-head views of projections, KV caches),
/// otherwise a contiguous copy.
pub(crate) fn heads_view(t: FlexTensor) -> (FlexTensor, HeadsLayout) {
    let layout = t.layout();
    let [_, _, _, d] = layout.shape().dims::<4>();
    let strides = layout.strides();
    let usable = strides.len() == 4 && strides.iter().all(|s| *s >= 0) && (strides[3] == 1 || d <= 1);
    if usable {
        let [batch, head, row] = [strides[0], strides[1], strides[2]].map(|s| s as usize);
        let view = HeadsLayout { offset: layout.start_offset(), batch, head, row };
        return (t, view);
    }
    let t = t.to_contiguous();
    let [_, heads, rows, d] = t.layout().shape().dims::<4>();
    (t, HeadsLayout::head_major(heads, rows, d))
}

/// A kernel's `[batch, heads, rows, d]` result as a Flex tensor; token-major values get the
/// strides that make `swap_dims(1, 2).reshape([batch, rows, heads·d])` free.
pub(crate) fn heads_tensor(values: Vec<bf16>, [batch, heads, rows, d]: [usize; 4], layout: OutLayout) -> FlexTensor {
    let out = bf16_tensor(values, [batch, heads, rows, d]);
    match layout {
        OutLayout::HeadMajor => out,
        OutLayout::TokenMajor => {
            let strides = vec![(rows * heads * d) as isize, d as isize, (heads * d) as isize, 1];
            out.with_layout(Layout::new(Shape::from([batch, heads, rows, d]), strides, 0))
        }
    }
}
