//! Choosing the next token from a row of logits: greedy (argmax, PyTorch's tie rule) or sampled
//! (temperature, top-k, top-p in transformers' warper order) from a seeded stream.

/// Sampling settings (`do_sample=True`).
#[derive(Debug, Clone, PartialEq)]
pub struct Sampling {
    /// Logits are divided by this (> 0).
    pub temperature: f32,
    /// Keep only the `k` most likely tokens (0 = off).
    pub top_k: usize,
    /// Keep the smallest set whose probability reaches `p` (1.0 = off).
    pub top_p: f32,
    /// Seed of the sampler's random stream.
    pub seed: u64,
}

/// First index of the maximum (PyTorch's argmax tie rule).
pub(crate) fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best as u32
}

/// A small, seedable, dependency-free PRNG (SplitMix64) for reproducible sampling.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(pub(crate) u64);

impl SplitMix64 {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Temperature, then top-k, then top-p (HF's warper order), then one draw.
pub(crate) fn sample(row: &[f32], s: &Sampling, rng: &mut SplitMix64) -> u32 {
    let mut order: Vec<usize> = (0..row.len()).collect();
    order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
    if s.top_k > 0 {
        order.truncate(s.top_k.max(1));
    }
    let max = f64::from(row[order[0]]);
    let mut probs: Vec<f64> =
        order.iter().map(|&i| ((f64::from(row[i]) - max) / f64::from(s.temperature)).exp()).collect();
    let total: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= total);
    if s.top_p < 1.0 {
        let mut cum = 0.0;
        let keep = probs
            .iter()
            .position(|&p| {
                cum += p;
                cum >= f64::from(s.top_p)
            })
            .map_or(probs.len(), |i| i + 1);
        probs.truncate(keep);
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
    }
    let mut u = rng.next_f64();
    for (p, &i) in probs.iter().zip(&order) {
        if u < *p {
            return i as u32;
        }
        u -= p;
    }
    order[probs.len() - 1] as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_maximum() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, -1.0]), 1);
    }

    #[test]
    fn sampling_is_seeded_and_respects_top_k() {
        let row = [0.0f32, 5.0, 4.9, -3.0];
        let s = Sampling { temperature: 1.0, top_k: 2, top_p: 1.0, seed: 7 };
        let draws: Vec<u32> = (0..50).map(|i| sample(&row, &s, &mut SplitMix64(i))).collect();
        assert!(draws.iter().all(|&d| d == 1 || d == 2));
        assert!(draws.contains(&1) && draws.contains(&2));
        let again: Vec<u32> = (0..50).map(|i| sample(&row, &s, &mut SplitMix64(i))).collect();
        assert_eq!(draws, again);
        // A tiny top_p keeps only the most likely token.
        let s = Sampling { top_p: 0.01, top_k: 0, ..s };
        assert!((0..20).all(|i| sample(&row, &s, &mut SplitMix64(i)) == 1));
    }
}
