//! The GPT-2 stack RoboVLMs' `GPTDecoder` builds (`trajectory_gpt2.get_gpt_model`): inputs are
//! features, not tokens; `x = feats + wpe[0..t]`, pre-LN blocks, final `ln_f`.
//!
//! Details that differ from a textbook transformer and matter for parity: `Conv1D` weights are
//! stored `[in, out]` (`y = x·W + b`); causal scores are *replaced* by −10000 (not −∞) before the
//! softmax; the activation is `gelu_new` (tanh approximation); LayerNorm eps is 1e-5; positions
//! restart at 0 for the oldest item in the window.

use burn::module::Param;
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig};
use burn::prelude::*;
use burn::tensor::DType;
use burn::tensor::activation::{gelu_approximate, softmax};
use robovlm_ops::layer_norm;

/// GPT-2's `Conv1D`: a linear layer stored `[in, out]`.
#[derive(Module, Debug)]
pub struct Conv1D<B: Backend> {
    /// `[in, out]`.
    pub weight: Param<Tensor<B, 2>>,
    /// `[out]`.
    pub bias: Param<Tensor<B, 1>>,
}

impl<B: Backend> Conv1D<B> {
    fn new(input: usize, output: usize, device: &B::Device) -> Self {
        Self {
            weight: Param::from_tensor(Tensor::random(
                [input, output],
                burn::tensor::Distribution::Normal(0.0, 0.02),
                device,
            )),
            bias: Param::from_tensor(Tensor::zeros([output], device)),
        }
    }

    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        x.matmul(self.weight.val().unsqueeze::<3>()) + self.bias.val().unsqueeze::<3>()
    }
}

/// Causal self-attention (`c_attn` → q, k, v in that order; `c_proj`).
#[derive(Module, Debug)]
pub struct GptAttention<B: Backend> {
    /// `[n, 3n]`.
    pub c_attn: Conv1D<B>,
    /// `[n, n]`.
    pub c_proj: Conv1D<B>,
    /// Heads.
    pub n_head: usize,
}

/// GPT-2's score for masked (future) positions: replaced, not added.
const MASKED_SCORE: f32 = -10000.0;

impl<B: Backend> GptAttention<B> {
    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [batch, seq, n] = x.dims();
        let (h, d) = (self.n_head, n / self.n_head);
        let qkv = self.c_attn.forward(x);
        let part = |i: usize| {
            qkv.clone().slice([0..batch, 0..seq, i * n..(i + 1) * n]).reshape([batch, seq, h, d]).swap_dims(1, 2)
        };
        let (q, k, v) = (part(0), part(1), part(2));
        // Scores and softmax in f32 whatever the precision (no f16 overflow in q·kᵀ).
        let dtype = v.dtype();
        let scores = q.cast(DType::F32).matmul(k.cast(DType::F32).swap_dims(2, 3)).div_scalar((d as f64).sqrt());
        let future: Vec<bool> = (0..seq * seq).map(|i| i % seq > i / seq).collect();
        let future = Tensor::<B, 2, Bool>::from_data(TensorData::new(future, [seq, seq]), &scores.device())
            .unsqueeze::<4>()
            .expand([batch, h, seq, seq]);
        let scores = scores.mask_fill(future, MASKED_SCORE);
        let out = softmax(scores, 3).cast(dtype).matmul(v).swap_dims(1, 2).reshape([batch, seq, n]);
        self.c_proj.forward(out)
    }
}

/// `c_fc` (n → 4n), `gelu_new`, `c_proj`.
#[derive(Module, Debug)]
pub struct GptMlp<B: Backend> {
    /// `[n, 4n]`.
    pub c_fc: Conv1D<B>,
    /// `[4n, n]`.
    pub c_proj: Conv1D<B>,
}

/// A pre-LN GPT-2 block.
#[derive(Module, Debug)]
pub struct GptBlock<B: Backend> {
    /// Norm before attention.
    pub ln_1: LayerNorm<B>,
    /// Causal attention.
    pub attn: GptAttention<B>,
    /// Norm before the MLP.
    pub ln_2: LayerNorm<B>,
    /// Feed-forward.
    pub mlp: GptMlp<B>,
}

/// GPT-2's LayerNorm epsilon (`layer_norm_epsilon`).
const GPT_LN_EPS: f64 = 1e-5;

/// The GPT-2 stack over feature sequences.
#[derive(Module, Debug)]
pub struct Gpt<B: Backend> {
    /// Learned positions `[n_positions = window, n]`.
    pub wpe: Embedding<B>,
    /// Blocks.
    pub h: Vec<GptBlock<B>>,
    /// Final norm.
    pub ln_f: LayerNorm<B>,
}

impl<B: Backend> Gpt<B> {
    /// `n` = width, `positions` = window size.
    pub fn new(n: usize, positions: usize, layers: usize, heads: usize, device: &B::Device) -> Self {
        let ln = || LayerNormConfig::new(n).with_epsilon(GPT_LN_EPS).init(device);
        Self {
            wpe: EmbeddingConfig::new(positions, n).init(device),
            h: (0..layers)
                .map(|_| GptBlock {
                    ln_1: ln(),
                    attn: GptAttention {
                        c_attn: Conv1D::new(n, 3 * n, device),
                        c_proj: Conv1D::new(n, n, device),
                        n_head: heads,
                    },
                    ln_2: ln(),
                    mlp: GptMlp { c_fc: Conv1D::new(n, 4 * n, device), c_proj: Conv1D::new(4 * n, n, device) },
                })
                .collect(),
            ln_f: ln(),
        }
    }

    /// # Shapes
    /// - `x`: `[batch, seq, n]` with `seq ≤ n_positions`; returns `[batch, seq, n]`
    ///
    /// # Panics
    /// If `seq` exceeds the position table (the history rule never lets it).
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [batch, seq, n] = x.dims();
        let positions = self.wpe.weight.dims()[0];
        assert!(seq <= positions, "sequence of {seq} exceeds the {positions} GPT positions");
        let pe = self.wpe.weight.val().slice([0..seq, 0..n]).unsqueeze::<3>().expand([batch, seq, n]);
        let mut x = x + pe;
        for block in &self.h {
            x = x.clone() + block.attn.forward(layer_norm(&block.ln_1, GPT_LN_EPS, x));
            x = x.clone()
                + block.mlp.c_proj.forward(gelu_approximate(block.mlp.c_fc.forward(layer_norm(
                    &block.ln_2,
                    GPT_LN_EPS,
                    x,
                ))));
        }
        layer_norm(&self.ln_f, GPT_LN_EPS, x)
    }
}
