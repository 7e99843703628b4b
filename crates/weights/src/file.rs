//! Tensor snapshots of a safetensors file, read on demand with positioned reads.
//!
//! burn-store's `SafetensorsStore` memory-maps the file: every weight page it touches is mapped
//! into the process, so loading a model counted the whole checkpoint twice in the resident set
//! (mapped file pages + the model's own tensors; measured 2.05× the file size). Reading each tensor
//! with `pread` into the buffer that becomes the tensor keeps the file in the page cache only,
//! outside the process: peak RSS is the model plus one tensor in flight. Data is read in chunks
//! straight into a typed (aligned) vector, so no full-size byte copy is made either.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::rc::Rc;

use burn::module::ParamId;
use burn::store::{TensorSnapshot, TensorSnapshotError};
use burn::tensor::{DType, TensorData};

/// Header entry of one tensor.
#[derive(serde::Deserialize)]
struct Entry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: (u64, u64),
}

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

/// Bytes read per `pread`: the only transient buffer of a load.
const CHUNK: usize = 8 << 20;

/// Reads `count` little-endian elements of `N` bytes at `pos` into a typed vector, chunk by chunk,
/// so the tensor's own (correctly aligned) buffer is the only full-size allocation.
fn read_vec<T, const N: usize>(file: &File, pos: u64, count: usize, conv: fn([u8; N]) -> T) -> std::io::Result<Vec<T>> {
    let mut out = Vec::with_capacity(count);
    let mut buf = vec![0u8; CHUNK.min(count * N).max(N)];
    let mut done = 0usize;
    while done < count {
        let n = (count - done).min(buf.len() / N);
        let bytes = &mut buf[..n * N];
        file.read_exact_at(bytes, pos + (done * N) as u64)?;
        out.extend(bytes.chunks_exact(N).map(|c| conv(c.try_into().expect("chunks_exact"))));
        done += n;
    }
    Ok(out)
}

fn read_data(file: &File, pos: u64, shape: Vec<usize>, dtype: DType) -> std::io::Result<TensorData> {
    use burn::tensor::{bf16, f16};
    let count: usize = shape.iter().product();
    Ok(match dtype {
        DType::F32 => TensorData::new(read_vec(file, pos, count, f32::from_le_bytes)?, shape),
        DType::F16 => TensorData::new(read_vec(file, pos, count, |b| f16::from_bits(u16::from_le_bytes(b)))?, shape),
        DType::BF16 => TensorData::new(read_vec(file, pos, count, |b| bf16::from_bits(u16::from_le_bytes(b)))?, shape),
        DType::F64 => TensorData::new(read_vec(file, pos, count, f64::from_le_bytes)?, shape),
        DType::I64 => TensorData::new(read_vec(file, pos, count, i64::from_le_bytes)?, shape),
        DType::I32 => TensorData::new(read_vec(file, pos, count, i32::from_le_bytes)?, shape),
        DType::I16 => TensorData::new(read_vec(file, pos, count, i16::from_le_bytes)?, shape),
        DType::I8 => TensorData::new(read_vec(file, pos, count, i8::from_le_bytes)?, shape),
        DType::U64 => TensorData::new(read_vec(file, pos, count, u64::from_le_bytes)?, shape),
        DType::U32 => TensorData::new(read_vec(file, pos, count, u32::from_le_bytes)?, shape),
        DType::U16 => TensorData::new(read_vec(file, pos, count, u16::from_le_bytes)?, shape),
        _ => TensorData::new(read_vec(file, pos, count, u8::from_le_bytes)?, shape),
    })
}

/// One lazily read snapshot per tensor of `path`, named by its safetensors key (dots split into
/// the path stack, as burn-store does). The header is validated against the file size first.
pub(crate) fn snapshots(path: &Path) -> Result<Vec<TensorSnapshot>, String> {
    let file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let size = file.metadata().map_err(|e| e.to_string())?.len();
    let mut n = [0u8; 8];
    file.read_exact_at(&mut n, 0).map_err(|_| "not a safetensors file (shorter than its header)".to_owned())?;
    let n = u64::from_le_bytes(n);
    if n > 100_000_000 || 8 + n > size {
        return Err(format!("corrupt safetensors header: length {n} for a {size}-byte file"));
    }
    let mut header = vec![0u8; n as usize];
    file.read_exact_at(&mut header, 8).map_err(|e| format!("cannot read the header: {e}"))?;
    let entries: std::collections::BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| format!("corrupt safetensors header: {e}"))?;
    let data_start = 8 + n;
    let file = Rc::new(file);
    let mut out = Vec::with_capacity(entries.len());
    for (name, value) in entries {
        if name == "__metadata__" {
            continue;
        }
        let entry: Entry = serde_json::from_value(value).map_err(|e| format!("{name}: bad header entry: {e}"))?;
        let (dt, elem) = dtype(&entry.dtype)
            .ok_or_else(|| format!("{name}: unsupported dtype {} (F32, F16, BF16, F64)", entry.dtype))?;
        let (start, end) = entry.data_offsets;
        let numel: u64 = entry.shape.iter().map(|&d| d as u64).product();
        if end < start || data_start + end > size || end - start != numel * elem as u64 {
            return Err(format!(
                "{name}: data offsets {start}..{end} do not fit shape {:?} {} in a {size}-byte file",
                entry.shape, entry.dtype
            ));
        }
        let (file, shape) = (Rc::clone(&file), entry.shape.clone());
        let read = Rc::new(move || {
            read_data(&file, data_start + start, shape.clone(), dt)
                .map_err(|e| TensorSnapshotError::IoError(format!("reading tensor data: {e}")))
        });
        let path_stack = name.split('.').map(str::to_owned).collect();
        out.push(TensorSnapshot::from_closure(read, dt, entry.shape.into(), path_stack, vec![], ParamId::new()));
    }
    Ok(out)
}
