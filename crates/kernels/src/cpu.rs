//! What the CPU we run on can do, detected once at run time.
//!
//! Benchmarks print this next to every number (machines differ between sessions: an AMD EPYC
//! with AVX-512 BF16 and an Intel Xeon with AMX have different peaks), and [`crate::Isa`] picks
//! the kernel from it.

use std::sync::OnceLock;

/// The CPU model and the instruction-set extensions the kernels care about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuFeatures {
    /// `model name` from `/proc/cpuinfo` (empty where that file does not exist).
    pub model: String,
    /// AVX2 + FMA (f32 fused multiply-add on 256-bit vectors).
    pub avx2: bool,
    /// AVX-512 Foundation with BW and VL, and AVX2 + FMA (512-bit f32 FMA, masked loads and
    /// stores, 16-bit lane moves): everything the AVX-512 builds of the element-wise, attention,
    /// norm and few-row kernels enable. (Only Xeon Phi had F without BW/VL.)
    pub avx512f: bool,
    /// AVX-512 BF16: `vdpbf16ps`, pairwise bf16 dot products accumulated in f32.
    pub avx512_bf16: bool,
    /// AMX with bf16 tiles (Intel Sapphire Rapids and later): [`crate::Isa::Amx`], where the OS
    /// also grants the tile registers.
    pub amx_bf16: bool,
}

impl CpuFeatures {
    /// The features of this machine (detected on first call, then cached).
    pub fn get() -> &'static CpuFeatures {
        static FEATURES: OnceLock<CpuFeatures> = OnceLock::new();
        FEATURES.get_or_init(detect)
    }

    /// One line for benchmark reports, e.g. `AMD EPYC 9R14 (avx2 avx512f avx512_bf16)`.
    pub fn summary(&self) -> String {
        let flags: Vec<&str> = [
            (self.avx2, "avx2"),
            (self.avx512f, "avx512f"),
            (self.avx512_bf16, "avx512_bf16"),
            (self.amx_bf16, "amx_bf16"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| *name)
        .collect();
        let model = if self.model.is_empty() { "unknown CPU" } else { &self.model };
        let flags =
            if flags.is_empty() { "none of avx2/avx512f/avx512_bf16/amx_bf16".to_string() } else { flags.join(" ") };
        format!("{model} ({flags})")
    }
}

fn detect() -> CpuFeatures {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name")?.split_once(':').map(|(_, v)| v.trim().to_string()))
        .unwrap_or_default();
    // AMX is read from the kernel's flag list: it also needs the OS to grant the tile state, and
    // the kernel lists it only then.
    let amx_bf16 = cpuinfo
        .lines()
        .find(|line| line.starts_with("flags"))
        .is_some_and(|line| line.split_whitespace().any(|flag| flag == "amx_bf16"));
    #[cfg(target_arch = "x86_64")]
    {
        CpuFeatures {
            model,
            avx2: is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            avx512f: is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma"),
            avx512_bf16: is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16"),
            amx_bf16,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        CpuFeatures { model, avx2: false, avx512f: false, avx512_bf16: false, amx_bf16 }
    }
}
