//! A small, strict MessagePack codec (the subset openpi's `msgpack_numpy` produces and reads).
//!
//! Why our own instead of `rmpv`: every length a message declares is checked against the bytes
//! that are actually left before anything is allocated (each element needs at least one byte),
//! nesting is bounded, and extension types are refused — so a 5-byte message declaring 2³²
//! elements is an error, not an allocation. Messages are already bounded in size by the
//! WebSocket layer (`--max-message-bytes`).

use std::fmt;

/// A decoded MessagePack value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `nil` (Python `None`).
    Nil,
    /// `true` / `false`.
    Bool(bool),
    /// Any integer that fits `i64`.
    Int(i64),
    /// Integers above `i64::MAX`.
    UInt(u64),
    /// `float32`.
    F32(f32),
    /// `float64` (Python floats).
    F64(f64),
    /// UTF-8 string (Python `str`).
    Str(String),
    /// Byte string (Python `bytes`, NumPy array data).
    Bin(Vec<u8>),
    /// Array (Python list / tuple).
    Array(Vec<Value>),
    /// Map in wire order (Python dict).
    Map(Vec<(Value, Value)>),
}

/// Why a message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed msgpack: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

/// Deepest nesting accepted (openpi observations are 2–3 levels deep).
pub const MAX_DEPTH: usize = 32;

impl Value {
    /// The entry of a map whose key is the string or byte string `key` (openpi's NumPy maps use
    /// byte-string keys, dicts use strings).
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(entries) => entries.iter().find(|(k, _)| k.key_bytes() == Some(key.as_bytes())).map(|(_, v)| v),
            _ => None,
        }
    }

    fn key_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Str(s) => Some(s.as_bytes()),
            Value::Bin(b) => Some(b),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// A non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Int(i) => u64::try_from(*i).ok(),
            Value::UInt(u) => Some(*u),
            _ => None,
        }
    }

    /// Any number as `f64`.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::UInt(u) => Some(*u as f64),
            Value::F32(f) => Some(f64::from(*f)),
            Value::F64(f) => Some(*f),
            _ => None,
        }
    }

    /// A map from string keys (what openpi's `packb` makes of a `dict`).
    pub fn map<K: Into<String>>(entries: impl IntoIterator<Item = (K, Value)>) -> Self {
        Value::Map(entries.into_iter().map(|(k, v)| (Value::Str(k.into()), v)).collect())
    }

    /// A short description of the value's type, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::UInt(_) => "an integer",
            Value::F32(_) | Value::F64(_) => "a float",
            Value::Str(_) => "a string",
            Value::Bin(_) => "bytes",
            Value::Array(_) => "a list",
            Value::Map(_) => "a map",
        }
    }
}

/// Encodes `value` (strings as `str`, bytes as `bin`, as `msgpack.packb(use_bin_type=True)`).
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write(value, &mut out);
    out
}

fn write_len(out: &mut Vec<u8>, len: usize, fix: Option<(u8, usize)>, markers: [u8; 3]) {
    match fix {
        Some((base, max)) if len <= max => out.push(base | len as u8),
        _ if len <= 0xff && markers[0] != 0 => out.extend([markers[0], len as u8]),
        _ if len <= 0xffff => {
            out.push(markers[1]);
            out.extend((len as u16).to_be_bytes());
        }
        _ => {
            out.push(markers[2]);
            out.extend((len as u32).to_be_bytes());
        }
    }
}

fn write(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Nil => out.push(0xc0),
        Value::Bool(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Int(i) => write_int(*i, out),
        Value::UInt(u) => match i64::try_from(*u) {
            Ok(i) => write_int(i, out),
            Err(_) => {
                out.push(0xcf);
                out.extend(u.to_be_bytes());
            }
        },
        Value::F32(f) => {
            out.push(0xca);
            out.extend(f.to_be_bytes());
        }
        Value::F64(f) => {
            out.push(0xcb);
            out.extend(f.to_be_bytes());
        }
        Value::Str(s) => {
            write_len(out, s.len(), Some((0xa0, 31)), [0xd9, 0xda, 0xdb]);
            out.extend(s.as_bytes());
        }
        Value::Bin(b) => {
            write_len(out, b.len(), None, [0xc4, 0xc5, 0xc6]);
            out.extend(b);
        }
        Value::Array(items) => {
            write_len(out, items.len(), Some((0x90, 15)), [0, 0xdc, 0xdd]);
            items.iter().for_each(|v| write(v, out));
        }
        Value::Map(entries) => {
            write_len(out, entries.len(), Some((0x80, 15)), [0, 0xde, 0xdf]);
            for (k, v) in entries {
                write(k, out);
                write(v, out);
            }
        }
    }
}

fn write_int(i: i64, out: &mut Vec<u8>) {
    match i {
        0..=0x7f => out.push(i as u8),
        -32..=-1 => out.push(i as i8 as u8),
        0x80..=0xff => out.extend([0xcc, i as u8]),
        0x100..=0xffff => {
            out.push(0xcd);
            out.extend((i as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0xce);
            out.extend((i as u32).to_be_bytes());
        }
        0x1_0000_0000.. => {
            out.push(0xcf);
            out.extend((i as u64).to_be_bytes());
        }
        -0x80..=-33 => out.extend([0xd0, i as i8 as u8]),
        -0x8000..=-0x81 => {
            out.push(0xd1);
            out.extend((i as i16).to_be_bytes());
        }
        -0x8000_0000..=-0x8001 => {
            out.push(0xd2);
            out.extend((i as i32).to_be_bytes());
        }
        _ => {
            out.push(0xd3);
            out.extend(i.to_be_bytes());
        }
    }
}

/// Decodes exactly one value filling `bytes`.
///
/// # Errors
/// Truncated or trailing bytes, declared lengths beyond the message, nesting deeper than
/// [`MAX_DEPTH`], extension types, reserved markers, invalid UTF-8 in strings.
pub fn decode(bytes: &[u8]) -> Result<Value, DecodeError> {
    let mut r = Reader { bytes, pos: 0 };
    let v = r.value(0)?;
    if r.pos != bytes.len() {
        return Err(DecodeError(format!("{} trailing bytes after the value", bytes.len() - r.pos)));
    }
    Ok(v)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| DecodeError(format!("truncated: {n} bytes wanted at offset {}", self.pos)))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn be(&mut self, n: usize) -> Result<u64, DecodeError> {
        Ok(self.take(n)?.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    /// A declared count of items each taking at least `min_bytes`, checked against what is left.
    fn count(&mut self, n: u64, min_bytes: u64) -> Result<usize, DecodeError> {
        let left = (self.bytes.len() - self.pos) as u64;
        if n.saturating_mul(min_bytes) > left {
            return Err(DecodeError(format!("declares {n} items but only {left} bytes are left")));
        }
        Ok(n as usize)
    }

    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(DecodeError(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        let m = self.take(1)?[0];
        Ok(match m {
            0x00..=0x7f => Value::Int(i64::from(m)),
            0xe0..=0xff => Value::Int(i64::from(m as i8)),
            0x80..=0x8f => self.map(u64::from(m & 0x0f), depth)?,
            0x90..=0x9f => self.array(u64::from(m & 0x0f), depth)?,
            0xa0..=0xbf => self.str(u64::from(m & 0x1f))?,
            0xc0 => Value::Nil,
            0xc2 => Value::Bool(false),
            0xc3 => Value::Bool(true),
            0xc4 => {
                let n = self.be(1)?;
                self.bin(n)?
            }
            0xc5 => {
                let n = self.be(2)?;
                self.bin(n)?
            }
            0xc6 => {
                let n = self.be(4)?;
                self.bin(n)?
            }
            0xca => Value::F32(f32::from_bits(self.be(4)? as u32)),
            0xcb => Value::F64(f64::from_bits(self.be(8)?)),
            0xcc => Value::Int(self.be(1)? as i64),
            0xcd => Value::Int(self.be(2)? as i64),
            0xce => Value::Int(self.be(4)? as i64),
            0xcf => {
                let u = self.be(8)?;
                i64::try_from(u).map_or(Value::UInt(u), Value::Int)
            }
            0xd0 => Value::Int(i64::from(self.be(1)? as u8 as i8)),
            0xd1 => Value::Int(i64::from(self.be(2)? as u16 as i16)),
            0xd2 => Value::Int(i64::from(self.be(4)? as u32 as i32)),
            0xd3 => Value::Int(self.be(8)? as i64),
            0xd9 => {
                let n = self.be(1)?;
                self.str(n)?
            }
            0xda => {
                let n = self.be(2)?;
                self.str(n)?
            }
            0xdb => {
                let n = self.be(4)?;
                self.str(n)?
            }
            0xdc => {
                let n = self.be(2)?;
                self.array(n, depth)?
            }
            0xdd => {
                let n = self.be(4)?;
                self.array(n, depth)?
            }
            0xde => {
                let n = self.be(2)?;
                self.map(n, depth)?
            }
            0xdf => {
                let n = self.be(4)?;
                self.map(n, depth)?
            }
            0xc7..=0xc9 | 0xd4..=0xd8 => {
                return Err(DecodeError(format!("extension type (marker 0x{m:02x}) at offset {}", self.pos - 1)));
            }
            _ => return Err(DecodeError(format!("reserved marker 0x{m:02x} at offset {}", self.pos - 1))),
        })
    }

    fn bin(&mut self, n: u64) -> Result<Value, DecodeError> {
        let n = self.count(n, 1)?;
        Ok(Value::Bin(self.take(n)?.to_vec()))
    }

    fn str(&mut self, n: u64) -> Result<Value, DecodeError> {
        let n = self.count(n, 1)?;
        let at = self.pos;
        let s = std::str::from_utf8(self.take(n)?)
            .map_err(|_| DecodeError(format!("invalid UTF-8 in the string at offset {at}")))?;
        Ok(Value::Str(s.to_owned()))
    }

    fn array(&mut self, n: u64, depth: usize) -> Result<Value, DecodeError> {
        let n = self.count(n, 1)?;
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(self.value(depth + 1)?);
        }
        Ok(Value::Array(items))
    }

    fn map(&mut self, n: u64, depth: usize) -> Result<Value, DecodeError> {
        let n = self.count(n, 2)?;
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            let k = self.value(depth + 1)?;
            let v = self.value(depth + 1)?;
            entries.push((k, v));
        }
        Ok(Value::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_kind() {
        let v = Value::Map(vec![
            (
                Value::Str("a".into()),
                Value::Array(vec![Value::Int(0), Value::Int(-1), Value::Int(-33), Value::Int(200)]),
            ),
            (Value::Bin(b"k".to_vec()), Value::Bin(vec![1, 2, 3])),
            (Value::Str("x".repeat(40)), Value::F32(1.5)),
            (Value::Str("n".into()), Value::Array(vec![Value::Nil, Value::Bool(true), Value::F64(-2.25)])),
            (
                Value::Str("big".into()),
                Value::Array(vec![
                    Value::Int(70_000),
                    Value::Int(-70_000),
                    Value::Int(i64::MIN),
                    Value::UInt(u64::MAX),
                ]),
            ),
            (Value::Str("s".into()), Value::Str("é".repeat(200))),
        ]);
        assert_eq!(decode(&encode(&v)).unwrap(), v);
    }

    /// Bytes `msgpack.packb` (Python, use_bin_type=True) writes for
    /// `{"prompt": "hi", b"data": b"\x01", "n": [1, -2, 3.5]}`.
    #[test]
    fn reads_what_python_writes() {
        let py = [
            0x83, 0xa6, b'p', b'r', b'o', b'm', b'p', b't', 0xa2, b'h', b'i', 0xc4, 0x04, b'd', b'a', b't', b'a', 0xc4,
            0x01, 0x01, 0xa1, b'n', 0x93, 0x01, 0xfe, 0xcb, 0x40, 0x0c, 0, 0, 0, 0, 0, 0,
        ];
        let v = decode(&py).unwrap();
        assert_eq!(v.get("prompt").and_then(Value::as_str), Some("hi"));
        assert_eq!(v.get("data"), Some(&Value::Bin(vec![1])));
        assert_eq!(v.get("n"), Some(&Value::Array(vec![Value::Int(1), Value::Int(-2), Value::F64(3.5)])));
        assert_eq!(encode(&v), py);
    }

    #[test]
    fn hostile_messages_are_errors_without_allocating() {
        for (bytes, what) in [
            (vec![0xdd, 0xff, 0xff, 0xff, 0xff], "declares"),
            (vec![0xdf, 0xff, 0xff, 0xff, 0xff, 0x00], "declares"),
            (vec![0xc6, 0xff, 0xff, 0xff, 0xff], "declares"),
            (vec![0xdb, 0x7f, 0xff, 0xff, 0xff, b'a'], "declares"),
            (vec![0xc7, 0x01, 0x05, 0x00], "extension"),
            (vec![0xc1], "reserved"),
            (vec![0xa2, 0xff, 0xfe], "UTF-8"),
            (vec![0xcb, 0x00], "truncated"),
            (vec![0x01, 0x02], "trailing"),
            (vec![], "truncated"),
        ] {
            let err = decode(&bytes).unwrap_err().to_string();
            assert!(err.contains(what), "{bytes:?}: {err}");
        }
        let deep: Vec<u8> = std::iter::repeat_n(0x91, 100).chain([0xc0]).collect();
        assert!(decode(&deep).unwrap_err().to_string().contains("nested"));
    }
}
