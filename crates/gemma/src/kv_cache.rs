//! Per-layer key/value cache owned by the caller (the generator), not by the module.

use burn::prelude::*;

/// Keys and values seen so far by one attention layer.
///
/// Storage is a preallocated buffer `[batch, kv_heads, capacity, head_dim]` that new steps are
/// written into with `slice_assign` (in place when the buffer is uniquely owned, which it is
/// between steps), so a decode step does not copy the whole cache; capacity doubles when full
/// (amortised). Holds activations, never parameters, so it is not a `Module`.
#[derive(Debug, Clone, Default)]
pub struct KvCache<B: Backend> {
    keys: Option<Tensor<B, 4>>,
    values: Option<Tensor<B, 4>>,
    len: usize,
}

impl<B: Backend> KvCache<B> {
    /// An empty cache.
    pub fn new() -> Self {
        Self { keys: None, values: None, len: 0 }
    }

    /// Positions cached so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets everything (next episode / next prompt).
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// Appends this step's keys/values and returns all cached ones (`[.., len, ..]`).
    ///
    /// # Shapes
    /// - `k`, `v`: `[batch, kv_heads, new, head_dim]`
    pub fn append(&mut self, k: Tensor<B, 4>, v: Tensor<B, 4>) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let [b, h, new, d] = k.dims();
        let needed = self.len + new;
        let capacity = self.keys.as_ref().map_or(0, |t| t.dims()[2]);
        if needed > capacity {
            let capacity = needed.max(2 * capacity).max(16);
            let grow = |old: Option<Tensor<B, 4>>, like: &Tensor<B, 4>, len: usize| {
                let buf = Tensor::<B, 4>::zeros([b, h, capacity, d], &like.device()).cast(like.dtype());
                match old {
                    Some(old) if len > 0 => {
                        buf.slice_assign([0..b, 0..h, 0..len, 0..d], old.slice([0..b, 0..h, 0..len, 0..d]))
                    }
                    _ => buf,
                }
            };
            self.keys = Some(grow(self.keys.take(), &k, self.len));
            self.values = Some(grow(self.values.take(), &v, self.len));
        }
        let range = [0..b, 0..h, self.len..needed, 0..d];
        let keys = self.keys.take().expect("allocated above").slice_assign(range.clone(), k);
        let values = self.values.take().expect("allocated above").slice_assign(range, v);
        self.len = needed;
        let active = [0..b, 0..h, 0..needed, 0..d];
        let out = (keys.clone().slice(active.clone()), values.clone().slice(active));
        self.keys = Some(keys);
        self.values = Some(values);
        out
    }
}
