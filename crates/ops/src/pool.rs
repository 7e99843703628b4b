//! Where a model pass runs.

use burn::prelude::*;

/// Runs `f` — a whole model pass on backend `B` — where the CPU kernels run it best, and returns
/// its result.
///
/// On Flex (with the `flex` feature): on a thread of rayon's pool (`robovlm_kernels::on_pool`),
/// so the pass's hundreds of parallel kernel calls each split their work with the pool directly
/// instead of waking the calling thread after every one. Every other backend runs `f` right
/// here: GPU backends (CubeCL's wgpu and CUDA) keep a stream per thread, so work moved to another
/// thread would run on another stream, unordered with the caller's (Gemma's cached decoding on
/// wgpu returned wrong values that way), and the others gain nothing.
///
/// # Panics
/// A panic in `f` is resumed on the calling thread.
pub fn on_kernel_pool<B: Backend, R: Send>(f: impl FnOnce() -> R + Send) -> R {
    #[cfg(feature = "flex")]
    if crate::flex::is_flex::<B>() {
        return robovlm_kernels::on_pool(f);
    }
    f()
}

#[cfg(test)]
mod tests {
    use robovlm_test_utils::TestBackend;

    use super::*;

    #[test]
    fn a_pass_moves_to_the_pool_only_on_flex() {
        let here = std::thread::current().id();
        let (moved, value) = on_kernel_pool::<TestBackend, _>(|| (std::thread::current().id() != here, 6 * 7));
        let flex = std::any::TypeId::of::<TestBackend>() == std::any::TypeId::of::<burn::backend::Flex<f32>>();
        assert_eq!(moved, cfg!(feature = "flex") && flex, "moved to another thread: {moved}");
        assert_eq!(value, 42);
    }
}
