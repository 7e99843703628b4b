//! Loading a head from a safetensors checkpoint given the key prefix of `act_head`
//! (`model.act_head.` in RoboVLMs checkpoints).
//!
//! Module paths equal RoboVLMs' keys except two PyTorch layouts: `nn.LSTM`'s flat
//! `rnn.weight_ih_l{k}` (ours: `rnn.layers.{k}.weight_ih`) and `nn.Sequential` entries, whose
//! enum variant is skipped in paths. GPT-2's causal-mask buffers are ignored on purpose.

use std::collections::BTreeSet;
use std::path::Path;

use burn::prelude::*;
use burn::store::{ModuleAdapter, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore, TensorSnapshot};
use burn::tensor::DType;

use crate::error::{Error, Result};
use crate::head::ActionHead;

/// Checkpoint tensors that are not parameters, each with its reason.
pub const IGNORED: &[(&str, &str)] = &[
    (".attn.bias", "GPT-2 causal-mask buffer (uint8 lower triangle); the mask is built in forward"),
    (".attn.masked_bias", "GPT-2 masked-score buffer (-1e4); a constant in forward"),
];

#[derive(Debug, Clone, Copy)]
struct CastToF32;

impl ModuleAdapter for CastToF32 {
    fn adapt(&self, snapshot: &TensorSnapshot) -> TensorSnapshot {
        if !matches!(snapshot.dtype, DType::F16 | DType::BF16 | DType::F64) {
            return snapshot.clone();
        }
        let read = snapshot.clone_data_fn();
        TensorSnapshot::from_closure(
            std::rc::Rc::new(move || Ok(read()?.convert_dtype(DType::F32))),
            DType::F32,
            snapshot.shape.clone(),
            snapshot.path_stack.clone().unwrap_or_default(),
            snapshot.container_stack.clone().unwrap_or_default(),
            snapshot.tensor_id.unwrap_or_default(),
        )
    }

    fn clone_box(&self) -> Box<dyn ModuleAdapter> {
        Box::new(*self)
    }
}

/// Module roots; leftovers under them (and not ignored) are unexpected tensors.
const ROOTS: [&str; 6] = ["rnn.", "mlp.", "fc.", "gpt.", "actions.", "gripper."];

impl<B: Backend> ActionHead<B> {
    /// Loads every head tensor stored under `prefix` (e.g. `model.act_head.`).
    pub fn load_safetensors(&mut self, path: &Path, prefix: &str) -> Result<()> {
        let err = |message: String| Error::Weights { path: path.to_owned(), message };
        if !path.is_file() {
            return Err(err("file not found".into()));
        }
        let escaped: String = prefix.chars().flat_map(|c| if c == '.' { vec!['\\', '.'] } else { vec![c] }).collect();
        let mut store = SafetensorsStore::from_file(path)
            .with_from_adapter(PyTorchToBurnAdapter.chain(CastToF32))
            .with_key_remapping(format!("^{escaped}"), "")
            .with_key_remapping(r"^rnn\.(weight_ih|weight_hh|bias_ih|bias_hh)_l(\d+)$", "rnn.layers.$2.$1")
            .skip_enum_variants(true)
            .allow_partial(true);
        let report = self.load_from(&mut store).map_err(|e| err(e.to_string()))?;
        if let Some(e) = report.errors.first() {
            return Err(err(format!("{e} (prefix `{prefix}`)")));
        }
        let applied: BTreeSet<&String> = report.applied.iter().collect();
        let applied_as_norm = |k: &str| {
            let alt = k.strip_suffix(".weight").map(|b| format!("{b}.gamma")).or_else(|| k.strip_suffix(".bias").map(|b| format!("{b}.beta")));
            alt.is_some_and(|a| applied.contains(&a))
        };
        let unexpected: Vec<String> = report
            .unused
            .iter()
            .filter(|k| ROOTS.iter().any(|r| k.starts_with(r)))
            .filter(|k| !IGNORED.iter().any(|(suffix, _)| k.ends_with(suffix)) && !applied_as_norm(k))
            .map(|k| format!("{prefix}{k}"))
            .collect();
        if !unexpected.is_empty() {
            return Err(err(format!("unexpected head tensors: {}", unexpected.join(", "))));
        }
        if !report.missing.is_empty() {
            let names: Vec<String> = report.missing.iter().map(|(p, _)| format!("{prefix}{p}")).collect();
            return Err(err(format!("missing head tensors: {}", names.join(", "))));
        }
        Ok(())
    }
}
