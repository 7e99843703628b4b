//! `robovlm act`: one episode of a RoboVLMs policy, one step per frame.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use burn::prelude::Backend;
use robovlm_core::robovlms_config::{HeadSpec, RoboVlmsConfig};
use robovlm_core::{DiscretePolicy, Policy, PolicyFiles, RgbImage};

use crate::backend::{BackendKind, OnBackend, run_on};
use crate::commands::Dtype;

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
    /// Backend (default: the fastest CPU backend compiled in).
    #[arg(long, value_enum)]
    backend: Option<BackendKind>,
    /// Compute precision of the model's matrix work: f32, f16 (flex, wgpu, cuda) or bf16 (flex,
    /// cuda). Norms, attention scores, Gemma's residual stream and the action head stay f32.
    #[arg(long, value_enum, default_value = "f32")]
    dtype: Dtype,
    /// Print {"steps":[{"step","action","arm","gripper_logits"}]} (discrete policies:
    /// "action_ids" instead of "arm" and "gripper_logits").
    #[arg(long)]
    json: bool,
}

struct Job(ActArgs, Vec<RgbImage>);

impl OnBackend for Job {
    type Output = Result<serde_json::Value>;

    fn run<B: Backend>(self, device: &B::Device) -> Self::Output {
        let (args, frames) = (self.0, self.1);
        let mut files = PolicyFiles::in_dir(&args.policy).or_else(|e| match &args.checkpoint {
            Some(c) => Ok(PolicyFiles {
                config: args.policy.join("robovlm_config.json"),
                checkpoint: c.clone(),
                backbone: None,
            }),
            None => Err(e),
        })?;
        if let Some(c) = &args.checkpoint {
            files.checkpoint = c.clone();
        }
        files.backbone = args.backbone.clone();
        if matches!(RoboVlmsConfig::from_file(&files.config)?.head, HeadSpec::Discrete { .. }) {
            // Discrete heads keep no history: each frame is predicted on its own.
            let policy = DiscretePolicy::<B>::load(&files, device)?;
            let mut steps = Vec::new();
            for (i, frame) in frames.iter().enumerate() {
                let s = policy.infer(frame, &args.instruction)?;
                steps.push(serde_json::json!({ "step": i, "action": s.action, "action_ids": s.generated_ids }));
            }
            return Ok(serde_json::json!({ "steps": steps }));
        }
        let mut policy = Policy::<B>::load(&files, device)?;
        policy.reset();
        let mut steps = Vec::new();
        for (i, frame) in frames.iter().enumerate() {
            let s = policy.step(frame, &args.instruction)?;
            steps.push(serde_json::json!({
                "step": i,
                "action": s.action.emitted,
                "arm": s.arm,
                "gripper_logits": s.gripper_logits,
            }));
        }
        Ok(serde_json::json!({ "steps": steps }))
    }
}

/// Runs the episode and prints the actions.
pub fn run(args: ActArgs) -> Result<ExitCode> {
    if args.instruction.trim().is_empty() {
        bail!("--instruction is empty: say what the robot should do");
    }
    // Decode every frame first: a bad frame fails before any model work.
    let frames = args.frames.iter().map(|f| RgbImage::open(f)).collect::<Result<Vec<_>, _>>()?;
    let backend = args.backend.unwrap_or_else(BackendKind::default_compiled);
    let dtype = args.dtype;
    let json = args.json;
    let out = run_on(backend, dtype, Job(args, frames))??;
    if json {
        println!("{out}");
    } else {
        for s in out["steps"].as_array().into_iter().flatten() {
            let action: Vec<String> = s["action"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| format!("{:+.5}", v.as_f64().unwrap_or(f64::NAN)))
                .collect();
            println!("step {}: [{}]", s["step"], action.join(", "));
        }
    }
    Ok(ExitCode::SUCCESS)
}
