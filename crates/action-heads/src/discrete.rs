//! Discrete actions: RoboVLMs' `ActionTokenizer` (uniform bins mapped onto the last ids of the
//! base vocabulary) and the `DiscreteDecoder` training metrics.
//!
//! Reference: RoboVLMs `robovlms/model/policy_head/action_tokenizer.py` and
//! `base_policy.py::DiscreteDecoder.loss` at commit 8adc1d28. Arithmetic is float64, as numpy's.

/// Label value ignored by the loss (PyTorch's `ignore_index`).
pub const IGNORE_INDEX: i64 = -100;

/// Maps continuous actions to token ids and back.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionTokenizer {
    bins: Vec<f64>,
    centers: Vec<f64>,
    min_action: f64,
    max_action: f64,
    orig: i64,
}

impl ActionTokenizer {
    /// `base_vocab_size` is the tokenizer's BPE vocabulary *without* added tokens (HF
    /// `tokenizer.vocab_size`); `special_count` the special tokens RoboVLMs subtracts (bos, eos,
    /// unk, pad and `<image>`: 5 for PaliGemma). `orig = base − special − 10`.
    ///
    /// # Panics
    /// If `n_bin < 2` or `min_action >= max_action` (rejected by config parsing first).
    pub fn new(base_vocab_size: usize, special_count: usize, n_bin: usize, min_action: f64, max_action: f64) -> Self {
        assert!(n_bin >= 2 && min_action < max_action, "need n_bin >= 2 and min_action < max_action");
        // numpy.linspace: start + i·step, with the last point exactly `stop`.
        let step = (max_action - min_action) / (n_bin - 1) as f64;
        let mut bins: Vec<f64> = (0..n_bin).map(|i| min_action + i as f64 * step).collect();
        bins[n_bin - 1] = max_action;
        let centers = bins.windows(2).map(|w| (w[0] + w[1]) / 2.0).collect();
        let orig = base_vocab_size as i64 - special_count as i64 - 10;
        Self { bins, centers, min_action, max_action, orig }
    }

    /// Bin count.
    pub fn n_bin(&self) -> usize {
        self.bins.len()
    }

    /// Bin centres (`n_bin − 1` values).
    pub fn bin_centers(&self) -> &[f64] {
        &self.centers
    }

    /// The id offset (`orig_size`): ids are `orig − k`, `k ∈ 1..=n_bin`.
    pub fn orig(&self) -> i64 {
        self.orig
    }

    /// Exclusive bounds of action-token ids: `(begin, end)` with `begin < id < end`.
    pub fn token_range(&self) -> (i64, i64) {
        (self.orig - self.n_bin() as i64 - 1, self.orig)
    }

    /// `orig − digitize(clip(a, min, max), bins)`.
    pub fn encode(&self, action: f64) -> i64 {
        let a = action.clamp(self.min_action, self.max_action);
        // np.digitize(right=False) = number of bin edges <= a.
        let k = self.bins.partition_point(|&edge| edge <= a) as i64;
        self.orig - k
    }

    /// `centers[clip(orig − id − 1, 0, n_bin − 2)]`; any id decodes (out of range → end bins).
    pub fn decode(&self, id: i64) -> f64 {
        let idx = (self.orig - id - 1).clamp(0, self.centers.len() as i64 - 1);
        self.centers[idx as usize]
    }
}

/// `DiscreteDecoder.loss` metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiscreteMetrics {
    /// Cross-entropy of the shifted logits, mean over labels ≠ -100 (`loss_arm`).
    pub loss: f64,
    /// Accuracy of the argmax over the arm action tokens (`acc_arm`).
    pub acc_arm: f64,
    /// Accuracy over the gripper tokens, every 7th action token (`acc_gripper`).
    pub acc_gripper: f64,
    /// L1 between decoded predicted and label actions (`action_l1`).
    pub action_l1: f64,
}

/// Per shifted position `p` (predicting label `p + 1`): the argmax of the logits, the label,
/// the log-sum-exp of the logits and the logit at the label (0 where the label is ignored).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShiftedPosition {
    /// `argmax(logits[p])`.
    pub argmax: i64,
    /// `labels[p + 1]`.
    pub label: i64,
    /// `logsumexp(logits[p])`.
    pub logsumexp: f64,
    /// `logits[p, labels[p + 1]]`.
    pub logit_of_label: f64,
}

/// Computes the discrete metrics; positions are in sequence order (rows concatenated).
/// `action_dim` groups action tokens (7: 6 arm + 1 gripper). `None` if no label counts.
pub fn discrete_metrics(
    positions: &[ShiftedPosition],
    tokenizer: &ActionTokenizer,
    action_dim: usize,
) -> Option<DiscreteMetrics> {
    let scored: Vec<&ShiftedPosition> = positions.iter().filter(|p| p.label != IGNORE_INDEX).collect();
    if scored.is_empty() {
        return None;
    }
    let loss = scored.iter().map(|p| p.logsumexp - p.logit_of_label).sum::<f64>() / scored.len() as f64;
    let (begin, end) = tokenizer.token_range();
    let actions: Vec<&ShiftedPosition> = positions.iter().filter(|p| p.label > begin && p.label < end).collect();
    let (mut arm, mut arm_n, mut grip, mut grip_n) = (0usize, 0usize, 0usize, 0usize);
    for (i, p) in actions.iter().enumerate() {
        let hit = usize::from(p.argmax == p.label);
        if i % action_dim == action_dim - 1 {
            (grip, grip_n) = (grip + hit, grip_n + 1);
        } else {
            (arm, arm_n) = (arm + hit, arm_n + 1);
        }
    }
    let ratio = |a: usize, n: usize| if n == 0 { f64::NAN } else { a as f64 / n as f64 };
    let l1 = actions.iter().map(|p| (tokenizer.decode(p.argmax) - tokenizer.decode(p.label)).abs()).sum::<f64>()
        / actions.len().max(1) as f64;
    Some(DiscreteMetrics { loss, acc_arm: ratio(arm, arm_n), acc_gripper: ratio(grip, grip_n), action_l1: l1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn robovlms_discrete_facts() {
        // robovlms_discrete: BPE vocab 640, 5 specials, 256 bins in [-1, 1].
        let t = ActionTokenizer::new(640, 5, 256, -1.0, 1.0);
        assert_eq!(t.orig(), 625);
        assert_eq!(t.token_range(), (368, 625));
        assert_eq!(t.encode(1.0), 625 - 256);
        assert_eq!(t.encode(-1.0), 624);
        assert_eq!(t.encode(-7.0), 624);
        assert_eq!(t.bin_centers().len(), 255);
        assert_eq!(t.decode(624), t.bin_centers()[0]);
        assert_eq!(t.decode(10), t.bin_centers()[254]);
        assert!((t.decode(t.encode(0.3)) - 0.3).abs() < 2.0 / 255.0);
    }
}
