//! Rotary position embedding in HF's rotate-half convention.
//!
//! Burn's `RotaryEncoding` rotates interleaved pairs `(2i, 2i+1)`; HF Gemma pairs `(i, i + d/2)`
//! (`rotate_half`). Using the wrong one moves the tiny fixture's logits by ~2.5, so this module
//! implements HF's directly instead of permuting q/k weights at load time.

use burn::prelude::*;

/// cos/sin tables for a batch of position ids.
#[derive(Debug, Clone)]
pub struct RopeTables<B: Backend> {
    /// `[batch, 1, seq, head_dim]`.
    pub cos: Tensor<B, 4>,
    /// `[batch, 1, seq, head_dim]`.
    pub sin: Tensor<B, 4>,
}

impl<B: Backend> RopeTables<B> {
    /// The tables of positions `rows` (of `0..seq`) only, for a pass that queries just those.
    pub fn rows(&self, rows: std::ops::Range<usize>) -> Self {
        let [batch, one, _, dim] = self.cos.dims();
        let pick = |t: &Tensor<B, 4>| t.clone().slice([0..batch, 0..one, rows.clone(), 0..dim]);
        Self { cos: pick(&self.cos), sin: pick(&self.sin) }
    }
}

/// `GemmaRotaryEmbedding` for explicit, per-row position ids (PaliGemma starts at 1; padded
/// batches use the mask's cumulative sum).
#[derive(Debug, Clone)]
pub struct Rope {
    inv_freq: Vec<f32>,
}

impl Rope {
    /// `inv_freq[i] = 1 / theta^(2i / head_dim)`, in f32 as transformers computes it.
    pub fn new(head_dim: usize, theta: f64) -> Self {
        let inv_freq = (0..head_dim / 2)
            .map(|i| {
                let exponent = (2 * i) as f32 / head_dim as f32;
                1.0f32 / (theta as f32).powf(exponent)
            })
            .collect();
        Self { inv_freq }
    }

    /// Tables for `positions` (row-major `[batch, seq]`). Angles are `position · inv_freq` in
    /// f32 (transformers' float32 matmul), then cos/sin; the half table is repeated to `head_dim`.
    pub fn tables<B: Backend>(&self, positions: &[i64], batch: usize, device: &B::Device) -> RopeTables<B> {
        let seq = positions.len() / batch.max(1);
        let half = self.inv_freq.len();
        let dim = 2 * half;
        let (mut cos, mut sin) = (Vec::with_capacity(positions.len() * dim), Vec::with_capacity(positions.len() * dim));
        for &p in positions {
            let start = cos.len();
            for &f in &self.inv_freq {
                let angle = f64::from(p as f32 * f);
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
            cos.extend_from_within(start..start + half);
            sin.extend_from_within(start..start + half);
        }
        let shape = [batch, 1, seq, dim];
        RopeTables {
            cos: Tensor::from_data(TensorData::new(cos, shape), device),
            sin: Tensor::from_data(TensorData::new(sin, shape), device),
        }
    }
}

/// `x · cos + rotate_half(x) · sin`, with `rotate_half([a, b]) = [-b, a]` on the last axis
/// ([`robovlm_ops::rope`]: one fused pass for bf16 on Flex).
///
/// # Shapes
/// - `x`: `[batch, heads, seq, head_dim]`; tables broadcast over heads.
pub(crate) fn apply<B: Backend>(x: Tensor<B, 4>, t: &RopeTables<B>) -> Tensor<B, 4> {
    robovlm_ops::rope(x, &t.cos, &t.sin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use robovlm_test_utils::TestBackend;

    #[test]
    fn position_zero_is_identity_and_pairs_are_half_split() {
        let device = Default::default();
        let rope = Rope::new(4, 10000.0);
        let x = Tensor::<TestBackend, 4>::from_floats([[[[1.0, 2.0, 3.0, 4.0]]]], &device);
        let y = apply(x.clone(), &rope.tables(&[0], 1, &device));
        assert_eq!(y.into_data().to_vec::<f32>().unwrap(), vec![1.0, 2.0, 3.0, 4.0]);
        // At position 1 the first frequency is 1 rad: pair (x0, x2) rotates by 1 rad.
        let y = apply(x, &rope.tables(&[1], 1, &device)).into_data().to_vec::<f32>().unwrap();
        let (c, s) = (1f32.cos(), 1f32.sin());
        assert!((y[0] - (1.0 * c - 3.0 * s)).abs() < 1e-6, "{y:?}");
        assert!((y[2] - (3.0 * c + 1.0 * s)).abs() < 1e-6, "{y:?}");
    }
}
