//! The tanh-approximated GELU used by SigLIP and Gemma.

use burn::prelude::*;
use burn::tensor::DType;

/// GELU, tanh approximation (`gelu_pytorch_tanh`): `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
/// Burn's `gelu_approximate` computes the same with `powf_scalar(3.0)`, a scalar `powf` call per
/// element on CPU backends (profiled as the MLP's most expensive non-matmul step); here `x³` is
/// `x·x·x` and the constants are folded: `√(2/π)·(x + c·x³) = x·(√(2/π) + √(2/π)·c·x²)`.
///
/// Computed in f32 and returned in x's dtype: in f16, `x³` overflows from |x| ≈ 40 and the
/// chain of five rounded element-wise steps plus a GPU's half-precision `tanh` measurably moved
/// the outputs (the MLPs hold most of a model's activations); the casts cost two passes.
///
/// bf16 on Flex (a CPU with AVX-512 BF16): one fused, threaded pass
/// (`robovlm_kernels::gelu_tanh_bf16`), also computed in f32.
pub fn gelu_tanh<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    #[cfg(feature = "flex")]
    let x = match fast::gelu(x, None) {
        Ok(y) => return y,
        Err((x, _)) => x,
    };
    const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
    let dtype = x.dtype();
    let x = x.cast(DType::F32);
    let inner = (x.clone() * x.clone()).mul_scalar(SQRT_2_OVER_PI * 0.044_715).add_scalar(SQRT_2_OVER_PI) * x.clone();
    (inner.tanh().add_scalar(1.0) * x).mul_scalar(0.5).cast(dtype)
}

/// `gelu_tanh(gate) · up` (GeGLU, Gemma's MLP). bf16 on Flex (a CPU with AVX-512 BF16): one
/// fused, threaded pass rounded to bf16 once (`robovlm_kernels::gelu_tanh_mul_bf16`); otherwise
/// [`gelu_tanh`] then the product.
///
/// # Shapes
/// - `gate`, `up`, returns: the same shape
pub fn gelu_tanh_mul<B: Backend, const D: usize>(gate: Tensor<B, D>, up: Tensor<B, D>) -> Tensor<B, D> {
    #[cfg(feature = "flex")]
    let (gate, up) = match fast::gelu(gate, Some(up)) {
        Ok(y) => return y,
        Err((gate, up)) => (gate, up.expect("given")),
    };
    gelu_tanh(gate) * up
}

#[cfg(feature = "flex")]
mod fast {
    use burn::prelude::*;
    use burn::tensor::{DType, bf16};

    use crate::flex::{bf16_tensor, contiguous, enabled, from_flex, to_flex};

    type Back<B, const D: usize> = (Tensor<B, D>, Option<Tensor<B, D>>);

    /// The fused kernel when every operand is a bf16 Flex tensor of one shape; otherwise the
    /// operands back untouched.
    pub(super) fn gelu<B: Backend, const D: usize>(
        x: Tensor<B, D>,
        up: Option<Tensor<B, D>>,
    ) -> Result<Tensor<B, D>, Back<B, D>> {
        let ok = |t: &Tensor<B, D>| t.dtype() == DType::BF16 && t.dims() == x.dims();
        if !enabled() || !ok(&x) || up.as_ref().is_some_and(|u| !ok(u)) {
            return Err((x, up));
        }
        let dims = x.dims();
        let x = match to_flex(x) {
            Ok(x) => contiguous(&x),
            Err(x) => return Err((x, up)),
        };
        let up = match up.map(to_flex) {
            None => None,
            Some(Ok(u)) => Some(contiguous(&u)),
            Some(Err(u)) => return Err((from_flex(x), Some(u))),
        };
        let (Some(xs), up_slice) = (x.as_slice::<bf16>(), up.as_ref().map(|u| u.as_slice::<bf16>())) else {
            return Err((from_flex(x), up.map(from_flex)));
        };
        let mut out = vec![bf16::ZERO; xs.len()];
        let done = match up_slice {
            None => robovlm_kernels::gelu_tanh_bf16(xs, &mut out),
            Some(Some(us)) => robovlm_kernels::gelu_tanh_mul_bf16(xs, us, &mut out),
            Some(None) => return Err((from_flex(x), up.map(from_flex))),
        };
        match done {
            Ok(()) => Ok(from_flex(bf16_tensor(out, dims))),
            Err(_) => Err((from_flex(x), up.map(from_flex))),
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::activation::gelu_approximate;

    use super::*;
    use robovlm_test_utils::TestBackend;

    #[test]
    fn gelu_tanh_matches_burns_formula() {
        let d = Default::default();
        let x = Tensor::<TestBackend, 1>::from_floats([-8.0, -3.0, -1.0, -0.1, 0.0, 0.3, 1.0, 2.5, 9.0], &d);
        let diff = (gelu_tanh(x.clone()) - gelu_approximate(x)).abs().max().into_scalar();
        assert!(diff < 1e-6, "{diff}");
    }

    /// bf16 on Flex: the fused paths (where they run) equal the generic f32 formula to bf16's
    /// rounding. (Flex only: ndarray and wgpu have no bf16.)
    #[cfg(feature = "flex")]
    #[test]
    fn bf16_gelu_and_geglu_match_the_f32_formula() {
        type TestBackend = burn_flex::Flex;
        let d = Default::default();
        let x = Tensor::<TestBackend, 1>::from_floats([-8.0, -3.0, -1.0, -0.1, 0.0, 0.3, 1.0, 2.5, 9.0], &d);
        let up = Tensor::<TestBackend, 1>::from_floats([1.5, -2.0, 0.25, 3.0, 1.0, -1.0, 0.5, 2.0, -0.75], &d);
        let (xb, ub) = (x.clone().cast(DType::BF16), up.clone().cast(DType::BF16));
        let (x, up) = (xb.clone().cast(DType::F32), ub.clone().cast(DType::F32)); // on bf16's grid
        for (got, want) in [(gelu_tanh(xb.clone()), gelu_tanh(x.clone())), (gelu_tanh_mul(xb, ub), gelu_tanh(x) * up)] {
            assert_eq!(got.dtype(), DType::BF16);
            let got = got.cast(DType::F32).into_data().to_vec::<f32>().unwrap();
            for (g, w) in got.iter().zip(want.into_data().to_vec::<f32>().unwrap()) {
                assert!((g - w).abs() <= w.abs() * 2f32.powi(-8) + 1e-6, "{g} vs {w}");
            }
        }
    }
}
