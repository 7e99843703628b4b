//! RoboVLMs' CALVIN wrapper post-processing of one prediction (fixtures README §4.6,
//! `raw_calvin = True`): binarise the gripper, keep the first chunk step (ensembling keeps only
//! the newest prediction), unnormalise all dims (gripper included), map the gripper to ±1.

/// The intermediates and result of post-processing one step.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessedAction {
    /// `cat(arm, sigmoid(gripper) > 0.5)` per chunk step, `[chunk][action_dim]`.
    pub chunk_binarized: Vec<Vec<f32>>,
    /// Chunk step 0.
    pub first: Vec<f32>,
    /// After unnormalisation (identical to `first` without `norm_action`).
    pub unnormalized: Vec<f32>,
    /// Before the sign: `(unnormalized_gripper − 0.5) · 2`.
    pub gripper_before_sign: f32,
    /// The action sent to the robot: arm unnormalised, gripper +1 (open) or −1.
    pub emitted: Vec<f32>,
    /// Every chunk step post-processed the same way, `[chunk][action_dim]` (row 0 = `emitted`):
    /// what a robot executing more than the first action of a chunk needs.
    pub chunk_emitted: Vec<Vec<f32>>,
}

/// Post-processes one step's prediction: `arm` `[chunk][arm_dim]`, `gripper_logits` `[chunk]`,
/// `normalization` = per-dim `(min, max)` when the policy normalised actions.
///
/// Arithmetic is float32 like the wrapper's numpy code (Python scalars are cast to float32).
pub fn postprocess(
    arm: &[Vec<f32>],
    gripper_logits: &[f32],
    normalization: Option<&(Vec<f64>, Vec<f64>)>,
) -> ProcessedAction {
    let chunk_binarized: Vec<Vec<f32>> = arm
        .iter()
        .zip(gripper_logits)
        .map(|(a, &g)| {
            let open = 1.0 / (1.0 + (-g).exp()) > 0.5;
            a.iter().copied().chain(std::iter::once(if open { 1.0 } else { 0.0 })).collect()
        })
        .collect();
    let first = chunk_binarized.first().cloned().unwrap_or_default();
    let (unnormalized, gripper_before_sign, emitted) = emit(&first, normalization);
    let chunk_emitted = chunk_binarized.iter().map(|row| emit(row, normalization).2).collect();
    ProcessedAction { chunk_binarized, first, unnormalized, gripper_before_sign, emitted, chunk_emitted }
}

/// One binarised row → (unnormalised, gripper before the sign, emitted).
fn emit(row: &[f32], normalization: Option<&(Vec<f64>, Vec<f64>)>) -> (Vec<f32>, f32, Vec<f32>) {
    let unnormalized: Vec<f32> = match normalization {
        Some((min, max)) => row
            .iter()
            .enumerate()
            .map(|(i, &a)| {
                let (lo, hi) = (min[i.min(min.len() - 1)], max[i.min(max.len() - 1)]);
                0.5f32 * (a + 1.0) * ((hi - lo) as f32) + lo as f32
            })
            .collect(),
        None => row.to_vec(),
    };
    let g = *unnormalized.last().unwrap_or(&0.0);
    let gripper_before_sign = (g - 0.5) * 2.0;
    let mut emitted = unnormalized.clone();
    if let Some(last) = emitted.last_mut() {
        *last = if gripper_before_sign > 0.0 { 1.0 } else { -1.0 };
    }
    (unnormalized, gripper_before_sign, emitted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calvin_gripper_mapping() {
        let norm = (vec![-0.65; 7], vec![0.65; 7]);
        let open = postprocess(&[vec![0.0; 6]], &[2.0], Some(&norm));
        assert!((open.gripper_before_sign - 0.3).abs() < 1e-6);
        assert_eq!(open.emitted[6], 1.0);
        let closed = postprocess(&[vec![1.0; 6]], &[-2.0], Some(&norm));
        assert!((closed.gripper_before_sign + 1.0).abs() < 1e-6);
        assert_eq!(closed.emitted[6], -1.0);
        assert!((closed.emitted[0] - 0.65).abs() < 1e-6);
        // Every chunk row gets the same treatment; row 0 is the emitted action.
        let two = postprocess(&[vec![0.0; 6], vec![1.0; 6]], &[2.0, -2.0], Some(&norm));
        assert_eq!(two.chunk_emitted[0], two.emitted);
        assert_eq!(two.chunk_emitted[1], closed.emitted);
    }
}
