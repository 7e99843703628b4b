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
pub fn gelu_tanh<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
    let dtype = x.dtype();
    let x = x.cast(DType::F32);
    let inner = (x.clone() * x.clone()).mul_scalar(SQRT_2_OVER_PI * 0.044_715).add_scalar(SQRT_2_OVER_PI) * x.clone();
    (inner.tanh().add_scalar(1.0) * x).mul_scalar(0.5).cast(dtype)
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
}
