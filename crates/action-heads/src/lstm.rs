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
        let (device, dtype) = (x.device(), x.dtype());
        let zeros = || Tensor::zeros([batch, h_size], (&device, dtype));
        // From the zero state the first step's recurrent term `0 · W_hhᵀ` is exactly zero: it is
        // skipped, sparing one read of every layer's W_hh (16 MB in f32 at hidden 1024) — an
        // eighth of the recurrent traffic when a full window of 8 re-runs each control step.
        let fresh = state.is_none();
        let mut state = state.unwrap_or_else(|| (0..self.layers.len()).map(|_| (zeros(), zeros())).collect());
        let mut input = x;
        for (layer, (h, c)) in self.layers.iter().zip(state.iter_mut()) {
            // Input projections for all steps at once (2-D, so the transposed weight is read in
            // place rather than copied); recurrence step by step.
            let inp = input.dims()[2];
            let rows = input.reshape([batch * seq, inp]);
            let w_ih = layer.weight_ih.val();
            // A window's few rows: f32 on Flex streams W_ih once (robovlm_ops::matmul_transposed).
            let xw = match robovlm_ops::matmul_transposed(rows, &w_ih) {
                Ok(xw) => xw,
                Err(rows) => rows.matmul(w_ih.transpose()),
            };
            let xw = xw.reshape([batch, seq, 4 * h_size]) + layer.bias_ih.val().unsqueeze::<3>();
            let w_hh = layer.weight_hh.val();
            let b_hh = layer.bias_hh.val().unsqueeze::<2>();
            let mut outputs = Vec::with_capacity(seq);
            for t in 0..seq {
                let input_gates = xw.clone().slice([0..batch, t..t + 1, 0..4 * h_size]).reshape([batch, 4 * h_size]);
                let gates = if fresh && t == 0 {
                    input_gates + b_hh.clone()
                } else {
                    input_gates + recurrent(h.clone(), w_hh.clone()) + b_hh.clone()
                };
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

/// `h · W_hhᵀ` (`h: [batch, H]`, `W_hh: [4H, H]`). A single row is computed as independent
/// slices of the gate rows (`[c, 4H/c, H] · [H, 1]`, a free reshape) so that CPU backends spread
/// the memory-bound matrix–vector product over their threads instead of running it on one.
fn recurrent<B: Backend>(h: Tensor<B, 2>, w_hh: Tensor<B, 2>) -> Tensor<B, 2> {
    // f32 on Flex: one threaded pass over the weight's rows (robovlm_ops::matmul_transposed).
    let h = match robovlm_ops::matmul_transposed(h, &w_hh) {
        Ok(gates) => return gates,
        Err(h) => h,
    };
    let [batch, hidden] = h.dims();
    let gates = w_hh.dims()[0];
    let c = [8, 4].into_iter().find(|c| gates.is_multiple_of(*c) && gates / c >= 64).unwrap_or(1);
    if batch != 1 || c == 1 {
        return h.matmul(w_hh.transpose());
    }
    w_hh.reshape([c, gates / c, hidden]).matmul(h.reshape([1, hidden, 1])).reshape([1, gates])
}

#[cfg(test)]
mod tests {
    use super::*;
    use robovlm_test_utils::{TestBackend, assert_product_within_rounding, test_values};

    /// Every gate row equals its inner product within f32 rounding (whichever path `recurrent`
    /// takes on the test backend: the ops kernel, the sliced batch or the plain matmul).
    #[test]
    fn sliced_recurrence_matches_the_plain_product() {
        let d = Default::default();
        let (gates, hidden) = (512, 128);
        let w = test_values(gates * hidden, 1);
        let h = test_values(hidden, 2);
        let wt = Tensor::<TestBackend, 2>::from_data(TensorData::new(w.clone(), [gates, hidden]), &d);
        let ht = Tensor::<TestBackend, 2>::from_data(TensorData::new(h.clone(), [1, hidden]), &d);
        let got = recurrent(ht, wt).into_data().to_vec::<f32>().unwrap();
        assert_product_within_rounding("h · W_hhᵀ", &got, &h, &w, None, hidden);
    }

    /// No state and an explicit zero state give the same outputs and final states (the first
    /// step's recurrent product is skipped only in the former).
    #[test]
    fn fresh_state_equals_explicit_zeros() {
        let d = Default::default();
        let lstm = Lstm::<TestBackend>::new(6, 5, 2, &d);
        let x = Tensor::<TestBackend, 3>::from_data(TensorData::new(test_values(2 * 3 * 6, 9), [2, 3, 6]), &d);
        let zeros = (0..2).map(|_| (Tensor::zeros([2, 5], &d), Tensor::zeros([2, 5], &d))).collect();
        let (a, sa) = lstm.forward(x.clone(), None);
        let (b, sb) = lstm.forward(x, Some(zeros));
        let values = |t: Tensor<TestBackend, 2>| t.into_data().to_vec::<f32>().unwrap();
        assert_eq!(a.into_data().to_vec::<f32>().unwrap(), b.into_data().to_vec::<f32>().unwrap());
        for ((ha, ca), (hb, cb)) in sa.into_iter().zip(sb) {
            assert_eq!(values(ha), values(hb));
            assert_eq!(values(ca), values(cb));
        }
    }

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
