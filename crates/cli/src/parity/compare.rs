//! Tolerances (fixtures README §5) and the comparison of one computed tensor with its reference.

use super::tensor::HostTensor;

/// How closely a computed tensor must match its reference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Tolerance {
    /// Ids, masks, labels and uint8 images: every element equal.
    Exact,
    /// `|a − b| ≤ abs`.
    Abs(f64),
    /// `|a − b| ≤ abs + rel·|b|`.
    RelAbs {
        /// Absolute part.
        abs: f64,
        /// Relative part (times the reference magnitude).
        rel: f64,
    },
}

impl std::fmt::Display for Tolerance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exact => f.write_str("exact"),
            Self::Abs(a) => write!(f, "abs {a:e}"),
            Self::RelAbs { abs, rel } => write!(f, "{abs:e} + {rel:e}·|ref|"),
        }
    }
}

/// Pixel values are one float op away from exact uint8 inputs: float32 rounding only.
const PIXEL_VALUES_ABS: f64 = 1e-6;
/// Emitted robot actions: the README's bound for arm actions (gripper values are ±1, so this is
/// exact for them).
const ACTION_EMITTED_ABS: f64 = 1e-4;
/// Losses and training metrics: relative 1e-5 (the action-heads issue's bound; the reference's
/// own float32 noise on these scalars is far below it), with a float32-ulp floor near zero.
const LOSS: Tolerance = Tolerance::RelAbs { abs: 1e-7, rel: 1e-5 };
/// Float activations, logits, features, head outputs and losses: ~10× the measured float32 vs
/// float64 noise of the reference itself (README §5).
const FLOAT_DEFAULT: Tolerance = Tolerance::RelAbs { abs: 1e-4, rel: 1e-4 };

/// The tolerance for a reference tensor, from its name and whether it holds integers.
pub fn tolerance_for(name: &str, reference_is_int: bool) -> Tolerance {
    let leaf = name.rsplit('.').next().unwrap_or(name);
    if reference_is_int || leaf == "resized_uint8" {
        Tolerance::Exact
    } else if leaf == "pixel_values" {
        Tolerance::Abs(PIXEL_VALUES_ABS)
    } else if leaf == "action_emitted" {
        Tolerance::Abs(ACTION_EMITTED_ABS)
    } else if is_loss(leaf) {
        LOSS
    } else {
        FLOAT_DEFAULT
    }
}

/// Loss-like scalars: `loss`, `trainer_loss`, `loss_*`, `acc_*`, `*_l1_*`.
fn is_loss(leaf: &str) -> bool {
    leaf == "loss"
        || leaf == "trainer_loss"
        || leaf.starts_with("loss_")
        || leaf.starts_with("acc_")
        || leaf.contains("_l1_")
}

/// Result of one comparison.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// Whether every element is within tolerance.
    pub passed: bool,
    /// Largest absolute difference (infinite on shape mismatch or NaN).
    pub max_abs: f64,
    /// Largest `|a − b| / allowed` (how much of the budget was used; > 1 fails).
    pub budget_used: f64,
    /// Human-readable detail for failures.
    pub detail: String,
}

/// Compares `ours` with `reference` under `tol`.
pub fn compare(ours: &HostTensor, reference: &HostTensor, tol: Tolerance) -> Comparison {
    if ours.shape != reference.shape {
        return Comparison {
            passed: false,
            max_abs: f64::INFINITY,
            budget_used: f64::INFINITY,
            detail: format!("shape {:?}, reference {:?}", ours.shape, reference.shape),
        };
    }
    let (a, b) = (ours.as_f64(), reference.as_f64());
    let (mut max_abs, mut budget_used, mut worst_at, mut mismatches) = (0f64, 0f64, 0usize, 0usize);
    for (i, (&x, &y)) in a.iter().zip(&b).enumerate() {
        let diff = if x.is_nan() || y.is_nan() { f64::INFINITY } else { (x - y).abs() };
        let allowed = match tol {
            Tolerance::Exact => 0.0,
            Tolerance::Abs(abs) => abs,
            Tolerance::RelAbs { abs, rel } => abs + rel * y.abs(),
        };
        let used = if diff == 0.0 {
            0.0
        } else if allowed == 0.0 {
            f64::INFINITY
        } else {
            diff / allowed
        };
        if used > 1.0 {
            mismatches += 1;
        }
        if used > budget_used || (used == budget_used && diff > max_abs) {
            worst_at = i;
        }
        budget_used = budget_used.max(used);
        max_abs = max_abs.max(diff);
    }
    let passed = mismatches == 0;
    let detail = if passed {
        String::new()
    } else {
        format!(
            "{mismatches} of {} elements outside {tol}; worst at flat index {worst_at}: ours {} vs reference {}",
            a.len(),
            a[worst_at],
            b[worst_at]
        )
    };
    Comparison { passed, max_abs, budget_used, detail }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_relative() {
        let r = HostTensor::i64(vec![3], vec![1, 2, 3]);
        assert!(compare(&HostTensor::i64(vec![3], vec![1, 2, 3]), &r, Tolerance::Exact).passed);
        assert!(!compare(&HostTensor::i64(vec![3], vec![1, 2, 4]), &r, Tolerance::Exact).passed);
        assert!(!compare(&HostTensor::i64(vec![1, 3], vec![1, 2, 3]), &r, Tolerance::Exact).passed);
        let f = HostTensor::f32(vec![2], vec![100.0, 0.0]);
        assert!(compare(&HostTensor::f32(vec![2], vec![100.01, 0.00009]), &f, FLOAT_DEFAULT).passed);
        assert!(!compare(&HostTensor::f32(vec![2], vec![100.0, 0.00011]), &f, FLOAT_DEFAULT).passed);
        assert!(!compare(&HostTensor::f32(vec![2], vec![f32::NAN, 0.0]), &f, FLOAT_DEFAULT).passed);
    }

    #[test]
    fn tolerance_table() {
        assert_eq!(tolerance_for("img0.resized_uint8", true), Tolerance::Exact);
        assert_eq!(tolerance_for("p0.input_ids", true), Tolerance::Exact);
        assert_eq!(tolerance_for("img0.pixel_values", false), Tolerance::Abs(1e-6));
        assert_eq!(tolerance_for("p0.logits", false), FLOAT_DEFAULT);
        assert_eq!(tolerance_for("batch.nomask.loss_arm", false), LOSS);
        assert_eq!(tolerance_for("train.loss", false), LOSS);
        assert_eq!(tolerance_for("batch.action_l1_act", false), LOSS);
    }
}
