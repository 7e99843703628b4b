//! `robovlm`: PaliGemma and RoboVLMs policies on Burn, from the command line.
//!
//! The binary is a thin shell: argument parsing, backend selection ([`backend`]), human and JSON
//! output. Model logic lives in `robovlm-core`, the parity harness in `robovlm-parity`. Errors end the process with a non-zero
//! status and one line naming the file, tensor or field at fault.

mod backend;
mod bench;
mod commands;
mod hub;
mod output;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// PaliGemma and RoboVLMs RoboPaligemma policies in Rust, with results identical to the Python stack.
#[derive(Debug, Parser)]
#[command(name = "robovlm", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate text with a PaliGemma or PaliGemma 2 model from an image and a prompt (greedy by
    /// default).
    ///
    /// PaliGemma 2 (a Gemma 2 decoder) attends through a sliding window in every other layer;
    /// those layers keep only the last `sliding_window` keys (4096 in the released models), so
    /// memory stays bounded. Every generated token attends the window ending at itself, for any
    /// prompt length: for prompts longer than the window this is exactly transformers 4.47.1;
    /// for shorter prompts it is also what transformers computes without a cache, while 4.47.1's
    /// HybridCache drifts once generation reaches position `sliding_window − 1` (it drops the
    /// oldest key one step early), which robovlm does not reproduce.
    Generate(commands::generate::GenerateArgs),
    /// Run a RoboVLMs policy over an episode of camera frames and print the robot actions.
    Act(commands::act::ActArgs),
    /// Write a PaliGemma forward pass's intermediate tensors (safetensors, fixture names) for
    /// comparison with a Python run.
    Dump(commands::dump::DumpArgs),
    /// Run the PaliGemma processor on an image and prompt: prompt ids and pixel values, as the
    /// model will see them (tokenizer + Pillow-exact resize + normalisation).
    Process(commands::process::ProcessArgs),
    /// Compare against golden reference fixtures (folders with reference.json) and report.
    Parity(commands::parity::ParityArgs),
    /// List the backends compiled into this binary and whether each has a usable device.
    Backends(commands::backends::BackendsArgs),
    /// Serve a RoboVLMs policy to robots over openpi's WebSocket + msgpack protocol
    /// (`openpi_client.WebsocketClientPolicy` works unchanged); one connection = one episode.
    ///
    /// On connect the client receives a metadata map (policy, action_dim, action_chunk,
    /// window_size, image_keys, prompt_key, execution, backend, dtype, robovlm_version); then
    /// every observation map — a uint8 [H, W, 3] image under --image-key and the instruction
    /// under --prompt-key — is answered with: actions (float32 [chunk, 7], post-processed as
    /// `robovlm act`: arm un-normalised, gripper ±1; row 0 is act's action), action (the one
    /// to execute now, see --execute), arm and gripper_logits (raw head outputs), episode_step,
    /// new_episode and server_timing (infer_ms, prev_total_ms). One connection is one episode:
    /// its history lives on the server until the connection closes; "reset": true or a new
    /// prompt starts a new episode. Errors arrive as a text frame with one line, then a close
    /// code (1007 malformed, 1009 too large, 1011 inference error, 1013 busy, 1001 shutdown);
    /// other sessions keep running. GET /healthz answers 200 on the same port. SIGINT/SIGTERM
    /// answer the requests in flight, then close every session. Inference runs on one thread
    /// through a bounded queue; requests of different sessions are not batched.
    Serve(commands::serve::ServeArgs),
    /// Time image encode, a policy control step, prefill and decode at PaliGemma-3B width
    /// (random weights, depth reducible) or on a real model; `--json` for tools.
    Bench(commands::bench::BenchArgs),
}

fn main() -> ExitCode {
    install_panic_hook();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Generate(args) => commands::generate::run(args),
        Command::Serve(args) => commands::serve::run(args),
        Command::Act(args) => commands::act::run(args),
        Command::Dump(args) => commands::dump::run(args),
        Command::Process(args) => commands::process::run(args),
        Command::Parity(args) => commands::parity::run(args),
        Command::Backends(args) => commands::backends::run(args),
        Command::Bench(args) => commands::bench::run(args),
    };
    match result {
        Ok(code) => code,
        // `robovlm … | head`: the reader left; stop quietly, as a process killed by SIGPIPE.
        Err(e) if output::is_broken_pipe(&e) => ExitCode::from(141),
        Err(e) => {
            eprintln!("error: {}", error_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, `context: cause: cause`. Library errors already
/// include their source's text in their own message (`cannot read F: No such file`), so a
/// cause whose text the line already holds is not repeated.
fn error_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.is_empty() {
            line = text;
        } else if !line.contains(&text) {
            line = format!("{line}: {text}");
        }
    }
    line
}

/// A panic is a bug in robovlm, never the user's fault: report it in one line (the backtrace
/// only when `ROBOVLM_BACKTRACE=1`), not as a wall of frames.
fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::env::var_os("ROBOVLM_BACKTRACE").is_some_and(|v| v == "1") {
            default(info);
        } else {
            let msg = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
            eprintln!("error: internal error (a robovlm bug; please report it){at}: {msg}");
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::error_line;

    #[test]
    fn error_line_does_not_repeat_causes() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let inner = anyhow::Error::new(io).context("cannot read a.png: No such file");
        assert_eq!(error_line(&inner.context("loading frames")), "loading frames: cannot read a.png: No such file");
    }
}
