//! A pickle *parser* for PyTorch checkpoints: it reads the opcode stream into plain values and
//! never executes anything. Callables (`GLOBAL`) become names; `REDUCE` of the few PyTorch
//! reconstructors that matter becomes a tensor record or a dictionary, every other call an opaque
//! value.
//!
//! Hostile input is expected, so the machine is flat: containers live in an arena and values refer
//! to them by index (no recursion when building, walking or dropping, however deep the nesting;
//! shared and mutated containers behave as in Python), strings are shared rather than copied when
//! the memo recalls them, every operation does O(1) work per value it touches, and malformed input
//! is an error, never a panic.
//!
//! Reference: CPython `Lib/pickletools.py` (opcode table), PyTorch `torch/serialization.py`
//! (`_save`, `persistent_id`) and `torch/_utils.py` (`_rebuild_tensor_v2`).

use std::collections::HashMap;
use std::rc::Rc;

/// A value of the pickle stream. Containers, persistent ids and tensors are indices into the
/// [`Pickle`]'s tables.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    None,
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    /// `GLOBAL module name`: a reference to a callable or class, never resolved.
    Global(Rc<str>, Rc<str>),
    /// A tuple, list or dictionary: index into [`Pickle::containers`].
    Container(usize),
    /// `BINPERSID`: a persistent id (PyTorch: a storage reference); its tuple's container index.
    Persistent(usize),
    /// A tensor record: index into [`Pickle::tensors`].
    Tensor(usize),
    /// Any other object or call result (kept opaque: never inspected, never run).
    Opaque,
}

/// What `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)` describes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TensorRecord {
    /// Storage class name (`FloatStorage`, `BFloat16Storage`, ...).
    pub storage_type: String,
    /// Storage key: the archive entry `data/<key>`.
    pub key: String,
    /// Elements in the whole storage, as the persistent id states it.
    pub storage_numel: Option<u64>,
    /// First element of the tensor within the storage.
    pub offset: u64,
    /// Sizes.
    pub shape: Vec<u64>,
    /// Strides in elements.
    pub stride: Vec<u64>,
}

/// Kind of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Tuple,
    List,
    /// Items are flattened `key, value` pairs.
    Dict,
}

/// A tuple, list or dictionary.
#[derive(Debug)]
pub(crate) struct Container {
    pub kind: Kind,
    pub items: Vec<Value>,
}

/// A parsed pickle: its top value and the tables its values point into.
#[derive(Debug)]
pub(crate) struct Pickle {
    pub top: Value,
    pub containers: Vec<Container>,
    pub tensors: Vec<TensorRecord>,
}

impl Pickle {
    /// The key/value pairs of a dictionary value.
    pub fn dict(&self, v: &Value) -> Option<impl Iterator<Item = (&Value, &Value)>> {
        match v {
            Value::Container(i) if self.containers[*i].kind == Kind::Dict => {
                Some(self.containers[*i].items.chunks_exact(2).map(|p| (&p[0], &p[1])))
            }
            _ => None,
        }
    }
}

/// A byte cursor whose reads fail instead of panicking.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or("pickle ends in the middle of an opcode")?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn len_u64(&mut self) -> Result<usize, String> {
        usize::try_from(u64::from_le_bytes(self.array()?)).map_err(|_| "length does not fit in memory".to_owned())
    }
    fn line(&mut self) -> Result<&'a str, String> {
        let rest = &self.data[self.pos..];
        let n = rest.iter().position(|&b| b == b'\n').ok_or("unterminated text line in pickle")?;
        self.pos += n + 1;
        std::str::from_utf8(&rest[..n]).map_err(|_| "text line in pickle is not UTF-8".to_owned())
    }
    fn text(&mut self, n: usize) -> Result<Rc<str>, String> {
        std::str::from_utf8(self.take(n)?).map(Rc::from).map_err(|_| "string in pickle is not UTF-8".to_owned())
    }
}

/// The pickle virtual machine's state.
struct Machine {
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    containers: Vec<Container>,
    tensors: Vec<TensorRecord>,
}

impl Machine {
    fn push_container(&mut self, kind: Kind, items: Vec<Value>) {
        self.containers.push(Container { kind, items });
        self.stack.push(Value::Container(self.containers.len() - 1));
    }

    fn pop(&mut self) -> Result<Value, String> {
        self.stack.pop().ok_or_else(|| "pickle stack underflow".to_owned())
    }

    fn top(&self) -> Result<&Value, String> {
        self.stack.last().ok_or_else(|| "pickle stack underflow".to_owned())
    }

    /// The values pushed since the last MARK (which is removed).
    fn pop_mark(&mut self) -> Result<Vec<Value>, String> {
        let mark = self.marks.pop().ok_or("pickle MARK missing")?;
        if mark > self.stack.len() {
            return Err("pickle MARK points past the stack".into());
        }
        Ok(self.stack.split_off(mark))
    }

    /// Adds items to the list or dictionary on top of the stack (other targets ignore them, as
    /// an object we never build would absorb them).
    fn extend_top(&mut self, kind: Kind, values: Vec<Value>) -> Result<(), String> {
        if kind == Kind::Dict && !values.len().is_multiple_of(2) {
            return Err("odd number of values for dictionary items".into());
        }
        if let Value::Container(i) = *self.top()? {
            let target = &mut self.containers[i];
            if target.kind == kind {
                target.items.extend(values);
            }
        }
        Ok(())
    }

    fn memoize(&mut self, key: u32) -> Result<(), String> {
        let v = self.top()?.clone();
        self.memo.insert(key, v);
        Ok(())
    }

    fn recall(&mut self, key: u32) -> Result<(), String> {
        let v = self.memo.get(&key).ok_or_else(|| format!("pickle memo key {key} is unset"))?.clone();
        self.stack.push(v);
        Ok(())
    }

    fn int_list(&self, v: &Value, what: &str) -> Result<Vec<u64>, String> {
        let items = match v {
            Value::Container(i) if self.containers[*i].kind != Kind::Dict => &self.containers[*i].items,
            _ => return Err(format!("tensor {what} is not a tuple")),
        };
        items
            .iter()
            .map(|x| match x {
                Value::Int(i) => u64::try_from(*i).map_err(|_| format!("tensor {what} holds a negative value")),
                _ => Err(format!("tensor {what} holds a non-integer")),
            })
            .collect()
    }

    /// `REDUCE(callable, args)` without running anything: PyTorch's tensor reconstructors and
    /// `OrderedDict` are understood, every other call is opaque.
    fn reduce(&mut self, callable: Value, args: Value) -> Result<Value, String> {
        let Value::Global(module, name) = &callable else { return Ok(Value::Opaque) };
        let args: Vec<Value> = match &args {
            Value::Container(i) if self.containers[*i].kind == Kind::Tuple => self.containers[*i].items.clone(),
            _ => return Ok(Value::Opaque),
        };
        match (&**module, &**name) {
            ("collections", "OrderedDict") if args.is_empty() => {
                self.containers.push(Container { kind: Kind::Dict, items: Vec::new() });
                Ok(Value::Container(self.containers.len() - 1))
            }
            ("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor") => {
                let record = self.tensor_record(&args)?;
                self.tensors.push(record);
                Ok(Value::Tensor(self.tensors.len() - 1))
            }
            // A Parameter wraps its data tensor.
            ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
                Ok(args.first().cloned().unwrap_or(Value::Opaque))
            }
            _ => Ok(Value::Opaque),
        }
    }

    fn tensor_record(&self, args: &[Value]) -> Result<TensorRecord, String> {
        let [Value::Persistent(id), offset, shape, stride, ..] = args else {
            return Err("a tensor record is not (storage, offset, size, stride, ...)".into());
        };
        let id = &self.containers[*id].items;
        let (storage_type, key) = match id.as_slice() {
            [Value::Str(tag), Value::Global(_, ty), Value::Str(key), ..] if &**tag == "storage" => {
                (ty.to_string(), key.to_string())
            }
            _ => return Err("a storage persistent id is not ('storage', Type, key, ...)".into()),
        };
        let storage_numel = match id.get(4) {
            Some(Value::Int(n)) => u64::try_from(*n).ok(),
            _ => None,
        };
        let Value::Int(offset) = offset else { return Err("a tensor's storage offset is not an integer".into()) };
        let offset = u64::try_from(*offset).map_err(|_| "a tensor's storage offset is negative")?;
        let (shape, stride) = (self.int_list(shape, "size")?, self.int_list(stride, "stride")?);
        if shape.len() != stride.len() {
            return Err(format!("a tensor has {} sizes but {} strides", shape.len(), stride.len()));
        }
        Ok(TensorRecord { storage_type, key, storage_numel, offset, shape, stride })
    }
}

/// Parses a pickle stream (protocols 0-5) into its top value and tables.
pub(crate) fn parse(data: &[u8]) -> Result<Pickle, String> {
    let mut r = Reader { data, pos: 0 };
    let mut m = Machine {
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        containers: Vec::new(),
        tensors: Vec::new(),
    };
    loop {
        let at = r.pos;
        let op = r.u8()?;
        match op {
            0x80 => {
                r.u8()?; // PROTO n
            }
            0x95 => {
                r.len_u64()?; // FRAME: transparent to a reader of the whole stream
            }
            b'.' => {
                let top = m.pop()?; // STOP
                return Ok(Pickle { top, containers: m.containers, tensors: m.tensors });
            }
            b'(' => m.marks.push(m.stack.len()),
            b'0' => {
                m.pop()?;
            }
            b'1' => {
                m.pop_mark()?;
            }
            b'2' => {
                let v = m.top()?.clone();
                m.stack.push(v);
            }
            b'N' => m.stack.push(Value::None),
            0x88 => m.stack.push(Value::Int(1)), // NEWTRUE
            0x89 => m.stack.push(Value::Int(0)), // NEWFALSE
            b'J' => m.stack.push(Value::Int(i64::from(i32::from_le_bytes(r.array()?)))),
            b'K' => m.stack.push(Value::Int(i64::from(r.u8()?))),
            b'M' => m.stack.push(Value::Int(i64::from(u16::from_le_bytes(r.array()?)))),
            0x8a | 0x8b => {
                // LONG1 / LONG4: little-endian two's complement of n bytes.
                let n = if op == 0x8a { usize::from(r.u8()?) } else { r.u32()? as usize };
                let bytes = r.take(n)?;
                m.stack.push(if n > 8 {
                    Value::Opaque // beyond i64: never a size we use
                } else {
                    let mut buf = [if bytes.last().is_some_and(|&b| b & 0x80 != 0) { 0xff } else { 0 }; 8];
                    buf[..n].copy_from_slice(bytes);
                    Value::Int(i64::from_le_bytes(buf))
                });
            }
            b'I' | b'L' => {
                let line = r.line()?.trim_end_matches('L');
                m.stack.push(line.parse().map(Value::Int).unwrap_or(Value::Opaque));
            }
            b'G' => m.stack.push(Value::Float(f64::from_be_bytes(r.array()?))),
            b'F' => {
                let v = r.line()?.parse().map(Value::Float).unwrap_or(Value::Opaque);
                m.stack.push(v);
            }
            b'X' => {
                let n = r.u32()? as usize;
                let s = r.text(n)?;
                m.stack.push(Value::Str(s));
            }
            0x8c => {
                let n = usize::from(r.u8()?);
                let s = r.text(n)?;
                m.stack.push(Value::Str(s));
            }
            0x8d => {
                let n = r.len_u64()?;
                let s = r.text(n)?;
                m.stack.push(Value::Str(s));
            }
            b'V' | b'S' => {
                // UNICODE (raw-unicode-escape) / STRING (quoted repr): kept as written.
                let s = r.line()?.trim_matches(|c| c == '\'' || c == '"');
                m.stack.push(Value::Str(Rc::from(s)));
            }
            b'T' | b'B' => {
                let n = r.u32()? as usize;
                m.stack.push(Value::Bytes(Rc::from(r.take(n)?)));
            }
            b'U' | b'C' => {
                let n = usize::from(r.u8()?);
                m.stack.push(Value::Bytes(Rc::from(r.take(n)?)));
            }
            0x8e | 0x96 => {
                let n = r.len_u64()?;
                m.stack.push(Value::Bytes(Rc::from(r.take(n)?)));
            }
            b')' => m.push_container(Kind::Tuple, Vec::new()),
            b't' => {
                let items = m.pop_mark()?;
                m.push_container(Kind::Tuple, items);
            }
            0x85..=0x87 => {
                let n = usize::from(op - 0x84); // TUPLE1..3
                let items =
                    m.stack.len().checked_sub(n).map(|at| m.stack.split_off(at)).ok_or("pickle stack underflow")?;
                m.push_container(Kind::Tuple, items);
            }
            b']' => m.push_container(Kind::List, Vec::new()),
            b'l' => {
                let items = m.pop_mark()?;
                m.push_container(Kind::List, items);
            }
            b'}' => m.push_container(Kind::Dict, Vec::new()),
            b'd' => {
                let items = m.pop_mark()?;
                if items.len() % 2 != 0 {
                    return Err("odd number of values for dictionary items".into());
                }
                m.push_container(Kind::Dict, items);
            }
            b'a' => {
                let v = m.pop()?;
                m.extend_top(Kind::List, vec![v])?;
            }
            b'e' => {
                let items = m.pop_mark()?;
                m.extend_top(Kind::List, items)?;
            }
            b's' => {
                let v = m.pop()?;
                let k = m.pop()?;
                m.extend_top(Kind::Dict, vec![k, v])?;
            }
            b'u' => {
                let items = m.pop_mark()?;
                m.extend_top(Kind::Dict, items)?;
            }
            0x8f => m.stack.push(Value::Opaque), // EMPTY_SET
            0x90 => {
                m.pop_mark()?; // ADDITEMS (to a set: ignored)
            }
            0x91 => {
                m.pop_mark()?; // FROZENSET
                m.stack.push(Value::Opaque);
            }
            b'c' => {
                let module = Rc::from(r.line()?);
                let name = Rc::from(r.line()?);
                m.stack.push(Value::Global(module, name));
            }
            0x93 => {
                let name = m.pop()?; // STACK_GLOBAL
                let module = m.pop()?;
                match (module, name) {
                    (Value::Str(module), Value::Str(name)) => m.stack.push(Value::Global(module, name)),
                    _ => return Err("STACK_GLOBAL needs two strings".into()),
                }
            }
            b'R' => {
                let args = m.pop()?;
                let callable = m.pop()?;
                let v = m.reduce(callable, args)?;
                m.stack.push(v);
            }
            0x81 => {
                m.pop()?; // NEWOBJ cls args: an object we never build
                m.pop()?;
                m.stack.push(Value::Opaque);
            }
            0x92 => {
                m.pop()?; // NEWOBJ_EX cls args kwargs
                m.pop()?;
                m.pop()?;
                m.stack.push(Value::Opaque);
            }
            b'o' => {
                m.pop_mark()?; // OBJ
                m.stack.push(Value::Opaque);
            }
            b'i' => {
                r.line()?; // INST module\nname\n
                r.line()?;
                m.pop_mark()?;
                m.stack.push(Value::Opaque);
            }
            b'b' => {
                m.pop()?; // BUILD: the state of an object we never build (a dict keeps its items)
                m.top()?;
            }
            b'Q' => match m.pop()? {
                // BINPERSID: PyTorch's storage ids are tuples.
                Value::Container(i) if m.containers[i].kind == Kind::Tuple => m.stack.push(Value::Persistent(i)),
                _ => m.stack.push(Value::Opaque),
            },
            b'P' => {
                r.line()?; // PERSID (text ids: not PyTorch's)
                m.stack.push(Value::Opaque);
            }
            b'q' => {
                let key = u32::from(r.u8()?);
                m.memoize(key)?;
            }
            b'r' => {
                let key = r.u32()?;
                m.memoize(key)?;
            }
            0x94 => {
                let key = u32::try_from(m.memo.len()).map_err(|_| "memo too large")?; // MEMOIZE
                m.memoize(key)?;
            }
            b'p' => {
                let key = r.line()?.parse().map_err(|_| "bad PUT index")?;
                m.memoize(key)?;
            }
            b'h' => {
                let key = u32::from(r.u8()?);
                m.recall(key)?;
            }
            b'j' => {
                let key = r.u32()?;
                m.recall(key)?;
            }
            b'g' => {
                let key = r.line()?.parse().map_err(|_| "bad GET index")?;
                m.recall(key)?;
            }
            0x82..=0x84 => {
                let n = [1, 2, 4][usize::from(op - 0x82)]; // EXT1/2/4: registry codes
                r.take(n)?;
                m.stack.push(Value::Opaque);
            }
            other => return Err(format!("unsupported pickle opcode 0x{other:02x} at byte {at}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `{'w': _rebuild_tensor_v2(('storage', torch.FloatStorage, '0', 'cpu', 6), 0, (2, 3), (3, 1), False, OrderedDict())}`
    fn state_dict_pickle() -> Vec<u8> {
        let mut p =
            b"\x80\x02}q\x00(X\x01\x00\x00\x00wq\x01ctorch._utils\n_rebuild_tensor_v2\nq\x02((X\x07\x00\x00\x00storage"
                .to_vec();
        p.extend_from_slice(b"ctorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x06tQK\x00K\x02K\x03\x86K\x03K\x01\x86\x89ccollections\nOrderedDict\n)RtRu.");
        p
    }

    #[test]
    fn parses_a_state_dict_entry() {
        let p = parse(&state_dict_pickle()).unwrap();
        let (k, v) = p.dict(&p.top).unwrap().next().unwrap();
        assert_eq!(k, &Value::Str(Rc::from("w")));
        let Value::Tensor(t) = v else { panic!("{v:?}") };
        let t = &p.tensors[*t];
        assert_eq!((t.storage_type.as_str(), t.key.as_str(), t.storage_numel), ("FloatStorage", "0", Some(6)));
        assert_eq!(
            (t.offset, t.shape.as_slice(), t.stride.as_slice()),
            (0, [2u64, 3].as_slice(), [3u64, 1].as_slice())
        );
    }

    #[test]
    fn malformed_streams_are_errors() {
        for bad in
            [&b""[..], b"\x80", b"h\x05.", b"t.", b"X\xff\xff\xff\xff", b"\x80\x02(", b"R.", b"\xff", b"}K\x01s."]
        {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        // Every truncation of a valid stream is an error, never a panic.
        let good = state_dict_pickle();
        for n in 0..good.len() {
            assert!(parse(&good[..n]).is_err(), "prefix of {n} bytes");
        }
    }

    #[test]
    fn deep_nesting_is_flat() {
        // 100,000 nested tuples: built, walked and dropped without recursion.
        let mut nest = b"\x80\x02".to_vec();
        nest.extend(std::iter::repeat_n(b'(', 100_000));
        nest.push(b')');
        nest.extend(std::iter::repeat_n(b't', 100_000));
        nest.push(b'.');
        let p = parse(&nest).unwrap();
        assert_eq!(p.containers.len(), 100_001);
    }
}
