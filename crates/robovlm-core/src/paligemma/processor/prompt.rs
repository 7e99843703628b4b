//! PaliGemma prompt assembly (`PaliGemmaProcessor`, transformers 4.47.1).
//!
//! Inference: `"<image>" × N + "<bos>" + prompt + "\n"`, tokenised as one string (so the
//! tokenizer, not we, decides how the prompt's last word meets the newline). Training adds the
//! suffix as the tokenizer's *second sequence* (`text_pair`), `suffix + "<eos>"`, which is what
//! gives `token_type_ids` 1 and the labels. Batches are padded on the **left** with `<pad>`
//! (GemmaTokenizerFast's default `padding_side`).

use super::tokenizer::TextTokenizer;
use crate::error::{Error, Result};

/// Label value ignored by the loss (PyTorch's `ignore_index`).
pub const IGNORE_INDEX: i64 = -100;

/// Token ids of a (possibly padded) batch of prompts, row-major `[batch, seq]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptBatch {
    /// Rows.
    pub batch: usize,
    /// Columns (longest row).
    pub seq: usize,
    /// `input_ids`.
    pub input_ids: Vec<u32>,
    /// `attention_mask`: 1 real token, 0 padding.
    pub attention_mask: Vec<u32>,
    /// `token_type_ids` (training prompts only): 0 prefix and padding, 1 suffix.
    pub token_type_ids: Option<Vec<u32>>,
    /// `labels` (training prompts only): ids where `token_type_ids` is 1, else -100.
    pub labels: Option<Vec<i64>>,
}

/// The text `PaliGemmaProcessor` tokenises for one image and one prompt.
pub fn paligemma_prompt_text(prompt: &str, num_image_tokens: usize, image_token: &str, bos_token: &str) -> String {
    format!("{}{bos_token}{prompt}\n", image_token.repeat(num_image_tokens))
}

/// Builds PaliGemma inference or training ids.
#[derive(Debug, Clone, Copy)]
pub struct PromptBuilder<'a> {
    tokenizer: &'a TextTokenizer,
    num_image_tokens: usize,
    image_token: &'a str,
}

impl<'a> PromptBuilder<'a> {
    /// `image_token` is the image placeholder string (`<image>`), repeated `num_image_tokens` times.
    pub fn new(tokenizer: &'a TextTokenizer, num_image_tokens: usize, image_token: &'a str) -> Self {
        Self { tokenizer, num_image_tokens, image_token }
    }

    fn prefix(&self, prompt: &str) -> Result<String> {
        let bos = self.tokenizer.special().bos;
        let bos =
            self.tokenizer.id_to_token(bos).ok_or_else(|| Error::Input(format!("bos id {bos} has no token string")))?;
        Ok(paligemma_prompt_text(prompt, self.num_image_tokens, self.image_token, &bos))
    }

    /// Inference ids for one prompt per row, left-padded to the longest row.
    pub fn inference(&self, prompts: &[&str]) -> Result<PromptBatch> {
        let rows = prompts
            .iter()
            .map(|p| Ok((self.tokenizer.encode(&self.prefix(p)?, false)?, None)))
            .collect::<Result<Vec<_>>>()?;
        self.pad_left(rows, false)
    }

    /// Training ids for `(prefix, suffix)` pairs: the suffix and a final `<eos>` are the
    /// tokenizer's second sequence, so they get `token_type_ids` 1 and become the labels.
    pub fn training(&self, examples: &[(&str, &str)]) -> Result<PromptBatch> {
        let eos = self.tokenizer.special().eos;
        let eos =
            self.tokenizer.id_to_token(eos).ok_or_else(|| Error::Input(format!("eos id {eos} has no token string")))?;
        let rows = examples
            .iter()
            .map(|(prefix, suffix)| {
                let (ids, types) =
                    self.tokenizer.encode_pair(&self.prefix(prefix)?, &format!("{suffix}{eos}"), false)?;
                Ok((ids, Some(types)))
            })
            .collect::<Result<Vec<_>>>()?;
        self.pad_left(rows, true)
    }

    fn pad_left(&self, rows: Vec<(Vec<u32>, Option<Vec<u32>>)>, training: bool) -> Result<PromptBatch> {
        if rows.is_empty() {
            return Err(Error::Input("no prompts given".into()));
        }
        let pad = self.tokenizer.special().pad;
        let seq = rows.iter().map(|(ids, _)| ids.len()).max().unwrap_or(0);
        let mut out = PromptBatch {
            batch: rows.len(),
            seq,
            input_ids: Vec::with_capacity(rows.len() * seq),
            attention_mask: Vec::with_capacity(rows.len() * seq),
            token_type_ids: training.then(Vec::new),
            labels: training.then(Vec::new),
        };
        for (ids, types) in rows {
            let n_pad = seq - ids.len();
            let types = types.unwrap_or_else(|| vec![0; ids.len()]);
            out.input_ids.extend(std::iter::repeat_n(pad, n_pad).chain(ids.iter().copied()));
            out.attention_mask.extend(std::iter::repeat_n(0, n_pad).chain(std::iter::repeat_n(1, ids.len())));
            if let (Some(tt), Some(labels)) = (out.token_type_ids.as_mut(), out.labels.as_mut()) {
                tt.extend(std::iter::repeat_n(0, n_pad).chain(types.iter().copied()));
                labels.extend(std::iter::repeat_n(IGNORE_INDEX, n_pad));
                labels
                    .extend(ids.iter().zip(&types).map(|(&id, &t)| if t == 0 { IGNORE_INDEX } else { i64::from(id) }));
            }
        }
        Ok(out)
    }
}
