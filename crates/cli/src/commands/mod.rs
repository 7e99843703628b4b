//! One file per subcommand.

pub mod act;
pub mod backends;
pub mod bench;
pub mod dump;
pub mod generate;
pub mod parity;
pub mod process;

/// Compute precision requested with `--dtype`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Dtype {
    /// 32-bit float (every backend).
    F32,
    /// 16-bit float.
    F16,
    /// bfloat16.
    Bf16,
}

impl Dtype {
    /// Half precision is its own piece of work (backends & precision issue); until it lands it
    /// is refused clearly instead of silently computing in f32.
    pub fn ensure_supported(self) -> anyhow::Result<()> {
        match self {
            Self::F32 => Ok(()),
            other => anyhow::bail!("--dtype {other:?}: half precision is not implemented yet; use --dtype f32"),
        }
    }
}
