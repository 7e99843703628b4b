//! PyTorch / Lightning checkpoints (`torch.save`, `.pt` / `.pth` / `.ckpt` / `.bin`), read as
//! strictly as safetensors files and without executing anything.
//!
//! Format (PyTorch ≥ 1.6, `torch/serialization.py`): a zip archive, entries stored uncompressed,
//! holding `<name>/data.pkl` — a pickle whose tensors are `_rebuild_tensor_v2(storage, offset,
//! size, stride, …)` records pointing at storages `('storage', FloatStorage, key, location,
//! numel)` — and one entry `<name>/data/<key>` per storage. The pickle is parsed by
//! [`crate::pickle`] (values only, no code). Checked before any tensor is read: every storage
//! entry exists, is uncompressed and holds exactly `numel × element size` bytes; every tensor's
//! elements (offset, sizes and **strides**) lie inside its storage. Tensors saved as views
//! (transposed, sliced, expanded) are gathered through their strides, so a valid checkpoint
//! always loads its values. Lightning files keep the weights under `state_dict`; a bare state
//! dict is accepted too. The pre-1.6 format (a bare pickle stream) is refused by name.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use burn::module::ParamId;
use burn::store::{TensorSnapshot, TensorSnapshotError};
use burn::tensor::{DType, TensorData};

use crate::data::{decode_le, read_contiguous};
use crate::error::{LoadError, LoadErrorKind};
use crate::pickle::{self, Pickle, TensorRecord, Value};

/// One tensor of the checkpoint, validated: where its storage starts in the file and how to
/// walk it.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub dtype: DType,
    pub shape: Vec<usize>,
    /// Strides in elements.
    stride: Vec<u64>,
    /// Absolute file offset of the tensor's first element.
    start: u64,
    /// Element size in bytes.
    elem: usize,
}

impl Stored {
    /// Whether the elements are laid out row-major without gaps.
    fn contiguous(&self) -> bool {
        let mut expected = 1u64;
        for (&size, &stride) in self.shape.iter().zip(&self.stride).rev() {
            if size != 1 && stride != expected {
                return false;
            }
            expected *= size as u64;
        }
        true
    }

    /// Reads the tensor's values in row-major order.
    fn read(&self, file: &File) -> std::io::Result<TensorData> {
        if self.contiguous() || self.shape.contains(&0) {
            return read_contiguous(file, self.start, self.shape.clone(), self.dtype);
        }
        // A view: read the span of storage it touches, then gather element by element.
        let numel: usize = self.shape.iter().product();
        let reach: u64 = self.shape.iter().zip(&self.stride).map(|(&n, &s)| (n as u64 - 1) * s).sum();
        let mut span = vec![0u8; (reach as usize + 1) * self.elem];
        file.read_exact_at(&mut span, self.start)?;
        let mut out = Vec::with_capacity(numel * self.elem);
        let mut index = vec![0usize; self.shape.len()];
        for _ in 0..numel {
            let at = index.iter().zip(&self.stride).map(|(&i, &s)| i as u64 * s).sum::<u64>() as usize * self.elem;
            out.extend_from_slice(&span[at..at + self.elem]);
            // Row-major increment of the multi-index.
            for d in (0..index.len()).rev() {
                index[d] += 1;
                if index[d] < self.shape[d] {
                    break;
                }
                index[d] = 0;
            }
        }
        Ok(decode_le(&out, self.shape.clone(), self.dtype))
    }
}

/// An opened PyTorch checkpoint: its tensors by key (data read on demand).
#[derive(Debug)]
pub(crate) struct PytorchFile {
    pub path: PathBuf,
    pub tensors: BTreeMap<String, Stored>,
    file: Arc<File>,
}

/// The dtype and element size of a PyTorch storage class.
fn storage_dtype(name: &str) -> Option<(DType, usize)> {
    Some(match name {
        "FloatStorage" => (DType::F32, 4),
        "DoubleStorage" => (DType::F64, 8),
        "HalfStorage" => (DType::F16, 2),
        "BFloat16Storage" => (DType::BF16, 2),
        "LongStorage" => (DType::I64, 8),
        "IntStorage" => (DType::I32, 4),
        "ShortStorage" => (DType::I16, 2),
        "CharStorage" => (DType::I8, 1),
        "ByteStorage" | "BoolStorage" => (DType::U8, 1),
        _ => return None,
    })
}

/// A zip entry's place and size.
struct Entry {
    start: u64,
    size: u64,
}

impl PytorchFile {
    /// Opens and validates a checkpoint.
    pub fn open(path: &Path) -> Result<Self, LoadError> {
        let format = |reason: String| LoadError::new(path, LoadErrorKind::Format, reason);
        let file = File::open(path).map_err(|e| LoadError::io(path, &e))?;
        let file_size = file.metadata().map_err(|e| LoadError::io(path, &e))?.len();
        let mut head = [0u8; 2];
        if file.read_exact_at(&mut head, 0).is_ok() && head[0] == 0x80 {
            return Err(format(
                "a legacy (PyTorch < 1.6) checkpoint; re-save it with torch.save on PyTorch ≥ 1.6, or convert it to \
                 safetensors"
                    .into(),
            ));
        }
        let mut archive = zip::ZipArchive::new(file.try_clone().map_err(|e| LoadError::io(path, &e))?)
            .map_err(|e| format(format!("not a PyTorch checkpoint (zip archive): {e}")))?;
        let mut entries = BTreeMap::new();
        for i in 0..archive.len() {
            let entry = archive.by_index_raw(i).map_err(|e| format(format!("unreadable archive entry {i}: {e}")))?;
            let name = entry.name().to_owned();
            if entry.compression() != zip::CompressionMethod::Stored {
                return Err(format(format!("entry {name} is compressed; torch.save stores entries uncompressed")));
            }
            let start = entry.data_start().ok_or_else(|| format(format!("entry {name} has no data offset")))?;
            let size = entry.size();
            if start.checked_add(size).is_none_or(|end| end > file_size) {
                return Err(format(format!(
                    "entry {name} declares {size} bytes past the end of the {file_size}-byte file"
                )));
            }
            if entries.insert(name.clone(), Entry { start, size }).is_some() {
                return Err(format(format!("entry {name} appears twice")));
            }
        }
        let (pkl_name, pkl) = entries
            .iter()
            .find(|(n, _)| n.ends_with("/data.pkl") || n.as_str() == "data.pkl")
            .ok_or_else(|| format("no data.pkl in the archive (not a torch.save checkpoint)".into()))?;
        let prefix = pkl_name.strip_suffix("data.pkl").unwrap_or_default().to_owned();
        let mut bytes = vec![0u8; pkl.size as usize];
        file.read_exact_at(&mut bytes, pkl.start).map_err(|e| LoadError::io(path, &e))?;
        if let Some(order) = entries.get(&format!("{prefix}byteorder")) {
            let mut b = vec![0u8; order.size.min(16) as usize];
            file.read_exact_at(&mut b, order.start).map_err(|e| LoadError::io(path, &e))?;
            if b != b"little" {
                return Err(format("big-endian checkpoints are not supported".into()));
            }
        }
        let pickle = pickle::parse(&bytes).map_err(|e| format(format!("{pkl_name}: {e}")))?;
        let state = state_dict(&pickle)
            .ok_or_else(|| format("no state dict (a dictionary of tensors) in the checkpoint".into()))?;
        let mut tensors = BTreeMap::new();
        for (key, value) in pickle.dict(state).into_iter().flatten() {
            let (Value::Str(key), Value::Tensor(record)) = (key, value) else { continue };
            let stored = validate(&pickle.tensors[*record], &entries, &prefix)
                .map_err(|reason| LoadError::tensor(path, key, LoadErrorKind::Format, reason))?;
            if tensors.insert(key.to_string(), stored).is_some() {
                return Err(LoadError::tensor(path, key, LoadErrorKind::Format, "appears twice in the state dict"));
            }
        }
        Ok(Self { path: path.to_owned(), tensors, file: Arc::new(file) })
    }

    /// Reads one tensor into host memory.
    pub fn read(&self, key: &str) -> Result<TensorData, LoadError> {
        let stored = self
            .tensors
            .get(key)
            .ok_or_else(|| LoadError::tensor(&self.path, key, LoadErrorKind::Missing, "not in the checkpoint"))?;
        stored.read(&self.file).map_err(|e| LoadError::tensor(&self.path, key, LoadErrorKind::Io, e.to_string()))
    }

    /// One lazily read snapshot per tensor, named by its key.
    pub fn snapshots(&self) -> Vec<TensorSnapshot> {
        self.tensors
            .iter()
            .map(|(name, stored)| {
                let (file, s) = (Arc::clone(&self.file), stored.clone());
                let read = Rc::new(move || {
                    s.read(&file).map_err(|e| TensorSnapshotError::IoError(format!("reading tensor data: {e}")))
                });
                let path_stack = name.split('.').map(str::to_owned).collect();
                TensorSnapshot::from_closure(
                    read,
                    stored.dtype,
                    stored.shape.clone().into(),
                    path_stack,
                    vec![],
                    ParamId::new(),
                )
            })
            .collect()
    }
}

/// The dictionary of weights: Lightning's `state_dict`, else the top-level dictionary itself.
fn state_dict(pickle: &Pickle) -> Option<&Value> {
    let mut items = pickle.dict(&pickle.top)?;
    let nested = items.find_map(|(k, v)| match k {
        Value::Str(k) if &**k == "state_dict" && pickle.dict(v).is_some() => Some(v),
        _ => None,
    });
    Some(nested.unwrap_or(&pickle.top))
}

/// Checks a tensor record against the archive; returns where and how to read it.
fn validate(record: &TensorRecord, entries: &BTreeMap<String, Entry>, prefix: &str) -> Result<Stored, String> {
    let (dtype, elem) = storage_dtype(&record.storage_type)
        .ok_or_else(|| format!("storage type {} is not supported", record.storage_type))?;
    let name = format!("{prefix}data/{}", record.key);
    let entry = entries.get(&name).ok_or_else(|| format!("its storage {name} is missing from the archive"))?;
    if entry.size % elem as u64 != 0 {
        return Err(format!("storage {name} holds {} bytes, not a whole number of {elem}-byte elements", entry.size));
    }
    let storage_numel = entry.size / elem as u64;
    if record.storage_numel.is_some_and(|n| n != storage_numel) {
        return Err(format!(
            "storage {name} holds {storage_numel} elements, the checkpoint says {} (truncated?)",
            record.storage_numel.unwrap_or_default()
        ));
    }
    if record.offset > storage_numel {
        return Err(format!("offset {} is past the {storage_numel} elements of storage {name}", record.offset));
    }
    let too_big = || format!("sizes {:?} with strides {:?} overflow", record.shape, record.stride);
    let numel = record.shape.iter().try_fold(1u64, |acc, &n| acc.checked_mul(n)).ok_or_else(too_big)?;
    let shape: Vec<usize> =
        record.shape.iter().map(|&n| usize::try_from(n)).collect::<Result<_, _>>().map_err(|_| too_big())?;
    if numel > 0 {
        let reach = record
            .shape
            .iter()
            .zip(&record.stride)
            .try_fold(record.offset, |acc, (&n, &s)| (n - 1).checked_mul(s).and_then(|r| acc.checked_add(r)));
        match reach {
            Some(last) if last < storage_numel => {}
            _ => {
                return Err(format!(
                    "offset {} with sizes {:?} and strides {:?} reaches past the {storage_numel} elements of storage {name}",
                    record.offset, record.shape, record.stride
                ));
            }
        }
    }
    let start = entry.start + record.offset * elem as u64;
    Ok(Stored { dtype, shape, stride: record.stride.clone(), start, elem })
}
