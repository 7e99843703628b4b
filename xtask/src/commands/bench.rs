//! `cargo xtask bench`: `robovlm bench --json` and `tools/bench_reference.py --json` (PyTorch +
//! transformers) on the same shapes, each side in each precision (`--dtypes`,
//! `--reference-dtypes`), one run after the other, and the table.
//!
//! The ratio compares each side's *best* precision per metric (what a user would pick): ours ÷
//! PyTorch for times and memory (≤ 1.0: we are at least as good) and PyTorch ÷ ours for decode
//! tokens/s (≤ 1.0 likewise), so every column reads the same way. The CPU model and the
//! features that decide the kernels (avx2, avx512f, avx512_bf16, amx_bf16) head the table.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::cargo::{build_robovlm_profile, tool, workspace_root};

/// Arguments of `cargo xtask bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Random-weight shapes of both sides: `paligemma-3b-224` or `paligemma2-3b-224`.
    #[arg(long, default_value = "paligemma-3b-224", value_parser = ["paligemma-3b-224", "paligemma2-3b-224"])]
    preset: String,
    /// Vision layers (full width; default 4 — the full 27 takes long on small machines).
    #[arg(long, default_value_t = 4)]
    vision_layers: usize,
    /// Gemma layers (full width; default 2 of 18).
    #[arg(long, default_value_t = 2)]
    text_layers: usize,
    /// Text tokens after the 256 image tokens.
    #[arg(long, default_value_t = 16)]
    instruction_tokens: usize,
    /// Greedy tokens decoded for tokens/s.
    #[arg(long, default_value_t = 16)]
    decode_tokens: usize,
    /// Timed runs per measurement (medians).
    #[arg(long, default_value_t = 5)]
    iters: usize,
    /// Untimed warm-up runs.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Backend of the robovlm side (the binary is built with it, release profile).
    #[arg(long, default_value = "flex")]
    backend: String,
    /// Precisions of the robovlm side, comma-separated (`f32`, `f16`, `bf16`).
    #[arg(long, default_value = "f32,bf16", value_delimiter = ',')]
    dtypes: Vec<String>,
    /// Precisions of the PyTorch side, comma-separated (`f32`, `bf16`; bf16 is PyTorch's fastest
    /// CPU mode and the precision RoboVLMs runs).
    #[arg(long, default_value = "f32,bf16", value_delimiter = ',')]
    reference_dtypes: Vec<String>,
    /// Python with torch and transformers installed.
    #[arg(long, env = "ROBOVLM_BENCH_PYTHON", default_value = "python3")]
    python: PathBuf,
    /// Only run robovlm (no PyTorch side, no ratios).
    #[arg(long)]
    no_reference: bool,
    /// A model directory (e.g. from `cargo xtask synth-model`) instead of the random preset: both
    /// sides load it (load_ms) and the report adds peak RSS ÷ checkpoint size. With `--iters 0`
    /// only loading is measured.
    #[arg(long, conflicts_with_all = ["vision_layers", "text_layers"])]
    model: Option<PathBuf>,
}

/// Total size of the `*.safetensors` files in `dir`.
fn checkpoint_bytes(dir: &std::path::Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "safetensors") {
            total += std::fs::metadata(&path)?.len();
        }
    }
    Ok(total)
}

const KEYS: [&str; 6] =
    ["image_encode_ms", "control_step_ms", "prefill_ms", "decode_tokens_per_s", "load_ms", "peak_rss_mb"];

fn run_json(mut cmd: std::process::Command, what: &str) -> Result<Value> {
    eprintln!("+ {cmd:?}");
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!("{what} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().rev().find(|l| l.trim_start().starts_with('{')).unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("{what} printed no JSON report: {text}"))
}

/// Builds robovlm (release), runs both sides and prints the table.
pub fn run(args: Args) -> Result<bool> {
    let Some(bin) = build_robovlm_profile("release", &args.backend)? else { bail!("building robovlm failed") };
    let layers = [("--vision-layers", args.vision_layers), ("--text-layers", args.text_layers)];
    let source: Vec<String> = match &args.model {
        Some(dir) => vec!["--model".into(), dir.display().to_string()],
        None => {
            let mut v = vec!["--preset".to_owned(), args.preset.clone()];
            for (flag, n) in layers {
                v.extend([flag.to_owned(), n.to_string()]);
            }
            v
        }
    };
    let shape = [
        ("--instruction-tokens", args.instruction_tokens),
        ("--decode-tokens", args.decode_tokens),
        ("--iters", args.iters),
        ("--warmup", args.warmup),
    ];
    let mut ours = Vec::new();
    for dtype in &args.dtypes {
        let mut cmd = tool(&bin);
        cmd.args(["bench", "--json", "--backend", &args.backend, "--dtype", dtype]).args(&source);
        for (flag, v) in shape {
            cmd.args([flag, &v.to_string()]);
        }
        ours.push((format!("robovlm {dtype}"), run_json(cmd, &format!("robovlm bench --dtype {dtype}"))?));
    }
    let mut reference = Vec::new();
    if !args.no_reference {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        for dtype in &args.reference_dtypes {
            let mut py = tool(&args.python);
            py.arg(workspace_root().join("tools/bench_reference.py"));
            py.args(["--json", "--threads", &threads.to_string(), "--dtype", dtype]).args(&source);
            for (flag, v) in shape {
                py.args([flag, &v.to_string()]);
            }
            reference.push((
                format!("pytorch {dtype}"),
                run_json(py, &format!("tools/bench_reference.py --dtype {dtype}"))?,
            ));
        }
    }
    println!("CPU: {}", cpu_summary());
    match &args.model {
        Some(dir) => println!(
            "{}, P={} D={}, medians of {} (backend {})",
            dir.display(),
            args.instruction_tokens,
            args.decode_tokens,
            args.iters,
            args.backend
        ),
        None => println!(
            "PaliGemma-3B width, {} vision + {} text layers, P={} D={}, medians of {} (backend {})",
            args.vision_layers, args.text_layers, args.instruction_tokens, args.decode_tokens, args.iters, args.backend
        ),
    }
    let columns: Vec<&(String, Value)> = ours.iter().chain(&reference).collect();
    print!("{:<22}", "metric");
    for (name, _) in &columns {
        print!("{name:>14}");
    }
    println!("{:>14}", "best ÷ best");
    let (mut all_ok, mut any_timed) = (true, false);
    for key in KEYS {
        let higher_is_better = key == "decode_tokens_per_s";
        let value = |r: &Value| r.get(key).and_then(Value::as_f64).filter(|v| *v > 0.0);
        let best = |side: &[(String, Value)]| {
            side.iter().filter_map(|(_, r)| value(r)).reduce(|a, b| if (a > b) == higher_is_better { a } else { b })
        };
        let ratio = match (best(&ours), best(&reference)) {
            (Some(a), Some(b)) => Some(if higher_is_better { b / a } else { a / b }),
            _ => None,
        };
        let timed = key != "peak_rss_mb" && key != "load_ms";
        if timed && let Some(r) = ratio {
            any_timed = true;
            all_ok &= r <= 1.0;
        }
        print!("{key:<22}");
        for (_, r) in &columns {
            print!("{:>14}", value(r).map_or_else(|| "-".to_owned(), |v| format!("{v:.1}")));
        }
        println!("{:>14}", ratio.map_or_else(|| "-".into(), |r| format!("{r:.2}")));
    }
    if let Some(dir) = &args.model {
        let mib = checkpoint_bytes(dir)? as f64 / (1u64 << 20) as f64;
        let per = |r: &Value| r.get("peak_rss_mb").and_then(Value::as_f64).map(|m| m / mib);
        let shown: Vec<String> = columns
            .iter()
            .map(|(name, r)| format!("{name} {}", per(r).map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"))))
            .collect();
        println!("peak RSS ÷ checkpoint size ({mib:.0} MiB): {}", shown.join(", "));
    }
    println!(
        "best ÷ best: each side's best precision per metric; ours ÷ PyTorch for times and memory, PyTorch ÷ ours \
         for tokens/s (≤ 1.00: robovlm at least as good)"
    );
    if any_timed {
        println!("{}", if all_ok { "every timed ratio ≤ 1.00" } else { "some timed ratios > 1.00" });
    }
    Ok(true)
}

/// `model name (flags)` from `/proc/cpuinfo`, with the flags the kernels care about.
fn cpu_summary() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field =
        |name: &str| info.lines().find_map(|l| l.strip_prefix(name)?.split_once(':').map(|(_, v)| v.trim().to_owned()));
    let flags = field("flags").unwrap_or_default();
    let has = |f: &str| flags.split_whitespace().any(|x| x == f);
    let wanted = ["avx2", "avx512f", "avx512_bf16", "amx_bf16"];
    let (present, absent): (Vec<&str>, Vec<&str>) = wanted.iter().partition(|f| has(f));
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    format!(
        "{} ({threads} threads; has: {}; lacks: {})",
        field("model name").unwrap_or_else(|| "unknown".into()),
        if present.is_empty() { "-".into() } else { present.join(" ") },
        if absent.is_empty() { "-".into() } else { absent.join(" ") }
    )
}
