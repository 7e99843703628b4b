//! Training losses of the continuous heads (RoboVLMs `BasePolicyHead.loss`) as library functions.
//!
//! Arm: Huber (δ = 1) on the 6 arm dims; gripper: BCE-with-logits; gripper accuracy of
//! `sigmoid > 0.5`. With a mask `[batch, time, chunk]`, each is the mean over masked-in
//! elements (RoboVLMs indexes with the boolean mask, then `.mean()`); without, a plain mean.

use burn::prelude::*;

/// Losses and metric of one batch (scalars as 1-element tensors, so training can backprop).
#[derive(Debug, Clone)]
pub struct ContinuousLoss<B: Backend> {
    /// Huber loss of the arm predictions (`loss_arm`).
    pub loss_arm: Tensor<B, 1>,
    /// BCE-with-logits of the gripper (`loss_gripper`).
    pub loss_gripper: Tensor<B, 1>,
    /// Gripper accuracy (`acc_gripper`).
    pub acc_gripper: Tensor<B, 1>,
}

/// Computes the continuous-head losses.
///
/// # Shapes
/// - `arm`: `[batch, time, chunk, arm_dim]`; `gripper_logits`: `[batch, time, chunk, 1]`
/// - `labels`: `[batch, time, chunk, arm_dim + 1]` (arm, then gripper in {0, 1})
/// - `mask`: `[batch, time, chunk]` (1 = valid), or `None`
pub fn continuous_loss<B: Backend>(
    arm: Tensor<B, 4>,
    gripper_logits: Tensor<B, 4>,
    labels: Tensor<B, 4>,
    mask: Option<Tensor<B, 3>>,
) -> ContinuousLoss<B> {
    let [b, t, n, a] = arm.dims();
    // Labels, mask and metrics in the predictions' dtype (f32 heads in a half-precision run).
    let dtype = arm.dtype();
    let (labels, mask) = (labels.cast(dtype), mask.map(|m| m.cast(dtype)));
    let arm_labels = labels.clone().slice([0..b, 0..t, 0..n, 0..a]);
    let g_labels = labels.slice([0..b, 0..t, 0..n, a..a + 1]);
    let diff = (arm - arm_labels).abs();
    // torch.nn.functional.huber_loss, delta = 1.
    let quadratic = diff.clone().powi_scalar(2).mul_scalar(0.5);
    let linear = diff.clone().sub_scalar(0.5);
    let huber = quadratic.mask_where(diff.greater_equal_elem(1.0), linear);
    // BCE with logits, numerically stable: max(x, 0) - x·y + log(1 + exp(-|x|)).
    let x = gripper_logits;
    let bce =
        x.clone().clamp_min(0.0) - x.clone() * g_labels.clone() + x.clone().abs().neg().exp().add_scalar(1.0).log();
    let predicted = x.greater_elem(0.0).float().cast(dtype); // sigmoid(x) > 0.5 ⇔ x > 0
    let correct = predicted.equal(g_labels).float().cast(dtype);
    match mask {
        None => ContinuousLoss { loss_arm: huber.mean(), loss_gripper: bce.mean(), acc_gripper: correct.mean() },
        Some(mask) => {
            let m = mask.unsqueeze_dim::<4>(3);
            let count = m.clone().sum();
            ContinuousLoss {
                loss_arm: (huber * m.clone().expand([b, t, n, a])).sum() / count.clone().mul_scalar(a as f64),
                loss_gripper: (bce * m.clone()).sum() / count.clone(),
                acc_gripper: (correct * m).sum() / count,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use robovlm_test_utils::TestBackend;

    #[test]
    fn huber_bce_and_accuracy_by_hand() {
        let d = Default::default();
        // One step, chunk 2, arm_dim 1: errors 0.5 (quadratic) and 2 (linear).
        let arm = Tensor::<TestBackend, 4>::from_floats([[[[0.5], [3.0]]]], &d);
        let grip = Tensor::<TestBackend, 4>::from_floats([[[[2.0], [-1.0]]]], &d);
        let labels = Tensor::<TestBackend, 4>::from_floats([[[[0.0, 1.0], [1.0, 1.0]]]], &d);
        let l = continuous_loss(arm.clone(), grip.clone(), labels.clone(), None);
        let v = |t: Tensor<TestBackend, 1>| t.into_scalar();
        assert!((v(l.loss_arm) - (0.125 + 1.5) / 2.0).abs() < 1e-6);
        let bce = |x: f32, y: f32| x.max(0.0) - x * y + (1.0 + (-x.abs()).exp()).ln();
        assert!((v(l.loss_gripper) - (bce(2.0, 1.0) + bce(-1.0, 1.0)) / 2.0).abs() < 1e-6);
        assert!((v(l.acc_gripper) - 0.5).abs() < 1e-6);
        // Masking out the second chunk step keeps only the first element.
        let m = continuous_loss(arm, grip, labels, Some(Tensor::from_floats([[[1.0, 0.0]]], &d)));
        assert!((v(m.loss_arm) - 0.125).abs() < 1e-6 && (v(m.acc_gripper) - 1.0).abs() < 1e-6);
    }
}
