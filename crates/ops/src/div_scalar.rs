//! Division by a scalar with PyTorch's half-precision semantics.

use burn::prelude::*;
use burn::tensor::DType;

/// `x / divisor`, the division in f32 by the f32 `divisor`, returned in x's dtype — what
/// PyTorch computes for a bf16/f16 tensor and a Python float (its "opmath" is f32 and the
/// scalar is never rounded to the tensor's dtype). Burn's half-precision `div_scalar` rounds
/// the scalar to the tensor's dtype first: for PaliGemma's image features, `/ √2048` became
/// `/ 45.25` in bf16 and 2 % of the features came out one bf16 step away from PyTorch's.
/// In f32 this is exactly `x.div_scalar(divisor)`.
///
/// On Flex with a bf16 tensor (a CPU with the fast kernels): one threaded pass
/// (`robovlm_kernels::div_scalar_bf16`) instead of a cast, a division and a cast.
pub fn div_scalar_f32<B: Backend, const D: usize>(x: Tensor<B, D>, divisor: f32) -> Tensor<B, D> {
    #[cfg(feature = "flex")]
    let x = match fast::div(x, divisor) {
        Ok(y) => return y,
        Err(x) => x,
    };
    let dtype = x.dtype();
    if dtype == DType::F32 {
        return x.div_scalar(f64::from(divisor));
    }
    x.cast(DType::F32).div_scalar(f64::from(divisor)).cast(dtype)
}

#[cfg(feature = "flex")]
mod fast {
    use burn::prelude::*;
    use burn::tensor::{DType, bf16};

    use crate::flex::{bf16_tensor, contiguous, enabled, from_flex, to_flex};

    /// The fused pass for a bf16 Flex tensor; otherwise `x` back untouched.
    pub(super) fn div<B: Backend, const D: usize>(x: Tensor<B, D>, divisor: f32) -> Result<Tensor<B, D>, Tensor<B, D>> {
        if !enabled() || x.dtype() != DType::BF16 {
            return Err(x);
        }
        let dims = x.dims();
        let x = contiguous(&to_flex(x)?);
        let Some(values) = x.as_slice::<bf16>() else { return Err(from_flex(x)) };
        let mut out = vec![bf16::ZERO; values.len()];
        match robovlm_kernels::div_scalar_bf16(values, divisor, &mut out) {
            Ok(()) => Ok(from_flex(bf16_tensor(out, dims))),
            Err(_) => Err(from_flex(x)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use robovlm_test_utils::TestBackend;

    /// In f32 (every backend) it is Burn's division.
    #[test]
    fn f32_is_the_division() {
        let x = Tensor::<TestBackend, 2>::from_floats([[1.0, -3.5, 1e-3], [7.0, 0.0, -2e4]], &Default::default());
        let d = 2048f32.sqrt();
        assert_eq!(div_scalar_f32(x.clone(), d).into_data(), x.div_scalar(f64::from(d)).into_data());
    }

    /// In bf16 (Flex: the backend with bf16 on every CPU) each value is `bf16(f32(x) / d)` with
    /// the f32 divisor, contiguous or not — where Burn's `div_scalar` (scalar rounded to bf16)
    /// differs on some of them.
    #[cfg(feature = "flex")]
    #[test]
    fn bf16_divides_in_f32_by_the_f32_divisor() {
        use burn::tensor::bf16;
        type F = burn_flex::Flex;
        let values: Vec<f32> = (0..4000).map(|i| (i as f32 - 2000.0) / 37.0).collect();
        let x = Tensor::<F, 2>::from_data(TensorData::new(values, [40, 100]), &Default::default()).cast(DType::BF16);
        let d = 2048f32.sqrt();
        for x in [x.clone(), x.clone().swap_dims(0, 1)] {
            let want: Vec<bf16> = x
                .clone()
                .into_data()
                .to_vec::<bf16>()
                .unwrap()
                .iter()
                .map(|v| bf16::from_f32(v.to_f32() / d))
                .collect();
            let got = div_scalar_f32(x.clone(), d);
            assert_eq!(got.dtype(), DType::BF16);
            assert_eq!(got.into_data().to_vec::<bf16>().unwrap(), want);
            let burn = x.div_scalar(f64::from(d)).into_data().to_vec::<bf16>().unwrap();
            assert_ne!(burn, want, "Burn's bf16 division rounds the divisor (why this op exists)");
        }
    }
}
