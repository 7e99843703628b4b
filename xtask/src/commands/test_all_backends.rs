//! `cargo xtask test-all-backends`: unit tests + the parity suite once per backend and dtype.
//!
//! Builds are cumulative so dependencies compile once: flex (the default), then adding ndarray,
//! then wgpu, then cuda. Each crate's test backend follows the features by priority
//! (cuda > wgpu > ndarray > flex), so the same `cargo test` exercises the backend under test.
//! A backend without a usable device (checked with `robovlm backends --check`) is SKIPPED with
//! the reason after the `robovlm` binary is built with it (every crate instantiated for that
//! backend, so it provably compiles) — never reported as passing.
//!
//! The first stage's unit tests also run the fuzz targets (`crates/fuzz`) at full size, once:
//! the loaders they exercise are host code, the same on every backend.
//!
//! The parity suite then runs once per precision the backend supports (`robovlm parity
//! --dtype`); a precision it does not support must be *refused* with a clear error, and that
//! refusal is checked too. One table row per backend and dtype: result, worst error (the
//! parity run's `worst overall` line) and the parity run's wall time.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};

use crate::cargo::{PROFILE, build_robovlm, cargo_env, tool, workspace_root};

/// Arguments of `cargo xtask test-all-backends`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Backends to run, comma-separated (default: all four).
    #[arg(long, value_delimiter = ',', default_value = "flex,ndarray,wgpu,cuda")]
    backends: Vec<String>,
    /// Precisions to run the parity suite in, comma-separated (f32, f16, bf16). A precision the
    /// backend does not support is checked to be refused instead.
    #[arg(long, value_delimiter = ',', default_value = "f32,f16")]
    dtypes: Vec<String>,
    /// Case folders for the parity run.
    #[arg(long, default_value = "fixtures")]
    fixtures: PathBuf,
}

enum Outcome {
    Pass,
    Fail(String),
    Skipped(String),
    /// The precision is not supported on the backend and was refused with a clear error.
    Refused(String),
}

/// One row of the report.
struct Row {
    backend: &'static str,
    dtype: String,
    outcome: Outcome,
    worst: String,
    secs: f64,
}

/// The cumulative backends that test `backend` (see the module doc): flex is always built in.
fn backends_for(backend: &str) -> &'static [&'static str] {
    match backend {
        "flex" => &[],
        "ndarray" => &["ndarray"],
        "wgpu" => &["ndarray", "wgpu"],
        _ => &["ndarray", "wgpu", "cuda"],
    }
}

/// `--features` of the `robovlm` binary (`cli == true`) or of the workspace tests, whose
/// backend follows `robovlm-test-utils`'s features.
fn features_for(backend: &str, cli: bool) -> String {
    let owners: &[&str] = if cli { &[""] } else { &["robovlm-cli/", "robovlm-test-utils/"] };
    let list: Vec<String> =
        owners.iter().flat_map(|o| backends_for(backend).iter().map(move |b| format!("{o}{b}"))).collect();
    list.join(",")
}

/// Whether `robovlm` computes in `dtype` on `backend` (mirrors `crates/cli/src/backend.rs`;
/// a mismatch shows up as a failed row, never as a silent pass).
fn supports(backend: &str, dtype: &str) -> bool {
    match (backend, dtype) {
        (_, "f32") => true,
        ("ndarray", _) => false,
        ("wgpu", "bf16") => false,
        _ => true,
    }
}

/// Runs `robovlm parity` in one precision; returns the outcome and the `worst overall` text.
fn parity(bin: &Path, backend: &str, dtype: &str, fixtures: &Path) -> Result<(Outcome, String)> {
    eprintln!("+ {} parity --backend {backend} --dtype {dtype} {}", bin.display(), fixtures.display());
    let out = tool(bin)
        .args(["parity", "--backend", backend, "--dtype", dtype])
        .arg(fixtures)
        .current_dir(workspace_root())
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    print!("{stdout}");
    eprint!("{stderr}");
    let worst = stdout.lines().find_map(|l| l.strip_prefix("worst overall: ")).unwrap_or("-").trim().to_owned();
    if !supports(backend, dtype) {
        let refused = !out.status.success() && stderr.contains("not supported");
        return Ok(if refused {
            let reason = stderr.lines().find(|l| l.contains("not supported")).unwrap_or_default();
            (Outcome::Refused(reason.trim_start_matches("error: ").to_owned()), "-".into())
        } else {
            (Outcome::Fail("expected a clear 'not supported' error".into()), worst)
        });
    }
    Ok(if out.status.success() { (Outcome::Pass, worst) } else { (Outcome::Fail("parity failed".into()), worst) })
}

/// Inputs per fuzz target in the one stage that fuzzes (the loaders are host code: fuzzing them
/// once per backend would only repeat the same work).
const FUZZ_ITERATIONS: &str = "10000";

/// Where the fuzz test writes its one-line-per-target report.
fn fuzz_report() -> PathBuf {
    workspace_root().join("target/fuzz/report.txt")
}

/// Builds, unit-tests and parity-checks one backend; one row per requested dtype. `fuzz`: this
/// stage's unit tests also run the fuzz targets at full size.
fn one(backend: &'static str, dtypes: &[String], fixtures: &Path, fuzz: bool, rows: &mut Vec<Row>) -> Result<()> {
    let start = Instant::now();
    let row =
        |dtype: &str, outcome, worst: String, secs| Row { backend, dtype: dtype.to_owned(), outcome, worst, secs };
    let features = features_for(backend, false);
    let Some(bin) = build_robovlm(&features_for(backend, true))? else {
        rows.push(row("-", Outcome::Fail("building robovlm failed".into()), "-".into(), start.elapsed().as_secs_f64()));
        return Ok(());
    };
    let probe = tool(&bin)
        .args(["backends", "--check", backend])
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    if !probe.status.success() {
        // The robovlm binary above instantiated every crate for this backend, which proves it
        // compiles; its tests cannot run without a device, so the backend is skipped honestly.
        let reason = String::from_utf8_lossy(&probe.stdout).trim().to_owned();
        let secs = start.elapsed().as_secs_f64();
        rows.push(row("-", Outcome::Skipped(format!("{reason}; compiled")), "-".into(), secs));
        return Ok(());
    }
    let mut test_args = vec!["test", "--profile", PROFILE, "--workspace", "--exclude", "xtask"];
    if !features.is_empty() {
        test_args.extend(["--features", &features]);
    }
    let report = fuzz_report();
    let report = report.to_string_lossy();
    let envs =
        [("ROBOVLM_FUZZ_ITERATIONS", if fuzz { FUZZ_ITERATIONS } else { "0" }), ("ROBOVLM_FUZZ_REPORT", &*report)];
    if !cargo_env(&test_args, if fuzz { &envs } else { &envs[..1] })? {
        rows.push(row("-", Outcome::Fail("unit tests failed".into()), "-".into(), start.elapsed().as_secs_f64()));
        return Ok(());
    }
    eprintln!("=== backend {backend}: build + unit tests {:.0} s", start.elapsed().as_secs_f64());
    for dtype in dtypes {
        let t = Instant::now();
        let (outcome, worst) = parity(&bin, backend, dtype, fixtures)?;
        rows.push(row(dtype, outcome, worst, t.elapsed().as_secs_f64()));
    }
    Ok(())
}

/// Runs every requested backend and prints the summary table.
pub fn run(args: Args) -> Result<bool> {
    let order = ["flex", "ndarray", "wgpu", "cuda"];
    for d in &args.dtypes {
        anyhow::ensure!(["f32", "f16", "bf16"].contains(&d.as_str()), "unknown dtype `{d}` (f32, f16, bf16)");
    }
    let mut rows = Vec::new();
    let mut stage_secs = Vec::new();
    std::fs::remove_file(fuzz_report()).ok();
    for (i, backend) in order.iter().filter(|b| args.backends.iter().any(|a| a == *b)).enumerate() {
        eprintln!("=== backend {backend}");
        let start = Instant::now();
        one(backend, &args.dtypes, &args.fixtures, i == 0, &mut rows)?;
        stage_secs.push((*backend, start.elapsed().as_secs_f64()));
    }
    println!("\nbackend  dtype  result  [parity wall time]  worst (share of tolerance)");
    let (mut passed, mut failed, mut skipped, mut refused) = (0, 0, 0, 0);
    for r in &rows {
        let text = match &r.outcome {
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
            Outcome::Refused(why) => {
                refused += 1;
                format!("REFUSED as expected ({why})")
            }
        };
        let worst = if r.worst == "-" { String::new() } else { format!("  worst {}", r.worst) };
        println!("{:<8} {:<6} {text}  [{:.1} s]{worst}", r.backend, r.dtype, r.secs);
    }
    println!();
    for (backend, _) in &stage_secs {
        let mine: Vec<&Row> = rows.iter().filter(|r| r.backend == *backend).collect();
        let ran: Vec<&str> =
            mine.iter().filter(|r| matches!(r.outcome, Outcome::Pass)).map(|r| r.dtype.as_str()).collect();
        let skipped = mine.iter().find_map(|r| match &r.outcome {
            Outcome::Skipped(why) => Some(why),
            _ => None,
        });
        let verdict = if let Some(why) = skipped {
            format!("SKIPPED ({why})")
        } else if mine.iter().any(|r| matches!(r.outcome, Outcome::Fail(_))) {
            "FAIL".to_owned()
        } else {
            format!("PASS ({})", ran.join(" and "))
        };
        println!("{backend} {verdict}");
    }
    match std::fs::read_to_string(fuzz_report()) {
        Ok(report) => print!("\n{report}"),
        Err(_) => println!("\nfuzz: no report (the first stage's unit tests did not reach the fuzz test)"),
    }
    let stages: Vec<String> = stage_secs.iter().map(|(b, s)| format!("{b} {s:.0} s")).collect();
    println!("stage times (build + unit tests + parity): {}", stages.join(", "));
    println!("rows: {passed} passed, {failed} failed, {skipped} skipped, {refused} refused as expected");
    Ok(failed == 0)
}
