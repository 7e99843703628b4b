//! Scaled dot-product attention on bf16 heads, parallel over (batch, head), with both products
//! on the packed bf16 kernels.
//!
//! Numerics are robovlm's f32 attention island on bf16 operands: scores `q·kᵀ` accumulated in
//! f32 (bf16 products are exact in f32), scale, optional soft-cap `c·tanh(s/c)` *before* the
//! additive bias, softmax in f32, and `p·v` with the f32 probabilities split into two bf16 parts
//! (hi + lo, 16 significant bits) accumulated in f32, rounded to bf16 once. (transformers' eager
//! bf16 attention rounds the probabilities to bf16 first; keeping them is closer to the f32
//! references and costs one more small product.) Grouped-query attention reads key/value head
//! `h / (heads / kv_heads)` for query head `h` without copying it.

use half::bf16;
use rayon::prelude::*;

use crate::elementwise::exp;
use crate::error::{Error, Result};
use crate::gemm::matmul;
use crate::packed::PackedBf16;

/// Sizes of one attention call. Tensors are row-major: `q`/`out` `[batch, heads, queries,
/// head_dim]`, `k`/`v` `[batch, kv_heads, keys, head_dim]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionShape {
    /// Batch rows.
    pub batch: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (divides `heads`).
    pub kv_heads: usize,
    /// Query positions.
    pub queries: usize,
    /// Key positions.
    pub keys: usize,
    /// Width of one head.
    pub head_dim: usize,
}

/// An additive f32 bias `[batch, heads, queries, keys]`, possibly broadcast: a stride of 0 over
/// batch or heads reuses the same `[queries, keys]` tile.
#[derive(Debug, Clone, Copy)]
pub struct AttentionBias<'a> {
    /// The values.
    pub values: &'a [f32],
    /// Elements between consecutive batch rows (0: broadcast).
    pub batch_stride: usize,
    /// Elements between consecutive heads (0: broadcast).
    pub head_stride: usize,
}

/// `out = softmax(scale·q·kᵀ (soft-capped) + bias)·v`, see the module docs.
#[allow(clippy::too_many_arguments)]
pub fn attention_bf16(
    q: &[bf16],
    k: &[bf16],
    v: &[bf16],
    bias: Option<AttentionBias<'_>>,
    shape: AttentionShape,
    scale: f32,
    softcap: Option<f32>,
    out: &mut [bf16],
) -> Result<()> {
    let AttentionShape { batch, heads, kv_heads, queries, keys, head_dim: d } = shape;
    if heads == 0 || kv_heads == 0 || heads % kv_heads != 0 || d == 0 || keys == 0 {
        return Err(Error::Shape { operand: "attention", shape: format!("{shape:?}") });
    }
    let q_len = [batch, heads, queries, d].iter().try_fold(1usize, |a, b| a.checked_mul(*b));
    let kv_len = [batch, kv_heads, keys, d].iter().try_fold(1usize, |a, b| a.checked_mul(*b));
    let (Some(q_len), Some(kv_len)) = (q_len, kv_len) else {
        return Err(Error::Shape { operand: "attention", shape: format!("{shape:?}") });
    };
    for (operand, len, want) in
        [("q", q.len(), q_len), ("k", k.len(), kv_len), ("v", v.len(), kv_len), ("out", out.len(), q_len)]
    {
        if len != want {
            return Err(Error::Length { operand, shape: format!("{shape:?}"), expected: want, got: len });
        }
    }
    let tile = queries * keys;
    if let Some(b) = bias.filter(|_| batch > 0) {
        let last = (batch - 1)
            .checked_mul(b.batch_stride)
            .and_then(|x| x.checked_add((heads - 1).checked_mul(b.head_stride)?))
            .and_then(|x| x.checked_add(tile))
            .unwrap_or(usize::MAX);
        if b.values.len() < last {
            return Err(Error::Length {
                operand: "bias",
                shape: format!("{shape:?}"),
                expected: last,
                got: b.values.len(),
            });
        }
    }
    if batch == 0 || queries == 0 {
        return Ok(());
    }
    let group = heads / kv_heads;
    out.par_chunks_mut(queries * d).enumerate().for_each(|(bh, out)| {
        let (b, h) = (bh / heads, bh % heads);
        let kv = (b * kv_heads + h / group) * keys * d;
        let q = &q[bh * queries * d..(bh + 1) * queries * d];
        let bias = bias.map(|x| &x.values[b * x.batch_stride + h * x.head_stride..][..tile]);
        head(q, &k[kv..kv + keys * d], &v[kv..kv + keys * d], bias, queries, keys, d, scale, softcap, out);
    });
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn head(
    q: &[bf16],
    k: &[bf16],
    v: &[bf16],
    bias: Option<&[f32]>,
    queries: usize,
    keys: usize,
    d: usize,
    scale: f32,
    softcap: Option<f32>,
    out: &mut [bf16],
) {
    // Shapes were checked by the caller, so the packings and products cannot fail.
    let kt = PackedBf16::from_nk_bf16(k, keys, d).expect("checked shape");
    let vp = PackedBf16::from_kn_bf16(v, keys, d).expect("checked shape");
    let qf: Vec<f32> = q.iter().map(|x| x.to_f32()).collect();
    let mut scores = vec![0f32; queries * keys];
    matmul(&qf, queries, &kt, &mut scores).expect("checked shape");
    for (i, row) in scores.chunks_exact_mut(keys).enumerate() {
        let bias = bias.map(|b| &b[i * keys..(i + 1) * keys]);
        softmax_row(row, bias, scale, softcap);
    }
    // p·v with f32 probabilities (the f32 island): p = hi + lo with both parts exact in bf16
    // (|lo| ≤ 2⁻⁹·|p|, so hi + lo carries 16 significant bits), one product over the stacked
    // [hi; lo] rows, the two halves added in f32.
    let mut split = vec![0f32; 2 * queries * keys];
    let (hi, lo) = split.split_at_mut(queries * keys);
    for ((p, hi), lo) in scores.iter().zip(hi).zip(lo) {
        *hi = bf16::from_f32(*p).to_f32();
        *lo = *p - *hi;
    }
    let mut o = vec![0f32; 2 * queries * d];
    matmul(&split, 2 * queries, &vp, &mut o).expect("checked shape");
    let (o_hi, o_lo) = o.split_at(queries * d);
    out.iter_mut().zip(o_hi.iter().zip(o_lo)).for_each(|(out, (h, l))| *out = bf16::from_f32(h + l));
}

/// In place: `row = softmax(cap(scale·row) + bias)`; a row with no finite score is all zeros.
fn softmax_row(row: &mut [f32], bias: Option<&[f32]>, scale: f32, softcap: Option<f32>) {
    let mut max = f32::NEG_INFINITY;
    for (j, s) in row.iter_mut().enumerate() {
        let mut x = *s * scale;
        if let Some(c) = softcap {
            x = c * (x / c).tanh();
        }
        if let Some(b) = bias {
            x += b[j];
        }
        *s = x;
        max = max.max(x);
    }
    if !max.is_finite() {
        row.fill(0.0);
        return;
    }
    let mut sum = 0f32;
    for s in row.iter_mut() {
        *s = exp(*s - max);
        sum += *s;
    }
    let inv = 1.0 / sum;
    row.iter_mut().for_each(|s| *s *= inv);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(n: usize, seed: usize) -> Vec<bf16> {
        (0..n).map(|i| bf16::from_f32(((i * 29 + seed * 7) % 23) as f32 / 8.0 - 1.4)).collect()
    }

    /// Against a direct f64 evaluation of the same formula, with GQA, a broadcast bias with a
    /// masked key, and a soft-cap.
    #[test]
    fn matches_a_direct_evaluation() {
        let shape = AttentionShape { batch: 2, heads: 4, kv_heads: 2, queries: 5, keys: 7, head_dim: 12 };
        let (q, k, v) = (grid(2 * 4 * 5 * 12, 1), grid(2 * 2 * 7 * 12, 2), grid(2 * 2 * 7 * 12, 3));
        let mut bias = vec![0f32; 2 * 5 * 7]; // [batch, 1, q, k]
        bias.iter_mut().enumerate().filter(|(i, _)| i % 7 == 3).for_each(|(_, b)| *b = f32::MIN);
        let b = AttentionBias { values: &bias, batch_stride: 35, head_stride: 0 };
        let (scale, cap) = (0.3f32, Some(2.0f32));
        let mut out = vec![bf16::ZERO; q.len()];
        attention_bf16(&q, &k, &v, Some(b), shape, scale, cap, &mut out).unwrap();
        for bi in 0..2 {
            for h in 0..4 {
                let kv = bi * 2 + h / 2;
                for i in 0..5 {
                    let qrow = &q[((bi * 4 + h) * 5 + i) * 12..][..12];
                    let s: Vec<f64> = (0..7)
                        .map(|j| {
                            let krow = &k[(kv * 7 + j) * 12..][..12];
                            let dot: f64 = qrow.iter().zip(krow).map(|(a, b)| a.to_f64() * b.to_f64()).sum();
                            let x = dot * f64::from(scale);
                            2.0 * (x / 2.0).tanh() + f64::from(bias[(bi * 5 + i) * 7 + j])
                        })
                        .collect();
                    let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = s.iter().map(|x| (x - max).exp()).collect();
                    let sum: f64 = e.iter().sum();
                    let p: Vec<f64> = e.iter().map(|x| x / sum).collect();
                    assert_eq!(p[3], 0.0, "masked key");
                    for c in 0..12 {
                        let want: f64 = (0..7).map(|j| p[j] * v[(kv * 7 + j) * 12 + c].to_f64()).sum();
                        let got = out[((bi * 4 + h) * 5 + i) * 12 + c].to_f64();
                        assert!(
                            (got - want).abs() <= 2f64.powi(-8) * want.abs() + 1e-5,
                            "b{bi} h{h} q{i} c{c}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn bad_shapes_are_refused() {
        let shape = AttentionShape { batch: 1, heads: 3, kv_heads: 2, queries: 1, keys: 1, head_dim: 2 };
        let x = vec![bf16::ZERO; 6];
        let mut out = vec![bf16::ZERO; 6];
        assert!(attention_bf16(&x, &x, &x, None, shape, 1.0, None, &mut out).is_err());
        let shape = AttentionShape { kv_heads: 3, ..shape };
        assert!(attention_bf16(&x, &x[..5], &x, None, shape, 1.0, None, &mut out).is_err());
        let b = AttentionBias { values: &[0.0], batch_stride: 0, head_stride: 1 };
        assert!(attention_bf16(&x, &x, &x, Some(b), shape, 1.0, None, &mut out).is_err());
    }
}
