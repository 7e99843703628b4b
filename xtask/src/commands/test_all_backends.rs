//! `cargo xtask test-all-backends`: unit tests + the parity suite once per backend.
//!
//! Builds are cumulative so dependencies compile once: flex (the default), then + ndarray, then
//! + wgpu, then + cuda. Each crate's test backend follows the features by priority
//! (cuda > wgpu > ndarray > flex), so the same `cargo test` exercises the backend under test.
//! A backend without a usable device (checked with `robovlm backends --check`) is SKIPPED with
//! the reason after the `robovlm` binary is built with it (every crate instantiated for that
//! backend, so it provably compiles) — never reported as passing.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::cargo::{PROFILE, build_robovlm, cargo, tool, workspace_root};

/// Arguments of `cargo xtask test-all-backends`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Backends to run, comma-separated (default: all four).
    #[arg(long, value_delimiter = ',', default_value = "flex,ndarray,wgpu,cuda")]
    backends: Vec<String>,
    /// Case folders for the parity run.
    #[arg(long, default_value = "fixtures")]
    fixtures: PathBuf,
}

enum Outcome {
    Pass,
    Fail(String),
    Skipped(String),
}

/// The cumulative feature set that tests `backend` (see the module doc).
fn features_for(backend: &str) -> &'static str {
    match backend {
        "flex" => "",
        "ndarray" => "robovlm-cli/ndarray",
        "wgpu" => "robovlm-cli/ndarray,robovlm-cli/wgpu",
        _ => "robovlm-cli/ndarray,robovlm-cli/wgpu,robovlm-cli/cuda",
    }
}

fn one(backend: &str, fixtures: &PathBuf) -> Result<Outcome> {
    let features = features_for(backend);
    let bin_features = features.replace("robovlm-cli/", "");
    let Some(bin) = build_robovlm(&bin_features)? else {
        return Ok(Outcome::Fail("building robovlm failed".into()));
    };
    let probe = tool(&bin)
        .args(["backends", "--check", backend])
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    let mut test_args = vec!["test", "--profile", PROFILE, "--workspace", "--exclude", "xtask"];
    if !features.is_empty() {
        test_args.extend(["--features", features]);
    }
    if !probe.status.success() {
        // The robovlm binary above instantiated every crate for this backend, which proves it
        // compiles; its tests cannot run without a device, so the backend is skipped honestly.
        let reason = String::from_utf8_lossy(&probe.stdout).trim().to_owned();
        return Ok(Outcome::Skipped(format!("{reason}; compiled")));
    }
    if !cargo(&test_args)? {
        return Ok(Outcome::Fail("unit tests failed".into()));
    }
    eprintln!("+ {} parity --backend {backend} {}", bin.display(), fixtures.display());
    let status = tool(&bin)
        .args(["parity", "--backend", backend])
        .arg(fixtures)
        .current_dir(workspace_root())
        .status()
        .with_context(|| format!("running {}", bin.display()))?;
    Ok(if status.success() { Outcome::Pass } else { Outcome::Fail("parity failed".into()) })
}

/// Runs every requested backend and prints the summary table.
pub fn run(args: Args) -> Result<bool> {
    let order = ["flex", "ndarray", "wgpu", "cuda"];
    let mut rows = Vec::new();
    for backend in order.iter().filter(|b| args.backends.iter().any(|a| a == *b)) {
        eprintln!("=== backend {backend}");
        let start = Instant::now();
        let outcome = one(backend, &args.fixtures)?;
        rows.push((*backend, outcome, start.elapsed().as_secs_f64()));
    }
    println!("\nbackend  result");
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for (backend, outcome, secs) in &rows {
        let text = match outcome {
            Outcome::Pass => {
                passed += 1;
                "PASS".to_owned()
            }
            Outcome::Fail(why) => {
                failed += 1;
                format!("FAIL ({why})")
            }
            Outcome::Skipped(why) => {
                skipped += 1;
                format!("SKIPPED ({why})")
            }
        };
        println!("{backend:<8} {text}  [{secs:.0} s]");
    }
    println!("backends: {passed} passed, {failed} failed, {skipped} skipped");
    Ok(failed == 0)
}
