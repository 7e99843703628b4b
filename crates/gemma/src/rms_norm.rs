//! Gemma's RMSNorm.

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::DType;

/// `GemmaRMSNorm`: `x · rsqrt(mean(x²) + eps) · (1 + weight)`, computed in f32.
///
/// Stored weights are offsets around 0 (the `1 +` is in the forward), so checkpoint values load
/// unchanged — Burn's `nn::RmsNorm` would need `weight + 1` baked in. The input (Gemma's f32
/// residual stream, see [`crate::Decoder::forward`]) is reduced in f32 and the result comes out in the
/// weights' dtype, the compute precision of the projections that follow.
#[derive(Module, Debug)]
pub struct RmsNorm<B: Backend> {
    /// Scale offsets, `[hidden]`.
    pub weight: Param<Tensor<B, 1>>,
    /// Added to the mean square.
    pub eps: f64,
}

impl<B: Backend> RmsNorm<B> {
    /// A norm with zero offsets (scale 1).
    pub fn new(hidden: usize, eps: f64, device: &B::Device) -> Self {
        Self { weight: Param::from_tensor(Tensor::zeros([hidden], device)), eps }
    }

    /// # Shapes
    /// - `x`, returns: `[batch, seq, hidden]`
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let weight = self.weight.val();
        let dtype = weight.dtype();
        let scale = weight.cast(DType::F32).add_scalar(1.0);
        // bf16 from the f32 residual stream on Flex: one fused, threaded pass.
        let x = if dtype == DType::BF16 {
            match robovlm_ops::rms_norm_to_bf16(x, &scale, self.eps) {
                Ok(y) => return y,
                Err(x) => x,
            }
        } else {
            x
        };
        let x = x.cast(DType::F32);
        let inv_rms = x.clone().powi_scalar(2).mean_dim(2).add_scalar(self.eps).sqrt().recip();
        (x * inv_rms * scale.unsqueeze::<3>()).cast(dtype)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use robovlm_test_utils::TestBackend;

    #[test]
    fn scales_by_one_plus_weight() {
        let device = Default::default();
        let mut norm = RmsNorm::<TestBackend>::new(2, 0.0, &device);
        norm.weight = Param::from_tensor(Tensor::from_floats([0.0, 1.0], &device));
        // x = [3, 4]: rms = sqrt(12.5); out = x / rms * [1, 2].
        let y = norm.forward(Tensor::from_floats([[[3.0, 4.0]]], &device)).into_data().to_vec::<f32>().unwrap();
        let rms = 12.5f32.sqrt();
        assert!((y[0] - 3.0 / rms).abs() < 1e-6 && (y[1] - 8.0 / rms).abs() < 1e-6, "{y:?}");
    }
}
