//! The one place a concrete Burn backend is named.
//!
//! Backends are compiled in by cargo features (`ndarray`, `flex`, `wgpu`, `cuda`) and picked at
//! run time with `--backend`; everything else in the workspace is generic over `B: Backend` and
//! receives its device from [`run_on`]. Asking for a backend that is not compiled in, or whose
//! device is missing, is a clear error, never a panic: Burn 0.21 panics on a worker thread when
//! CUDA has no driver, so the driver is probed before any tensor is created.

use std::fmt;

use anyhow::{Result, bail};
use burn::prelude::Backend;

/// A backend the binary can be asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// Pure-Rust CPU backend on `ndarray`.
    Ndarray,
    /// Burn's Flex CPU backend (the default: faster than ndarray on every measured shape).
    Flex,
    /// WebGPU (Vulkan/Metal/DX12); runs on CPU-only machines through Mesa's lavapipe.
    Wgpu,
    /// NVIDIA CUDA (needs the driver at run time, not the toolkit at build time).
    Cuda,
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ndarray => "ndarray",
            Self::Flex => "flex",
            Self::Wgpu => "wgpu",
            Self::Cuda => "cuda",
        })
    }
}

impl BackendKind {
    /// Every backend, in the order reports list them.
    pub const ALL: [Self; 4] = [Self::Ndarray, Self::Flex, Self::Wgpu, Self::Cuda];

    /// The backend used when `--backend` is not given: the fastest CPU backend compiled in.
    pub fn default_compiled() -> Self {
        if Self::Flex.compiled_in() {
            Self::Flex
        } else {
            Self::ALL.into_iter().find(|b| b.compiled_in()).unwrap_or(Self::Flex)
        }
    }

    /// Whether this binary was built with the backend's feature.
    pub fn compiled_in(self) -> bool {
        match self {
            Self::Ndarray => cfg!(feature = "ndarray"),
            Self::Flex => cfg!(feature = "flex"),
            Self::Wgpu => cfg!(feature = "wgpu"),
            Self::Cuda => cfg!(feature = "cuda"),
        }
    }

    /// Checks that the backend is compiled in and has a device, without risking a panic.
    pub fn ensure_usable(self) -> Result<()> {
        if !self.compiled_in() {
            bail!("backend `{self}` is not compiled into this binary (rebuild with `--features {self}`)");
        }
        if self == Self::Cuda {
            cuda_driver_present()?;
        }
        Ok(())
    }
}

/// Looks for the NVIDIA driver library the way `cudarc` will load it, so that a machine without
/// a GPU gets an error instead of Burn's worker-thread panic.
fn cuda_driver_present() -> Result<()> {
    const DIRS: [&str; 6] = [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib64",
        "/usr/lib",
        "/usr/local/cuda/lib64",
        "/usr/lib/wsl/lib",
        "/usr/local/nvidia/lib64",
    ];
    let mut dirs: Vec<std::path::PathBuf> = DIRS.iter().map(Into::into).collect();
    if let Some(extra) = std::env::var_os("LD_LIBRARY_PATH") {
        dirs.extend(std::env::split_paths(&extra));
    }
    if dirs.iter().any(|d| d.join("libcuda.so.1").exists() || d.join("libcuda.so").exists()) {
        Ok(())
    } else {
        bail!("backend `cuda`: no NVIDIA driver found (libcuda.so.1 is not installed on this machine)")
    }
}

/// Work that runs on whichever backend the user picked.
pub trait OnBackend {
    /// What the work returns.
    type Output;
    /// Runs on backend `B` with its default device.
    fn run<B: Backend>(self, device: &B::Device) -> Self::Output;
}

/// Runs `job` on the chosen backend (compiled in and usable, else a clear error).
pub fn run_on<J: OnBackend>(kind: BackendKind, job: J) -> Result<J::Output> {
    kind.ensure_usable()?;
    match kind {
        #[cfg(feature = "ndarray")]
        BackendKind::Ndarray => Ok(job.run::<burn::backend::NdArray<f32>>(&Default::default())),
        #[cfg(feature = "flex")]
        BackendKind::Flex => Ok(job.run::<burn::backend::Flex<f32>>(&Default::default())),
        #[cfg(feature = "wgpu")]
        BackendKind::Wgpu => Ok(job.run::<burn::backend::Wgpu<f32>>(&Default::default())),
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => Ok(job.run::<burn::backend::Cuda<f32>>(&Default::default())),
        #[allow(unreachable_patterns)]
        other => bail!("backend `{other}` is not compiled into this binary"),
    }
}
