//! One parity case on disk: a folder with `reference.json` (+ `reference.safetensors`,
//! `inputs/`, model or policy files), in the format of `fixtures/README.md`.

use std::cell::OnceCell;
use std::path::{Path, PathBuf};

use robovlm_core::PaliGemmaProcessor;
use serde_json::Value;

use super::tensor::{HostTensor, read_safetensors};
use crate::error::{Error, Result};

fn case_error(path: &Path, message: impl Into<String>) -> Error {
    Error::Case { path: path.to_owned(), message: message.into() }
}

/// Reads and parses a JSON file.
fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| case_error(path, format!("cannot read: {e}")))?;
    serde_json::from_str(&text).map_err(|e| case_error(path, format!("invalid JSON: {e}")))
}

/// A loaded case.
pub struct Case {
    /// The case folder.
    pub dir: PathBuf,
    /// Name printed in reports (`reference.json → case`, else the folder name).
    pub name: String,
    /// The parsed `reference.json`.
    pub header: Value,
    /// The parsed `inputs/case.json`, when present.
    pub inputs: Option<Value>,
    /// Reference tensors (own, or the base case's for layout variants).
    pub references: Vec<(String, HostTensor)>,
    /// For a layout variant (no tensors of its own): the case whose references and inputs it uses.
    pub base: Option<Box<Case>>,
    processor: OnceCell<std::result::Result<PaliGemmaProcessor, String>>,
}

impl Case {
    /// Loads a case folder.
    pub fn load(dir: &Path) -> Result<Self> {
        let header_path = dir.join("reference.json");
        let header = read_json(&header_path)?;
        if !header.is_object() {
            return Err(case_error(&header_path, "expected a JSON object"));
        }
        let name = header
            .get("case")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        let inputs_path = dir.join("inputs/case.json");
        let inputs = if inputs_path.is_file() { Some(read_json(&inputs_path)?) } else { None };
        let (references, base) = if header.get("tensors").is_some() {
            let st = dir.join("reference.safetensors");
            let refs = read_safetensors(&st)?;
            check_declared(&header, &refs, &st)?;
            (refs, None)
        } else {
            let base_dir = variant_base(dir, &header)
                .ok_or_else(|| case_error(&header_path, "no `tensors` and no base case named in `note`"))?;
            let base = Case::load(&base_dir)
                .map_err(|e| case_error(&header_path, format!("loading the base case of {name}: {e}")))?;
            (base.references.clone(), Some(Box::new(base)))
        };
        Ok(Self { dir: dir.to_owned(), name, header, inputs, references, base, processor: OnceCell::new() })
    }

    /// `reference.json → values[key]`, falling back to the base case.
    pub fn value(&self, key: &str) -> Option<&Value> {
        self.header.get("values").and_then(|v| v.get(key)).or_else(|| self.base.as_ref().and_then(|b| b.value(key)))
    }

    /// `reference.json → values[key]` as an array (prompt lists, training examples).
    pub fn value_array(&self, key: &str) -> std::result::Result<&[Value], String> {
        self.value(key).and_then(Value::as_array).map(Vec::as_slice).ok_or_else(|| format!("values.{key} missing"))
    }

    /// `inputs/case.json`, own or the base case's.
    pub fn case_json(&self) -> Option<&Value> {
        self.inputs.as_ref().or_else(|| self.base.as_ref().and_then(|b| b.case_json()))
    }

    /// A header field (top level of `reference.json`), falling back to the base case.
    pub fn field(&self, key: &str) -> Option<&Value> {
        self.header.get(key).or_else(|| self.base.as_ref().and_then(|b| b.field(key)))
    }

    /// The model directory: `model_dir` relative to the case folder (default `model`).
    pub fn model_dir(&self) -> PathBuf {
        let rel = self.header.get("model_dir").and_then(Value::as_str).unwrap_or("model");
        self.dir.join(rel)
    }

    /// Where tokenizer and preprocessor files live: the model dir when it has them, else the base
    /// case's (layout variants keep only config and weights).
    pub fn processor_dir(&self) -> PathBuf {
        let own = self.model_dir();
        match &self.base {
            Some(base) if !own.join("tokenizer.json").is_file() => base.processor_dir(),
            _ => own,
        }
    }

    /// The processor of this case, loaded once.
    pub fn processor(&self) -> std::result::Result<&PaliGemmaProcessor, String> {
        self.processor
            .get_or_init(|| PaliGemmaProcessor::from_dir(&self.processor_dir()).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Resolves an input path written relative to a case folder (`inputs/x.png`): this case, then
    /// its base.
    pub fn input_path(&self, rel: &str) -> std::result::Result<PathBuf, String> {
        let own = self.dir.join(rel);
        if own.is_file() {
            return Ok(own);
        }
        if let Some(base) = &self.base {
            return base.input_path(rel);
        }
        self.sibling_input(rel).ok_or_else(|| format!("input file {} not found", own.display()))
    }
}

impl Case {
    /// A re-saved variant (e.g. bf16 weights) may ship without `inputs/` and reuse its sibling's
    /// ("Inputs are those of the float32 case"). Accept a sibling's file only when that sibling
    /// records the same prompt values, so unrelated cases never lend their images.
    fn sibling_input(&self, rel: &str) -> Option<PathBuf> {
        let ours = self.header.get("values")?.as_object()?;
        let prompts: Vec<(&String, &Value)> = ours.iter().filter(|(k, _)| k.ends_with(".prompt")).collect();
        if prompts.is_empty() {
            return None;
        }
        let parent = self.dir.parent()?;
        let mut siblings: Vec<PathBuf> =
            std::fs::read_dir(parent).ok()?.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        siblings.sort();
        siblings.into_iter().filter(|s| *s != self.dir && s.join(rel).is_file()).find_map(|s| {
            let text = std::fs::read_to_string(s.join("reference.json")).ok()?;
            let header: Value = serde_json::from_str(&text).ok()?;
            let theirs = header.get("values")?;
            prompts.iter().all(|(k, v)| theirs.get(k.as_str()) == Some(v)).then(|| s.join(rel))
        })
    }
}

/// Checks that `reference.safetensors` holds what `reference.json` declares (shape and dtype).
fn check_declared(header: &Value, refs: &[(String, HostTensor)], path: &Path) -> Result<()> {
    let Some(declared) = header.get("tensors").and_then(Value::as_object) else {
        return Err(case_error(path, "`tensors` is not an object"));
    };
    for (name, meta) in declared {
        let Some((_, t)) = refs.iter().find(|(n, _)| n == name) else {
            return Err(case_error(path, format!("tensor {name} is declared in reference.json but missing")));
        };
        let shape: Option<Vec<usize>> = meta
            .get("shape")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_u64).map(|d| d as usize).collect());
        if let Some(shape) = shape
            && shape != t.shape
        {
            return Err(case_error(
                path,
                format!("tensor {name} has shape {:?}, reference.json says {shape:?}", t.shape),
            ));
        }
    }
    Ok(())
}

/// The base case of a layout variant: the sibling named as `../<case>/` in its `note`.
fn variant_base(dir: &Path, header: &Value) -> Option<PathBuf> {
    let note = header.get("note")?.as_str()?;
    note.match_indices("../").find_map(|(i, _)| {
        let rest = &note[i + 3..];
        let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.')).collect();
        let candidate = dir.join("..").join(name.trim_end_matches('.'));
        let has_refs = candidate.join("reference.safetensors").is_file();
        (has_refs && candidate != dir).then_some(candidate)
    })
}
