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

/// A golden tensor of a fixture case (`fixtures/<case>/reference.safetensors`): shape and
/// values as f32 (integer tensors converted).
///
/// # Panics
/// If the case or the tensor does not exist (a broken fixture is a test failure).
pub fn reference(case: &str, name: &str) -> (Vec<usize>, Vec<f32>) {
    let path = fixtures_dir().join(case).join("reference.safetensors");
    let checkpoint = robovlm_weights::Checkpoint::open(&path).unwrap_or_else(|e| panic!("{e}"));
    let data = checkpoint.read(name).unwrap_or_else(|e| panic!("{e}"));
    (data.shape.to_vec(), data.convert::<f32>().into_vec::<f32>().expect("converted to f32"))
}

/// Asserts `got` equals the golden `want` within the fixtures' float tolerance (fixtures README
/// §5: `|a - b| <= 1e-4 + 1e-4·|ref|`), naming the tensor and the worst element.
///
/// # Panics
/// On a length mismatch or any element outside the tolerance.
pub fn assert_close(name: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{name}: {} values, reference has {}", got.len(), want.len());
    let worst = got
        .iter()
        .zip(want)
        .enumerate()
        .map(|(i, (&a, &b))| (i, (a - b).abs() / (1e-4 + 1e-4 * b.abs())))
        .fold((0, 0f32), |w, c| if c.1 > w.1 || c.1.is_nan() { c } else { w });
    assert!(
        worst.1 <= 1.0,
        "{name}: element {} is {} but the reference is {} ({:.1}x the tolerance)",
        worst.0,
        got[worst.0],
        want[worst.0],
        worst.1
    );
}
