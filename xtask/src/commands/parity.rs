//! `cargo xtask parity [--backend B] [ROBOVLM PARITY ARGS]...`: builds `robovlm` with the backend's
//! feature and runs `robovlm parity --backend B` with the rest of the arguments (paths, `--only`,
//! `--require-all`, `-v`, `--dtype`; see `robovlm parity --help`).

use anyhow::{Context, Result, bail};

use crate::cargo::{build_robovlm, tool};

/// Arguments of `cargo xtask parity`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Backend: ndarray, flex (default), wgpu or cuda. The binary is built with it.
    #[arg(long, default_value = "flex")]
    backend: String,
    /// Everything else goes to `robovlm parity` unchanged (case folders, --only GLOB,
    /// --require-all, --verbose, --dtype).
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "ARGS")]
    rest: Vec<String>,
}

/// Builds robovlm for the backend and runs `robovlm parity`.
pub fn run(args: Args) -> Result<bool> {
    if !["ndarray", "flex", "wgpu", "cuda"].contains(&args.backend.as_str()) {
        bail!("unknown backend `{}` (ndarray, flex, wgpu, cuda)", args.backend);
    }
    let Some(bin) = build_robovlm(&args.backend)? else { bail!("building robovlm failed") };
    let status = tool(&bin)
        .arg("parity")
        .args(["--backend", &args.backend])
        .args(&args.rest)
        .status()
        .with_context(|| format!("running {}", bin.display()))?;
    Ok(status.success())
}
