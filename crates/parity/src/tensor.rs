//! Plain host tensors for the parity runner: what the reference holds and what we computed.

use robovlm_core::weights::{Checkpoint, LoadError, LoadErrorKind};

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
        let values = t.into_data().convert::<f32>().into_vec::<f32>().map_err(|e| format!("{e:?}"))?;
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

/// Reads every tensor of a `reference.safetensors` file (through robovlm-weights, the one
/// safetensors reader), sorted by name.
pub fn read_safetensors(path: &std::path::Path) -> Result<Vec<(String, HostTensor)>, LoadError> {
    let file = Checkpoint::open(path)?;
    let mut out = Vec::new();
    for name in file.keys() {
        let data = file.read(name)?;
        let shape = data.shape.to_vec();
        let values = match data.dtype {
            burn::tensor::DType::F32 => {
                Values::F32(data.into_vec::<f32>().map_err(|e| bad(path, name, format!("{e:?}")))?)
            }
            burn::tensor::DType::I64 => {
                Values::I64(data.into_vec::<i64>().map_err(|e| bad(path, name, format!("{e:?}")))?)
            }
            other => return Err(bad(path, name, format!("dtype {other:?}; references hold only F32 and I64"))),
        };
        out.push((name.to_owned(), HostTensor { shape, values }));
    }
    Ok(out)
}

fn bad(path: &std::path::Path, name: &str, reason: String) -> LoadError {
    LoadError { file: path.to_owned(), tensor: Some(name.to_owned()), kind: LoadErrorKind::Mismatch, reason }
}
