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

/// `len` deterministic test values in `[-1, 1)`, from a fixed integer hash of the index and
/// `seed`: a failing case reproduces exactly, and no test depends on the backend's random state
/// (which other tests running in the same process also draw from).
pub fn test_values(len: usize, seed: u64) -> Vec<f32> {
    (0..len as u64)
        .map(|i| {
            // SplitMix64's finaliser: every bit of the index and seed reaches the top 24 bits.
            let mut z = i.wrapping_add(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_add(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 40) as f32) / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// Asserts `got` (`[m, n]`, row-major) is the product `a · bᵀ` (`a: [m, k]`, `b: [n, k]`, both
/// row-major), plus `bias[n]` when given, to within the rounding of an f32 inner product in
/// *any* summation order: `|got − exact| ≤ γ · (Σ|a·b| + |bias|)` with `γ = (k+1)u / (1 − (k+1)u)`,
/// `u = 2⁻²⁴` (Higham, *Accuracy and Stability of Numerical Algorithms*, §3.1; the `+1` is the
/// bias). The exact product is computed in f64.
///
/// Why this and not a fixed absolute tolerance between two f32 products: two summation orders
/// of 128 products of size ≈ 0.25 differ by a few ulps of the sum (≈ 4e-6 each at 32), so a
/// fixed `1e-5` failed on some random inputs while both results were correct. A wrong slice, a
/// dropped or doubled term is off by `O(|a|·|b|)`, thousands of times this bound.
///
/// # Panics
/// On inconsistent lengths or any element outside the bound (naming `name` and the element).
pub fn assert_product_within_rounding(name: &str, got: &[f32], a: &[f32], b: &[f32], bias: Option<&[f32]>, k: usize) {
    assert!(
        k > 0 && a.len().is_multiple_of(k) && b.len().is_multiple_of(k),
        "{name}: k = {k} does not divide the operands"
    );
    let (m, n) = (a.len() / k, b.len() / k);
    assert_eq!(got.len(), m * n, "{name}: {} values for a [{m}, {n}] product", got.len());
    if let Some(bias) = bias {
        assert_eq!(bias.len(), n, "{name}: bias of {} for {n} columns", bias.len());
    }
    let u = (k as f64 + 1.0) * f64::powi(2.0, -24);
    let gamma = u / (1.0 - u);
    for i in 0..m {
        for j in 0..n {
            let (row, col) = (&a[i * k..][..k], &b[j * k..][..k]);
            let beta = bias.map_or(0.0, |b| f64::from(b[j]));
            let exact = row.iter().zip(col).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum::<f64>() + beta;
            let size =
                row.iter().zip(col).map(|(&x, &y)| (f64::from(x) * f64::from(y)).abs()).sum::<f64>() + beta.abs();
            let value = f64::from(got[i * n + j]);
            assert!(
                (value - exact).abs() <= gamma * size,
                "{name}: element [{i}, {j}] is {value} but the exact product is {exact} (bound {:.3e})",
                gamma * size
            );
        }
    }
}
