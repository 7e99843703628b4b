//! Attention whose score path is f32 whatever the compute precision.
//!
//! Why: in f16, `q·kᵀ` of Gemma-sized heads and the −inf/`f32::MIN` mask entries overflow or
//! saturate, and a softmax over f16 scores loses the small probabilities; both give inf/NaN or
//! visibly different attention. Casting q, k, v (and the additive mask) to f32 costs two casts
//! per call and keeps the projections, which hold the FLOPs, in the compute precision.

use burn::prelude::*;
use burn::tensor::DType;
use burn::tensor::module;
use burn::tensor::ops::AttentionModuleOptions;

/// Scaled dot-product attention, `softmax(q·kᵀ/√d + bias)·v`, computed in f32 and returned in
/// q's dtype. In f32 this is exactly Burn's [`module::attention`].
///
/// # Shapes
/// - `q`: `[batch, heads, queries, head_dim]`; `k`, `v`: `[batch, heads, keys, head_dim]`
/// - `bias` (additive, f32 or any float dtype): `[batch, heads, queries, keys]`
/// - returns: `[batch, heads, queries, head_dim]`
pub fn attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    bias: Option<Tensor<B, 4>>,
) -> Tensor<B, 4> {
    attention_with(q, k, v, bias, AttentionModuleOptions::default())
}

/// [`attention`] with Burn's options: a custom `scale` for `q·kᵀ` (Gemma 2's
/// `query_pre_attn_scalar^-0.5`) and a `softcap`, `c · tanh(scores / c)`, which every Burn
/// backend applies to the scaled scores *before* the additive bias (as transformers' Gemma 2
/// does: capping after the mask would let masked keys through). Same f32 island.
pub fn attention_with<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    bias: Option<Tensor<B, 4>>,
    options: AttentionModuleOptions,
) -> Tensor<B, 4> {
    let dtype = q.dtype();
    let f32 = DType::F32;
    let out = module::attention(q.cast(f32), k.cast(f32), v.cast(f32), None, bias.map(|b| b.cast(f32)), options);
    out.cast(dtype)
}

#[cfg(test)]
mod tests {
    use super::*;
    use robovlm_test_utils::{TestBackend, half_supported};

    /// Scores far beyond f16's range (≈ 6.5e4) still give the f32 answer in f16.
    #[test]
    fn half_precision_scores_do_not_overflow() {
        if !half_supported() {
            return;
        }
        let d = Default::default();
        let q = Tensor::<TestBackend, 4>::from_floats([[[[300.0, 300.0]]]], &d);
        let k = Tensor::<TestBackend, 4>::from_floats([[[[300.0, 300.0], [-300.0, 290.0]]]], &d);
        let v = Tensor::<TestBackend, 4>::from_floats([[[[1.0, 2.0], [3.0, 4.0]]]], &d);
        let want = attention(q.clone(), k.clone(), v.clone(), None).into_data().to_vec::<f32>().unwrap();
        let half = |t: Tensor<TestBackend, 4>| t.cast(DType::F16);
        let got = attention(half(q.clone()), half(k.clone()), half(v.clone()), None);
        assert_eq!(got.dtype(), DType::F16);
        let got = got.cast(DType::F32).into_data().to_vec::<f32>().unwrap();
        assert!(got.iter().all(|x| x.is_finite()), "{got:?}");
        assert!(want.iter().zip(&got).all(|(a, b)| (a - b).abs() < 1e-2), "{want:?} vs {got:?}");
        // The naive f16 path overflows: q·kᵀ = 180000 > f16::MAX.
        let naive = half(q).matmul(half(k).swap_dims(2, 3)).cast(DType::F32).into_data().to_vec::<f32>().unwrap();
        assert!(naive[0].is_infinite(), "{naive:?}");
    }

    /// The soft-cap bounds the scores before the mask is added: a masked key stays masked and
    /// the capped scores give the hand-computed softmax.
    #[test]
    fn softcap_applies_before_the_mask() {
        let d = Default::default();
        let q = Tensor::<TestBackend, 4>::from_floats([[[[10.0, 0.0]]]], &d);
        let k = Tensor::<TestBackend, 4>::from_floats([[[[10.0, 0.0], [-10.0, 0.0], [100.0, 0.0]]]], &d);
        let v = Tensor::<TestBackend, 4>::from_floats([[[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]]], &d);
        let bias = Tensor::<TestBackend, 4>::from_floats([[[[0.0, 0.0, f32::MIN]]]], &d);
        let options = AttentionModuleOptions { scale: Some(0.25), softcap: Some(5.0), is_causal: false };
        let got = attention_with(q, k, v, Some(bias), options).into_data().to_vec::<f32>().unwrap();
        // scores 25 and -25, capped to ±5·tanh(5); the third key is masked.
        let s = 5.0 * 5f32.tanh();
        let w0 = 1.0 / (1.0 + (-2.0 * s).exp());
        let want = [w0, 1.0 - w0];
        assert!((got[0] - want[0]).abs() < 1e-6 && (got[1] - want[1]).abs() < 1e-6, "{got:?} vs {want:?}");
    }
}
