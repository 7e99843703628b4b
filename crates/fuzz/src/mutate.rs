//! The mutations: structure-blind byte edits for every format, plus token-level edits for text
//! formats (JSON configs, prompts) that keep inputs parseable often enough to reach the checks
//! behind the parser.

/// A small, seedable PRNG (xorshift64*): deterministic runs, no dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (0 is remapped: xorshift needs a non-zero state).
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// Integers that break size arithmetic: zero, one, sign and word boundaries.
const INTERESTING: [u64; 12] =
    [0, 1, 0x7f, 0x80, 0xff, 0x7fff, 0xffff, 0x7fff_ffff, 0xffff_ffff, 1 << 40, i64::MAX as u64, u64::MAX];

/// Text that breaks parsers and the checks behind them: huge, negative and fractional numbers,
/// path escapes, odd types, deep nesting, control characters.
const TOKENS: [&str; 16] = [
    "99999999999999999999",
    "18446744073709551615",
    "1000000000",
    "-1",
    "0",
    "1e308",
    "NaN",
    "\"../../../etc/passwd\"",
    "\"/etc/passwd\"",
    "null",
    "[]",
    "{}",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
    "\"\\u0000\"",
    "\u{feff}",
    "\"<image><bos><eos>\"",
];

/// One to four mutations of `seed`.
pub fn mutate(seed: &[u8], text: bool, rng: &mut Rng) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let op = rng.below(if text { 10 } else { 8 });
        let len = v.len();
        match op {
            // Flip a bit.
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            // A byte at a boundary value.
            1 if len > 0 => {
                let i = rng.below(len);
                v[i] = INTERESTING[rng.below(5)] as u8;
            }
            // A 4- or 8-byte little-endian integer at a boundary value (sizes, offsets, lengths).
            2 if len >= 8 => {
                let i = rng.below(len - 7);
                let n = INTERESTING[rng.below(INTERESTING.len())].to_le_bytes();
                let w = if rng.below(2) == 0 { 4 } else { 8 };
                v[i..i + w].copy_from_slice(&n[..w]);
            }
            // Delete a range.
            3 if len > 1 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(64)).min(len);
                v.drain(a..b);
            }
            // Duplicate a range.
            4 if len > 1 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(64)).min(len);
                let chunk = v[a..b].to_vec();
                let at = rng.below(len);
                v.splice(at..at, chunk);
            }
            // Insert random bytes.
            5 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                v.splice(at..at, bytes);
            }
            // Truncate.
            6 if len > 0 => v.truncate(rng.below(len)),
            // Swap two bytes.
            7 if len > 1 => {
                let (a, b) = (rng.below(len), rng.below(len));
                v.swap(a, b);
            }
            // Text: replace a number with an extreme token.
            8 => {
                let numbers: Vec<usize> =
                    (0..len).filter(|&i| v[i].is_ascii_digit() && (i == 0 || !v[i - 1].is_ascii_digit())).collect();
                if !numbers.is_empty() {
                    let a = numbers[rng.below(numbers.len())];
                    let b = (a..len).find(|&i| !v[i].is_ascii_digit() && v[i] != b'.').unwrap_or(len);
                    let token = TOKENS[rng.below(TOKENS.len())].as_bytes().to_vec();
                    v.splice(a..b, token);
                }
            }
            // Text: insert a token after a `:` or `,` (a value position in JSON).
            9 => {
                let spots: Vec<usize> = (0..len).filter(|&i| v[i] == b':' || v[i] == b',').collect();
                if !spots.is_empty() {
                    let at = spots[rng.below(spots.len())] + 1;
                    let token = TOKENS[rng.below(TOKENS.len())].as_bytes().to_vec();
                    v.splice(at..at, token);
                }
            }
            _ => {}
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_for_a_seed() {
        let seed = b"{\"hidden_size\": 64, \"layers\": [1, 2]}";
        let a: Vec<Vec<u8>> = (0..50).scan(Rng::new(7), |r, _| Some(mutate(seed, true, r))).collect();
        let b: Vec<Vec<u8>> = (0..50).scan(Rng::new(7), |r, _| Some(mutate(seed, true, r))).collect();
        assert_eq!(a, b);
        assert!(a.iter().any(|m| m != seed));
    }
}
