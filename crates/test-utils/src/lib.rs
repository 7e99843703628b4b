//! Test-only helpers shared by every crate of the workspace (a dev-dependency, never shipped):
//! the one definition of the backend tests run on, and where the repository's fixtures are.

use std::path::PathBuf;

use burn::prelude::Backend;

/// The backend every crate's tests run on, chosen by this crate's features (priority
/// cuda > wgpu > ndarray > flex), so that `cargo xtask test-all-backends` runs the same tests on
/// each backend by enabling one feature.
#[cfg(feature = "cuda")]
pub type TestBackend = burn::backend::Cuda<f32>;
/// The backend every crate's tests run on (see the `cuda` variant's doc).
#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
pub type TestBackend = burn::backend::Wgpu<f32>;
/// The backend every crate's tests run on (see the `cuda` variant's doc).
#[cfg(all(feature = "ndarray", not(any(feature = "cuda", feature = "wgpu"))))]
pub type TestBackend = burn::backend::NdArray<f32>;
/// The backend every crate's tests run on: Flex unless a backend feature is enabled.
#[cfg(not(any(feature = "cuda", feature = "wgpu", feature = "ndarray")))]
pub type TestBackend = burn::backend::Flex<f32>;

/// Whether the test backend computes in f16 (burn-ndarray does not); half-precision tests
/// return early, saying so, where it does not.
pub fn half_supported() -> bool {
    let ok = TestBackend::supports_dtype(&Default::default(), burn::tensor::DType::F16);
    if !ok {
        eprintln!("skipped: the test backend has no f16");
    }
    ok
}

/// The repository's `fixtures/` folder (golden cases copied from the Python references).
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}
