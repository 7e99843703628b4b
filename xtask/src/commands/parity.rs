//! `cargo xtask parity [--backend B] [--only GLOB]... [--require-all] <PATH>...`

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::cargo::{build_robovlm, tool};

/// Arguments of `cargo xtask parity`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Case folders to search (a folder holding reference.json is a case).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Backend: ndarray, flex (default), wgpu or cuda. The binary is built with it.
    #[arg(long, default_value = "flex")]
    backend: String,
    /// Only reference tensors matching this glob; repeatable.
    #[arg(long = "only", value_name = "GLOB")]
    only: Vec<String>,
    /// Fail if anything is left unchecked.
    #[arg(long)]
    require_all: bool,
    /// List unchecked tensors too.
    #[arg(short, long)]
    verbose: bool,
}

/// Builds robovlm for the backend and runs `robovlm parity`.
pub fn run(args: Args) -> Result<bool> {
    if !["ndarray", "flex", "wgpu", "cuda"].contains(&args.backend.as_str()) {
        bail!("unknown backend `{}` (ndarray, flex, wgpu, cuda)", args.backend);
    }
    let Some(bin) = build_robovlm(&args.backend)? else { bail!("building robovlm failed") };
    let mut cmd = tool(&bin);
    cmd.arg("parity").args(["--backend", &args.backend]);
    for g in &args.only {
        cmd.args(["--only", g]);
    }
    if args.require_all {
        cmd.arg("--require-all");
    }
    if args.verbose {
        cmd.arg("--verbose");
    }
    cmd.args(&args.paths);
    let status = cmd.status().with_context(|| format!("running {}", bin.display()))?;
    Ok(status.success())
}
