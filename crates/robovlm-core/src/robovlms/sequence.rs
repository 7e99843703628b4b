//! Where RoboPaligemma puts the image features (and the learned action token) among a text row's
//! tokens — one rule for inference, the batch path and discrete prompts (fixtures README §4.3,
//! §4.8; RoboVLMs `robopaligemma.py`, `merge_multi_modal_input`):
//!
//! `[text[0]] + image + [text[1 .. L - a]] + [action token]? + [text[L - a ..]]`, `a = 1` when an
//! action token is inserted (before the last text token), else 0.

use burn::prelude::*;

/// The spliced embeddings.
///
/// # Shapes
/// - `text`: `[rows, L, d]` with `L >= 1` (`L >= 2` with an action token); `image`:
///   `[rows, n, d]`; `action`: `[rows, 1, d]`; returns `[rows, L + n (+ 1), d]`
pub(crate) fn splice<B: Backend>(
    text: Tensor<B, 3>,
    image: Tensor<B, 3>,
    action: Option<Tensor<B, 3>>,
) -> Tensor<B, 3> {
    let [rows, l, d] = text.dims();
    let tail = usize::from(action.is_some());
    let mut parts = vec![text.clone().slice([0..rows, 0..1, 0..d]), image];
    if l - tail > 1 {
        parts.push(text.clone().slice([0..rows, 1..l - tail, 0..d]));
    }
    if let Some(action) = action {
        parts.push(action);
        parts.push(text.slice([0..rows, l - 1..l, 0..d]));
    }
    Tensor::cat(parts, 1)
}

/// The same splice applied to one row of per-token values (a mask or labels): `image` copies of
/// `image_value` after the first value, and `action_value` before the last when given.
pub(crate) fn splice_row<T: Copy>(row: &[T], image_tokens: usize, image_value: T, action_value: Option<T>) -> Vec<T> {
    let tail = usize::from(action_value.is_some());
    let mut out = Vec::with_capacity(row.len() + image_tokens + tail);
    out.push(row[0]);
    out.extend(std::iter::repeat_n(image_value, image_tokens));
    out.extend_from_slice(&row[1..row.len() - tail]);
    if let Some(a) = action_value {
        out.push(a);
        out.push(row[row.len() - 1]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use robovlm_test_utils::TestBackend;

    #[test]
    fn rows_and_tensors_splice_alike() {
        assert_eq!(splice_row(&[10, 11, 12], 2, 0, Some(9)), [10, 0, 0, 11, 9, 12]);
        assert_eq!(splice_row(&[10, 11, 12], 2, 0, None), [10, 0, 0, 11, 12]);
        assert_eq!(splice_row(&[10], 1, 0, None), [10, 0]);
        let d = Default::default();
        let text = Tensor::<TestBackend, 3>::from_data([[[10.0], [11.0], [12.0]]], &d);
        let image = Tensor::from_data([[[0.0], [0.0]]], &d);
        let action = Tensor::from_data([[[9.0]]], &d);
        let got = splice(text, image, Some(action)).into_data().to_vec::<f32>().unwrap();
        assert_eq!(got, [10.0, 0.0, 0.0, 11.0, 9.0, 12.0]);
    }
}
