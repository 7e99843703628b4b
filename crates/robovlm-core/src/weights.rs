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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLayout {
    /// SigLIP tower (`VisionTower` paths follow).
    pub vision: String,
    /// Projector (`Projector` paths follow).
    pub projector: String,
    /// Gemma decoder (`Decoder` paths follow).
    pub language: String,
    /// Untied LM head (`lm_head.weight`); tied models ignore it when present.
    pub lm_head: String,
}

impl KeyLayout {
    /// transformers 4.47 (`PaliGemmaForConditionalGeneration` without the `model.` wrapper),
    /// under `lead` (empty for an HF directory; `model.backbone.` inside a RoboVLMs checkpoint).
    pub fn v4_47(lead: &str) -> Self {
        Self {
            vision: format!("{lead}vision_tower.vision_model."),
            projector: format!("{lead}multi_modal_projector."),
            language: format!("{lead}language_model.model."),
            lm_head: format!("{lead}language_model.lm_head."),
        }
    }

    /// transformers ≥ 4.52 (`PaliGemmaModel` wrapper).
    pub fn v4_52() -> Self {
        Self {
            vision: "model.vision_tower.vision_model.".into(),
            projector: "model.multi_modal_projector.".into(),
            language: "model.language_model.".into(),
            lm_head: "lm_head.".into(),
        }
    }
}

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
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no model.safetensors or model.safetensors.index.json",
                ),
            ));
        };
        let new = KeyLayout::v4_52();
        let layout = if keys.iter().any(|k| k.starts_with(&new.vision) || k.starts_with(&new.language)) {
            new
        } else {
            KeyLayout::v4_47("")
        };
        Ok(Self { files, layout })
    }

    /// The files as path references.
    pub fn paths(&self) -> Vec<&Path> {
        self.files.iter().map(PathBuf::as_path).collect()
    }
}

/// Reads only the JSON header of a safetensors file (names, dtypes, shapes, offsets), checking
/// that it fits the file; tensor data is not read.
pub fn safetensors_header(path: &Path) -> Result<serde_json::Map<String, serde_json::Value>> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let bad = |m: &str| Error::config(path, "header", m.to_owned());
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(|_| bad("file shorter than the 8-byte header length: not a safetensors file"))?;
    let len = u64::from_le_bytes(len);
    let size = f.metadata().map_err(|e| Error::io(path, e))?.len();
    if len > size.saturating_sub(8) || len > 100_000_000 {
        return Err(bad(&format!("header length {len} exceeds the file size {size} (truncated or not safetensors)")));
    }
    let mut header = vec![0u8; len as usize];
    f.read_exact(&mut header).map_err(|e| Error::io(path, e))?;
    let json: serde_json::Value =
        serde_json::from_slice(&header).map_err(|source| Error::Json { path: path.to_owned(), source })?;
    let mut obj = match json {
        serde_json::Value::Object(o) => o,
        _ => return Err(bad("header is not a JSON object")),
    };
    obj.remove("__metadata__");
    let data_len = size - 8 - len;
    for (name, meta) in &obj {
        let end = meta.get("data_offsets").and_then(|o| o.get(1)).and_then(serde_json::Value::as_u64);
        match end {
            Some(end) if end <= data_len => {}
            _ => {
                return Err(bad(&format!(
                    "tensor {name}: data offsets missing or past the end of the file (truncated?)"
                )));
            }
        }
    }
    Ok(obj)
}

/// Tensor names of a safetensors file (header only).
pub fn safetensors_keys(path: &Path) -> Result<Vec<String>> {
    Ok(safetensors_header(path)?.into_iter().map(|(k, _)| k).collect())
}

/// Reads one tensor as f32 (stored F32, BF16 or F16), touching only its bytes.
pub fn read_tensor_f32(path: &Path, key: &str) -> Result<(Vec<usize>, Vec<f32>)> {
    use std::io::{Read, Seek, SeekFrom};
    let header = safetensors_header(path)?;
    let bad = |m: String| Error::Weights(format!("{}: tensor {key}: {m}", path.display()));
    let meta = header.get(key).ok_or_else(|| bad("not in the file".into()))?;
    let shape: Vec<usize> = meta
        .get("shape")
        .and_then(|s| s.as_array())
        .map(|a| a.iter().filter_map(serde_json::Value::as_u64).map(|d| d as usize).collect())
        .ok_or_else(|| bad("no shape".into()))?;
    let offsets: Vec<u64> = meta
        .get("data_offsets")
        .and_then(|s| s.as_array())
        .map(|a| a.iter().filter_map(serde_json::Value::as_u64).collect())
        .filter(|o: &Vec<u64>| o.len() == 2 && o[0] <= o[1])
        .ok_or_else(|| bad("bad data_offsets".into()))?;
    let dtype = meta.get("dtype").and_then(serde_json::Value::as_str).unwrap_or("");
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(|e| Error::io(path, e))?;
    let start = 8 + u64::from_le_bytes(len) + offsets[0];
    let mut bytes = vec![0u8; (offsets[1] - offsets[0]) as usize];
    f.seek(SeekFrom::Start(start)).map_err(|e| Error::io(path, e))?;
    f.read_exact(&mut bytes).map_err(|e| Error::io(path, e))?;
    let values: Vec<f32> = match dtype {
        "F32" => bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        "BF16" => {
            bytes.chunks_exact(2).map(|b| f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16)).collect()
        }
        "F16" => bytes.chunks_exact(2).map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]]))).collect(),
        other => return Err(bad(format!("dtype {other} is not a float type robovlm reads"))),
    };
    if values.len() != shape.iter().product::<usize>() {
        return Err(bad(format!("{} values do not fill shape {shape:?}", values.len())));
    }
    Ok((shape, values))
}

/// IEEE half → f32 (exact).
fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let mant = u32::from(h & 0x3ff);
    let bits = match (exp, mant) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: renormalise.
            let shift = m.leading_zeros() - 21;
            sign | ((113 - shift) << 23) | ((m << (shift + 1)) & 0x3ff) << 13
        }
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 112) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::f16_to_f32;

    #[test]
    fn half_conversion() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert!(f16_to_f32(0x7c00).is_infinite());
    }
}
