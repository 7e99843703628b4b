//! bf16 greedy decoding: which generated steps can be compared with the f32 reference.
//!
//! A bf16 run keeps 8 significant bits, so its logits sit a few bf16 spacings from the f32
//! reference's. Where the reference's top two logits are that close, the argmax may
//! legitimately flip — and every later token is then conditioned on a different prefix, so
//! neither its id nor its logits say anything about the implementation. The rule (bf16 runs
//! only; f32 and f16 keep exact ids everywhere): in each generated row, ids are compared up to the
//! first difference; that difference is accepted when the reference's top-2 margin at that step
//! is at most [`MARGIN_SPACINGS`] bf16 spacing of its top logit (a spacing is
//! `2^(⌊log₂|top|⌋ − 7)`, the gap between adjacent bf16 values there: the two logits are tied
//! at bf16's resolution); the row's later ids and logits are then left out (the step's own
//! logits are still compared: same prefix). A difference where the margin is larger fails as
//! before.

use crate::tensor::{HostTensor, Values};

/// Reference top-2 margins up to this many bf16 spacings of the top logit excuse a different
/// greedy token (see the module docs): one, the backends-and-precision issue's rule.
pub const MARGIN_SPACINGS: f64 = 1.0;

/// Per generated row: how many leading steps of ids and of step logits to compare, and the
/// accepted difference if any.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    pub ids: usize,
    pub logits: usize,
    /// `(step, margin, spacing)` of an accepted near-tie.
    pub excused: Option<(usize, f64, f64)>,
}

/// The comparable prefix of every row, from our ids, the reference ids (`[steps]` or
/// `[batch, steps]`) and the reference step logits (`[batch or 1, steps, vocab]`); `None` when
/// the shapes do not line up (the plain comparison then reports it).
pub(crate) fn rows(ours: &HostTensor, reference: &HostTensor, logits: &HostTensor) -> Option<Vec<Row>> {
    let (Values::I64(ours_ids), Values::I64(ref_ids)) = (&ours.values, &reference.values) else { return None };
    if ours.shape != reference.shape || logits.shape.len() != 3 {
        return None;
    }
    let (batch, steps) = match reference.shape[..] {
        [s] => (1, s),
        [b, s] => (b, s),
        _ => return None,
    };
    let [lb, ls, vocab] = logits.shape[..] else { return None };
    if lb != batch || ls != steps || vocab < 2 {
        return None;
    }
    let Values::F32(values) = &logits.values else { return None };
    let mut out = Vec::with_capacity(batch);
    for b in 0..batch {
        let first = (0..steps).find(|&t| ours_ids[b * steps + t] != ref_ids[b * steps + t]);
        let row = match first {
            None => Row { ids: steps, logits: steps, excused: None },
            Some(t) => {
                let step = &values[(b * steps + t) * vocab..][..vocab];
                let (top, second) = step.iter().fold((f64::NEG_INFINITY, f64::NEG_INFINITY), |(a, s), &v| {
                    let v = f64::from(v);
                    if v > a { (v, a) } else { (a, s.max(v)) }
                });
                let margin = top - second;
                let spacing = 2f64.powf(top.abs().log2().floor() - 7.0);
                if margin <= MARGIN_SPACINGS * spacing {
                    Row { ids: t, logits: t + 1, excused: Some((t, margin, spacing)) }
                } else {
                    Row { ids: steps, logits: steps, excused: None }
                }
            }
        };
        out.push(row);
    }
    Some(out)
}

/// The leading `keep[b]` steps of each row of `t` (`[rows·steps·inner]` values), flattened:
/// `[Σ keep, inner]`, or `[Σ keep]` for ids.
pub(crate) fn leading(t: &HostTensor, steps: usize, keep: &[usize]) -> HostTensor {
    let total: usize = t.shape.iter().product();
    let inner = total / (keep.len() * steps).max(1);
    let pick = |b: usize| (b * steps * inner)..(b * steps * inner + keep[b] * inner);
    let kept: usize = keep.iter().sum();
    let shape = if inner == 1 { vec![kept] } else { vec![kept, inner] };
    match &t.values {
        Values::F32(v) => HostTensor::f32(shape, (0..keep.len()).flat_map(|b| v[pick(b)].iter().copied()).collect()),
        Values::I64(v) => HostTensor::i64(shape, (0..keep.len()).flat_map(|b| v[pick(b)].iter().copied()).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two rows of three steps over a vocabulary of 3: row 0 flips at step 1 where the
    /// reference's top two are 2⁻¹⁰ apart (top 1.0: spacing 2⁻⁷) — accepted, steps 2.. dropped;
    /// row 1 flips at step 2 with a margin of 0.5 — not accepted.
    #[test]
    fn near_ties_are_accepted_and_end_the_row() {
        let reference = HostTensor::i64(vec![2, 3], vec![0, 1, 2, 2, 2, 0]);
        let ours = HostTensor::i64(vec![2, 3], vec![0, 2, 0, 2, 2, 1]);
        let tie = 1.0 - 2f32.powi(-10);
        #[rustfmt::skip]
        let logits = HostTensor::f32(vec![2, 3, 3], vec![
            1.0, 0.0, 0.0,   0.0, 1.0, tie,   0.0, 0.0, 1.0,
            0.0, 0.0, 1.0,   0.0, 0.0, 1.0,   1.0, 0.5, 0.0,
        ]);
        let window = rows(&ours, &reference, &logits).unwrap();
        assert_eq!(window[0], Row { ids: 1, logits: 2, excused: Some((1, 2f64.powi(-10), 2f64.powi(-7))) });
        assert_eq!(window[1], Row { ids: 3, logits: 3, excused: None });
        let kept = leading(&ours, 3, &[window[0].ids, window[1].ids]);
        assert_eq!(kept, HostTensor::i64(vec![4], vec![0, 2, 2, 1]));
        let kept = leading(&logits, 3, &[window[0].logits, window[1].logits]);
        assert_eq!(kept.shape, vec![5, 3]);
        // Shapes that do not line up leave the plain comparison in charge.
        assert!(rows(&ours, &HostTensor::i64(vec![6], vec![0; 6]), &logits).is_none());
    }
}
