//! The one error type of weight loading: which file, which tensor, what kind of problem.

use std::path::{Path, PathBuf};

/// What kind of problem a [`LoadError`] reports, for callers that react differently (a missing
/// file vs. a corrupt one vs. a checkpoint that does not fit the model).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadErrorKind {
    /// The file cannot be opened or read.
    Io,
    /// The file is not a valid checkpoint (bad header, offsets, index, pickle).
    Format,
    /// The model has parameters the checkpoint does not provide.
    Missing,
    /// The checkpoint has tensors under the model's prefixes that no parameter takes.
    Unexpected,
    /// A tensor's shape or dtype does not fit the parameter or the request.
    Mismatch,
}

/// A checkpoint could not be read or does not fit the module it is loaded into.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {}{reason}", file.display(), tensor.as_ref().map(|t| format!("tensor {t}: ")).unwrap_or_default())]
pub struct LoadError {
    /// The file at fault (the first file when the problem spans shards).
    pub file: PathBuf,
    /// The tensor at fault, when one is.
    pub tensor: Option<String>,
    /// The kind of problem.
    pub kind: LoadErrorKind,
    /// What is wrong, in words (names the tensors or fields).
    pub reason: String,
}

impl LoadError {
    pub(crate) fn new(file: &Path, kind: LoadErrorKind, reason: impl Into<String>) -> Self {
        Self { file: file.to_owned(), tensor: None, kind, reason: reason.into() }
    }

    pub(crate) fn tensor(file: &Path, tensor: &str, kind: LoadErrorKind, reason: impl Into<String>) -> Self {
        Self { file: file.to_owned(), tensor: Some(tensor.to_owned()), kind, reason: reason.into() }
    }

    pub(crate) fn io(file: &Path, e: &std::io::Error) -> Self {
        Self::new(file, LoadErrorKind::Io, e.to_string())
    }
}

/// Longest run of file content an error message quotes.
const QUOTE_LIMIT: usize = 24;

/// Shortens every quoted span (`"…"` or `` `…` ``) of a parser's message to a few characters, so
/// that an error about a hostile or mistaken file (a `tokenizer.json` that is really
/// `/etc/shadow`, say) names the problem without echoing the file's contents.
pub fn redact_quotes(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(256));
    let mut rest = message;
    while let Some(start) = rest.find(['"', '`']) {
        let quote = rest[start..].chars().next().unwrap_or('"');
        out.push_str(&rest[..=start]);
        rest = &rest[start + 1..];
        let end = rest.find(quote).unwrap_or(rest.len());
        let inner = &rest[..end];
        if inner.chars().count() > QUOTE_LIMIT {
            out.extend(inner.chars().take(QUOTE_LIMIT));
            out.push_str(&format!("… ({} bytes)", inner.len()));
        } else {
            out.push_str(inner);
        }
        rest = &rest[end..];
        if let Some(r) = rest.strip_prefix(quote) {
            out.push(quote);
            rest = r;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::redact_quotes;

    #[test]
    fn long_quotes_are_shortened() {
        let secret = "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin";
        let msg = format!("invalid type: string \"{secret}\", expected u64 at line 1 column 90");
        let out = redact_quotes(&msg);
        assert!(
            !out.contains("nologin")
                && out.len() < 110
                && out.contains("(79 bytes)")
                && out.ends_with("line 1 column 90"),
            "{out}"
        );
        assert_eq!(redact_quotes("missing field `hidden_size`"), "missing field `hidden_size`");
        assert_eq!(redact_quotes("unterminated \"abc"), "unterminated \"abc");
    }
}
