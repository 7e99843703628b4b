//! Resolving `--model`: a local directory, or a Hugging Face repo id found in the local HF cache
//! (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`), with the cache
//! layout `models--{org}--{name}/refs/{revision}` → `snapshots/{commit}/`.
//!
//! Downloading is not built in yet: a repo id that is not cached is a clear error that says how
//! to fetch it. (The `hf-hub` crate is the planned downloader; see the README status.)

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The HF hub cache directory from the environment.
fn cache_dir() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HF_HUB_CACHE") {
        return Some(PathBuf::from(p));
    }
    if let Some(p) = std::env::var_os("HF_HOME") {
        return Some(PathBuf::from(p).join("hub"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface/hub"))
}

/// Whether `s` looks like `org/name` (and not like a path).
fn is_repo_id(s: &str) -> bool {
    let mut parts = s.split('/');
    let ok = |p: Option<&str>| {
        p.is_some_and(|p| {
            !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) && p != "." && p != ".."
        })
    };
    ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
}

/// Resolves a model argument to a local directory.
pub fn resolve_model(arg: &str) -> Result<PathBuf> {
    let path = Path::new(arg);
    if path.is_dir() {
        return Ok(path.to_owned());
    }
    if !is_repo_id(arg) {
        bail!("{arg}: no such model directory");
    }
    let cache = cache_dir().context("cannot locate the Hugging Face cache (set HF_HOME or HF_HUB_CACHE)")?;
    resolve_in_cache(&cache, arg, "main")
}

/// `models--org--name/refs/<revision>` → `snapshots/<commit>`.
pub fn resolve_in_cache(cache: &Path, repo: &str, revision: &str) -> Result<PathBuf> {
    let repo_dir = cache.join(format!("models--{}", repo.replace('/', "--")));
    let fetch = format!("download it first, e.g. `huggingface-cli download {repo}`, or pass a local directory");
    if !repo_dir.is_dir() {
        bail!("{repo} is not a local directory and is not in the Hugging Face cache at {} ({fetch})", cache.display());
    }
    let ref_file = repo_dir.join("refs").join(revision);
    let commit = std::fs::read_to_string(&ref_file)
        .with_context(|| format!("{repo}: no revision `{revision}` in the cache ({})", ref_file.display()))?;
    let snapshot = repo_dir.join("snapshots").join(commit.trim());
    if !snapshot.join("config.json").is_file() {
        bail!("{repo}: cached snapshot {} has no config.json ({fetch})", snapshot.display());
    }
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_ids_and_cache_layout() {
        assert!(is_repo_id("google/paligemma-3b-pt-224"));
        assert!(!is_repo_id("fixtures/paligemma_tiny/model"));
        assert!(!is_repo_id("./x"));
        let cache = std::env::temp_dir().join(format!("robovlm-hub-{}", std::process::id()));
        let repo = cache.join("models--google--paligemma-3b-pt-224");
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::create_dir_all(repo.join("snapshots/abc123")).unwrap();
        std::fs::write(repo.join("refs/main"), "abc123\n").unwrap();
        std::fs::write(repo.join("snapshots/abc123/config.json"), "{}").unwrap();
        let got = resolve_in_cache(&cache, "google/paligemma-3b-pt-224", "main").unwrap();
        assert_eq!(got, repo.join("snapshots/abc123"));
        let err = resolve_in_cache(&cache, "google/other", "main").unwrap_err().to_string();
        assert!(err.contains("huggingface-cli download google/other"), "{err}");
        std::fs::remove_dir_all(&cache).ok();
    }
}
