//! The one place a concrete Burn backend is named.
//!
//! Backends are compiled in by cargo features (`ndarray`, `flex`, `wgpu`, `cuda`) and picked at
//! run time with `--backend`; everything else in the workspace is generic over `B: Backend` and
//! receives its device from [`on_backend!`]. Asking for a backend that is not compiled in, or whose
//! device is missing, is a clear error, never a panic: Burn 0.21 panics on a worker thread when
//! CUDA has no driver, so the driver is probed before any tensor is created.

use std::fmt;

use anyhow::{Result, bail};
use burn::prelude::Backend;
use burn::tensor::backend::set_default_float_dtype;
use burn::tensor::{FloatDType, get_device_settings};

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

/// Compute precision requested with `--dtype`.
///
/// Burn 0.21 tensors carry their dtype at run time, so precision is not a second backend type
/// (which would compile every model twice): it is the device's default float dtype, set here
/// before the first tensor exists. Everything created without an explicit dtype follows it —
/// module parameters, loaded weights (cast while reading), inputs — and the models keep their
/// overflow-prone steps (norms, attention scores and softmax, Gemma's residual stream) in f32
/// whatever it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Dtype {
    /// 32-bit float (every backend; the parity reference precision).
    #[default]
    F32,
    /// IEEE half precision (flex, wgpu where the adapter has shader-f16, cuda).
    F16,
    /// bfloat16 (flex, cuda; not wgpu).
    Bf16,
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Bf16 => "bf16",
        })
    }
}

impl Dtype {
    fn float_dtype(self) -> FloatDType {
        match self {
            Self::F32 => FloatDType::F32,
            Self::F16 => FloatDType::F16,
            Self::Bf16 => FloatDType::BF16,
        }
    }
}

/// Makes `dtype` the device's float precision, or says why the backend cannot compute in it.
fn set_precision<B: Backend>(kind: BackendKind, dtype: Dtype, device: &B::Device) -> Result<()> {
    let wanted = dtype.float_dtype();
    // Known gap first, with the reason: on lavapipe bf16 kernels failed on a worker thread
    // (`UnsupportedType("cube.bf16")`, BURN-NOTES) instead of being refused up front.
    if dtype == Dtype::Bf16 && kind == BackendKind::Wgpu {
        bail!(
            "--dtype bf16 is not supported on backend `wgpu` (WGSL has no bfloat16); use --dtype f16, or bf16 on flex or cuda"
        );
    }
    if !B::supports_dtype(device, wanted.into()) {
        bail!(
            "--dtype {dtype} is not supported on backend `{kind}`{}",
            match kind {
                BackendKind::Ndarray => " (burn-ndarray has no half-precision kernels); use flex, wgpu or cuda",
                BackendKind::Wgpu => " on this machine (the adapter lacks 16-bit float shaders)",
                _ => " on this machine",
            }
        );
    }
    if dtype == Dtype::Bf16 {
        // Said once, on stderr (stdout may be JSON): bf16 is for speed, not for parity.
        eprintln!(
            "note: bf16 keeps 8 significant bits: greedy ids can differ from f32 where the top-2 logits are \
             closer than ~1% (see README, Precision); use f16 for reference-level results"
        );
    }
    // Settings are fixed once per device and process, by this call or by the first tensor
    // (reading them fixes them too): a second job in the same process may only agree.
    if set_default_float_dtype::<B>(device, wanted).is_err() && get_device_settings::<B>(device).float_dtype != wanted {
        bail!(
            "backend `{kind}` already computes in another precision in this process; --dtype {dtype} needs a new process"
        );
    }
    Ok(())
}

/// `--backend` and `--dtype`, the same for every command that computes (`#[command(flatten)]`).
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct DeviceArgs {
    /// Backend (default: the fastest CPU backend compiled in; `robovlm backends` lists them).
    #[arg(long, value_enum)]
    pub backend: Option<BackendKind>,
    /// Compute precision of the model's matrix work: f32, f16 (flex, wgpu, cuda) or bf16 (flex,
    /// cuda). Norms, attention scores, Gemma's residual stream and the action head stay f32;
    /// outputs are reported in f32.
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: Dtype,
}

impl DeviceArgs {
    /// The backend to use.
    pub fn kind(&self) -> BackendKind {
        self.backend.unwrap_or_else(BackendKind::default_compiled)
    }
}

/// The default device of backend `B`, set to compute in `dtype` (or a clear error). Called by
/// [`on_backend!`] before the first tensor exists.
pub fn prepare<B: Backend>(kind: BackendKind, dtype: Dtype) -> Result<B::Device> {
    let device = B::Device::default();
    set_precision::<B>(kind, dtype, &device)?;
    Ok(device)
}

/// Runs a block on the backend and precision of a [`DeviceArgs`] — the one dispatch path of the
/// binary. In `on_backend!(args, |B, device| { ... })` the block sees `B`, the concrete backend
/// type, and `device: &B::Device`; it is compiled once per backend feature and must evaluate to
/// an `anyhow::Result` of host data. An unknown, unusable or unsupported choice is an error
/// before any tensor is created.
macro_rules! on_backend {
    ($args:expr, |$b:ident, $dev:ident| $body:block) => {
        $crate::backend::on_backend!(@arms $args, $b, $dev, $body,
            ("ndarray", Ndarray, burn::backend::NdArray<f32>),
            ("flex", Flex, burn::backend::Flex<f32>),
            ("wgpu", Wgpu, burn::backend::Wgpu<f32>),
            ("cuda", Cuda, burn::backend::Cuda<f32>))
    };
    (@arms $args:expr, $b:ident, $dev:ident, $body:block, $(($feature:literal, $kind:ident, $ty:ty)),*) => {{
        let args: $crate::backend::DeviceArgs = $args;
        let kind = args.kind();
        kind.ensure_usable()?;
        match kind {
            $(
                #[cfg(feature = $feature)]
                $crate::backend::BackendKind::$kind => {
                    type $b = $ty;
                    let device = $crate::backend::prepare::<$b>(kind, args.dtype)?;
                    let $dev = &device;
                    $body
                }
            )*
            #[allow(unreachable_patterns)]
            other => anyhow::bail!("backend `{other}` is not compiled into this binary"),
        }
    }};
}
pub(crate) use on_backend;
