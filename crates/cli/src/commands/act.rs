//! `robovlm act`: one episode of a RoboVLMs policy, one step per frame.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use robovlm_core::robovlms::{Execution, Executor};
use robovlm_core::{PolicyFiles, RgbImage, RoboPolicy, StepDetail};

use crate::backend::{DeviceArgs, on_backend};
use crate::output::out;

/// Arguments of `robovlm act`.
#[derive(Debug, Clone, clap::Args)]
pub struct ActArgs {
    /// Policy directory: robovlm_config.json + policy.safetensors (or policy.pt / policy.ckpt,
    /// read without executing pickle code).
    #[arg(long)]
    policy: PathBuf,
    /// The language instruction, e.g. "open the drawer".
    #[arg(long)]
    instruction: String,
    /// Camera frames in time order: JPEG, PNG, BMP or WebP of any size, decoded exactly as
    /// Pillow's `Image.open(f).convert("RGB")` (EXIF orientation is not applied, as in Pillow)
    /// and resized with Pillow's BICUBIC like the processor.
    #[arg(required = true, value_name = "FRAME")]
    frames: Vec<PathBuf>,
    /// Checkpoint to use instead of the directory's policy.safetensors.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// PaliGemma directory (config, tokenizer, processor) instead of the config's
    /// vlm.pretrained_model_name_or_path.
    #[arg(long)]
    backbone: Option<PathBuf>,
    #[command(flatten)]
    device: DeviceArgs,
    /// Print what a robot would execute at each step instead of the policy's action: replan
    /// (RoboVLMs' default: action 0 of each new chunk — the same as without the flag),
    /// open-loop:N (the first N actions of a chunk in turn, then the current chunk), or
    /// ensemble:M (ACT temporal ensembling of every chunk covering the step, weights
    /// exp(-M·i) from the oldest; the gripper is the sign of the weighted mean). The policy
    /// still sees every frame.
    #[arg(long, value_name = "MODE", value_parser = crate::commands::serve::parse_execution)]
    execute: Option<Execution>,
    /// Print {"steps":[{"step","action","chunk","arm","gripper_logits"}]} (discrete policies:
    /// "action_ids" instead of "arm" and "gripper_logits"); "chunk" is the whole predicted chunk
    /// post-processed like "action".
    #[arg(long)]
    json: bool,
}

/// The policy's files: the directory's, with `--checkpoint` / `--backbone` taking precedence
/// (`act` and `serve` take the same three arguments).
pub(crate) fn policy_files(
    policy: &std::path::Path,
    checkpoint: Option<&PathBuf>,
    backbone: Option<&PathBuf>,
) -> Result<PolicyFiles> {
    let mut files = PolicyFiles::in_dir(policy).or_else(|e| match checkpoint {
        Some(c) => {
            Ok(PolicyFiles { config: policy.join("robovlm_config.json"), checkpoint: c.clone(), backbone: None })
        }
        None => Err(e),
    })?;
    if let Some(c) = checkpoint {
        files.checkpoint = c.clone();
    }
    files.backbone = backbone.cloned();
    Ok(files)
}

/// One episode: a step per frame from a fresh history; the `--json` form of each step.
fn episode(args: &ActArgs, frames: &[RgbImage]) -> Result<serde_json::Value> {
    let files = policy_files(&args.policy, args.checkpoint.as_ref(), args.backbone.as_ref())?;
    let steps = on_backend!(args.device, |B, device| {
        let mut policy = RoboPolicy::<B>::load(&files, device)?;
        policy.reset();
        let mut executor = args.execute.map(Executor::new);
        let mut steps = Vec::with_capacity(frames.len());
        for (i, frame) in frames.iter().enumerate() {
            let s = policy.step(frame, &args.instruction)?;
            let action = executor.as_mut().map_or_else(|| s.action.clone(), |e| e.next(&s.chunk));
            steps.push(match &s.detail {
                StepDetail::Continuous(c) => serde_json::json!({
                    "step": i,
                    "action": action,
                    "chunk": s.chunk,
                    "arm": c.arm,
                    "gripper_logits": c.gripper_logits,
                }),
                // Discrete heads keep no history: each frame is predicted on its own.
                StepDetail::Discrete(d) => serde_json::json!({
                    "step": i,
                    "action": action,
                    "chunk": s.chunk,
                    "action_ids": d.generated_ids,
                }),
            });
        }
        anyhow::Ok(steps)
    })?;
    Ok(serde_json::json!({ "steps": steps }))
}

/// Runs the episode and prints the actions.
pub fn run(args: ActArgs) -> Result<ExitCode> {
    if args.instruction.trim().is_empty() {
        bail!("--instruction is empty: say what the robot should do");
    }
    // Decode every frame first: a bad frame fails before any model work.
    let frames = args.frames.iter().map(|f| RgbImage::open(f)).collect::<Result<Vec<_>, _>>()?;
    let out = episode(&args, &frames)?;
    if args.json {
        out!("{out}");
    } else {
        for s in out["steps"].as_array().into_iter().flatten() {
            let action: Vec<String> = s["action"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| format!("{:+.5}", v.as_f64().unwrap_or(f64::NAN)))
                .collect();
            out!("step {}: [{}]", s["step"], action.join(", "));
        }
    }
    Ok(ExitCode::SUCCESS)
}
