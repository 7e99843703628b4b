//! Running cargo and the built `robovlm` binary.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};

/// The cargo profile for tests and parity: optimised dependencies, no debug info (Cargo.toml).
pub const PROFILE: &str = "ci";

/// Workspace root (the parent of `xtask/`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_owned()
}

/// `cargo <args>` in the workspace root; returns whether it succeeded.
pub fn cargo(args: &[&str]) -> Result<bool> {
    cargo_env(args, &[])
}

/// [`cargo`] with extra environment variables for the child.
pub fn cargo_env(args: &[&str], envs: &[(&str, &str)]) -> Result<bool> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let shown: Vec<String> = envs.iter().map(|(k, v)| format!("{k}={v} ")).collect();
    eprintln!("+ {}cargo {}", shown.concat(), args.join(" "));
    let status = tool(&cargo)
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(workspace_root())
        .status()
        .with_context(|| format!("running {cargo}"))?;
    Ok(status.success())
}

/// Builds `robovlm` with `features` (comma-separated) and returns the binary's path.
pub fn build_robovlm(features: &str) -> Result<Option<PathBuf>> {
    build_robovlm_profile(PROFILE, features)
}

/// [`build_robovlm`] with another cargo profile (benchmarks use `release`).
pub fn build_robovlm_profile(profile: &str, features: &str) -> Result<Option<PathBuf>> {
    let mut args = vec!["build", "--profile", profile, "-p", "robovlm-cli"];
    if !features.is_empty() {
        args.extend(["--features", features]);
    }
    if !cargo(&args)? {
        return Ok(None);
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace_root().join("target"));
    let dir = if profile == "dev" { "debug" } else { profile };
    Ok(Some(target.join(dir).join("robovlm")))
}

/// A command for a child process. Software Vulkan (Mesa's lavapipe, used for WGPU without a GPU)
/// warns without `XDG_RUNTIME_DIR`, so it is provided when the environment lacks it.
pub fn tool(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        cmd.env("XDG_RUNTIME_DIR", "/tmp");
    }
    cmd
}
