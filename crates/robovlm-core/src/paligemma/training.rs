//! Training-time quantities that must match the reference exactly.

/// transformers 4.47.1 `PaliGemmaForConditionalGeneration` loss: cross-entropy of
/// `logits[:, :-1]` against `labels[:, 1:]`, positions where `attention_mask[:, 1:] == 0`
/// dropped, mean over labels ≠ -100. Computed in f64 from the f32 logits. `None` when no label
/// counts (transformers returns NaN there).
///
/// # Panics
/// If the slices do not match `[batch, seq(, vocab)]` (caller bug).
pub fn paligemma_loss(
    logits: &[f32],
    vocab: usize,
    labels: &[i64],
    attention_mask: &[u32],
    batch: usize,
) -> Option<f64> {
    let seq = labels.len() / batch;
    assert_eq!(logits.len(), batch * seq * vocab, "logits must be [batch, seq, vocab]");
    assert_eq!(attention_mask.len(), labels.len(), "mask must be [batch, seq]");
    let (mut total, mut count) = (0f64, 0usize);
    for b in 0..batch {
        for p in 0..seq.saturating_sub(1) {
            let label = labels[b * seq + p + 1];
            if attention_mask[b * seq + p + 1] == 0 || label == super::processor::IGNORE_INDEX {
                continue;
            }
            let row = &logits[(b * seq + p) * vocab..(b * seq + p + 1) * vocab];
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let lse = max + row.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln();
            total += lse - row[label as usize] as f64;
            count += 1;
        }
    }
    (count > 0).then(|| total / count as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_logits_give_log_vocab() {
        let logits = vec![0.0f32; 3 * 4];
        let loss = paligemma_loss(&logits, 4, &[-100, 2, 3], &[1, 1, 1], 1).unwrap();
        assert!((loss - 4f64.ln()).abs() < 1e-12);
        assert!(paligemma_loss(&logits, 4, &[-100, -100, -100], &[1, 1, 1], 1).is_none());
        // A masked-out position does not count.
        let loss = paligemma_loss(&logits, 4, &[-100, 2, 3], &[1, 0, 1], 1).unwrap();
        assert!((loss - 4f64.ln()).abs() < 1e-12);
    }
}
