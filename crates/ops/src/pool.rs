//! Where a model pass runs.

/// Runs `f` — a whole model pass — where the CPU kernels run it best, and returns its result.
///
/// With the `flex` feature: on a thread of rayon's pool (`robovlm_kernels::on_pool`), so the
/// pass's hundreds of parallel kernel calls each split their work with the pool directly
/// instead of waking the calling thread after every one. Without it, or on a GPU backend (whose
/// calls are not rayon's), the place makes no difference: `f` runs on the pool or here, the
/// results are the same.
///
/// # Panics
/// A panic in `f` is resumed on the calling thread.
pub fn on_kernel_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    #[cfg(feature = "flex")]
    return robovlm_kernels::on_pool(f);
    #[cfg(not(feature = "flex"))]
    f()
}
