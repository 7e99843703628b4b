//! An image's non-overlapping patches as rows: a patch embedding's left operand.

use burn::prelude::*;

/// `[batch, channels, h, w]` pixels → `[batch, gh·gw, channels·p·p]`: one row per whole
/// `p × p` patch in row-major grid order, its pixels in a `[hidden, channels, p, p]` conv
/// weight's flattening (channel, kernel row, kernel column), so that `rows · Wᵀ` (plus the
/// bias) is the stride-`p`, `padding="valid"` convolution — rows and columns that make no
/// whole patch are left out.
///
/// On Flex (bf16 or f32, a CPU with the fast kernels): one threaded copy of runs of `p` pixels
/// (`robovlm_kernels::patch_rows`) instead of a permute that copies element by element on one
/// thread — the same values.
///
/// # Panics
/// If `p` is 0.
pub fn patch_rows<B: Backend>(pixels: Tensor<B, 4>, p: usize) -> Tensor<B, 3> {
    assert!(p > 0, "patch size 0");
    #[cfg(feature = "flex")]
    let pixels = match fast::patch_rows(pixels, p) {
        Ok(rows) => return rows,
        Err(pixels) => pixels,
    };
    generic(pixels, p)
}

fn generic<B: Backend>(pixels: Tensor<B, 4>, p: usize) -> Tensor<B, 3> {
    let [batch, channels, h, w] = pixels.dims();
    let (gh, gw) = (h / p, w / p);
    pixels
        .slice([0..batch, 0..channels, 0..gh * p, 0..gw * p])
        .reshape([batch, channels, gh, p, gw, p])
        .permute([0, 2, 4, 1, 3, 5])
        .reshape([batch, gh * gw, channels * p * p])
}

#[cfg(feature = "flex")]
mod fast {
    use burn::prelude::*;
    use burn::tensor::{DType, bf16};

    use crate::flex::{bf16_tensor, contiguous, enabled, f32_tensor, from_flex, to_flex};

    /// The threaded copy for a bf16 or f32 Flex tensor; otherwise `pixels` back untouched.
    pub(super) fn patch_rows<B: Backend>(pixels: Tensor<B, 4>, p: usize) -> Result<Tensor<B, 3>, Tensor<B, 4>> {
        if !enabled() || !matches!(pixels.dtype(), DType::BF16 | DType::F32) {
            return Err(pixels);
        }
        let shape @ [batch, channels, h, w] = pixels.dims();
        let out_shape = [batch, (h / p) * (w / p), channels * p * p];
        let x = contiguous(&to_flex(pixels)?);
        let len = out_shape.iter().product();
        let rows = match x.dtype() {
            DType::BF16 => x.as_slice::<bf16>().and_then(|v| {
                let mut out = vec![bf16::ZERO; len];
                robovlm_kernels::patch_rows(v, shape, p, &mut out).ok().map(|()| bf16_tensor(out, out_shape))
            }),
            _ => x.as_slice::<f32>().and_then(|v| {
                let mut out = vec![0f32; len];
                robovlm_kernels::patch_rows(v, shape, p, &mut out).ok().map(|()| f32_tensor(out, out_shape))
            }),
        };
        rows.map(from_flex).ok_or_else(|| from_flex(x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use robovlm_test_utils::TestBackend;

    /// The stride-p convolution equals the rows times the flattened weight, on whatever
    /// backend the tests run (a remainder row and column included).
    #[test]
    fn rows_times_the_weight_are_the_convolution() {
        use burn::tensor::module::conv2d;
        use burn::tensor::ops::ConvOptions;
        let dev = Default::default();
        let (batch, channels, h, w, p, hidden) = (2, 3, 9, 11, 4, 5);
        let grid = |n: usize, s: usize| (0..n).map(|i| ((i * 7 + s) % 13) as f32 - 6.0).collect::<Vec<_>>();
        let pixels = Tensor::<TestBackend, 4>::from_data(
            TensorData::new(grid(batch * channels * h * w, 1), [batch, channels, h, w]),
            &dev,
        );
        let weight = Tensor::<TestBackend, 4>::from_data(
            TensorData::new(grid(hidden * channels * p * p, 2), [hidden, channels, p, p]),
            &dev,
        );
        let conv = conv2d(pixels.clone(), weight.clone(), None, ConvOptions::new([p, p], [0, 0], [1, 1], 1));
        let want = conv.reshape([batch, hidden, (h / p) * (w / p)]).swap_dims(1, 2);
        let rows = patch_rows(pixels, p);
        let got = rows.matmul(weight.reshape([hidden, channels * p * p]).transpose().unsqueeze::<3>());
        // Small integers: every sum is exact, whatever the order.
        assert_eq!(got.into_data(), want.into_data());
    }

    /// On Flex the threaded copy gives exactly the tensor ops' values, bf16 and f32,
    /// contiguous or not.
    #[cfg(feature = "flex")]
    #[test]
    fn flex_copy_equals_the_tensor_ops() {
        use burn::tensor::DType;
        type F = burn_flex::Flex;
        let dev = Default::default();
        let shape = [2, 3, 10, 9];
        let values: Vec<f32> = (0..shape.iter().product::<usize>()).map(|i| i as f32 * 0.37 - 20.0).collect();
        let x = Tensor::<F, 4>::from_data(TensorData::new(values, shape), &dev);
        for x in [x.clone(), x.clone().cast(DType::BF16), x.swap_dims(2, 3)] {
            for p in [1, 3, 5] {
                let got = patch_rows(x.clone(), p);
                assert_eq!(got.dtype(), x.dtype());
                assert_eq!(got.into_data(), generic(x.clone(), p).into_data(), "patch {p}, {:?}", x.dims());
            }
        }
    }
}
