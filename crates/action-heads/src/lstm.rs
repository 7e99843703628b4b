//! A multi-layer LSTM storing PyTorch's packed layout.
//!
//! `nn.LSTM` keeps, per layer `k`, `weight_ih_l{k}` `[4H, in]`, `weight_hh_l{k}` `[4H, H]` and
//! both biases `[4H]`, gates stacked in the order i, f, g, o. Burn's `nn::Lstm` is single-layer
//! with one controller per gate, so this module stores the packed tensors and slices the gates
//! in `forward`; loading is then a rename (`rnn.weight_ih_l0` → `rnn.layers.0.weight_ih`).

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::activation::{sigmoid, tanh};

/// One LSTM layer in PyTorch's packed layout.
#[derive(Module, Debug)]
pub struct LstmLayer<B: Backend> {
    /// `[4H, in]`, gates i, f, g, o.
    pub weight_ih: Param<Tensor<B, 2>>,
    /// `[4H, H]`.
    pub weight_hh: Param<Tensor<B, 2>>,
    /// `[4H]`.
    pub bias_ih: Param<Tensor<B, 1>>,
    /// `[4H]`.
    pub bias_hh: Param<Tensor<B, 1>>,
}

/// Per-layer `(h, c)`, each `[batch, H]`.
pub type LstmState<B> = Vec<(Tensor<B, 2>, Tensor<B, 2>)>;

/// `nn.LSTM(batch_first=True, bidirectional=False)` without dropout (inference).
#[derive(Module, Debug)]
pub struct Lstm<B: Backend> {
    /// Layers in order.
    pub layers: Vec<LstmLayer<B>>,
}

impl<B: Backend> Lstm<B> {
    /// A randomly initialised stack (uniform ±1/sqrt(H), as PyTorch).
    pub fn new(input: usize, hidden: usize, num_layers: usize, device: &B::Device) -> Self {
        let bound = 1.0 / (hidden as f64).sqrt();
        let dist = burn::tensor::Distribution::Uniform(-bound, bound);
        let layers = (0..num_layers)
            .map(|k| {
                let inp = if k == 0 { input } else { hidden };
                LstmLayer {
                    weight_ih: Param::from_tensor(Tensor::random([4 * hidden, inp], dist, device)),
                    weight_hh: Param::from_tensor(Tensor::random([4 * hidden, hidden], dist, device)),
                    bias_ih: Param::from_tensor(Tensor::random([4 * hidden], dist, device)),
                    bias_hh: Param::from_tensor(Tensor::random([4 * hidden], dist, device)),
                }
            })
            .collect();
        Self { layers }
    }

    /// Hidden width `H`.
    pub fn hidden_size(&self) -> usize {
        self.layers[0].weight_hh.dims()[1]
    }

    /// Runs over `x` from `state` (zeros when `None`).
    ///
    /// # Shapes
    /// - `x`: `[batch, seq, in]`; returns the last layer's outputs `[batch, seq, H]` and the
    ///   final state of every layer
    pub fn forward(&self, x: Tensor<B, 3>, state: Option<LstmState<B>>) -> (Tensor<B, 3>, LstmState<B>) {
        let [batch, seq, _] = x.dims();
        let h_size = self.hidden_size();
        let device = x.device();
        let mut state = state.unwrap_or_else(|| {
            (0..self.layers.len())
                .map(|_| (Tensor::zeros([batch, h_size], &device), Tensor::zeros([batch, h_size], &device)))
                .collect()
        });
        let mut input = x;
        for (layer, (h, c)) in self.layers.iter().zip(state.iter_mut()) {
            // Input projections for all steps at once; recurrence step by step.
            let xw =
                input.matmul(layer.weight_ih.val().transpose().unsqueeze::<3>()) + layer.bias_ih.val().unsqueeze::<3>();
            let w_hh = layer.weight_hh.val().transpose();
            let b_hh = layer.bias_hh.val().unsqueeze::<2>();
            let mut outputs = Vec::with_capacity(seq);
            for t in 0..seq {
                let gates = xw.clone().slice([0..batch, t..t + 1, 0..4 * h_size]).reshape([batch, 4 * h_size])
                    + h.clone().matmul(w_hh.clone())
                    + b_hh.clone();
                let gate = |i: usize| gates.clone().slice([0..batch, i * h_size..(i + 1) * h_size]);
                let (i, f, g, o) = (sigmoid(gate(0)), sigmoid(gate(1)), tanh(gate(2)), sigmoid(gate(3)));
                *c = f * c.clone() + i * g;
                *h = o * tanh(c.clone());
                outputs.push(h.clone().unsqueeze_dim::<3>(1));
            }
            input = Tensor::cat(outputs, 1);
        }
        (input, state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_utils::TestBackend;

    /// One step of a 1-unit LSTM with hand-set packed weights (gates i, f, g, o).
    #[test]
    fn packed_gates_follow_pytorch_order() {
        let d = Default::default();
        let p1 = |v: [f32; 4]| Param::from_tensor(Tensor::<TestBackend, 1>::from_floats(v, &d));
        let p2 = |v: [[f32; 1]; 4]| Param::from_tensor(Tensor::<TestBackend, 2>::from_floats(v, &d));
        let lstm = Lstm {
            layers: vec![LstmLayer {
                weight_ih: p2([[1.0], [2.0], [3.0], [4.0]]),
                weight_hh: p2([[0.0], [0.0], [0.0], [0.0]]),
                bias_ih: p1([0.1, 0.2, 0.3, 0.4]),
                bias_hh: p1([0.0, 0.0, 0.0, 0.0]),
            }],
        };
        let x = 0.5f32;
        let (out, state) = lstm.forward(Tensor::from_floats([[[x]]], &d), None);
        let sig = |v: f32| 1.0 / (1.0 + (-v).exp());
        let (i, g, o) = (sig(x + 0.1), (3.0 * x + 0.3).tanh(), sig(4.0 * x + 0.4));
        let c = i * g; // f · c0 with c0 = 0
        let h = o * c.tanh();
        let got = out.into_data().to_vec::<f32>().unwrap()[0];
        assert!((got - h).abs() < 1e-6, "{got} vs {h}");
        let c_got = state[0].1.clone().into_data().to_vec::<f32>().unwrap()[0];
        assert!((c_got - c).abs() < 1e-6);
    }
}
