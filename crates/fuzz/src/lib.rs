//! Seeded mutation fuzzing of every loader that reads input from outside, on stable Rust (no
//! libFuzzer, no nightly): small committed seed files (`corpus/`) are mutated — bit flips,
//! boundary values, deleted, duplicated and inserted ranges, truncation, and for text formats
//! extreme numbers and path fragments — and fed to the real entry points. A target passes when
//! no input panics; errors are the expected outcome for most inputs. Aborts (unbounded
//! allocations) end the process and fail the run; peak memory is reported by the caller.
//!
//! Everything is deterministic for a given seed, so a failure reproduces with the same seed and
//! iteration count; the offending input is also written next to the report.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod mutate;
mod targets;

pub use mutate::Rng;
pub use targets::{Context, TARGETS, Target};

/// The outcome of fuzzing one target.
#[derive(Debug, Clone)]
pub struct Report {
    /// Target name.
    pub target: &'static str,
    /// Inputs tried.
    pub inputs: usize,
    /// Inputs the loader accepted (the rest were refused with an error).
    pub accepted: usize,
    /// Inputs that panicked, saved under the work folder.
    pub panics: Vec<PathBuf>,
    /// Wall time.
    pub elapsed: Duration,
}

/// Runs `iterations` mutated inputs through `target`, seeds from `corpus`, scratch files and
/// failing inputs under `work`.
pub fn fuzz(target: &Target, corpus: &Path, work: &Path, iterations: usize, seed: u64) -> std::io::Result<Report> {
    let seeds = targets::seeds(target, corpus)?;
    let dir = work.join(target.name);
    std::fs::create_dir_all(&dir)?;
    let mut rng = Rng::new(seed ^ fnv(target.name));
    let start = Instant::now();
    let mut report =
        Report { target: target.name, inputs: 0, accepted: 0, panics: Vec::new(), elapsed: Duration::ZERO };
    for i in 0..iterations {
        let (name, original) = &seeds[rng.below(seeds.len())];
        let input = if i < seeds.len() { original.clone() } else { mutate::mutate(original, target.text, &mut rng) };
        let ctx = Context { dir: &dir, corpus };
        let outcome = catch_unwind(AssertUnwindSafe(|| (target.run)(&input, &ctx)));
        report.inputs += 1;
        match outcome {
            Ok(true) => report.accepted += 1,
            Ok(false) => {}
            Err(_) => {
                let saved = dir.join(format!("panic-{i}-{name}"));
                std::fs::write(&saved, &input)?;
                report.panics.push(saved);
            }
        }
    }
    report.elapsed = start.elapsed();
    Ok(report)
}

/// Peak resident set size of this process in MiB (Linux `VmHWM`).
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}
