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
    #[cfg(feature = "flex")]
    let (q, k, v, bias) = match fast::attention(q, k, v, bias, options) {
        Ok(out) => return out,
        Err(operands) => operands,
    };
    f32_island(q, k, v, bias, options)
}

/// Burn's attention on f32 copies of the operands, returned in q's dtype (the generic path).
fn f32_island<B: Backend>(
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

/// [`attention_with`] for grouped-query attention: `k` and `v` have `kv_heads` heads, query head
/// `h` reads key/value head `h / (heads / kv_heads)` (transformers' `repeat_kv`), and `bias` may
/// be broadcast over heads (`[batch, 1, queries, keys]`).
///
/// On Flex in bf16 (a CPU with AVX-512 BF16) this is one parallel kernel that never repeats the
/// key/value heads (`robovlm_kernels::attention_bf16`: f32 scores and softmax, `p·v` with the
/// f32 probabilities). Elsewhere k and v are cast to f32 *before* the repeat (`group`× less data
/// converted: the whole KV cache every decode step), then [`attention_with`]'s f32 path.
///
/// # Shapes
/// - `q`: `[batch, heads, queries, head_dim]`; `k`, `v`: `[batch, kv_heads, keys, head_dim]`
/// - `bias`: `[batch, 1 or heads, queries, keys]`; returns `[batch, heads, queries, head_dim]`
pub fn attention_grouped<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    bias: Option<Tensor<B, 4>>,
    options: AttentionModuleOptions,
) -> Tensor<B, 4> {
    #[cfg(feature = "flex")]
    let (q, k, v, bias) = match fast::attention(q, k, v, bias, options) {
        Ok(out) => return out,
        Err(operands) => operands,
    };
    let [batch, heads, queries, d] = q.dims();
    let [_, kv_heads, keys, _] = k.dims();
    let (k, v) = (k.cast(DType::F32), v.cast(DType::F32));
    let group = heads / kv_heads.max(1);
    let repeat = |t: Tensor<B, 4>| {
        if group == 1 {
            t
        } else {
            t.unsqueeze_dim::<5>(2).expand([batch, kv_heads, group, keys, d]).reshape([batch, heads, keys, d])
        }
    };
    let bias = bias.map(|b| b.expand([batch, heads, queries, keys]));
    f32_island(q, repeat(k), repeat(v), bias, options)
}

#[cfg(feature = "flex")]
mod fast {
    use burn::prelude::*;
    use burn::tensor::ops::AttentionModuleOptions;
    use burn::tensor::{DType, bf16};
    use robovlm_kernels::{AttentionBias, AttentionShape, OutLayout, attention_bf16_strided};

    use crate::flex::{contiguous, enabled, from_flex, heads_tensor, heads_view, operand, to_flex};

    type Operands<B> = (Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 4>, Option<Tensor<B, 4>>);

    /// The bf16 kernel when it applies (Flex, bf16 q/k/v, consistent shapes, no causal flag);
    /// otherwise the operands back untouched.
    pub(super) fn attention<B: Backend>(
        q: Tensor<B, 4>,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
        bias: Option<Tensor<B, 4>>,
        options: AttentionModuleOptions,
    ) -> Result<Tensor<B, 4>, Operands<B>> {
        let [batch, heads, queries, d] = q.dims();
        let [kb, kv_heads, keys, kd] = k.dims();
        let bias_ok = bias.as_ref().is_none_or(|b| {
            let [bb, bh, bq, bk] = b.dims();
            (bb == batch || bb == 1) && (bh == heads || bh == 1) && bq == queries && bk == keys
        });
        let applies = enabled()
            && !options.is_causal
            && [&q, &k, &v].iter().all(|t| t.dtype() == DType::BF16)
            && kb == batch
            && kd == d
            && v.dims() == k.dims()
            && kv_heads > 0
            && heads % kv_heads == 0
            && keys > 0
            && d > 0
            && bias_ok;
        if !applies {
            return Err((q, k, v, bias));
        }
        let q = match to_flex(q) {
            Ok(q) => heads_view(q),
            Err(q) => return Err((q, k, v, bias)),
        };
        // q is a Flex tensor, so B is Flex and the others convert too.
        let (Ok(k), Ok(v)) = (to_flex(k), to_flex(v)) else { unreachable!("one backend per call") };
        let (k, v) = (heads_view(k), heads_view(v));
        let bias_f32 = bias.clone().map(|b| {
            let Ok(b) = to_flex(b.cast(DType::F32)) else { unreachable!("one backend per call") };
            contiguous(&b)
        });
        let tile = queries * keys;
        let bias_view = match (&bias, &bias_f32) {
            (Some(b), Some(values)) => {
                let [bb, bh, _, _] = b.dims();
                values.as_slice::<f32>().map(|values| AttentionBias {
                    values,
                    batch_stride: if bb == 1 { 0 } else { bh * tile },
                    head_stride: if bh == 1 { 0 } else { tile },
                })
            }
            _ => None,
        };
        let shape = AttentionShape { batch, heads, kv_heads, queries, keys, head_dim: d };
        let scale = options.scale.unwrap_or(1.0 / (d as f64).sqrt()) as f32;
        // Queries that arrive as per-head views of a `[batch, tokens, heads·d]` projection leave
        // the same way: the caller's merge of the heads is then free, and so was the split.
        let token_major = q.1.head < q.1.row;
        let out_layout = if token_major { OutLayout::TokenMajor } else { OutLayout::HeadMajor };
        let mut out = vec![bf16::ZERO; batch * heads * queries * d];
        let done = bias.is_some() == bias_view.is_some()
            && attention_bf16_strided(
                operand(&q),
                operand(&k),
                operand(&v),
                bias_view,
                shape,
                scale,
                options.softcap.map(|c| c as f32),
                &mut out,
                out_layout,
            )
            .is_ok();
        if !done {
            // Not expected (shapes and layouts were checked); Burn's path reports what it sees.
            return Err((from_flex(q.0), from_flex(k.0), from_flex(v.0), bias));
        }
        Ok(from_flex(heads_tensor(out, [batch, heads, queries, d], out_layout)))
    }
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

    /// bf16 on Flex: per-head views of `[batch, tokens, heads·d]` projections (no copy) give
    /// exactly the values of contiguous operands, and the merged `[batch, tokens, heads·d]`
    /// result is the same either way.
    #[cfg(feature = "flex")]
    #[test]
    fn bf16_token_major_views_equal_contiguous_operands() {
        type F = burn_flex::Flex;
        let dev = Default::default();
        let (b, s, h, kvh, d) = (2, 9, 4, 2, 8);
        let tokens = |width: usize, seed: usize| {
            let v: Vec<f32> = (0..b * s * width).map(|i| ((i * 29 + seed * 3) % 23) as f32 / 9.0 - 1.2).collect();
            Tensor::<F, 3>::from_data(TensorData::new(v, [b, s, width]), &dev).cast(DType::BF16)
        };
        let split = |t: Tensor<F, 3>, heads: usize| t.reshape([b, s, heads, d]).swap_dims(1, 2);
        let copy = |t: Tensor<F, 4>| Tensor::<F, 4>::from_data(t.into_data(), &dev).cast(DType::BF16);
        let (q, k, v) = (split(tokens(h * d, 1), h), split(tokens(kvh * d, 2), kvh), split(tokens(kvh * d, 3), kvh));
        let options = || AttentionModuleOptions { scale: None, softcap: None, is_causal: false };
        let merge = |t: Tensor<F, 4>| t.swap_dims(1, 2).reshape([b, s, h * d]).into_data();
        let viewed = attention_grouped(q.clone(), k.clone(), v.clone(), None, options());
        let copied = attention_grouped(copy(q), copy(k), copy(v), None, options());
        assert_eq!(viewed.dtype(), DType::BF16);
        assert_eq!(viewed.clone().into_data(), copied.clone().into_data());
        assert_eq!(merge(viewed), merge(copied));
    }

    /// bf16 on Flex: the grouped kernel (where it runs) equals the f32 path (repeat, f32
    /// scores) to bf16's precision, with GQA, a soft-cap and a broadcast mask.
    #[cfg(feature = "flex")]
    #[test]
    fn bf16_grouped_attention_matches_the_f32_path() {
        type F = burn_flex::Flex;
        let d = Default::default();
        let grid = |shape: [usize; 4], seed: usize| {
            let n: usize = shape.iter().product();
            let v: Vec<f32> = (0..n).map(|i| ((i * 31 + seed * 5) % 19) as f32 / 8.0 - 1.1).collect();
            Tensor::<F, 4>::from_data(TensorData::new(v, shape), &d)
        };
        let (q, k, v) = (grid([2, 4, 3, 16], 1), grid([2, 2, 6, 16], 2), grid([2, 2, 6, 16], 3));
        let mut mask = vec![0f32; 2 * 3 * 6];
        mask.iter_mut().step_by(5).for_each(|m| *m = f32::MIN);
        let bias = Tensor::<F, 4>::from_data(TensorData::new(mask, [2, 1, 3, 6]), &d);
        let options = || AttentionModuleOptions { scale: Some(0.2), softcap: Some(3.0), is_causal: false };
        let want = attention_grouped(q.clone(), k.clone(), v.clone(), Some(bias.clone()), options());
        let half = |t: Tensor<F, 4>| t.cast(DType::BF16);
        let fast =
            super::fast::attention(half(q.clone()), half(k.clone()), half(v.clone()), Some(bias.clone()), options());
        assert_eq!(fast.is_ok(), robovlm_kernels::Isa::best().native(), "kernel taken iff the CPU has it");
        let got = attention_grouped(half(q), half(k), half(v), Some(bias), options());
        assert_eq!((got.dims(), got.dtype()), ([2, 4, 3, 16], DType::BF16));
        let got = got.cast(DType::F32).into_data().to_vec::<f32>().unwrap();
        for (g, w) in got.iter().zip(want.into_data().to_vec::<f32>().unwrap()) {
            assert!((g - w).abs() <= 1e-2 * w.abs() + 1e-2, "{g} vs {w}");
        }
    }
}
