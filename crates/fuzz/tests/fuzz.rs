//! Every fuzz target, `ROBOVLM_FUZZ_ITERATIONS` inputs each (default 1,000; `cargo xtask
//! test-all-backends` runs 10,000 once, in its first stage, and 0 — skipped, saying so — in the
//! others, since the loaders are backend-independent host code). Seed: `ROBOVLM_FUZZ_SEED`.
//! Fails on any panic (the inputs are saved under `target/fuzz/`) or a peak RSS above 2 GiB;
//! writes a one-line-per-target report to `ROBOVLM_FUZZ_REPORT` when set.

use std::fmt::Write as _;
use std::path::Path;

use robovlm_fuzz::{TARGETS, fuzz, peak_rss_mb};

/// Memory the whole run may peak at: the loaders must refuse absurd sizes, not allocate them.
const MAX_RSS_MB: f64 = 2048.0;

#[test]
fn no_input_panics_or_exhausts_memory() {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let iterations: usize =
        env("ROBOVLM_FUZZ_ITERATIONS").map_or(1000, |v| v.parse().expect("ROBOVLM_FUZZ_ITERATIONS"));
    if iterations == 0 {
        eprintln!("fuzzing skipped: ROBOVLM_FUZZ_ITERATIONS=0 (test-all-backends fuzzes once, in its first stage)");
        return;
    }
    let seed: u64 = env("ROBOVLM_FUZZ_SEED").map_or(0x5eed, |v| v.parse().expect("ROBOVLM_FUZZ_SEED"));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = root.join("../../target/fuzz");
    std::fs::create_dir_all(&work).unwrap();
    // Panics are expected only from bugs; keep their messages out of the way of the report.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let reports: Vec<_> =
        TARGETS.iter().map(|t| fuzz(t, &root.join("corpus"), &work, iterations, seed).expect("fuzz harness")).collect();
    std::panic::set_hook(hook);
    let rss = peak_rss_mb().unwrap_or(0.0);
    let mut text = String::new();
    for r in &reports {
        writeln!(
            text,
            "fuzz {:<16} {:>6} inputs  {:>6} accepted  {:>2} panics  {:>6.1} s",
            r.target,
            r.inputs,
            r.accepted,
            r.panics.len(),
            r.elapsed.as_secs_f64()
        )
        .unwrap();
    }
    writeln!(text, "fuzz seed {seed}, peak RSS {rss:.0} MiB").unwrap();
    eprint!("{text}");
    if let Some(path) = env("ROBOVLM_FUZZ_REPORT") {
        std::fs::write(path, &text).unwrap();
    }
    let panics: Vec<_> = reports.iter().flat_map(|r| r.panics.iter()).collect();
    assert!(panics.is_empty(), "{} inputs panicked (saved): {panics:?}\n{text}", panics.len());
    assert!(rss <= MAX_RSS_MB, "peak RSS {rss:.0} MiB above {MAX_RSS_MB} MiB\n{text}");
}
