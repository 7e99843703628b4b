//! `robovlm parity`: a thin shell over the `robovlm-parity` crate (case discovery, providers,
//! comparison rules and the report live there).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use robovlm_parity::{ParityOptions, Precision, find_cases, skip_list_help};

use crate::backend::{DeviceArgs, Dtype, on_backend};
use crate::output::out;

/// Arguments of `robovlm parity`.
#[derive(Debug, clap::Args)]
#[command(after_help = format!(
    "Tolerances (fixtures README §5): ids, masks and resized_uint8 exact; pixel_values abs 1e-6; \
     action_emitted abs 1e-4; other floats |a-b| <= 1e-4 + 1e-4*|ref|.\n\
     With --dtype f16|bf16 (half precision cannot meet those by construction): ids and masks \
     still exact; pixel_values within one epsilon of the format; the emitted robot actions \
     (action_emitted, action_unnormalized) abs 1e-2; head_gripper_logits cosine >= 0.999 with \
     equal signs; losses 1e-4 + 1e-2*|ref|; every other float tensor (head_actions included) \
     cosine similarity >= 0.999.\n\
     bf16 greedy generation (gen_new_ids, gen_step_logits): a different token is accepted only \
     where the reference's top-2 logit margin at that step is at most one bf16 spacing of its \
     top logit (2^(floor(log2|top|) - 7)): a tie at bf16's resolution. That row's later steps \
     are then not compared (they continue a different prefix) and the report lists the step as \
     NEAR-TIE; a different token where the margin is larger fails. f32 and f16 ids stay exact.\n\
     Informational reference tensors, never compared:\n{}\n\n\
     Exit status: 0 when every compared tensor passed (and, with --require-all, nothing was left \
     unchecked); 1 otherwise.",
    skip_list_help()
))]
pub struct ParityArgs {
    /// Folders holding cases (searched recursively for reference.json).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// f16/bf16 are judged by the half-precision rules (see below), not the f32 tolerances.
    #[command(flatten)]
    device: DeviceArgs,
    /// Only reference tensors whose name matches this glob (`*`, `?`); repeatable.
    #[arg(long = "only", value_name = "GLOB")]
    only: Vec<String>,
    /// Fail if any reference tensor could not be computed.
    #[arg(long)]
    require_all: bool,
    /// Also list the tensors left unchecked.
    #[arg(short, long)]
    verbose: bool,
}

/// Runs the parity check.
pub fn run(args: ParityArgs) -> Result<ExitCode> {
    let opts =
        ParityOptions { paths: args.paths, only: args.only, require_all: args.require_all, verbose: args.verbose };
    let dirs = find_cases(&opts.paths)?;
    let precision = match args.device.dtype {
        Dtype::F32 => Precision::F32,
        Dtype::F16 => Precision::F16,
        Dtype::Bf16 => Precision::Bf16,
    };
    out!("parity on backend {}, {}: {} case(s)", args.device.kind(), args.device.dtype, dirs.len());
    let totals = on_backend!(args.device, |B, device| {
        let mut stdout = std::io::stdout().lock();
        robovlm_parity::run::<B>(&dirs, &opts, precision, device, &mut stdout).context(crate::output::STDOUT)
    })?;
    Ok(if totals.success(&opts) { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
