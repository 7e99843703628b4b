//! [`Checkpoint`]: the tensors of one model on disk — a safetensors file, HF shards with their
//! index, or a PyTorch checkpoint — addressable by key, read only when asked for.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use burn::store::TensorSnapshot;
use burn::tensor::{DType, TensorData};

use crate::error::{LoadError, LoadErrorKind};
use crate::pytorch::PytorchFile;
use crate::safetensors::SafetensorsFile;

#[derive(Debug)]
enum Source {
    /// One or more safetensors files (shards); keys are unique across them.
    Safetensors(Vec<SafetensorsFile>),
    /// One PyTorch checkpoint.
    Pytorch(PytorchFile),
}

/// The tensors of a checkpoint, by key. Opening validates the files' structure (headers,
/// offsets, shard index) and reads no tensor data; loaders and [`Checkpoint::read`] read what they
/// need.
#[derive(Debug)]
pub struct Checkpoint {
    source: Source,
    files: Vec<PathBuf>,
}

/// `model.safetensors.index.json`.
#[derive(serde::Deserialize)]
struct ShardIndex {
    weight_map: BTreeMap<String, String>,
}

/// Whether `path` names a PyTorch checkpoint rather than safetensors: by extension, else by the
/// leading bytes (a zip archive, or a pickle stream of protocol 2-5).
fn is_pytorch(path: &Path) -> bool {
    match path.extension().and_then(|e| e.to_str()) {
        Some("safetensors") => false,
        Some("pt" | "pth" | "ckpt" | "bin") => true,
        _ => {
            let mut head = [0u8; 4];
            let n = std::fs::File::open(path).and_then(|mut f| std::io::Read::read(&mut f, &mut head)).unwrap_or(0);
            n >= 2 && (head.starts_with(b"PK\x03\x04") || (head[0] == 0x80 && (2..=5).contains(&head[1])))
        }
    }
}

impl Checkpoint {
    /// Opens one checkpoint file: safetensors, or a PyTorch/Lightning `.pt`/`.pth`/`.ckpt`/`.bin`.
    pub fn open(path: &Path) -> Result<Self, LoadError> {
        if !path.is_file() {
            return Err(LoadError::new(path, LoadErrorKind::Io, "checkpoint file not found"));
        }
        if is_pytorch(path) {
            Ok(Self { source: Source::Pytorch(PytorchFile::open(path)?), files: vec![path.to_owned()] })
        } else {
            Self::safetensors(&[path])
        }
    }

    /// Opens safetensors files (the shards of one model); a key in two files is an error.
    pub fn safetensors(paths: &[&Path]) -> Result<Self, LoadError> {
        let Some(first) = paths.first() else {
            return Err(LoadError::new(Path::new("<no files>"), LoadErrorKind::Io, "no safetensors file given"));
        };
        let mut files = Vec::with_capacity(paths.len());
        let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
        for &path in paths {
            let file = SafetensorsFile::open(path)?;
            for key in file.entries.keys() {
                if let Some(other) = seen.insert(key.clone(), path.to_owned()) {
                    return Err(LoadError::tensor(
                        path,
                        key,
                        LoadErrorKind::Format,
                        format!("also stored in {}", other.display()),
                    ));
                }
            }
            files.push(file);
        }
        let _ = first;
        Ok(Self { files: paths.iter().map(|p| p.to_path_buf()).collect(), source: Source::Safetensors(files) })
    }

    /// The weights of an HF model directory: `model.safetensors`, or the shards listed in
    /// `model.safetensors.index.json` (shard names must be plain file names inside `dir`, and
    /// every key must be in the shard the index names).
    pub fn discover(dir: &Path) -> Result<Self, LoadError> {
        let single = dir.join("model.safetensors");
        let index_path = dir.join("model.safetensors.index.json");
        if single.is_file() {
            return Self::safetensors(&[&single]);
        }
        if !index_path.is_file() {
            return Err(LoadError::new(
                &single,
                LoadErrorKind::Io,
                "no model.safetensors or model.safetensors.index.json",
            ));
        }
        let format = |reason: String| LoadError::new(&index_path, LoadErrorKind::Format, reason);
        let text = std::fs::read_to_string(&index_path).map_err(|e| LoadError::io(&index_path, &e))?;
        let index: ShardIndex = serde_json::from_str(&text)
            .map_err(|e| format(format!("invalid shard index: {}", crate::redact_quotes(&e.to_string()))))?;
        let shards: BTreeSet<&String> = index.weight_map.values().collect();
        let mut paths = Vec::with_capacity(shards.len());
        for name in shards {
            let mut parts = Path::new(name).components();
            if !matches!((parts.next(), parts.next()), (Some(Component::Normal(_)), None)) {
                return Err(format(format!(
                    "weight_map names {name:?}, which is not a file inside the model directory"
                )));
            }
            let path = dir.join(name);
            if !path.is_file() {
                return Err(format(crate::redact_quotes(&format!(
                    "weight_map names shard {name:?}, which does not exist"
                ))));
            }
            paths.push(path);
        }
        let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
        let checkpoint = Self::safetensors(&refs)?;
        for (key, shard) in &index.weight_map {
            if checkpoint.file_of(key).is_none_or(|f| f != dir.join(shard)) {
                return Err(format(format!("weight_map puts {key} in {shard}, which does not hold it")));
            }
        }
        Ok(checkpoint)
    }

    /// The files read (one, or the shards in load order).
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The first file, for messages about the checkpoint as a whole.
    pub fn path(&self) -> &Path {
        &self.files[0]
    }

    /// Every tensor key, sorted.
    pub fn keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = match &self.source {
            Source::Safetensors(files) => files.iter().flat_map(|f| f.entries.keys().map(String::as_str)).collect(),
            Source::Pytorch(f) => f.tensors.keys().map(String::as_str).collect(),
        };
        keys.sort_unstable();
        keys
    }

    /// Whether the checkpoint holds `key`.
    pub fn contains(&self, key: &str) -> bool {
        self.file_of(key).is_some()
    }

    /// The stored shape and dtype of `key`.
    pub fn meta(&self, key: &str) -> Option<(Vec<usize>, DType)> {
        match &self.source {
            Source::Safetensors(files) => {
                files.iter().find_map(|f| f.entries.get(key)).map(|e| (e.shape.clone(), e.dtype))
            }
            Source::Pytorch(f) => f.tensors.get(key).map(|s| (s.shape.clone(), s.dtype)),
        }
    }

    /// The file holding `key`.
    fn file_of(&self, key: &str) -> Option<&Path> {
        match &self.source {
            Source::Safetensors(files) => files.iter().find(|f| f.entries.contains_key(key)).map(|f| f.path.as_path()),
            Source::Pytorch(f) => f.tensors.contains_key(key).then_some(f.path.as_path()),
        }
    }

    /// Reads one tensor into host memory, in its stored dtype.
    pub fn read(&self, key: &str) -> Result<TensorData, LoadError> {
        match &self.source {
            Source::Safetensors(files) => match files.iter().find(|f| f.entries.contains_key(key)) {
                Some(f) => f.read(key),
                None => Err(LoadError::tensor(self.path(), key, LoadErrorKind::Missing, "not in the checkpoint")),
            },
            Source::Pytorch(f) => f.read(key),
        }
    }

    /// Reads one floating-point tensor as f32 values with its shape.
    pub fn read_f32(&self, key: &str) -> Result<(Vec<usize>, Vec<f32>), LoadError> {
        let data = self.read(key)?;
        if !matches!(data.dtype, DType::F32 | DType::F16 | DType::BF16 | DType::F64) {
            let reason = format!("stored as {:?}, not a float type", data.dtype);
            return Err(LoadError::tensor(
                self.file_of(key).unwrap_or(self.path()),
                key,
                LoadErrorKind::Mismatch,
                reason,
            ));
        }
        let shape = data.shape.to_vec();
        let values = data
            .convert::<f32>()
            .into_vec::<f32>()
            .map_err(|e| LoadError::tensor(self.path(), key, LoadErrorKind::Format, format!("{e:?}")))?;
        Ok((shape, values))
    }

    /// Lazily read snapshots of every tensor, each with the file it comes from.
    pub(crate) fn snapshots(&self) -> Vec<(TensorSnapshot, &Path)> {
        match &self.source {
            Source::Safetensors(files) => {
                files.iter().flat_map(|f| f.snapshots().into_iter().map(move |s| (s, f.path.as_path()))).collect()
            }
            Source::Pytorch(f) => f.snapshots().into_iter().map(|s| (s, f.path.as_path())).collect(),
        }
    }
}
