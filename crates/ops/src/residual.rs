//! Residual connections: `x + block(x)` where the block's output may be in a lower precision.

use burn::prelude::*;

/// `residual + y`, `y` cast to the residual's dtype first — a transformer's residual connection
/// (SigLIP: both bf16 in bf16 runs; Gemma: an f32 stream and a block output in the compute
/// dtype). Exactly `residual + y.cast(residual.dtype())`.
///
/// On Flex with bf16 `y` (a CPU with AVX-512, `ROBOVLM_KERNELS` not `off`): one threaded,
/// vectorised pass (`robovlm_kernels::add_bf16` / `add_f32_bf16`) instead of Flex's
/// single-threaded cast and addition — the same bits.
///
/// # Shapes
/// - `residual`, `y`, returns: the same shape
pub fn residual_add<B: Backend, const D: usize>(residual: Tensor<B, D>, y: Tensor<B, D>) -> Tensor<B, D> {
    #[cfg(feature = "flex")]
    let (residual, y) = match fast::add(residual, y) {
        Ok(sum) => return sum,
        Err(back) => back,
    };
    let dtype = residual.dtype();
    residual + y.cast(dtype)
}

#[cfg(feature = "flex")]
mod fast {
    use burn::prelude::*;
    use burn::tensor::{DType, bf16};
    use burn_flex::FlexTensor;

    use crate::flex::{bf16_tensor, contiguous, enabled, f32_tensor, from_flex, to_flex};

    type Back<B, const D: usize> = (Tensor<B, D>, Tensor<B, D>);

    /// The fused addition when both are Flex tensors of one shape, `y` bf16 and the residual
    /// bf16 or f32; otherwise both back untouched.
    pub(super) fn add<B: Backend, const D: usize>(
        residual: Tensor<B, D>,
        y: Tensor<B, D>,
    ) -> Result<Tensor<B, D>, Back<B, D>> {
        let dtype = residual.dtype();
        let usable = enabled()
            && y.dtype() == DType::BF16
            && matches!(dtype, DType::BF16 | DType::F32)
            && residual.dims() == y.dims();
        if !usable {
            return Err((residual, y));
        }
        let shape = residual.dims();
        let (r, v) = match (to_flex::<B, D>(residual), to_flex::<B, D>(y)) {
            (Ok(r), Ok(v)) => (contiguous(&r), contiguous(&v)),
            (r, v) => return Err((back(r), back(v))),
        };
        let sum = match (dtype, v.as_slice::<bf16>()) {
            (DType::BF16, Some(values)) => r.as_slice::<bf16>().and_then(|rs| {
                let mut out = vec![bf16::ZERO; rs.len()];
                robovlm_kernels::add_bf16(rs, values, &mut out).ok().map(|()| bf16_tensor(out, shape))
            }),
            (DType::F32, Some(values)) => r.as_slice::<f32>().and_then(|rs| {
                let mut out = vec![0f32; rs.len()];
                robovlm_kernels::add_f32_bf16(rs, values, &mut out).ok().map(|()| f32_tensor(out, shape))
            }),
            _ => None,
        };
        match sum {
            Some(sum) => Ok(from_flex(sum)),
            None => Err((from_flex(r), from_flex(v))),
        }
    }

    fn back<B: Backend, const D: usize>(t: Result<FlexTensor, Tensor<B, D>>) -> Tensor<B, D> {
        t.map_or_else(|t| t, from_flex)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use robovlm_test_utils::TestBackend;

    fn grid(n: usize, s: usize) -> Vec<f32> {
        (0..n).map(|i| ((i * 37 + s * 11) % 201) as f32 / 7.0 - 14.0).collect()
    }

    fn tensor<B: Backend>(s: usize, shape: [usize; 3]) -> Tensor<B, 3> {
        Tensor::from_data(TensorData::new(grid(shape.iter().product(), s), shape), &Default::default())
    }

    /// In f32 (every backend) it is exactly the addition.
    #[test]
    fn f32_is_the_addition() {
        let (r, y) = (tensor::<TestBackend>(1, [2, 5, 48]), tensor::<TestBackend>(2, [2, 5, 48]));
        assert_eq!(residual_add(r.clone(), y.clone()).into_data(), (r + y).into_data());
    }

    /// Bit for bit `residual + y.cast(residual.dtype())` for a bf16 block output and an f32 or
    /// bf16 residual, contiguous or not — the fused pass where this CPU has it. (On Flex: the
    /// backend with bf16 on every CPU; wgpu has no bf16.)
    #[cfg(feature = "flex")]
    #[test]
    fn bf16_equals_the_cast_and_the_addition() {
        use burn::tensor::DType;
        use burn_flex::Flex;

        let plain = |r: Tensor<Flex, 3>, y: Tensor<Flex, 3>| (r.clone() + y.cast(r.dtype())).into_data();
        let (residual, y) = (tensor::<Flex>(1, [2, 5, 48]), tensor::<Flex>(2, [2, 5, 48]).cast(DType::BF16));
        assert_eq!(residual_add(residual.clone(), y.clone()).into_data(), plain(residual.clone(), y.clone()));
        let rb = residual.cast(DType::BF16);
        assert_eq!(residual_add(rb.clone(), y.clone()).into_data(), plain(rb.clone(), y.clone()));
        let (strided, ys) = (rb.swap_dims(0, 1), y.swap_dims(0, 1));
        assert_eq!(residual_add(strided.clone(), ys.clone()).into_data(), plain(strided, ys));
    }
}
