//! Rotary position embedding in HF's rotate-half convention, with a fused CPU path for bf16.

use burn::prelude::*;

/// `x·cos + rotate_half(x)·sin`, `rotate_half(x) = cat(−x[d/2..], x[..d/2])` (transformers'
/// pairing `(i, i + d/2)`), each op in `x`'s dtype as transformers computes it (the tables are
/// in that dtype too).
///
/// On Flex in bf16 (a CPU with AVX-512 BF16) this is one threaded pass with the same three
/// roundings (`robovlm_kernels::rope_bf16`, bit-identical to the ops below), reading per-head
/// views of a projection in place and keeping their token-major layout, so the attention that
/// follows returns heads ready to merge without a copy.
///
/// # Shapes
/// - `x`: `[batch, heads, seq, head_dim]`; `cos`, `sin`: `[batch or 1, 1, seq, head_dim]`
pub fn rope<B: Backend>(x: Tensor<B, 4>, cos: &Tensor<B, 4>, sin: &Tensor<B, 4>) -> Tensor<B, 4> {
    #[cfg(feature = "flex")]
    let x = match fast::rope(x, cos, sin) {
        Ok(y) => return y,
        Err(x) => x,
    };
    generic(x, cos, sin)
}

fn generic<B: Backend>(x: Tensor<B, 4>, cos: &Tensor<B, 4>, sin: &Tensor<B, 4>) -> Tensor<B, 4> {
    let [b, h, s, d] = x.dims();
    let first = x.clone().slice([0..b, 0..h, 0..s, 0..d / 2]);
    let second = x.clone().slice([0..b, 0..h, 0..s, d / 2..d]);
    let rotated = Tensor::cat(vec![second.neg(), first], 3);
    x * cos.clone() + rotated * sin.clone()
}

#[cfg(feature = "flex")]
mod fast {
    use burn::prelude::*;
    use burn::tensor::{DType, bf16};
    use robovlm_kernels::{OutLayout, RopeTables, rope_bf16};

    use crate::flex::{contiguous, enabled, from_flex, heads_tensor, heads_view, operand, to_flex};

    /// The fused kernel when it applies (Flex, bf16 everywhere, even width, tables of the
    /// documented shape); otherwise `x` back untouched.
    pub(super) fn rope<B: Backend>(
        x: Tensor<B, 4>,
        cos: &Tensor<B, 4>,
        sin: &Tensor<B, 4>,
    ) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
        let dims @ [batch, _, rows, d] = x.dims();
        let [tb, th, ts, td] = cos.dims();
        let applies = enabled()
            && [x.dtype(), cos.dtype(), sin.dtype()].iter().all(|t| *t == DType::BF16)
            && sin.dims() == cos.dims()
            && (tb == batch || tb == 1)
            && th == 1
            && ts == rows
            && td == d
            && d % 2 == 0
            && d > 0;
        if !applies {
            return Err(x);
        }
        let x = heads_view(to_flex(x)?);
        let table = |t: &Tensor<B, 4>| to_flex(t.clone()).ok().map(|t| contiguous(&t));
        let (Some(cos), Some(sin)) = (table(cos), table(sin)) else { return Err(from_flex(x.0)) };
        let (Some(cos_values), Some(sin_values)) = (cos.as_slice::<bf16>(), sin.as_slice::<bf16>()) else {
            return Err(from_flex(x.0));
        };
        let tables = RopeTables { cos: cos_values, sin: sin_values, batch_stride: if tb == 1 { 0 } else { rows * d } };
        let layout = if x.1.head < x.1.row { OutLayout::TokenMajor } else { OutLayout::HeadMajor };
        let mut out = vec![bf16::ZERO; dims.iter().product()];
        if rope_bf16(operand(&x), dims, tables, &mut out, layout).is_err() {
            return Err(from_flex(x.0));
        }
        Ok(from_flex(heads_tensor(out, dims, layout)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use robovlm_test_utils::TestBackend;

    #[test]
    fn position_zero_is_identity_and_pairs_are_half_split() {
        let device = Default::default();
        let x = Tensor::<TestBackend, 4>::from_floats([[[[1.0, 2.0, 3.0, 4.0]]]], &device);
        let ones = Tensor::<TestBackend, 4>::ones([1, 1, 1, 4], &device);
        let zeros = Tensor::<TestBackend, 4>::zeros([1, 1, 1, 4], &device);
        assert_eq!(rope(x.clone(), &ones, &zeros).into_data().to_vec::<f32>().unwrap(), vec![1.0, 2.0, 3.0, 4.0]);
        // A quarter turn (cos 0, sin 1) maps (x1, x2) to (−x2, x1).
        assert_eq!(rope(x, &zeros, &ones).into_data().to_vec::<f32>().unwrap(), vec![-3.0, -4.0, 1.0, 2.0]);
    }

    /// bf16 on Flex: the fused pass equals Burn's ops bit for bit, for a token-major view of a
    /// projection and a head-major tensor, with a shared and a per-batch table.
    #[cfg(feature = "flex")]
    #[test]
    fn bf16_fused_pass_equals_the_ops() {
        use burn::tensor::DType;
        type F = burn_flex::Flex;
        let dev = Default::default();
        let (b, s, h, d) = (2, 7, 3, 8);
        let grid = |n: usize, seed: usize| -> Vec<f32> {
            (0..n).map(|i| ((i * 37 + seed * 5) % 29) as f32 / 7.0 - 2.0).collect()
        };
        let bf = |v: Vec<f32>, shape: [usize; 4]| {
            Tensor::<F, 4>::from_data(TensorData::new(v, shape), &dev).cast(DType::BF16)
        };
        let tokens =
            Tensor::<F, 3>::from_data(TensorData::new(grid(b * s * h * d, 1), [b, s, h * d]), &dev).cast(DType::BF16);
        let view = tokens.reshape([b, s, h, d]).swap_dims(1, 2);
        let head_major = bf(grid(b * h * s * d, 2), [b, h, s, d]);
        for tb in [1, b] {
            let (cos, sin) = (bf(grid(tb * s * d, 3), [tb, 1, s, d]), bf(grid(tb * s * d, 4), [tb, 1, s, d]));
            for x in [view.clone(), head_major.clone()] {
                let got = rope(x.clone(), &cos, &sin);
                assert_eq!(got.dtype(), DType::BF16);
                assert_eq!(got.into_data(), generic(x, &cos, &sin).into_data(), "tables for {tb} batch row(s)");
            }
        }
    }
}
