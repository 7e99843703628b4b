//! Plain host tensors for the parity runner: what the reference holds and what we computed.

use anyhow::{Context, Result, bail};

/// Element storage: the fixtures hold only `F32` and `I64` (booleans as 0/1 `I64`).
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// Floating-point values.
    F32(Vec<f32>),
    /// Integer values (ids, masks, labels, uint8 images).
    I64(Vec<i64>),
}

/// A host tensor: shape plus row-major values.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub values: Values,
}

impl HostTensor {
    /// A float tensor; panics if `shape` does not match (programmer error in a provider).
    pub fn f32(shape: Vec<usize>, values: Vec<f32>) -> Self {
        assert_eq!(shape.iter().product::<usize>(), values.len(), "shape {shape:?} vs {} values", values.len());
        Self { shape, values: Values::F32(values) }
    }

    /// An integer tensor; panics if `shape` does not match (programmer error in a provider).
    pub fn i64(shape: Vec<usize>, values: Vec<i64>) -> Self {
        assert_eq!(shape.iter().product::<usize>(), values.len(), "shape {shape:?} vs {} values", values.len());
        Self { shape, values: Values::I64(values) }
    }

    /// Integer tensor from any integer-like values.
    pub fn ints<T: Copy + Into<i64>>(shape: Vec<usize>, values: &[T]) -> Self {
        Self::i64(shape, values.iter().map(|&v| v.into()).collect())
    }

    /// Reads a device tensor back to the host as f32.
    pub fn from_tensor<B: burn::prelude::Backend, const D: usize>(
        t: burn::prelude::Tensor<B, D>,
    ) -> Result<Self, String> {
        let shape = t.dims().to_vec();
        let values = t.into_data().convert::<f32>().to_vec::<f32>().map_err(|e| format!("{e:?}"))?;
        Ok(Self::f32(shape, values))
    }

    /// Values as f32 (integers converted).
    pub fn to_f32_vec(&self) -> Vec<f32> {
        match &self.values {
            Values::F32(v) => v.clone(),
            Values::I64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }

    /// Values as f64 (for comparisons).
    pub fn as_f64(&self) -> Vec<f64> {
        match &self.values {
            Values::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            Values::I64(v) => v.iter().map(|&x| x as f64).collect(),
        }
    }

    /// Whether the values are integers.
    pub fn is_int(&self) -> bool {
        matches!(self.values, Values::I64(_))
    }
}

/// Reads every tensor of a `reference.safetensors` file.
pub fn read_safetensors(path: &std::path::Path) -> Result<Vec<(String, HostTensor)>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .with_context(|| format!("{}: not a valid safetensors file", path.display()))?;
    let mut out = Vec::new();
    for (name, view) in st.tensors() {
        let shape = view.shape().to_vec();
        let data = view.data();
        let values = match view.dtype() {
            safetensors::Dtype::F32 => {
                Values::F32(data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
            }
            safetensors::Dtype::I64 => Values::I64(
                data.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().expect("chunk of 8"))).collect(),
            ),
            other => bail!("{}: tensor {name} has dtype {other:?}; references hold only F32 and I64", path.display()),
        };
        out.push((name, HostTensor { shape, values }));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}
