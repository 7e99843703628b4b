//! The backend unit tests run on, chosen by the crate's backend features (priority
//! cuda > wgpu > ndarray > flex) so that `cargo xtask test-all-backends` runs the same tests on
//! each backend by enabling its feature.

#[cfg(feature = "cuda")]
pub type TestBackend = burn::backend::Cuda<f32>;
#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
pub type TestBackend = burn::backend::Wgpu<f32>;
#[cfg(all(feature = "ndarray", not(any(feature = "cuda", feature = "wgpu"))))]
pub type TestBackend = burn::backend::NdArray<f32>;
#[cfg(not(any(feature = "cuda", feature = "wgpu", feature = "ndarray")))]
pub type TestBackend = burn::backend::Flex<f32>;

/// Whether the test backend computes in f16 (burn-ndarray does not); half-precision tests
/// return early, saying so, where it does not.
pub fn half_supported() -> bool {
    use burn::prelude::Backend;
    let ok = TestBackend::supports_dtype(&Default::default(), burn::tensor::DType::F16);
    if !ok {
        eprintln!("skipped: the test backend has no f16");
    }
    ok
}
