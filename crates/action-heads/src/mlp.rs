//! PyTorch `nn.Sequential` MLPs as RoboVLMs writes them, with the same indices
//! (`mlp.0`, `mlp.2`, … Linear; ReLU/Tanh in between), so checkpoint keys match module paths.

use burn::nn::{Linear, LinearConfig, Relu, Tanh};
use burn::prelude::*;

/// One entry of a `Sequential`. Loading skips the enum variant in paths (`mlp.0.weight`).
#[derive(Module, Debug)]
pub enum SeqLayer<B: Backend> {
    /// `nn.Linear`.
    Linear(Linear<B>),
    /// `nn.ReLU`.
    Relu(Relu),
    /// `nn.Tanh`.
    Tanh(Tanh),
}

impl<B: Backend> SeqLayer<B> {
    fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        match self {
            Self::Linear(l) => l.forward(x),
            Self::Relu(r) => r.forward(x),
            Self::Tanh(t) => t.forward(x),
        }
    }
}

/// A `Sequential` of Linear layers with ReLU between them (and optionally a final Tanh).
#[derive(Module, Debug)]
pub struct Sequential<B: Backend> {
    /// The entries, indexed like PyTorch's.
    pub mlp: Vec<SeqLayer<B>>,
}

impl<B: Backend> Sequential<B> {
    /// Linear layers through `widths` (`[in, h1, …, out]`), ReLU between, Tanh at the end if asked.
    pub fn new(widths: &[usize], final_tanh: bool, device: &B::Device) -> Self {
        let mut mlp = Vec::new();
        for (i, w) in widths.windows(2).enumerate() {
            if i > 0 {
                mlp.push(SeqLayer::Relu(Relu::new()));
            }
            mlp.push(SeqLayer::Linear(LinearConfig::new(w[0], w[1]).init(device)));
        }
        if final_tanh {
            mlp.push(SeqLayer::Tanh(Tanh::new()));
        }
        Self { mlp }
    }

    /// RoboVLMs' `MLPTanhHead` (`tanh = true`) / `MLPSigmoidHead` (no activation, logits):
    /// `in → 1024 → 512 → 256 → out`.
    pub fn policy_head(input: usize, output: usize, tanh: bool, device: &B::Device) -> Self {
        Self::new(&[input, 1024, 512, 256, output], tanh, device)
    }

    /// # Shapes
    /// - `x`: `[..., in]`; returns `[..., out]`
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        forward_layers(&self.mlp, x)
    }
}

/// Runs `Sequential` entries in order (for modules that hold the `Vec` directly).
pub fn forward_layers<B: Backend, const D: usize>(layers: &[SeqLayer<B>], x: Tensor<B, D>) -> Tensor<B, D> {
    layers.iter().fold(x, |x, layer| layer.forward(x))
}
