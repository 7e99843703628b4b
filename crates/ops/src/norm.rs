//! LayerNorm with f32 statistics whatever the compute precision.

use burn::nn::LayerNorm;
use burn::prelude::*;
use burn::tensor::DType;
use burn::tensor::TensorPrimitive;

/// `norm.forward(x)` computed in f32 and returned in x's dtype. Why: in f16 the mean of squares
/// over a 1152-wide row overflows for activations above ≈ 250 and loses the small variances;
/// the cast costs one pass and removes both. In f32 this is exactly Burn's LayerNorm.
///
/// `eps` is passed in because burn 0.21's `LayerNorm` keeps its epsilon private; callers take it
/// from the same config they built the norm with.
pub fn layer_norm<B: Backend, const D: usize>(norm: &LayerNorm<B>, eps: f64, x: Tensor<B, D>) -> Tensor<B, D> {
    #[cfg(feature = "flex")]
    let x = match fast::layer_norm(norm, eps, x) {
        Ok(y) => return y,
        Err(x) => x,
    };
    let dtype = x.dtype();
    let f32 = |t: Tensor<B, 1>| t.cast(DType::F32).into_primitive().tensor();
    let out = B::layer_norm(
        x.cast(DType::F32).into_primitive().tensor(),
        f32(norm.gamma.val()),
        norm.beta.as_ref().map(|b| f32(b.val())),
        eps,
    );
    Tensor::<B, D>::from_primitive(TensorPrimitive::Float(out)).cast(dtype)
}

#[cfg(test)]
mod tests {
    use burn::nn::LayerNormConfig;

    use super::*;
    use robovlm_test_utils::{TestBackend, half_supported};

    #[test]
    fn equals_burns_layer_norm_in_f32() {
        let d = Default::default();
        let norm = LayerNormConfig::new(4).with_epsilon(1e-6).init::<TestBackend>(&d);
        let x = Tensor::<TestBackend, 2>::from_floats([[1.0, -2.0, 3.5, 0.25], [10.0, 11.0, 9.0, 10.5]], &d);
        let ours = layer_norm(&norm, 1e-6, x.clone()).into_data().to_vec::<f32>().unwrap();
        assert_eq!(ours, norm.forward(x).into_data().to_vec::<f32>().unwrap());
    }

    #[test]
    fn large_half_precision_rows_stay_finite() {
        if !half_supported() {
            return;
        }
        let d = Default::default();
        let norm = LayerNormConfig::new(4).init::<TestBackend>(&d);
        let x = Tensor::<TestBackend, 2>::from_floats([[1000.0, -1000.0, 500.0, -500.0]], &d);
        let want = layer_norm(&norm, 1e-5, x.clone()).into_data().to_vec::<f32>().unwrap();
        let got = layer_norm(&norm, 1e-5, x.cast(DType::F16));
        assert_eq!(got.dtype(), DType::F16);
        let got = got.cast(DType::F32).into_data().to_vec::<f32>().unwrap();
        assert!(want.iter().zip(&got).all(|(a, b)| (a - b).abs() < 2e-3), "{want:?} vs {got:?}");
    }
}

/// RMSNorm from an f32 stream to bf16 through the fused kernel: `bf16(x / √(mean(x²) + eps) ·
/// scale)` per row of the last dimension (`scale` already includes Gemma's `1 +`). Applies on
/// Flex with a CPU that has AVX-512 BF16 when `x` is f32 and `out` is bf16; otherwise `x` comes
/// back for the caller's own formula.
///
/// # Shapes
/// - `x`: `[..., hidden]` (f32); `scale`: `[hidden]`; returns `x`'s shape in bf16
pub fn rms_norm_to_bf16<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    scale: &Tensor<B, 1>,
    eps: f64,
) -> Result<Tensor<B, D>, Tensor<B, D>> {
    #[cfg(feature = "flex")]
    {
        fast::rms_norm(x, scale, eps)
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = (scale, eps);
        Err(x)
    }
}

#[cfg(feature = "flex")]
mod fast {
    use burn::nn::LayerNorm;
    use burn::prelude::*;
    use burn::tensor::{DType, bf16};

    use crate::flex::{bf16_tensor, contiguous, enabled, from_flex, to_flex};

    /// f32 values of a small parameter vector (any float dtype).
    fn f32_values<B: Backend>(t: Tensor<B, 1>) -> Option<Vec<f32>> {
        let t = contiguous(&to_flex(t.cast(DType::F32)).ok()?);
        Some(t.as_slice::<f32>()?.to_vec())
    }

    pub(super) fn layer_norm<B: Backend, const D: usize>(
        norm: &LayerNorm<B>,
        eps: f64,
        x: Tensor<B, D>,
    ) -> Result<Tensor<B, D>, Tensor<B, D>> {
        if !enabled() || x.dtype() != DType::BF16 {
            return Err(x);
        }
        let dims = x.dims();
        let Some(gamma) = f32_values(norm.gamma.val()) else { return Err(x) };
        let beta = match &norm.beta {
            Some(b) => match f32_values(b.val()) {
                Some(b) => Some(b),
                None => return Err(x),
            },
            None => None,
        };
        let x = contiguous(&to_flex(x)?);
        let mut out = vec![bf16::ZERO; dims.iter().product()];
        let done = match x.as_slice::<bf16>() {
            Some(xs) => robovlm_kernels::layer_norm_bf16(xs, &gamma, beta.as_deref(), eps as f32, &mut out).is_ok(),
            None => false,
        };
        if !done {
            return Err(from_flex(x));
        }
        Ok(from_flex(bf16_tensor(out, dims)))
    }

    pub(super) fn rms_norm<B: Backend, const D: usize>(
        x: Tensor<B, D>,
        scale: &Tensor<B, 1>,
        eps: f64,
    ) -> Result<Tensor<B, D>, Tensor<B, D>> {
        if !enabled() || x.dtype() != DType::F32 {
            return Err(x);
        }
        let dims = x.dims();
        let Some(scale) = f32_values(scale.clone()) else { return Err(x) };
        let x = contiguous(&to_flex(x)?);
        let mut out = vec![bf16::ZERO; dims.iter().product()];
        let done = match x.as_slice::<f32>() {
            Some(xs) => robovlm_kernels::rms_norm_bf16(xs, &scale, eps as f32, &mut out).is_ok(),
            None => false,
        };
        if !done {
            return Err(from_flex(x));
        }
        Ok(from_flex(bf16_tensor(out, dims)))
    }
}

#[cfg(all(test, feature = "flex"))]
mod fast_tests {
    use burn::nn::LayerNormConfig;
    use burn::prelude::*;
    use burn::tensor::DType;
    use burn_flex::Flex;

    /// bf16 on Flex: the fused norms (where they run) equal the generic f32 formulas to bf16's
    /// rounding; f32 inputs to `layer_norm` never take them.
    #[test]
    fn fused_norms_match_the_generic_formulas() {
        let d = Default::default();
        let v: Vec<f32> = (0..3 * 64).map(|i| ((i * 37) % 29) as f32 / 7.0 - 2.0).collect();
        let x = Tensor::<Flex, 3>::from_data(TensorData::new(v, [1, 3, 64]), &d).cast(DType::BF16).cast(DType::F32);
        let norm = LayerNormConfig::new(64).init::<Flex>(&d);
        let want = super::layer_norm(&norm, 1e-6, x.clone()).into_data().to_vec::<f32>().unwrap();
        let got = super::layer_norm(&norm, 1e-6, x.clone().cast(DType::BF16));
        assert_eq!(got.dtype(), DType::BF16);
        let got = got.cast(DType::F32).into_data().to_vec::<f32>().unwrap();
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= w.abs() * 2f32.powi(-8) + 1e-5, "{g} vs {w}");
        }
        let scale = Tensor::<Flex, 1>::from_floats([1.5; 64], &d);
        match super::rms_norm_to_bf16(x.clone(), &scale, 1e-6) {
            Ok(y) => {
                let inv_rms = x.clone().powi_scalar(2).mean_dim(2).add_scalar(1e-6).sqrt().recip();
                let want = (x * inv_rms).mul_scalar(1.5).into_data().to_vec::<f32>().unwrap();
                assert_eq!(y.dtype(), DType::BF16);
                for (g, w) in y.cast(DType::F32).into_data().to_vec::<f32>().unwrap().iter().zip(&want) {
                    assert!((g - w).abs() <= w.abs() * 2f32.powi(-8) + 1e-5, "{g} vs {w}");
                }
            }
            Err(_) => assert!(!robovlm_kernels::Isa::best().native()),
        }
    }
}
