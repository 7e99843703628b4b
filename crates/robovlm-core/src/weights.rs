//! THE checkpoint key table for HF PaliGemma directories, and weight-file discovery
//! (single file or sharded with `model.safetensors.index.json`).
//!
//! Two key layouts exist (fixtures README §3.1): transformers 4.47 writes
//! `vision_tower.vision_model.*`, `multi_modal_projector.*`, `language_model.model.*`;
//! transformers ≥ 4.52 nests them under `model.` (and moves `lm_head`). Modules mirror the
//! checkpoint below these prefixes, so each tower loads with one prefix.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result, read_json};

/// Key prefixes of one checkpoint layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyLayout {
    /// SigLIP tower (`VisionTower` paths follow).
    pub vision: &'static str,
    /// Projector (`Projector` paths follow).
    pub projector: &'static str,
    /// Gemma decoder (`Decoder` paths follow).
    pub language: &'static str,
    /// Untied LM head (`lm_head.weight`); tied models ignore it when present.
    pub lm_head: &'static str,
}

/// transformers 4.47 (`PaliGemmaForConditionalGeneration` without the `model.` wrapper).
pub const LAYOUT_4_47: KeyLayout = KeyLayout {
    vision: "vision_tower.vision_model.",
    projector: "multi_modal_projector.",
    language: "language_model.model.",
    lm_head: "language_model.lm_head.",
};

/// transformers ≥ 4.52 (`PaliGemmaModel` wrapper).
pub const LAYOUT_4_52: KeyLayout = KeyLayout {
    vision: "model.vision_tower.vision_model.",
    projector: "model.multi_modal_projector.",
    language: "model.language_model.",
    lm_head: "lm_head.",
};

#[derive(Debug, Deserialize)]
struct ShardIndex {
    weight_map: std::collections::BTreeMap<String, String>,
}

/// The weight files of a model directory and the layout of their keys.
#[derive(Debug, Clone)]
pub struct WeightFiles {
    /// Files in load order.
    pub files: Vec<PathBuf>,
    /// Detected key layout.
    pub layout: KeyLayout,
}

impl WeightFiles {
    /// Finds `model.safetensors`, or the shards listed in `model.safetensors.index.json`, and
    /// detects the key layout from the tensor names.
    pub fn discover(dir: &Path) -> Result<Self> {
        let single = dir.join("model.safetensors");
        let index = dir.join("model.safetensors.index.json");
        let (files, keys): (Vec<PathBuf>, Vec<String>) = if single.is_file() {
            (vec![single.clone()], safetensors_keys(&single)?)
        } else if index.is_file() {
            let idx: ShardIndex = read_json(&index)?;
            let names: BTreeSet<&String> = idx.weight_map.values().collect();
            let files: Vec<PathBuf> = names.into_iter().map(|n| dir.join(n)).collect();
            for f in &files {
                if !f.is_file() {
                    return Err(Error::config(&index, "weight_map", format!("shard {} does not exist", f.display())));
                }
            }
            (files, idx.weight_map.into_keys().collect())
        } else {
            return Err(Error::io(
                &single,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no model.safetensors or model.safetensors.index.json"),
            ));
        };
        let layout = if keys.iter().any(|k| k.starts_with(LAYOUT_4_52.vision) || k.starts_with(LAYOUT_4_52.language)) {
            LAYOUT_4_52
        } else {
            LAYOUT_4_47
        };
        Ok(Self { files, layout })
    }

    /// The files as path references.
    pub fn paths(&self) -> Vec<&Path> {
        self.files.iter().map(PathBuf::as_path).collect()
    }
}

/// Reads only the header of a safetensors file (its tensor names), without loading data.
pub fn safetensors_keys(path: &Path) -> Result<Vec<String>> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let bad = |m: &str| Error::config(path, "header", m.to_owned());
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(|_| bad("file shorter than the 8-byte header length"))?;
    let len = u64::from_le_bytes(len);
    let size = f.metadata().map_err(|e| Error::io(path, e))?.len();
    if len > size.saturating_sub(8) || len > 100_000_000 {
        return Err(bad(&format!("header length {len} exceeds the file size {size}")));
    }
    let mut header = vec![0u8; len as usize];
    f.read_exact(&mut header).map_err(|e| Error::io(path, e))?;
    let json: serde_json::Value =
        serde_json::from_slice(&header).map_err(|source| Error::Json { path: path.to_owned(), source })?;
    let obj = json.as_object().ok_or_else(|| bad("header is not a JSON object"))?;
    Ok(obj.keys().filter(|k| *k != "__metadata__").cloned().collect())
}
