//! NumPy arrays in openpi's msgpack encoding (`openpi_client.msgpack_numpy`): a map with
//! byte-string keys `__ndarray__` (true), `data` (raw little-endian bytes), `dtype` (NumPy's
//! dtype string, e.g. `|u1`, `<f4`) and `shape` (a list).

use crate::msgpack::Value;

/// Largest dimension accepted in a received array (an image side of 16,384 is already far
/// beyond any camera).
const MAX_DIM: u64 = 1 << 14;

/// A float32 array, as `np.asarray(values, np.float32).reshape(shape)` encodes.
pub fn f32_array(shape: &[usize], values: &[f32]) -> Value {
    debug_assert_eq!(shape.iter().product::<usize>(), values.len());
    let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    array("<f4", shape, data)
}

/// An int64 array.
pub fn i64_array(shape: &[usize], values: &[i64]) -> Value {
    let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    array("<i8", shape, data)
}

/// A uint8 array (images).
pub fn u8_array(shape: &[usize], values: Vec<u8>) -> Value {
    array("|u1", shape, values)
}

fn array(dtype: &str, shape: &[usize], data: Vec<u8>) -> Value {
    let key = |k: &str| Value::Bin(k.as_bytes().to_vec());
    Value::Map(vec![
        (key("__ndarray__"), Value::Bool(true)),
        (key("data"), Value::Bin(data)),
        (key("dtype"), Value::Str(dtype.into())),
        (key("shape"), Value::Array(shape.iter().map(|&d| Value::Int(d as i64)).collect())),
    ])
}

/// A received array: dtype string, shape and raw bytes, checked to agree.
#[derive(Debug, Clone, PartialEq)]
pub struct Array<'a> {
    /// NumPy dtype string as sent.
    pub dtype: &'a str,
    /// Dimensions.
    pub shape: Vec<usize>,
    /// `product(shape) × itemsize` bytes.
    pub data: &'a [u8],
}

/// Bytes per element of the dtypes we read.
fn item_size(dtype: &str) -> Option<usize> {
    Some(match dtype {
        "|u1" | "|i1" | "|b1" | "u1" | "uint8" => 1,
        "<u2" | "<i2" | "<f2" => 2,
        "<u4" | "<i4" | "<f4" => 4,
        "<u8" | "<i8" | "<f8" => 8,
        _ => return None,
    })
}

/// Reads `value` as an openpi NumPy array, checking the declared shape against the bytes sent
/// (no allocation: the data is borrowed).
///
/// # Errors
/// A one-line reason naming `what` (the observation key).
pub fn read<'a>(value: &'a Value, what: &str) -> Result<Array<'a>, String> {
    if value.get("__ndarray__").and_then(Value::as_bool) != Some(true) {
        return Err(format!("`{what}` must be a NumPy array (openpi msgpack_numpy), got {}", value.kind()));
    }
    let dtype = value.get("dtype").and_then(|d| match d {
        Value::Str(s) => Some(s.as_str()),
        Value::Bin(b) => std::str::from_utf8(b).ok(),
        _ => None,
    });
    let dtype = dtype.ok_or_else(|| format!("`{what}`: array without a dtype string"))?;
    let shown: String = dtype.chars().take(12).collect();
    let size = item_size(dtype).ok_or_else(|| format!("`{what}`: unsupported dtype {shown:?}"))?;
    let Some(Value::Array(dims)) = value.get("shape") else {
        return Err(format!("`{what}`: array without a shape list"));
    };
    if dims.len() > 8 {
        return Err(format!("`{what}`: {} dimensions", dims.len()));
    }
    let mut shape = Vec::with_capacity(dims.len());
    for d in dims {
        match d.as_u64() {
            Some(n) if n <= MAX_DIM => shape.push(n as usize),
            _ => return Err(format!("`{what}`: shape entries must be integers in 0..={MAX_DIM}")),
        }
    }
    let Some(Value::Bin(data)) = value.get("data") else {
        return Err(format!("`{what}`: array without data bytes"));
    };
    let want = shape.iter().try_fold(size, |acc, &d| acc.checked_mul(d));
    if want != Some(data.len()) {
        return Err(format!("`{what}`: shape {shape:?} of {shown} needs {want:?} bytes, got {}", data.len()));
    }
    Ok(Array { dtype, shape, data })
}

/// A float32 array's values (little-endian), as `read` validated it.
pub fn f32_values(a: &Array<'_>) -> Option<Vec<f32>> {
    (a.dtype == "<f4").then(|| a.data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msgpack::{decode, encode};

    #[test]
    fn round_trip_and_validation() {
        let v = decode(&encode(&f32_array(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]))).unwrap();
        let a = read(&v, "x").unwrap();
        assert_eq!((a.dtype, a.shape.clone()), ("<f4", vec![2, 3]));
        assert_eq!(f32_values(&a).unwrap(), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);

        let lie = u8_array(&[100_000, 100_000, 3], vec![0; 12]);
        assert!(read(&lie, "img").unwrap_err().contains("shape entries"));
        let short = u8_array(&[2, 2, 3], vec![0; 11]);
        assert!(read(&short, "img").unwrap_err().contains("needs"));
        let mut odd = u8_array(&[1], vec![0]);
        if let Value::Map(e) = &mut odd {
            e[2].1 = Value::Str("|O".into());
        }
        assert!(read(&odd, "img").unwrap_err().contains("unsupported dtype"));
        assert!(read(&Value::Str("x".into()), "img").unwrap_err().contains("NumPy array"));
    }
}
