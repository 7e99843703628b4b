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
