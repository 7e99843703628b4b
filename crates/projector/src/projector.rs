//! `PaliGemmaMultiModalProjector`: one Linear (with bias) from vision width to text width.

use burn::nn::LinearConfig;
use burn::prelude::*;
use robovlm_ops::Linear;

/// Widths of the projector. `in_dim` is the vision `hidden_size`, `out_dim` the top-level
/// `projection_dim` (= the text `hidden_size` in PaliGemma).
#[derive(Config, Debug, PartialEq)]
pub struct ProjectorConfig {
    /// Vision width.
    pub in_dim: usize,
    /// Text width.
    pub out_dim: usize,
}

impl ProjectorConfig {
    /// Builds a randomly initialised projector; load weights afterwards.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Projector<B> {
        Projector { linear: LinearConfig::new(self.in_dim, self.out_dim).with_bias(true).init(device).into() }
    }
}

/// `PaliGemmaMultiModalProjector` (transformers `modeling_paligemma.py`). The division of its
/// output by `sqrt(divisor)` is not here: transformers and RoboVLMs use different divisors, so
/// the composition (`robovlm-core`) applies it.
#[derive(Module, Debug)]
pub struct Projector<B: Backend> {
    /// `in_dim → out_dim`, with bias (checkpoint key `linear`).
    pub linear: Linear<B>,
}

impl<B: Backend> Projector<B> {
    /// # Shapes
    /// - `x`: `[batch, tokens, in_dim]`
    /// - returns: `[batch, tokens, out_dim]`
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        self.linear.forward(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use robovlm_test_utils::TestBackend;

    #[test]
    fn projects_with_bias() {
        let device = Default::default();
        let mut p = ProjectorConfig::new(2, 3).init::<TestBackend>(&device);
        p.linear.weight =
            burn::module::Param::from_tensor(Tensor::from_floats([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]], &device));
        p.linear.bias = Some(burn::module::Param::from_tensor(Tensor::from_floats([0.5, 0.0, -1.0], &device)));
        let y = p.forward(Tensor::from_floats([[[1.0, 2.0]]], &device));
        assert_eq!(y.into_data().to_vec::<f32>().unwrap(), vec![1.5, 2.0, 1.0]);
    }
}
