//! A few rows times a transposed weight, `x · Wᵀ` with `W: [out, in]` (PyTorch's layout): the
//! products of an LSTM head (the window's input projection, each step's recurrence), with a CPU
//! fast path.

use burn::prelude::*;

/// `x · wᵀ` for `x: [m, in]` (`m` ≤ 16) and `w: [out, in]`, returned `[m, out]`.
///
/// On Flex in f32 (a CPU with AVX-512) this is `robovlm_kernels::matmul_nt_f32`: the weight's
/// rows streamed once on every core with fused multiply-adds — several times faster than Burn's
/// general product for so few rows, and as accurate (a fixed, different summation order, so the
/// last bits differ from Burn's). Anything else — other backends, dtypes, more rows, a
/// non-contiguous weight — gives `x` back for the caller's own path.
pub fn matmul_transposed<B: Backend>(x: Tensor<B, 2>, w: &Tensor<B, 2>) -> Result<Tensor<B, 2>, Tensor<B, 2>> {
    #[cfg(feature = "flex")]
    {
        fast::matmul_transposed(x, w)
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = w;
        Err(x)
    }
}

#[cfg(feature = "flex")]
mod fast {
    use burn::prelude::*;
    use burn::tensor::DType;

    use crate::flex::{contiguous, enabled, f32_tensor, from_flex, to_flex};

    pub(super) fn matmul_transposed<B: Backend>(
        x: Tensor<B, 2>,
        w: &Tensor<B, 2>,
    ) -> Result<Tensor<B, 2>, Tensor<B, 2>> {
        let [rows, cols] = x.dims();
        let [out_features, in_features] = w.dims();
        let applies = enabled()
            && (1..=robovlm_kernels::MATMUL_NT_MAX_ROWS).contains(&rows)
            && cols == in_features
            && x.dtype() == DType::F32
            && w.dtype() == DType::F32;
        if !applies {
            return Err(x);
        }
        let Ok(weights) = to_flex(w.clone()) else { return Err(x) };
        let x = contiguous(&to_flex(x)?);
        let (Some(wv), Some(xv)) = (weights.as_slice::<f32>(), x.as_slice::<f32>()) else { return Err(from_flex(x)) };
        let mut out = vec![0f32; rows * out_features];
        if robovlm_kernels::matmul_nt_f32(xv, rows, wv, out_features, in_features, &mut out).is_err() {
            return Err(from_flex(x));
        }
        Ok(from_flex(f32_tensor(out, [rows, out_features])))
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use burn::prelude::*;
    use burn_flex::Flex;

    use super::matmul_transposed;

    /// Equals Burn's product to f32 rounding where it runs, for one and several rows; more
    /// rows than the kernel takes are left to the caller.
    #[test]
    fn equals_burns_product() {
        let dev = Default::default();
        let grid =
            |n: usize, s: usize| -> Vec<f32> { (0..n).map(|i| ((i * 29 + s) % 31) as f32 / 15.0 - 1.0).collect() };
        let w = Tensor::<Flex, 2>::from_data(TensorData::new(grid(300 * 70, 1), [300, 70]), &dev);
        for m in [1, 8] {
            let x = Tensor::<Flex, 2>::from_data(TensorData::new(grid(m * 70, 2), [m, 70]), &dev);
            let want = x.clone().matmul(w.clone().transpose()).into_data().to_vec::<f32>().unwrap();
            match matmul_transposed(x.clone(), &w) {
                Ok(y) => {
                    assert_eq!(y.dims(), [m, 300]);
                    for (g, w) in y.into_data().to_vec::<f32>().unwrap().iter().zip(&want) {
                        assert!((g - w).abs() <= 1e-5 * (1.0 + w.abs()), "{g} vs {w}");
                    }
                }
                Err(_) => assert!(!robovlm_kernels::Isa::best().native()),
            }
        }
        assert!(matmul_transposed(Tensor::<Flex, 2>::ones([17, 70], &dev), &w).is_err(), "17 rows");
    }
}
