//! Reading tensor data: little-endian bytes in a file (positioned reads) or in memory, into the
//! typed buffer that becomes the tensor.

use std::fs::File;
use std::os::unix::fs::FileExt;

use burn::tensor::{DType, TensorData};

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
        out.extend(bytes.chunks_exact(N).map(|c| conv(c.try_into().expect("chunks_exact yields N bytes"))));
        done += n;
    }
    Ok(out)
}

/// Reads a row-major tensor of `dtype` and `shape` stored little-endian at `pos`.
pub(crate) fn read_contiguous(file: &File, pos: u64, shape: Vec<usize>, dtype: DType) -> std::io::Result<TensorData> {
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

/// Converts little-endian bytes (already in row-major order) to a tensor of `dtype`.
pub(crate) fn decode_le(bytes: &[u8], shape: Vec<usize>, dtype: DType) -> TensorData {
    use burn::tensor::{bf16, f16};
    fn conv<T, const N: usize>(bytes: &[u8], f: fn([u8; N]) -> T) -> Vec<T> {
        bytes.chunks_exact(N).map(|c| f(c.try_into().expect("chunks_exact yields N bytes"))).collect()
    }
    match dtype {
        DType::F32 => TensorData::new(conv(bytes, f32::from_le_bytes), shape),
        DType::F16 => TensorData::new(conv(bytes, |b| f16::from_bits(u16::from_le_bytes(b))), shape),
        DType::BF16 => TensorData::new(conv(bytes, |b| bf16::from_bits(u16::from_le_bytes(b))), shape),
        DType::F64 => TensorData::new(conv(bytes, f64::from_le_bytes), shape),
        DType::I64 => TensorData::new(conv(bytes, i64::from_le_bytes), shape),
        DType::I32 => TensorData::new(conv(bytes, i32::from_le_bytes), shape),
        DType::I16 => TensorData::new(conv(bytes, i16::from_le_bytes), shape),
        DType::I8 => TensorData::new(conv(bytes, i8::from_le_bytes), shape),
        DType::U64 => TensorData::new(conv(bytes, u64::from_le_bytes), shape),
        DType::U32 => TensorData::new(conv(bytes, u32::from_le_bytes), shape),
        DType::U16 => TensorData::new(conv(bytes, u16::from_le_bytes), shape),
        _ => TensorData::new(bytes.to_vec(), shape),
    }
}
