//! `robovlm bench`: timings of the paths users run, at full PaliGemma-3B width (random weights,
//! depth reducible) or on a real model directory. The measurement itself is [`crate::bench`];
//! `tools/bench_reference.py` is the PyTorch side and `cargo xtask bench` prints the two as
//! ratios.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Result, bail};
use burn::prelude::Backend;
use robovlm_core::{PaliGemma, PaliGemmaConfig};

use crate::backend::{DeviceArgs, on_backend};
use crate::bench::{self, BenchReport, BenchSpec};
use crate::hub::resolve_model;
use crate::output::out;

/// Model shapes `--preset` can build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// SigLIP-So400m/14 at 224 px (27 layers, 256 image tokens) + Gemma-2B (18 layers,
    /// 2048 wide, 8 heads, 1 KV head, head_dim 256, vocabulary 257216).
    #[value(name = "paligemma-3b-224")]
    Paligemma3b224,
    /// PaliGemma 2: the same SigLIP + Gemma-2-2B (26 layers, 2304 wide, 8 heads, 4 KV heads,
    /// head_dim 256, intermediate 9216, sliding window 4096 on even layers, soft-caps 50/30).
    #[value(name = "paligemma2-3b-224")]
    Paligemma2_3b224,
}

/// Arguments of `robovlm bench`.
///
/// Prints medians of: image_encode_ms (pixels → image features), control_step_ms (one
/// RoboPaligemma step, LSTM head 4 layers × 1024, window 8 full, history "post": pixels +
/// instruction ids → action chunk), prefill_ms (256 image tokens + P text tokens → first
/// token), decode_tokens_per_s (greedy, KV cache), load_ms (--model), peak_rss_mb.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Build these shapes with random weights in process (no download). One of --preset / --model.
    #[arg(long, value_enum, conflicts_with_all = ["model", "serve"], required_unless_present_any = ["model", "serve"])]
    preset: Option<Preset>,
    /// Load a real PaliGemma directory or Hub id instead (also times the load). With
    /// --iters 0 only the load is measured: load_ms and the peak RSS of loading.
    #[arg(long, value_name = "DIR|HF_ID", conflicts_with = "serve")]
    model: Option<String>,
    /// Measure serving instead: `robovlm serve`'s server with this policy directory in this
    /// process, one loopback client sending a 224×224 camera frame per step. Reports the median
    /// control step time on the server (infer_ms), the client's round trip and their difference,
    /// the server overhead (msgpack, WebSocket, queue, image transfer) per step.
    #[arg(long, value_name = "POLICY_DIR")]
    serve: Option<PathBuf>,
    /// Vision layers to build (--preset; default: the preset's 27).
    #[arg(long, value_name = "N")]
    vision_layers: Option<usize>,
    /// Gemma layers to build (--preset; default: the preset's 18, or 26 for PaliGemma 2).
    #[arg(long, value_name = "M")]
    text_layers: Option<usize>,
    /// Text tokens after the 256 image tokens (prompt and instruction).
    #[arg(long, value_name = "P", default_value_t = 16)]
    instruction_tokens: usize,
    /// Tokens to decode for decode_tokens_per_s (0 skips decoding).
    #[arg(long, value_name = "D", default_value_t = 32)]
    decode_tokens: usize,
    /// Timed runs per measurement; the median is reported.
    #[arg(long, value_name = "K", default_value_t = 5)]
    iters: usize,
    /// Untimed warm-up runs before timing (at least one is made: parameters initialise lazily).
    #[arg(long, value_name = "W", default_value_t = 1)]
    warmup: usize,
    #[command(flatten)]
    device: DeviceArgs,
    /// Print one JSON object with exactly the measurement keys (null where not measured).
    #[arg(long)]
    json: bool,
}

enum Source {
    Preset(BenchSpec),
    Dir(PathBuf),
}

/// Builds or loads the model on backend `B` and measures it.
fn measure<B: Backend>(source: &Source, a: &BenchArgs, device: &B::Device) -> Result<BenchReport> {
    let settings = |mut spec: BenchSpec| {
        spec.instruction_tokens = a.instruction_tokens;
        spec.decode_tokens = a.decode_tokens;
        spec.iters = a.iters;
        spec.warmup = a.warmup;
        spec
    };
    let (model, spec, load_ms) = match source {
        Source::Preset(spec) => (bench::random_paligemma::<B>(spec, device), settings(spec.clone()), None),
        Source::Dir(dir) => {
            let start = Instant::now();
            let config = PaliGemmaConfig::from_file(&dir.join("config.json"))?;
            let model = PaliGemma::<B>::load(dir, &config, device)?;
            B::sync(device).map_err(|e| anyhow::anyhow!("device error: {e:?}"))?;
            let load_ms = start.elapsed().as_secs_f64() * 1e3;
            let spec = settings(BenchSpec::for_model(config.vision.clone(), config.text()?, config.projection_dim));
            (model, spec, Some(load_ms))
        }
    };
    let mut report = bench::run(&model, &spec, device)?;
    report.load_ms = load_ms;
    report.peak_rss_mb = bench::peak_rss_mb();
    Ok(report)
}

/// Median of `v` (`v` non-empty).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// `--serve`: server overhead per step on loopback (see the flag's help).
fn serve_overhead(dir: &std::path::Path, args: &BenchArgs) -> Result<ExitCode> {
    use robovlm_serve::msgpack::Value;
    use robovlm_serve::{Client, Loaded, ServeOptions, Server, ndarray};

    if args.iters == 0 {
        bail!("--serve needs --iters of at least 1");
    }
    let files = robovlm_core::PolicyFiles::in_dir(dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let (kind, dtype) = (args.device.kind(), args.device.dtype);
    let (infer, round_trip) = on_backend!(args.device, |B, device| {
        // Moved into the inference thread (`Clone`, not `Copy`, on GPU backends).
        #[allow(clippy::clone_on_copy)]
        let device = device.clone();
        runtime.block_on(async move {
            let options = ServeOptions { addr: "127.0.0.1:0".parse()?, ..ServeOptions::default() };
            let server = Server::bind(options, move || {
                let policy = robovlm_core::RoboPolicy::<B>::load(&files, &device).map_err(|e| e.to_string())?;
                Ok(Loaded { policy, name: "bench".into(), backend: kind.to_string(), dtype: dtype.to_string() })
            })
            .await?;
            let url = format!("ws://{}", server.local_addr());
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let serving = tokio::spawn(server.run(async {
                stopped.await.ok();
            }));
            let mut client = Client::connect(&url, None).await?;
            let pixels: Vec<u8> = (0..224 * 224 * 3).map(|i| (i % 251) as u8).collect();
            let obs = Value::map([
                ("observation/image", ndarray::u8_array(&[224, 224, 3], pixels)),
                ("prompt", Value::Str("open the drawer".into())),
            ]);
            let (mut infer, mut round_trip) = (Vec::new(), Vec::new());
            for i in 0..args.warmup.max(1) + args.iters {
                let start = Instant::now();
                let reply = client.infer(&obs).await?;
                let rt = start.elapsed().as_secs_f64() * 1e3;
                let ms = reply.get("server_timing").and_then(|t| t.get("infer_ms")).and_then(Value::as_f64);
                if i >= args.warmup.max(1) {
                    infer.push(ms.ok_or_else(|| anyhow::anyhow!("reply without server_timing.infer_ms"))?);
                    round_trip.push(rt);
                }
            }
            client.close().await;
            stop.send(()).ok();
            serving.await??;
            anyhow::Ok((infer, round_trip))
        })
    })?;
    let overhead: Vec<f64> = round_trip.iter().zip(&infer).map(|(r, i)| r - i).collect();
    let report = serde_json::json!({
        "control_step_ms": median(infer),
        "round_trip_ms": median(round_trip),
        "server_overhead_ms": median(overhead),
    });
    if args.json {
        out!("{report}");
    } else {
        for (k, v) in report.as_object().into_iter().flatten() {
            out!("{k:<20} {:.2}", v.as_f64().unwrap_or(f64::NAN));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs the benchmark and prints the report.
pub fn run(args: BenchArgs) -> Result<ExitCode> {
    if let Some(dir) = &args.serve {
        return serve_overhead(dir, &args);
    }
    if args.instruction_tokens < 2 {
        bail!("--instruction-tokens must be at least 2 (the instruction holds <eos> … \\n)");
    }
    if args.iters > 0 && args.decode_tokens.saturating_add(args.instruction_tokens).saturating_add(257) > 8192 {
        bail!("--instruction-tokens + --decode-tokens exceed Gemma's 8192 positions");
    }
    let source = match (&args.preset, &args.model) {
        (Some(preset), None) => {
            let spec = match preset {
                Preset::Paligemma3b224 => BenchSpec::paligemma_3b_224(args.vision_layers, args.text_layers),
                Preset::Paligemma2_3b224 => BenchSpec::paligemma2_3b_224(args.vision_layers, args.text_layers),
            };
            if spec.vision.num_hidden_layers == 0 || spec.text.num_hidden_layers == 0 {
                bail!("--vision-layers and --text-layers must be at least 1");
            }
            Source::Preset(spec)
        }
        (None, Some(model)) => {
            if args.vision_layers.is_some() || args.text_layers.is_some() {
                bail!("--vision-layers/--text-layers only apply to --preset (a --model has its own depth)");
            }
            Source::Dir(resolve_model(model)?)
        }
        _ => bail!("give exactly one of --preset, --model or --serve"),
    };
    let report = on_backend!(args.device, |B, device| { measure::<B>(&source, &args, device) })?;
    if args.json {
        out!("{}", serde_json::to_string(&report)?);
    } else {
        let show = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
        out!("image_encode_ms      {}", show(report.image_encode_ms));
        out!("control_step_ms      {}", show(report.control_step_ms));
        out!("prefill_ms           {}", show(report.prefill_ms));
        out!("decode_tokens_per_s  {}", show(report.decode_tokens_per_s));
        out!("load_ms              {}", show(report.load_ms));
        out!("peak_rss_mb          {}", show(report.peak_rss_mb));
    }
    Ok(ExitCode::SUCCESS)
}
