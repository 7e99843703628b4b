//! Thin wrapper over the HF `tokenizers` crate with the special-token ids PaliGemma needs.
//!
//! PaliGemma's `tokenizer.json` already encodes everything that matters (normaliser, BPE with
//! byte fallback, added `<loc>`/`<seg>` tokens, a post-processor that adds nothing); this type
//! only pins the calling conventions: no special tokens added unless asked, ids as `u32`, and
//! decoding like `decode(skip_special_tokens=...)`.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, Result};

/// Ids of the special tokens the processors and generators rely on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialTokens {
    /// `<pad>` (padding; PaliGemma: 0).
    pub pad: u32,
    /// `<eos>` (end of sequence; also RoboVLMs' instruction prefix).
    pub eos: u32,
    /// `<bos>` (begins the PaliGemma prompt after the image tokens).
    pub bos: u32,
}

/// A loaded `tokenizer.json` plus its special-token ids.
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    path: PathBuf,
    special: SpecialTokens,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer").field("path", &self.path).field("special", &self.special).finish()
    }
}

impl TextTokenizer {
    /// Loads `tokenizer.json`. Special-token strings come from `special_tokens_map.json` next
    /// to it when present (HF's convention), else Gemma's `<pad>`, `<eos>`, `<bos>`.
    pub fn from_file(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::io(path, std::io::Error::new(std::io::ErrorKind::NotFound, "no such file")));
        }
        // Read with a bound (Gemma's is 17 MB) and parsed from memory; the library's messages
        // can quote the file, so they are shortened.
        let bytes = crate::error::read_file(path, 512 << 20, "tokenizer.json")?;
        let inner = tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| Error::Tokenizer {
            path: path.to_owned(),
            message: robovlm_weights::redact_quotes(&e.to_string()),
        })?;
        let map_path = path.with_file_name("special_tokens_map.json");
        let map: Option<Value> = if map_path.is_file() { Some(crate::error::read_json(&map_path)?) } else { None };
        let lookup = |key: &str, default: &str| -> Result<u32> {
            let name = map
                .as_ref()
                .and_then(|m| m.get(key))
                .and_then(|v| v.as_str().or_else(|| v.get("content").and_then(Value::as_str)))
                .unwrap_or(default);
            inner.token_to_id(name).ok_or_else(|| Error::Tokenizer {
                path: path.to_owned(),
                message: format!("special token {key} = {name:?} is not in the vocabulary"),
            })
        };
        let special = SpecialTokens {
            pad: lookup("pad_token", "<pad>")?,
            eos: lookup("eos_token", "<eos>")?,
            bos: lookup("bos_token", "<bos>")?,
        };
        Ok(Self { inner, path: path.to_owned(), special })
    }

    /// The file this tokenizer was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Special-token ids.
    pub fn special(&self) -> SpecialTokens {
        self.special
    }

    /// Id of a token string (added tokens included), if it exists.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Token string of an id, if it exists.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Size of the base (BPE) vocabulary without added tokens, like HF's `tokenizer.vocab_size`.
    pub fn base_vocab_size(&self) -> usize {
        self.inner.get_vocab_size(false)
    }

    /// Number of special tokens (added tokens flagged `special`: bos, eos, unk, pad and
    /// PaliGemma's `<image>`), as RoboVLMs' ActionTokenizer counts them.
    pub fn special_count(&self) -> usize {
        self.inner.get_added_tokens_decoder().values().filter(|t| t.special).count()
    }

    /// Size including added tokens, like `len(tokenizer)`.
    pub fn len(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Whether the vocabulary is empty (never true for a usable tokenizer).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::Tokenizer { path: self.path.clone(), message: robovlm_weights::redact_quotes(&e.to_string()) }
    }

    /// `tokenizer(text, add_special_tokens=add_special).input_ids`.
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        Ok(self.inner.encode(text, add_special).map_err(|e| self.err(e))?.get_ids().to_vec())
    }

    /// `tokenizer(a, text_pair=b)`: ids and `token_type_ids` (0 for `a`, 1 for `b`, as the
    /// post-processor's pair template assigns them).
    pub fn encode_pair(&self, a: &str, b: &str, add_special: bool) -> Result<(Vec<u32>, Vec<u32>)> {
        let enc = self.inner.encode((a, b), add_special).map_err(|e| self.err(e))?;
        Ok((enc.get_ids().to_vec(), enc.get_type_ids().to_vec()))
    }

    /// `tokenizer.decode(ids, skip_special_tokens=skip_special)`.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.inner.decode(ids, skip_special).map_err(|e| self.err(e))
    }
}
