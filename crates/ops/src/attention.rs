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
    let dtype = q.dtype();
    let f32 = DType::F32;
    let out = module::attention(
        q.cast(f32),
        k.cast(f32),
        v.cast(f32),
        None,
        bias.map(|b| b.cast(f32)),
        AttentionModuleOptions::default(),
    );
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
}
