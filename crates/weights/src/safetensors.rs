//! safetensors files: a strictly validated header, tensors read on demand with positioned reads,
//! and a writer.
//!
//! Validation follows the reference `safetensors` library: the header is a JSON object of at most
//! 100 MB; keys are unique; every entry has a known dtype, a shape and `data_offsets` whose length
//! is exactly `numel × dtype size`; the byte ranges, sorted, start at 0, touch without gaps or
//! overlaps and end exactly at the end of the file. A file that breaks any rule is refused before
//! a tensor is read, naming the tensor.
//!
//! Reading: burn-store's `SafetensorsStore` memory-maps the file, so loading a model counted the
//! whole checkpoint twice in the resident set (mapped pages + the model's tensors; measured
//! 2.05× the file size). Each tensor is instead read with `pread` in 8 MiB chunks straight into
//! the typed buffer that becomes the tensor: peak RSS is the model plus one chunk (1.11×).

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use burn::module::ParamId;
use burn::store::{TensorSnapshot, TensorSnapshotError};
use burn::tensor::{DType, TensorData};
use serde::Deserialize;
use serde::de::{MapAccess, Visitor};

use crate::data::read_contiguous;
use crate::error::{LoadError, LoadErrorKind, redact_quotes};

/// Largest header accepted (the reference library's limit).
const MAX_HEADER: u64 = 100_000_000;

/// One tensor's header entry, validated.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub dtype: DType,
    pub shape: Vec<usize>,
    /// Absolute byte offset of the data in the file.
    pub start: u64,
}

/// An open, validated safetensors file.
#[derive(Debug)]
pub(crate) struct SafetensorsFile {
    pub path: PathBuf,
    pub entries: BTreeMap<String, Entry>,
    file: Arc<File>,
}

/// The dtype names of the format, with their element sizes.
fn dtype(name: &str) -> Option<(DType, usize)> {
    Some(match name {
        "F32" => (DType::F32, 4),
        "F16" => (DType::F16, 2),
        "BF16" => (DType::BF16, 2),
        "F64" => (DType::F64, 8),
        "I64" => (DType::I64, 8),
        "I32" => (DType::I32, 4),
        "I16" => (DType::I16, 2),
        "I8" => (DType::I8, 1),
        "U64" => (DType::U64, 8),
        "U32" => (DType::U32, 4),
        "U16" => (DType::U16, 2),
        // Boolean buffers (e.g. GPT-2's causal `attn.bias`) are read as bytes; loaders ignore them.
        "U8" | "BOOL" => (DType::U8, 1),
        _ => return None,
    })
}

/// The header's top-level entries in file order, duplicates kept (a `serde_json::Map` would
/// silently keep the last of two equal keys; the reference library refuses them).
struct RawEntries(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for RawEntries {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawEntries;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawEntries, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<String, serde_json::Value>()? {
                    out.push(entry);
                }
                Ok(RawEntries(out))
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: (u64, u64),
}

impl SafetensorsFile {
    /// Opens and validates `path`.
    pub fn open(path: &Path) -> Result<Self, LoadError> {
        let format = |reason: String| LoadError::new(path, LoadErrorKind::Format, reason);
        let file = File::open(path).map_err(|e| LoadError::io(path, &e))?;
        let size = file.metadata().map_err(|e| LoadError::io(path, &e))?.len();
        let mut n = [0u8; 8];
        file.read_exact_at(&mut n, 0).map_err(|_| {
            format(format!("not a safetensors file ({size} bytes, shorter than the 8-byte header length)"))
        })?;
        let n = u64::from_le_bytes(n);
        if n > MAX_HEADER || n > size - 8 {
            return Err(format(format!(
                "not a safetensors file: header length {n} for a {size}-byte file (limit {MAX_HEADER})"
            )));
        }
        let mut header = vec![0u8; n as usize];
        file.read_exact_at(&mut header, 8).map_err(|e| LoadError::io(path, &e))?;
        let raw: RawEntries = serde_json::from_slice(&header)
            .map_err(|e| format(format!("corrupt safetensors header: {}", redact_quotes(&e.to_string()))))?;
        let data_start = 8 + n;
        let data_len = size - data_start;
        let mut entries = BTreeMap::new();
        let mut ranges: Vec<(u64, u64, String)> = Vec::with_capacity(raw.0.len());
        for (name, value) in raw.0 {
            if name == "__metadata__" {
                if !value.as_object().is_some_and(|m| m.values().all(serde_json::Value::is_string)) {
                    return Err(format("__metadata__ must map strings to strings".into()));
                }
                continue;
            }
            let bad = |reason: String| LoadError::tensor(path, &name, LoadErrorKind::Format, reason);
            let entry: RawEntry = serde_json::from_value(value)
                .map_err(|e| bad(format!("bad header entry: {}", redact_quotes(&e.to_string()))))?;
            let (dt, elem) = dtype(&entry.dtype)
                .ok_or_else(|| bad(redact_quotes(&format!("unsupported dtype \"{}\"", entry.dtype))))?;
            let numel = entry.shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
            let bytes = numel.and_then(|n| n.checked_mul(elem as u64));
            let shape: Option<Vec<usize>> = entry.shape.iter().map(|&d| usize::try_from(d).ok()).collect();
            let (start, end) = entry.data_offsets;
            match (bytes, shape) {
                (Some(bytes), Some(shape)) if end >= start && end - start == bytes => {
                    if entries.contains_key(&name) {
                        return Err(bad("appears twice in the header".into()));
                    }
                    ranges.push((start, end, name.clone()));
                    entries.insert(name, Entry { dtype: dt, shape, start: data_start + start });
                }
                _ => {
                    return Err(bad(format!(
                        "data offsets {start}..{end} do not hold shape {:?} of {}",
                        entry.shape, entry.dtype
                    )));
                }
            }
        }
        // Sorted by offset, the ranges must tile the data section exactly.
        ranges.sort();
        let mut expected = 0u64;
        for (start, end, name) in &ranges {
            if *start != expected {
                let what = if *start < expected { "overlaps the previous tensor" } else { "leaves a gap before it" };
                return Err(LoadError::tensor(
                    path,
                    name,
                    LoadErrorKind::Format,
                    format!("data offsets {start}..{end} {what}"),
                ));
            }
            expected = *end;
        }
        if expected != data_len {
            return Err(format(format!(
                "the tensors cover {expected} bytes of data but the file holds {data_len} (truncated or padded)"
            )));
        }
        Ok(Self { path: path.to_owned(), entries, file: Arc::new(file) })
    }

    /// Reads one tensor into host memory (its stored dtype).
    pub fn read(&self, name: &str) -> Result<TensorData, LoadError> {
        let entry = self
            .entries
            .get(name)
            .ok_or_else(|| LoadError::tensor(&self.path, name, LoadErrorKind::Missing, "not in the file"))?;
        read_contiguous(&self.file, entry.start, entry.shape.clone(), entry.dtype)
            .map_err(|e| LoadError::tensor(&self.path, name, LoadErrorKind::Io, e.to_string()))
    }

    /// One lazily read snapshot per tensor, named by its key (dots split into the path stack,
    /// as burn-store does).
    pub fn snapshots(&self) -> Vec<TensorSnapshot> {
        self.entries
            .iter()
            .map(|(name, entry)| {
                let (file, e) = (Arc::clone(&self.file), entry.clone());
                let read = Rc::new(move || {
                    read_contiguous(&file, e.start, e.shape.clone(), e.dtype)
                        .map_err(|err| TensorSnapshotError::IoError(format!("reading tensor data: {err}")))
                });
                let path_stack = name.split('.').map(str::to_owned).collect();
                TensorSnapshot::from_closure(
                    read,
                    entry.dtype,
                    entry.shape.clone().into(),
                    path_stack,
                    vec![],
                    ParamId::new(),
                )
            })
            .collect()
    }
}

/// Writes host tensors to a safetensors file (sorted by name, as the reference library does).
///
/// # Errors
/// If a tensor's dtype has no safetensors name or the file cannot be written.
pub fn write_safetensors(path: &Path, tensors: &[(String, TensorData)]) -> Result<(), LoadError> {
    let views = tensors
        .iter()
        .map(|(name, data)| {
            let dtype = match data.dtype {
                DType::F32 => safetensors::Dtype::F32,
                DType::F64 => safetensors::Dtype::F64,
                DType::F16 => safetensors::Dtype::F16,
                DType::BF16 => safetensors::Dtype::BF16,
                DType::I64 => safetensors::Dtype::I64,
                DType::I32 => safetensors::Dtype::I32,
                DType::U8 => safetensors::Dtype::U8,
                other => {
                    return Err(LoadError::tensor(
                        path,
                        name,
                        LoadErrorKind::Mismatch,
                        format!("cannot write dtype {other:?}"),
                    ));
                }
            };
            let view = safetensors::tensor::TensorView::new(dtype, data.shape.to_vec(), data.as_bytes())
                .map_err(|e| LoadError::tensor(path, name, LoadErrorKind::Mismatch, e.to_string()))?;
            Ok((name.as_str(), view))
        })
        .collect::<Result<Vec<_>, _>>()?;
    safetensors::serialize_to_file(views, None, path)
        .map_err(|e| LoadError::new(path, LoadErrorKind::Io, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file from a header object and a data section.
    fn file(name: &str, header: &str, data: &[u8]) -> PathBuf {
        let path = std::env::temp_dir().join(format!("robovlm-weights-{}-{name}.safetensors", std::process::id()));
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(data);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn error(name: &str, header: &str, data: &[u8]) -> String {
        let path = file(name, header, data);
        let e = SafetensorsFile::open(&path).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        e.to_string()
    }

    #[test]
    fn round_trip() {
        let path = std::env::temp_dir().join(format!("robovlm-weights-{}-rt.safetensors", std::process::id()));
        let t = vec![
            ("b".to_owned(), TensorData::new(vec![1.5f32, -2.0], [2])),
            ("a".to_owned(), TensorData::new(vec![7i64], [1, 1])),
        ];
        write_safetensors(&path, &t).unwrap();
        let f = SafetensorsFile::open(&path).unwrap();
        assert_eq!(f.read("b").unwrap().to_vec::<f32>().unwrap(), [1.5, -2.0]);
        assert_eq!(f.read("a").unwrap().to_vec::<i64>().unwrap(), [7]);
        assert_eq!(f.snapshots().len(), 2);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn refuses_what_the_reference_library_refuses() {
        let two = r#""a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}"#;
        let e = error("dup", &format!("{{{two},{two}}}"), &[0; 4]);
        assert!(e.contains("tensor a") && e.contains("twice"), "{e}");
        let overlap = r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}"#;
        let e = error("overlap", overlap, &[0; 6]);
        assert!(e.contains("tensor b") && e.contains("overlaps"), "{e}");
        let gap = r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#;
        assert!(error("gap", gap, &[0; 8]).contains("gap"));
        let short = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
        assert!(error("short", short, &[0; 4]).contains("truncated"));
        let wrong = r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#;
        assert!(error("wrong", wrong, &[0; 8]).contains("do not hold shape"));
        let huge = r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}}"#;
        assert!(error("huge", huge, &[0; 8]).contains("do not hold shape"));
        assert!(error("dtype", r#"{"a":{"dtype":"Q4","shape":[1],"data_offsets":[0,1]}}"#, &[0]).contains("Q4"));
        assert!(error("json", "[1, 2]", &[]).contains("corrupt"));
    }
}
