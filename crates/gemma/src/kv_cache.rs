//! Per-layer key/value cache owned by the caller (the generator), not by the module.

use burn::prelude::*;

/// Keys and values seen so far by one attention layer.
///
/// Storage is a preallocated buffer `[batch, kv_heads, capacity, head_dim]` that new steps are
/// written into with `slice_assign` (in place when the buffer is uniquely owned, which it is
/// between steps), so a decode step does not copy the whole cache. Holds activations, never
/// parameters, so it is not a `Module`.
///
/// - [`KvCache::new`] (global layers): everything is kept; capacity doubles when full.
/// - [`KvCache::windowed`] (Gemma 2's sliding layers): a ring of `window` slots, so memory
///   stays bounded however long the sequence. Absolute index `a` lives in slot `a % window`; a
///   one-token decode step overwrites the entry that just left the window and attends the whole
///   ring (the mask says which absolute index each slot holds: [`KvCache::positions`]). A
///   multi-token call (a prefill longer than the window) attends everything it was given plus
///   what was cached, then keeps only the last `window` entries.
#[derive(Debug, Clone, Default)]
pub struct KvCache<B: Backend> {
    keys: Option<Tensor<B, 4>>,
    values: Option<Tensor<B, 4>>,
    /// Tokens appended so far (absolute count, not what is stored).
    seen: usize,
    /// Ring size for a sliding layer.
    window: Option<usize>,
}

impl<B: Backend> KvCache<B> {
    /// An empty cache that keeps every position (global attention).
    pub fn new() -> Self {
        Self { keys: None, values: None, seen: 0, window: None }
    }

    /// An empty cache bounded to the last `window` positions (a sliding-window layer).
    ///
    /// # Panics
    /// If `window` is 0.
    pub fn windowed(window: usize) -> Self {
        assert!(window > 0, "a sliding window holds at least one position");
        Self { window: Some(window), ..Self::new() }
    }

    /// Positions appended so far (absolute: a windowed cache stores at most its window).
    pub fn len(&self) -> usize {
        self.seen
    }

    /// Whether nothing was appended.
    pub fn is_empty(&self) -> bool {
        self.seen == 0
    }

    /// Entries actually held (at most the window for a windowed cache).
    pub fn stored(&self) -> usize {
        self.window.map_or(self.seen, |w| self.seen.min(w))
    }

    /// Forgets everything (next episode / next prompt); keeps the window.
    pub fn reset(&mut self) {
        *self = Self { window: self.window, ..Self::new() };
    }

    /// The absolute index of each key [`KvCache::append`] will return when `new` tokens are
    /// appended next, in the order it returns them.
    pub fn positions(&self, new: usize) -> Vec<usize> {
        let total = self.seen + new;
        match self.window {
            Some(w) if total > w && new == 1 => {
                // The whole ring after writing: slot s holds the newest index ≡ s (mod w).
                (0..w).map(|s| total - 1 - (total - 1 + w - s) % w).collect()
            }
            Some(_) if self.seen > 0 => {
                // Chronological cached entries, then the new ones.
                (self.seen - self.stored()..total).collect()
            }
            _ => (0..total).collect(),
        }
    }

    /// Appends this step's keys/values and returns the keys/values to attend, in the order
    /// [`KvCache::positions`] describes.
    ///
    /// # Shapes
    /// - `k`, `v`: `[batch, kv_heads, new, head_dim]`
    pub fn append(&mut self, k: Tensor<B, 4>, v: Tensor<B, 4>) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let new = k.dims()[2];
        match self.window {
            None => self.append_all(k, v),
            Some(w) if self.seen + new <= w => self.append_all(k, v),
            Some(w) if new == 1 => {
                self.write(self.seen, k, v, w);
                self.seen += 1;
                (self.keys.clone().expect("ring is full"), self.values.clone().expect("ring is full"))
            }
            Some(w) => {
                let (k_all, v_all) = match self.seen {
                    0 => (k, v),
                    _ => {
                        let (ck, cv) = self.chronological(w);
                        (Tensor::cat(vec![ck, k], 2), Tensor::cat(vec![cv, v], 2))
                    }
                };
                let total = self.seen + new;
                let kept = k_all.dims()[2];
                let [b, h, _, d] = k_all.dims();
                let tail = |t: &Tensor<B, 4>| t.clone().slice([0..b, 0..h, kept - w..kept, 0..d]);
                self.write(total - w, tail(&k_all), tail(&v_all), w);
                self.seen = total;
                (k_all, v_all)
            }
        }
    }

    /// Unbounded append (also a windowed cache while everything fits its ring).
    fn append_all(&mut self, k: Tensor<B, 4>, v: Tensor<B, 4>) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let [b, h, new, d] = k.dims();
        let needed = self.seen + new;
        self.reserve(needed, &k, &v);
        let range = [0..b, 0..h, self.seen..needed, 0..d];
        let keys = self.keys.take().expect("allocated above").slice_assign(range.clone(), k);
        let values = self.values.take().expect("allocated above").slice_assign(range, v);
        self.seen = needed;
        let active = [0..b, 0..h, 0..needed, 0..d];
        let out = (keys.clone().slice(active.clone()), values.clone().slice(active));
        self.keys = Some(keys);
        self.values = Some(values);
        out
    }

    /// Grows the buffers to hold `needed` entries (doubling; a ring never beyond its window).
    fn reserve(&mut self, needed: usize, k: &Tensor<B, 4>, v: &Tensor<B, 4>) {
        let [b, h, _, d] = k.dims();
        let capacity = self.keys.as_ref().map_or(0, |t| t.dims()[2]);
        if needed <= capacity {
            return;
        }
        let mut capacity = needed.max(2 * capacity).max(16);
        if let Some(w) = self.window {
            capacity = capacity.min(w);
        }
        let len = self.stored();
        let grow = |old: Option<Tensor<B, 4>>, like: &Tensor<B, 4>| {
            let buf = Tensor::<B, 4>::zeros([b, h, capacity, d], &like.device()).cast(like.dtype());
            match old {
                Some(old) if len > 0 => {
                    buf.slice_assign([0..b, 0..h, 0..len, 0..d], old.slice([0..b, 0..h, 0..len, 0..d]))
                }
                _ => buf,
            }
        };
        self.keys = Some(grow(self.keys.take(), k));
        self.values = Some(grow(self.values.take(), v));
    }

    /// Writes absolute indices `first..first + n` (n ≤ w) into their ring slots `a % w`.
    fn write(&mut self, first: usize, k: Tensor<B, 4>, v: Tensor<B, 4>, w: usize) {
        let [b, h, n, d] = k.dims();
        self.reserve(w, &k, &v);
        let start = first % w;
        let head = n.min(w - start);
        let (mut keys, mut values) = (self.keys.take().expect("reserved"), self.values.take().expect("reserved"));
        keys = keys.slice_assign([0..b, 0..h, start..start + head, 0..d], k.clone().slice([0..b, 0..h, 0..head, 0..d]));
        values =
            values.slice_assign([0..b, 0..h, start..start + head, 0..d], v.clone().slice([0..b, 0..h, 0..head, 0..d]));
        if head < n {
            keys = keys.slice_assign([0..b, 0..h, 0..n - head, 0..d], k.slice([0..b, 0..h, head..n, 0..d]));
            values = values.slice_assign([0..b, 0..h, 0..n - head, 0..d], v.slice([0..b, 0..h, head..n, 0..d]));
        }
        self.keys = Some(keys);
        self.values = Some(values);
    }

    /// The stored entries oldest first.
    fn chronological(&self, w: usize) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let (keys, values) = (self.keys.clone().expect("not empty"), self.values.clone().expect("not empty"));
        let [b, h, _, d] = keys.dims();
        let stored = self.stored();
        let oldest = (self.seen - stored) % w;
        let part = |t: &Tensor<B, 4>, r: std::ops::Range<usize>| t.clone().slice([0..b, 0..h, r, 0..d]);
        if oldest == 0 || stored < w {
            return (part(&keys, oldest..oldest + stored), part(&values, oldest..oldest + stored));
        }
        let order = |t: &Tensor<B, 4>| Tensor::cat(vec![part(t, oldest..w), part(t, 0..oldest)], 2);
        (order(&keys), order(&values))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use robovlm_test_utils::TestBackend;

    /// A `[1, 1, n, 1]` tensor whose entries are the absolute indices `first..first + n`.
    fn steps(first: usize, n: usize) -> Tensor<TestBackend, 4> {
        let values: Vec<f32> = (first..first + n).map(|i| i as f32).collect();
        Tensor::from_data(TensorData::new(values, [1, 1, n, 1]), &Default::default())
    }

    fn host(t: Tensor<TestBackend, 4>) -> Vec<usize> {
        t.into_data().to_vec::<f32>().unwrap().into_iter().map(|x| x as usize).collect()
    }

    /// Whatever the call pattern, a windowed cache returns exactly what `positions` announces
    /// and never holds more than its window.
    #[test]
    fn windowed_cache_returns_what_positions_announce() {
        for pattern in [vec![5, 1, 1, 1, 1, 1, 1], vec![2, 1, 1, 1, 1], vec![3, 4, 1, 1, 2, 1], vec![1; 9], vec![4, 1]]
        {
            let mut cache = KvCache::<TestBackend>::windowed(4);
            for new in pattern.clone() {
                let want = cache.positions(new);
                let seen = cache.len();
                let (k, v) = cache.append(steps(seen, new), steps(seen, new));
                assert_eq!(host(k), want, "{pattern:?}");
                assert_eq!(host(v), want, "{pattern:?}");
                assert!(cache.keys.as_ref().unwrap().dims()[2] <= 4, "{pattern:?}");
                assert_eq!(cache.stored(), cache.len().min(4));
            }
        }
        let mut global = KvCache::<TestBackend>::new();
        global.append(steps(0, 5), steps(0, 5));
        let (k, _) = global.append(steps(5, 1), steps(5, 1));
        assert_eq!(host(k), (0..6).collect::<Vec<_>>());
    }
}
