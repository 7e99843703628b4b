//! `robovlm backends`: what this binary can run on, here.

use std::process::ExitCode;

use anyhow::Result;
use burn::prelude::Tensor;
use burn::tensor::ElementConversion;

use crate::backend::{BackendKind, DeviceArgs, Dtype, on_backend};
use crate::output::out;

/// Arguments of `robovlm backends`.
#[derive(Debug, clap::Args)]
pub struct BackendsArgs {
    /// Only this backend; the exit status says whether it is usable.
    #[arg(long, value_enum)]
    check: Option<BackendKind>,
}

/// A one-element computation that forces device initialisation.
fn compute(kind: BackendKind) -> Result<f32> {
    on_backend!(DeviceArgs { backend: Some(kind), dtype: Dtype::F32 }, |B, device| {
        Ok(Tensor::<B, 1>::from_floats([1.0, 2.0], device).sum().into_scalar().elem::<f32>())
    })
}

/// Probes one backend, turning a device panic into an error message.
fn probe(kind: BackendKind) -> Result<(), String> {
    kind.ensure_usable().map_err(|e| e.to_string())?;
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = std::panic::catch_unwind(|| compute(kind));
    std::panic::set_hook(hook);
    match outcome {
        Ok(Ok(v)) if v == 3.0 => Ok(()),
        Ok(Ok(v)) => Err(format!("probe computed {v} instead of 3")),
        Ok(Err(e)) => Err(e.to_string()),
        Err(p) => Err(format!(
            "device initialisation failed: {}",
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).into()))
                .unwrap_or_default()
        )),
    }
}

/// Lists backends, or checks one.
pub fn run(args: BackendsArgs) -> Result<ExitCode> {
    let kinds: Vec<BackendKind> = args.check.map_or_else(|| BackendKind::ALL.to_vec(), |k| vec![k]);
    let mut all_ok = true;
    for kind in kinds {
        let status = if kind.compiled_in() {
            match probe(kind) {
                Ok(()) => "usable".to_owned(),
                Err(e) => {
                    all_ok = false;
                    format!("unusable: {e}")
                }
            }
        } else {
            all_ok = false;
            "not compiled in".to_owned()
        };
        let default = if kind == BackendKind::default_compiled() { " (default)" } else { "" };
        out!("{kind:<8} {status}{default}");
    }
    Ok(if args.check.is_some() && !all_ok { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
