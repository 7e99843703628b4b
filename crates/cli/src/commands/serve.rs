//! `robovlm serve`: a RoboVLMs policy behind openpi's WebSocket protocol (`robovlm-serve`).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use robovlm_core::RoboPolicy;
use robovlm_core::robovlms::Execution;
use robovlm_serve::{Loaded, ServeOptions, Server};

use crate::backend::{DeviceArgs, on_backend};

/// Arguments of `robovlm serve` (its help text is on `Command::Serve` in main.rs).
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Policy directory: robovlm_config.json + policy.safetensors (or policy.pt / policy.ckpt,
    /// read without executing pickle code).
    #[arg(long)]
    policy: PathBuf,
    /// Checkpoint to use instead of the directory's policy.safetensors.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// PaliGemma directory (config, tokenizer, processor) instead of the config's
    /// vlm.pretrained_model_name_or_path.
    #[arg(long)]
    backbone: Option<PathBuf>,
    /// Address to listen on. The default accepts only this machine; use 0.0.0.0 to let robots
    /// on the network connect (and consider --api-key).
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to listen on.
    #[arg(long, default_value_t = 8000)]
    port: u16,
    #[command(flatten)]
    device: DeviceArgs,
    /// Require `Authorization: Api-Key <KEY>` (what openpi clients send when given api_key).
    /// Also read from ROBOVLM_API_KEY.
    #[arg(long, env = "ROBOVLM_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Sessions (connections) served at once; more are closed with code 1013 "server busy".
    #[arg(long, default_value_t = 16)]
    max_sessions: usize,
    /// Largest message accepted, in bytes; larger ones close that connection with code 1009.
    #[arg(long, default_value_t = 16 << 20)]
    max_message_bytes: usize,
    /// Observation key of the camera image (uint8 [H, W, 3], any size). Repeat it for more
    /// cameras: the first is the policy's; the others (e.g. a wrist camera) are accepted and
    /// reported as unused. Flat keys ("observation/image") and nested maps both work.
    #[arg(long = "image-key", default_value = "observation/image")]
    image_keys: Vec<String>,
    /// Observation key of the instruction.
    #[arg(long, default_value = "prompt")]
    prompt_key: String,
    /// Which action the `action` reply key carries: replan (RoboVLMs' default: action 0 of each
    /// new chunk), open-loop:N (the first N actions of a chunk in turn), ensemble:M (ACT
    /// temporal ensembling, weights exp(-M·i), e.g. ensemble:0.01). `actions` always has the
    /// whole chunk.
    #[arg(long, default_value = "replan", value_parser = parse_execution)]
    execute: Execution,
    /// Keep the episode when the prompt changes (by default a new prompt starts a new one).
    #[arg(long)]
    keep_episode_on_new_prompt: bool,
}

pub(crate) fn parse_execution(s: &str) -> Result<Execution, String> {
    s.parse()
}

/// Resolves when SIGINT or SIGTERM arrives.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("signal received");
}

/// Runs the server until a signal stops it.
pub fn run(args: ServeArgs) -> Result<ExitCode> {
    let options = ServeOptions {
        addr: SocketAddr::new(args.host, args.port),
        api_key: args.api_key.clone(),
        max_sessions: args.max_sessions,
        max_message_bytes: args.max_message_bytes,
        image_keys: args.image_keys.clone(),
        prompt_key: args.prompt_key.clone(),
        execution: args.execute,
        new_episode_on_prompt_change: !args.keep_episode_on_new_prompt,
    };
    options.validate().map_err(anyhow::Error::msg)?;
    let files = super::act::policy_files(&args.policy, args.checkpoint.as_ref(), args.backbone.as_ref())?;
    let name =
        args.policy.file_name().map_or_else(|| args.policy.display().to_string(), |n| n.to_string_lossy().into_owned());
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_target(false).init();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    let kind = args.device.kind();
    let dtype = args.device.dtype;
    on_backend!(args.device, |B, device| {
        // Moved into the inference thread (`Clone`, not `Copy`, on GPU backends).
        #[allow(clippy::clone_on_copy)]
        let device = device.clone();
        runtime.block_on(async move {
            let server = Server::bind(options, move || {
                let policy = RoboPolicy::<B>::load(&files, &device).map_err(|e| format!("{e:#}"))?;
                Ok(Loaded { policy, name, backend: kind.to_string(), dtype: dtype.to_string() })
            })
            .await?;
            let info = server.info();
            eprintln!(
                "serving {} ({}, chunk {}, window {}) on ws://{} with {} {}; Ctrl-C to stop",
                info.name,
                info.kind,
                info.chunk,
                info.window_size,
                server.local_addr(),
                info.backend,
                info.dtype
            );
            server.run(shutdown_signal()).await?;
            anyhow::Ok(())
        })
    })?;
    Ok(ExitCode::SUCCESS)
}
