//! RoboVLMs text inputs for RoboPaligemma (fixtures README §4.3, §4.8).
//!
//! Continuous heads: `tokenizer("<eos>" + instruction.strip() + "\n", add_special_tokens=False)`,
//! batches padded on the **right**. RoboVLMs prefixes `<eos>` (not `<bos>`) on purpose of its
//! own text pipeline; a trained policy expects exactly that, so it is reproduced.
//! Discrete heads: RoboVLMs' Phi prompt builder text, tokenised with special tokens (PaliGemma's
//! add none) and the final `<eos>` dropped at inference.

use crate::error::{Error, Result};
use crate::paligemma::{PromptBatch, TextTokenizer};

/// Tokenises instructions the RoboVLMs way and pads the batch on the right with `<pad>`.
pub fn instruction_batch(tokenizer: &TextTokenizer, instructions: &[&str]) -> Result<PromptBatch> {
    if instructions.is_empty() {
        return Err(Error::Input("no instructions given".into()));
    }
    let special = tokenizer.special();
    let eos = tokenizer
        .id_to_token(special.eos)
        .ok_or_else(|| Error::Input(format!("eos id {} has no token string", special.eos)))?;
    let rows = instructions
        .iter()
        .map(|i| tokenizer.encode(&format!("{eos}{}\n", i.trim()), false))
        .collect::<Result<Vec<_>>>()?;
    Ok(pad_right(rows, special.pad))
}

/// The text of RoboVLMs' `PhiPromptBuilder` for a discrete policy predicting `fwd_pred_next_n`
/// future steps (its prompt says `n + 1` steps), ending with the tokenizer's `<eos>` string.
pub fn discrete_prompt_text(instruction: &str, fwd_pred_next_n: usize, eos_token: &str) -> String {
    format!(
        "Input: What {} step actions should the robot take to {instruction}?\nOutput: \n{eos_token}",
        fwd_pred_next_n + 1
    )
}

/// Inference ids of the discrete prompt: special tokens added, the final `<eos>` dropped.
pub fn discrete_inference_ids(
    tokenizer: &TextTokenizer,
    instruction: &str,
    fwd_pred_next_n: usize,
) -> Result<Vec<u32>> {
    let eos = tokenizer.special().eos;
    let eos_text =
        tokenizer.id_to_token(eos).ok_or_else(|| Error::Input(format!("eos id {eos} has no token string")))?;
    let mut ids = tokenizer.encode(&discrete_prompt_text(instruction, fwd_pred_next_n, &eos_text), true)?;
    if ids.last() == Some(&eos) {
        ids.pop();
    }
    Ok(ids)
}

/// Right-pads rows with `pad` into a `[batch, seq]` batch with its attention mask.
fn pad_right(rows: Vec<Vec<u32>>, pad: u32) -> PromptBatch {
    let seq = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut b = PromptBatch {
        batch: rows.len(),
        seq,
        input_ids: Vec::with_capacity(rows.len() * seq),
        attention_mask: Vec::with_capacity(rows.len() * seq),
        token_type_ids: None,
        labels: None,
    };
    for row in rows {
        let n_pad = seq - row.len();
        b.attention_mask.extend(std::iter::repeat_n(1, row.len()).chain(std::iter::repeat_n(0, n_pad)));
        b.input_ids.extend(row.into_iter().chain(std::iter::repeat_n(pad, n_pad)));
    }
    b
}
