//! Project automation: `cargo xtask <command>`.
//!
//! Deliberately depends on no workspace crate: it drives cargo and the `robovlm` binary, so it
//! builds in seconds and never needs a backend itself.

mod cargo;
mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "robovlm project automation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// robovlm bench against tools/bench_reference.py (PyTorch) on the same shapes: ratio table.
    Bench(commands::bench::Args),
    /// Build robovlm with a backend and run `robovlm parity` (every case under the given folders
    /// against its golden references).
    Parity(commands::parity::Args),
    /// Write a synthetic PaliGemma-3B-width checkpoint (random weights, reducible depth) for load
    /// measurements.
    SynthModel(commands::synth_model::Args),
    /// Unit tests and the parity suite once per backend (ndarray, flex, wgpu, cuda), with a summary.
    TestAllBackends(commands::test_all_backends::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(args) => commands::bench::run(args),
        Command::Parity(args) => commands::parity::run(args),
        Command::SynthModel(args) => commands::synth_model::run(args),
        Command::TestAllBackends(args) => commands::test_all_backends::run(args),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
