#![doc = include_str!("../README.md")]
//!
//! Output contract (read by `cargo xtask parity` users and CI logs):
//! `<case>: PASS|FAIL  checked K of M tensors  worst <name> <err>` per case, indented detail
//! lines (per tensor family; failures with their reason), then `checked K of M tensors` over
//! everything. Tensors no provider can compute yet are *unchecked*, never passed.

#![warn(missing_docs)]

mod case;
mod compare;
mod error;
mod glob;
mod greedy;
mod providers;
mod tensor;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::prelude::Backend;

use case::Case;
pub use compare::Precision;
use compare::{Comparison, compare, tolerance_for};
pub use error::{Error, Result};

/// Reference tensors that are informational only, each with the reason. They are neither
/// computed nor counted.
const INFORMATIONAL: &[(&str, &str)] = &[
    (
        "*_nocache_quirk",
        "what generate(use_cache=False) produces in transformers 4.47.1, documented as NOT the expected generation (fixtures README §3.7)",
    ),
    (
        "batch.action_chunck",
        "training labels drawn by the reference generator's seeded RNG: an input of the loss checks, not an output",
    ),
    ("batch.chunck_mask", "label validity mask drawn with the labels: an input of the loss checks"),
    ("batch.sample*.actions", "discrete training labels drawn by the generator's RNG: an input"),
    ("batch.sample*.action_mask", "validity of those labels: an input"),
    ("action_tokenizer.probe_actions", "the probe values fed to the ActionTokenizer checks: an input"),
];

/// Options of one parity run.
#[derive(Debug, Clone)]
pub struct ParityOptions {
    /// Folders to search for cases (a folder holding `reference.json` is a case).
    pub paths: Vec<PathBuf>,
    /// Globs on reference tensor names; empty = all.
    pub only: Vec<String>,
    /// Fail when any wanted tensor stays unchecked.
    pub require_all: bool,
    /// Also list unchecked tensor names.
    pub verbose: bool,
}

/// Totals of a run.
#[derive(Debug, Default, Clone, Copy)]
pub struct Totals {
    /// Tensors compared.
    pub checked: usize,
    /// Tensors wanted.
    pub total: usize,
    /// Tensors that failed (comparison or computation).
    pub failed: usize,
    /// Cases that could not be read.
    pub unreadable: usize,
    /// Cases that passed.
    pub cases_passed: usize,
    /// Cases that failed.
    pub cases_failed: usize,
}

impl Totals {
    /// Whether the run is a success under the options.
    pub fn success(&self, opts: &ParityOptions) -> bool {
        self.failed == 0 && self.unreadable == 0 && (!opts.require_all || self.checked == self.total)
    }
}

/// The case folders under `paths` (a folder holding `reference.json` is a case; others are
/// searched recursively), sorted.
pub fn find_cases(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    for p in paths {
        if !p.exists() {
            return Err(Error::Case { path: p.clone(), message: "no such file or directory".into() });
        }
        find_in(p, &mut dirs)?;
    }
    if dirs.is_empty() {
        return Err(Error::Case {
            path: paths.first().cloned().unwrap_or_default(),
            message: format!("no parity case (a folder with reference.json) under {paths:?}"),
        });
    }
    dirs.sort();
    dirs.dedup();
    Ok(dirs)
}

fn find_in(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    if dir.join("reference.json").is_file() {
        out.push(dir.to_owned());
        return Ok(());
    }
    if dir.is_dir() {
        let io = |e: std::io::Error| Error::Case { path: dir.to_owned(), message: format!("cannot list: {e}") };
        let mut entries: Vec<_> =
            std::fs::read_dir(dir).map_err(io)?.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        entries.sort();
        for e in entries.into_iter().filter(|e| e.is_dir()) {
            find_in(&e, out)?;
        }
    }
    Ok(())
}

/// Runs the cases in `dirs` on backend `B` (its device already set to `precision`), writing
/// the report to `out`; returns the totals (or the error writing the report).
pub fn run<B: Backend>(
    dirs: &[PathBuf],
    opts: &ParityOptions,
    precision: Precision,
    device: &B::Device,
    out: &mut dyn Write,
) -> std::io::Result<Totals> {
    let mut totals = Totals::default();
    let mut overall: Option<(String, Comparison)> = None;
    for dir in dirs {
        match Case::load(dir) {
            Ok(case) => {
                if let Some((name, c)) = run_case::<B>(&case, opts, precision, device, &mut totals, out)?
                    && overall.as_ref().is_none_or(|(_, w)| c.budget_used > w.budget_used)
                {
                    overall = Some((format!("{} {name}", case.name), c));
                }
            }
            Err(e) => {
                writeln!(out, "{}: FAIL  unreadable case: {e}", dir.display())?;
                totals.unreadable += 1;
                totals.cases_failed += 1;
            }
        }
    }
    // One line for scripts (`cargo xtask test-all-backends` reports it per backend and dtype).
    match &overall {
        Some((name, c)) => writeln!(out, "worst overall: {name} {}", describe(c))?,
        None => writeln!(out, "worst overall: -")?,
    }
    writeln!(out, "checked {} of {} tensors", totals.checked, totals.total)?;
    writeln!(
        out,
        "{} cases passed, {} failed ({} tensors failed, {} unchecked)",
        totals.cases_passed,
        totals.cases_failed,
        totals.failed,
        totals.total - totals.checked
    )?;
    Ok(totals)
}

/// The family of a tensor name, for the report: its last dotted part with digit runs as `*`.
fn family(name: &str) -> String {
    let leaf = name.rsplit('.').next().unwrap_or(name);
    let mut out = String::new();
    for c in leaf.chars() {
        if c.is_ascii_digit() {
            if !out.ends_with('*') {
                out.push('*');
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[derive(Default)]
struct FamilyStats {
    checked: usize,
    total: usize,
    worst: Option<(String, Comparison)>,
}

/// Runs one case, prints its report and returns its worst comparison.
fn run_case<B: Backend>(
    case: &Case,
    opts: &ParityOptions,
    precision: Precision,
    device: &B::Device,
    totals: &mut Totals,
    out: &mut dyn Write,
) -> std::io::Result<Option<(String, Comparison)>> {
    let mut informational = 0;
    let wanted: BTreeSet<String> = case
        .references
        .iter()
        .map(|(n, _)| n.clone())
        .filter(|n| opts.only.is_empty() || opts.only.iter().any(|g| glob::matches(g, n)))
        .filter(|n| {
            let info = INFORMATIONAL.iter().any(|(g, _)| glob::matches(g, n));
            informational += usize::from(info);
            !info
        })
        .collect();
    let produced = providers::produce::<B>(&providers::Request { case, wanted: &wanted }, device);

    // bf16 greedy decoding: the comparable leading steps of each generated row (`greedy`).
    let mut windows: BTreeMap<String, (usize, Vec<greedy::Row>)> = BTreeMap::new();
    if precision == Precision::Bf16 {
        for (name, reference) in case.references.iter() {
            let Some(prefix) = name.strip_suffix(".gen_new_ids") else { continue };
            let logits = case.references.iter().find(|(n, _)| *n == format!("{prefix}.gen_step_logits"));
            if let (Some(Ok(ours)), Some((_, logits))) = (produced.get(name), logits)
                && let Some(rows) = greedy::rows(ours, reference, logits)
            {
                windows.insert(prefix.to_string(), (*reference.shape.last().unwrap_or(&0), rows));
            }
        }
    }
    let mut notes = Vec::new();
    let mut families: BTreeMap<String, FamilyStats> = BTreeMap::new();
    let (mut checked, mut failures, mut unchecked) = (0, Vec::new(), Vec::new());
    let mut worst: Option<(String, Comparison)> = None;
    for (name, reference) in case.references.iter().filter(|(n, _)| wanted.contains(n)) {
        let fam = families.entry(family(name)).or_default();
        fam.total += 1;
        let Some(result) = produced.get(name) else {
            unchecked.push(name.clone());
            continue;
        };
        checked += 1;
        fam.checked += 1;
        let tolerance = tolerance_for(name, reference.is_int(), precision);
        let window = name
            .rsplit_once('.')
            .filter(|(_, leaf)| matches!(*leaf, "gen_new_ids" | "gen_step_logits"))
            .and_then(|(prefix, leaf)| Some((windows.get(prefix)?, leaf == "gen_new_ids")));
        let cmp = match result {
            Ok(ours) => match window {
                Some(((steps, rows), ids)) if rows.iter().any(|r| r.excused.is_some()) => {
                    let keep: Vec<usize> = rows.iter().map(|r| if ids { r.ids } else { r.logits }).collect();
                    if ids {
                        for (b, r) in rows.iter().enumerate() {
                            if let Some((t, margin, spacing)) = r.excused {
                                notes.push(format!(
                                    "{name}: row {b} differs from step {t} on, where the reference's top-2 margin is {:.2} bf16 spacings (≤ {}): steps after {t} not compared",
                                    margin / spacing,
                                    greedy::MARGIN_SPACINGS
                                ));
                            }
                        }
                    }
                    compare(
                        &greedy::leading(ours, *steps, &keep),
                        &greedy::leading(reference, *steps, &keep),
                        tolerance,
                    )
                }
                _ => compare(ours, reference, tolerance),
            },
            Err(reason) => Comparison {
                passed: false,
                max_abs: f64::INFINITY,
                budget_used: f64::INFINITY,
                detail: format!("could not compute: {reason}"),
                cosine: None,
            },
        };
        if !cmp.passed {
            failures.push((name.clone(), cmp.detail.clone()));
        }
        let worse = |w: &Option<(String, Comparison)>| w.as_ref().is_none_or(|(_, c)| cmp.budget_used > c.budget_used);
        if worse(&fam.worst) {
            fam.worst = Some((name.clone(), cmp.clone()));
        }
        if worse(&worst) {
            worst = Some((name.clone(), cmp));
        }
    }
    let total = wanted.len();
    let passed = failures.is_empty();
    let worst_text = match &worst {
        Some((n, c)) => format!("worst {n} {}", describe(c)),
        None => "worst -".into(),
    };
    writeln!(
        out,
        "{}: {}  checked {checked} of {total} tensors  {worst_text}",
        case.name,
        if passed { "PASS" } else { "FAIL" }
    )?;
    if let Some(base) = &case.base {
        writeln!(out, "    (layout variant: references and inputs of {})", base.name)?;
    }
    for (fam, s) in families.iter().filter(|(_, s)| s.checked > 0) {
        let w = s.worst.as_ref().map(|(n, c)| format!("  worst {n} {}", describe(c))).unwrap_or_default();
        writeln!(out, "    {fam:<26} {:>3}/{:<3}{w}", s.checked, s.total)?;
    }
    let pending: Vec<String> = families
        .iter()
        .filter(|(_, s)| s.checked < s.total)
        .map(|(fam, s)| format!("{fam} ({})", s.total - s.checked))
        .collect();
    if !pending.is_empty() {
        writeln!(out, "    not computed yet: {}", pending.join(", "))?;
    }
    if informational > 0 {
        writeln!(
            out,
            "    ({informational} informational tensor(s) not compared: see the skip list in `robovlm parity --help`)"
        )?;
    }
    for note in &notes {
        writeln!(out, "    NEAR-TIE {note}")?;
    }
    for (name, detail) in &failures {
        writeln!(out, "    FAIL {name}: {detail}")?;
    }
    if opts.verbose && !unchecked.is_empty() {
        writeln!(out, "    unchecked: {}", unchecked.join(", "))?;
    }
    totals.checked += checked;
    totals.total += total;
    totals.failed += failures.len();
    if passed {
        totals.cases_passed += 1;
    } else {
        totals.cases_failed += 1;
    }
    Ok(worst)
}

fn describe(c: &Comparison) -> String {
    if c.max_abs.is_infinite() {
        "error".into()
    } else if c.budget_used.is_infinite() {
        format!("{:.2e} (exact match required)", c.max_abs)
    } else if let Some(cos) = c.cosine {
        format!("{:.2e}, cosine {cos:.6} ({:.0}% of tol)", c.max_abs, c.budget_used * 100.0)
    } else {
        format!("{:.2e} ({:.0}% of tol)", c.max_abs, c.budget_used * 100.0)
    }
}

/// The skip list, for `--help`.
pub fn skip_list_help() -> String {
    INFORMATIONAL.iter().map(|(g, why)| format!("  {g}: {why}")).collect::<Vec<_>>().join("\n")
}
