//! Projections of a single row (one decode step), shaped so that CPU backends use every core.
//!
//! A `[1, in] × [in, out]` product is a matrix–vector product; BLAS-like kernels (the `gemm`
//! crate under Flex) run it on one thread, and at Gemma's sizes it is memory-bound: one decode
//! step streams every weight once (~10 GB at PaliGemma-3B). Splitting it into a batch of
//! independent products lets the backend spread them over its threads:
//! - [`linear`]: split over the *input* dimension (a free reshape of the row-major `[in, out]`
//!   weight), giving `c` partial `[1, out]` sums added at the end;
//! - [`tied_logits`]: split over the *vocabulary* (a free reshape of the `[vocab, hidden]`
//!   embedding), giving `c` contiguous slices of the logits.
//!
//! Rows > 1 (prefill) go through the plain matmul, which is already parallel. Only the
//! summation order of the split-k partial sums changes (float rounding, well inside parity
//! tolerances); on GPU backends the batched form is equally valid.

use burn::prelude::*;
use burn::tensor::DType;
use robovlm_ops::Linear;

/// Number of independent products for a dimension of `n`: enough for common core counts,
/// and 1 (no split) when `n` does not divide evenly.
fn chunks(n: usize) -> usize {
    [16, 8, 4].into_iter().find(|c| n.is_multiple_of(*c) && n / c >= 64).unwrap_or(1)
}

/// `linear.forward(x)` for `x: [batch, seq, in]`, split-k when there is a single row.
pub(crate) fn linear<B: Backend>(linear: &Linear<B>, x: Tensor<B, 3>) -> Tensor<B, 3> {
    // The packed-bf16 kernels (Flex + bf16) are threaded over the output already.
    let x = match linear.fast(x) {
        Ok(y) => return y,
        Err(x) => x,
    };
    let [batch, seq, input] = x.dims();
    let c = chunks(input);
    if batch * seq != 1 || c == 1 {
        return linear.forward(x);
    }
    let w = linear.weight.val(); // [in, out]
    let out = w.dims()[1];
    let partial = x.reshape([c, 1, input / c]).matmul(w.reshape([c, input / c, out])); // [c, 1, out]
    // Partial sums are added in f32 (no-op in f32), as one product's accumulator would be.
    let dtype = partial.dtype();
    let y = partial.cast(DType::F32).sum_dim(0).cast(dtype).reshape([1, 1, out]);
    match &linear.bias {
        Some(b) => y + b.val().reshape([1, 1, out]),
        None => y,
    }
}

/// `hidden · embeddingᵀ` for `hidden: [rows, d]` and `embedding: [vocab, d]`; one row is split
/// over the vocabulary.
pub(crate) fn tied_logits<B: Backend>(hidden: Tensor<B, 2>, embedding: Tensor<B, 2>) -> Tensor<B, 2> {
    let [rows, d] = hidden.dims();
    let vocab = embedding.dims()[0];
    let c = chunks(vocab);
    if rows != 1 || c == 1 {
        return hidden.matmul(embedding.transpose());
    }
    // [c, vocab/c, d] × [d, 1] per chunk → [c, vocab/c, 1], contiguous in vocabulary order.
    let column = hidden.reshape([1, d, 1]);
    embedding.reshape([c, vocab / c, d]).matmul(column).reshape([1, vocab])
}

#[cfg(test)]
mod tests {
    use burn::module::Param;

    use super::*;
    use robovlm_test_utils::{TestBackend, assert_product_within_rounding, test_values};

    fn tensor<const D: usize>(values: &[f32], shape: [usize; D]) -> Tensor<TestBackend, D> {
        Tensor::from_data(TensorData::new(values.to_vec(), shape), &Default::default())
    }

    fn values<const D: usize>(t: Tensor<TestBackend, D>) -> Vec<f32> {
        t.into_data().to_vec::<f32>().unwrap()
    }

    /// A `Linear` with deterministic `[in, out]` weights (and bias).
    fn linear_of(input: usize, out: usize, bias: bool) -> Linear<TestBackend> {
        burn::nn::Linear {
            weight: Param::from_tensor(tensor(&test_values(input * out, 3), [input, out])),
            bias: bias.then(|| Param::from_tensor(tensor(&test_values(out, 4), [out]))),
        }
        .into()
    }

    #[test]
    fn split_k_linear_matches_the_plain_product() {
        let (input, out) = (256, 96);
        for bias in [false, true] {
            let lin = linear_of(input, out, bias);
            let x = test_values(input, 5);
            let got = values(linear(&lin, tensor(&x, [1, 1, input])));
            // `a · bᵀ` with `b` the weight's rows per output: the transposed `[in, out]` weight.
            let w_rows = values(lin.weight.val().transpose());
            let b = lin.bias.as_ref().map(|b| values(b.val()));
            assert_product_within_rounding("split-k linear", &got, &x, &w_rows, b.as_deref(), input);
        }
        // Several rows and indivisible widths take the plain path.
        let lin = linear_of(100, 8, true);
        let x = tensor(&test_values(600, 6), [2, 3, 100]);
        assert_eq!(values(linear(&lin, x.clone())), values(lin.forward(x)));
    }

    #[test]
    fn vocabulary_split_logits_match_the_plain_product() {
        let (vocab, d) = (1024, 64);
        let emb = test_values(vocab * d, 7);
        let h = test_values(d, 8);
        let got = values(tied_logits(tensor(&h, [1, d]), tensor(&emb, [vocab, d])));
        assert_product_within_rounding("vocabulary-split logits", &got, &h, &emb, None, d);
    }
}
