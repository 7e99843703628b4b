//! Resolving `--model`: a local directory, or a Hugging Face repo id (`org/name`, optionally
//! `org/name@revision`) fetched by our validating downloader ([`download`]) into the standard HF
//! cache, so a model downloaded by Python's `huggingface_hub` is reused and vice versa.
//!
//! Environment, as `huggingface_hub` reads it:
//! - `HF_HUB_CACHE` (else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`): the cache directory;
//! - `HF_TOKEN` (else the `token` file next to the cache): for gated repos such as PaliGemma;
//! - `HF_HUB_OFFLINE=1`: never touch the network, resolve from the cache only;
//! - `HF_ENDPOINT`: a mirror instead of `https://huggingface.co`;
//! - `HF_HUB_DISABLE_PROGRESS_BARS=1`: no progress bar while downloading.
//!
//! Files already in the cache are used without a network round trip, so a fully cached model
//! works on an air-gapped robot even without `HF_HUB_OFFLINE`.
//!
//! Everything that becomes a path is validated first — the repo id, the revision, shard names
//! from the index, and the commit hash and etag the server sends ([`download`]) — so no input
//! can make robovlm read or write outside the cache.

mod download;

use std::io::IsTerminal;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};
use download::{Client, Failure, check_revision, is_commit_hash};

/// Files a PaliGemma directory may hold besides the weights. Only `config.json` is required
/// here; the loaders name any other missing file they need (a weights-only repo can still `dump`).
const REQUIRED: &[&str] = &["config.json"];
const OPTIONAL: &[&str] = &[
    "tokenizer.json",
    "preprocessor_config.json",
    "special_tokens_map.json",
    "tokenizer_config.json",
    "generation_config.json",
];
const SINGLE: &str = "model.safetensors";
const INDEX: &str = "model.safetensors.index.json";

/// How to reach the Hub: built from the environment by [`Hub::from_env`], or by tests.
#[derive(Debug, Clone)]
pub struct Hub {
    /// The `hub` cache directory (holding `models--org--name/`).
    pub cache: PathBuf,
    /// Base URL, `https://huggingface.co` unless `HF_ENDPOINT` says otherwise.
    pub endpoint: String,
    pub token: Option<String>,
    /// Resolve from the cache only.
    pub offline: bool,
    pub progress: bool,
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

impl Hub {
    pub fn from_env() -> Result<Self> {
        let cache = if let Some(p) = non_empty_env("HF_HUB_CACHE") {
            PathBuf::from(p)
        } else if let Some(p) = non_empty_env("HF_HOME") {
            PathBuf::from(p).join("hub")
        } else {
            let home = std::env::var_os("HOME").context("cannot locate the Hugging Face cache: set HF_HOME")?;
            PathBuf::from(home).join(".cache/huggingface/hub")
        };
        // The token file lives in HF_HOME, the parent of the default cache directory.
        let token = non_empty_env("HF_TOKEN").or_else(|| {
            let file = cache.parent()?.join("token");
            std::fs::read_to_string(file).ok().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty())
        });
        Ok(Self {
            cache,
            endpoint: non_empty_env("HF_ENDPOINT").unwrap_or_else(|| "https://huggingface.co".into()),
            token,
            offline: env_flag("HF_HUB_OFFLINE"),
            progress: !env_flag("HF_HUB_DISABLE_PROGRESS_BARS") && std::io::stderr().is_terminal(),
        })
    }

    /// Makes every file of `repo` at `revision` local and returns the snapshot directory.
    pub fn fetch(&self, repo: &str, revision: &str) -> Result<PathBuf> {
        check_revision(revision).with_context(|| format!("{repo}@{revision}"))?;
        if self.offline {
            return resolve_in_cache(&self.cache, repo, revision);
        }
        let client = Client::new(self.token.clone());
        let repo_dir = self.cache.join(repo_folder(repo));
        let fetcher = Fetcher { repo, revision, repo_dir: &repo_dir, client: &client, hub: self };
        let mut files = Vec::new();
        for name in REQUIRED {
            files.push(fetcher.required(name)?);
        }
        for name in OPTIONAL {
            files.extend(fetcher.optional(name)?);
        }
        // A sharded model is described by its index; a single file otherwise. Whatever the cache
        // already holds decides first, so a cached model needs no network at all.
        let index = match (cached_file(&repo_dir, revision, INDEX), cached_file(&repo_dir, revision, SINGLE)) {
            (Some(index), _) => Some(index),
            (None, Some(_)) => None,
            (None, None) => fetcher.optional(INDEX)?,
        };
        match index {
            Some(index) => {
                let shards = shard_names(&index)?;
                files.push(index);
                for shard in shards {
                    files.push(fetcher.required(&shard)?);
                }
            }
            None => files.push(fetcher.required(SINGLE).with_context(|| {
                format!("{repo}: the repo has neither {SINGLE} nor {INDEX}; is it a PaliGemma checkpoint?")
            })?),
        }
        // Files are filed under the commit they came from; files of one model must come from one
        // commit (a repo updated between two runs could otherwise mix them).
        let dir = files[0].parent().map(Path::to_path_buf).unwrap_or_default();
        if let Some(stray) = files.iter().find(|f| f.parent() != Some(dir.as_path())) {
            bail!(
                "{repo}: the cached files come from different revisions ({} and {}); delete {} and download again",
                dir.display(),
                stray.display(),
                repo_dir.display()
            );
        }
        Ok(dir)
    }
}

/// Gets single files — from the cache when they are there, else downloaded — and turns
/// failures into one actionable line.
struct Fetcher<'a> {
    repo: &'a str,
    revision: &'a str,
    repo_dir: &'a Path,
    client: &'a Client,
    hub: &'a Hub,
}

impl Fetcher<'_> {
    fn get(&self, name: &str) -> std::result::Result<PathBuf, Failure> {
        if let Some(cached) = cached_file(self.repo_dir, self.revision, name) {
            return Ok(cached);
        }
        self.client
            .download(&self.hub.endpoint, self.repo_dir, self.repo, self.revision, name, self.hub.progress)
            .map_err(|f| match f {
                Failure::Unreachable(e) => Failure::Unreachable(e.context(format!(
                    "{}: cannot download {name} from {} (no network? set HF_HUB_OFFLINE=1 to use the cache only, \
                     or pass a local directory)",
                    self.repo, self.hub.endpoint
                ))),
                Failure::Other(e) => Failure::Other(e.context(format!("{}: downloading {name}", self.repo))),
                Failure::NotFound => Failure::NotFound,
            })
    }

    fn required(&self, name: &str) -> Result<PathBuf> {
        self.get(name).map_err(|f| match f {
            Failure::NotFound => anyhow::anyhow!(
                "{}: {name} not found on {} at revision `{}` (check the repo id and revision)",
                self.repo,
                self.hub.endpoint,
                self.revision
            ),
            Failure::Unreachable(e) | Failure::Other(e) => e,
        })
    }

    /// `None` when the repo does not have the file, or when the Hub cannot be reached to ask:
    /// an optional file a cached model lacks must not make it unusable offline (a loader that
    /// does need the file names it).
    fn optional(&self, name: &str) -> Result<Option<PathBuf>> {
        match self.get(name) {
            Ok(p) => Ok(Some(p)),
            Err(Failure::NotFound | Failure::Unreachable(_)) => Ok(None),
            Err(Failure::Other(e)) => Err(e),
        }
    }
}

/// The commit a revision points to in the cache (`refs/<revision>`, or the revision itself when
/// it is a commit hash), validated before it becomes a path.
fn cached_commit(repo_dir: &Path, revision: &str) -> Option<String> {
    if is_commit_hash(revision) {
        return Some(revision.to_ascii_lowercase());
    }
    check_revision(revision).ok()?;
    let commit = std::fs::read_to_string(repo_dir.join("refs").join(revision)).ok()?.trim().to_owned();
    is_commit_hash(&commit).then_some(commit)
}

/// `snapshots/<commit>/<name>` when the cache holds it for `revision`.
fn cached_file(repo_dir: &Path, revision: &str, name: &str) -> Option<PathBuf> {
    let path = repo_dir.join("snapshots").join(cached_commit(repo_dir, revision)?).join(name);
    path.is_file().then_some(path)
}

/// The shard file names listed by a `model.safetensors.index.json`, in order, without repeats.
fn shard_names(index: &Path) -> Result<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct Index {
        weight_map: std::collections::BTreeMap<String, String>,
    }
    let text = std::fs::read_to_string(index).with_context(|| format!("{}: cannot read", index.display()))?;
    let parsed: Index =
        serde_json::from_str(&text).with_context(|| format!("{}: not a safetensors index", index.display()))?;
    let names: std::collections::BTreeSet<String> = parsed.weight_map.into_values().collect();
    for name in &names {
        let mut parts = Path::new(name).components();
        if !matches!((parts.next(), parts.next()), (Some(Component::Normal(_)), None)) {
            bail!("{}: weight_map names {name:?}, which is not a file of the repo", index.display());
        }
    }
    Ok(names.into_iter().collect())
}

fn repo_folder(repo: &str) -> String {
    format!("models--{}", repo.replace('/', "--"))
}

/// Splits `org/name[@revision]`; `None` if `s` does not look like a repo id (it is then a path).
fn parse_repo_id(s: &str) -> Option<(&str, &str)> {
    let (id, revision) = match s.split_once('@') {
        Some((id, rev)) if !rev.is_empty() && !rev.contains(char::is_whitespace) => (id, rev),
        Some(_) => return None,
        None => (s, "main"),
    };
    let mut parts = id.split('/');
    let ok = |p: Option<&str>| {
        p.is_some_and(|p| {
            !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) && p != "." && p != ".."
        })
    };
    (ok(parts.next()) && ok(parts.next()) && parts.next().is_none()).then_some((id, revision))
}

/// `--model`: a PaliGemma model, local or on the Hub (shared by the commands that load one).
#[derive(Debug, Clone, clap::Args)]
pub struct ModelArg {
    /// HF PaliGemma directory, or a Hub repo id `org/name[@revision]` (e.g.
    /// google/paligemma-3b-pt-224), downloaded into the HF cache with a progress bar or taken from
    /// it. Honours HF_TOKEN (gated repos), HF_HOME / HF_HUB_CACHE, HF_HUB_OFFLINE=1, HF_ENDPOINT.
    #[arg(long, value_name = "DIR|HF_ID")]
    pub model: String,
}

impl ModelArg {
    /// The local directory (downloaded first when a Hub id is given).
    pub fn resolve(&self) -> Result<PathBuf> {
        resolve_model(&self.model)
    }
}

/// Resolves a model argument to a local directory, downloading a Hub repo if needed.
pub fn resolve_model(arg: &str) -> Result<PathBuf> {
    let path = Path::new(arg);
    if path.is_dir() {
        return Ok(path.to_owned());
    }
    let Some((repo, revision)) = parse_repo_id(arg) else {
        bail!("{arg}: no such model directory");
    };
    Hub::from_env()?.fetch(repo, revision)
}

/// Offline resolution: `models--org--name/refs/<revision>` → `snapshots/<commit>` (a revision
/// that is itself a cached commit hash works too). The revision and the commit read from the
/// ref file are validated before they become paths.
pub fn resolve_in_cache(cache: &Path, repo: &str, revision: &str) -> Result<PathBuf> {
    check_revision(revision).with_context(|| format!("{repo}@{revision}"))?;
    let repo_dir = cache.join(repo_folder(repo));
    let fetch = "unset HF_HUB_OFFLINE to download it, or pass a local directory";
    if !repo_dir.is_dir() {
        bail!("{repo} is not a local directory and is not in the Hugging Face cache at {} ({fetch})", cache.display());
    }
    let Some(commit) = cached_commit(&repo_dir, revision) else {
        bail!("{repo}: revision `{revision}` is not in the cache ({fetch})");
    };
    let snapshot = repo_dir.join("snapshots").join(&commit);
    if !snapshot.join("config.json").is_file() {
        bail!(
            "{repo}: revision `{revision}` is not in the cache (no {}; {fetch})",
            snapshot.join("config.json").display()
        );
    }
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("robovlm-hub-{name}-{}", std::process::id()));
        std::fs::remove_dir_all(&dir).ok();
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn hub(cache: &Path, endpoint: &str, offline: bool) -> Hub {
        Hub { cache: cache.to_owned(), endpoint: endpoint.into(), token: None, offline, progress: false }
    }

    const COMMIT: &str = "c0ffee0000000000000000000000000000c0ffee";

    /// A loopback stand-in for the Hub's `resolve` endpoint, speaking the headers the Hub sends
    /// (`etag`, `x-repo-commit`, `content-range`, ranged GETs). `etag: None` sends a SHA-256-like
    /// hash of the file; `Some(e)` sends `e` (a hostile mirror). Returns its base URL.
    fn serve(repo: &'static str, commit: &'static str, files: BTreeMap<String, Vec<u8>>) -> String {
        serve_with(repo, commit, None, files)
    }

    fn serve_with(
        repo: &'static str,
        commit: &'static str,
        etag: Option<&'static str>,
        files: BTreeMap<String, Vec<u8>>,
    ) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                reader.read_line(&mut request).ok();
                let mut start = 0usize;
                let mut end = None;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                        break;
                    }
                    if let Some(range) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
                        let (a, b) = range.trim().split_once('-').unwrap();
                        start = a.parse().unwrap();
                        end = b.parse::<usize>().ok();
                    }
                }
                let path = request.split_whitespace().nth(1).unwrap_or("");
                let prefix = format!("/{repo}/resolve/main/");
                let body = path.strip_prefix(&prefix).and_then(|name| files.get(name));
                let response = match body {
                    None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
                    Some(data) => {
                        let last = end.unwrap_or(data.len() - 1).min(data.len() - 1);
                        let part = &data[start..=last];
                        let h = data
                            .iter()
                            .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
                        let etag = etag.map_or_else(
                            || format!("{h:016x}{:016x}{:016x}{:016x}", h ^ 1, h ^ 2, h ^ 3),
                            str::to_owned,
                        );
                        let mut r = format!(
                            "HTTP/1.1 206 Partial Content\r\netag: \"{etag}\"\r\nx-repo-commit: {commit}\r\n\
                             content-range: bytes {start}-{last}/{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            data.len(),
                            part.len()
                        )
                        .into_bytes();
                        r.extend_from_slice(part);
                        r
                    }
                };
                stream.write_all(&response).ok();
            }
        });
        url
    }

    fn model_files(dir: &str) -> BTreeMap<String, Vec<u8>> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(dir);
        std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| (p.file_name().unwrap().to_str().unwrap().to_owned(), std::fs::read(&p).unwrap()))
            .collect()
    }

    #[test]
    fn repo_ids() {
        assert_eq!(parse_repo_id("google/paligemma-3b-pt-224"), Some(("google/paligemma-3b-pt-224", "main")));
        assert_eq!(parse_repo_id("google/paligemma-3b-pt-224@v1.0"), Some(("google/paligemma-3b-pt-224", "v1.0")));
        assert_eq!(parse_repo_id("fixtures/paligemma_tiny/model"), None);
        assert_eq!(parse_repo_id("./x"), None);
        assert_eq!(parse_repo_id("a/b@"), None);
    }

    #[test]
    fn offline_cache_layout() {
        let cache = temp("offline");
        let repo = cache.join("models--google--paligemma-3b-pt-224");
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::create_dir_all(repo.join("snapshots").join(COMMIT)).unwrap();
        std::fs::write(repo.join("refs/main"), format!("{COMMIT}\n")).unwrap();
        std::fs::write(repo.join("snapshots").join(COMMIT).join("config.json"), "{}").unwrap();
        let hub = hub(&cache, "http://127.0.0.1:9", true);
        assert_eq!(hub.fetch("google/paligemma-3b-pt-224", "main").unwrap(), repo.join("snapshots").join(COMMIT));
        assert_eq!(hub.fetch("google/paligemma-3b-pt-224", COMMIT).unwrap(), repo.join("snapshots").join(COMMIT));
        let err = hub.fetch("google/paligemma-3b-pt-224", "v2").unwrap_err().to_string();
        assert!(err.contains("revision `v2` is not in the cache"), "{err}");
        let err = hub.fetch("google/other", "main").unwrap_err().to_string();
        assert!(err.contains("not in the Hugging Face cache") && err.contains("HF_HUB_OFFLINE"), "{err}");
        std::fs::remove_dir_all(&cache).ok();
    }

    /// The real download path (HTTP, into the HF cache layout) against a loopback
    /// server; a second resolution is then served from the cache with the server gone quiet.
    #[test]
    fn downloads_single_file_model_into_the_cache() {
        let files = model_files("fixtures/paligemma_tiny/model");
        let url = serve("acme/tiny", COMMIT, files.clone());
        let cache = temp("single");
        let dir = hub(&cache, &url, false).fetch("acme/tiny", "main").unwrap();
        assert_eq!(dir, cache.join("models--acme--tiny/snapshots").join(COMMIT));
        for (name, bytes) in &files {
            assert_eq!(&std::fs::read(dir.join(name)).unwrap(), bytes, "{name}");
        }
        // Cached: resolves without the network (offline) and without a request (unreachable endpoint).
        assert_eq!(hub(&cache, &url, true).fetch("acme/tiny", "main").unwrap(), dir);
        assert_eq!(hub(&cache, "http://127.0.0.1:9", false).fetch("acme/tiny", "main").unwrap(), dir);
        std::fs::remove_dir_all(&cache).ok();
    }

    #[test]
    fn downloads_every_shard_named_by_the_index() {
        let files = model_files("fixtures/paligemma_tiny_sharded/model");
        let url = serve("acme/sharded", COMMIT, files.clone());
        let cache = temp("sharded");
        let dir = hub(&cache, &url, false).fetch("acme/sharded", "main").unwrap();
        for (name, bytes) in &files {
            assert_eq!(&std::fs::read(dir.join(name)).unwrap(), bytes, "{name}");
        }
        std::fs::remove_dir_all(&cache).ok();
    }

    #[test]
    fn clear_errors_for_missing_repos_and_no_network() {
        let mut files = model_files("fixtures/paligemma_tiny/model");
        files.remove(SINGLE);
        let url = serve("acme/noweights", COMMIT, files);
        let cache = temp("errors");
        let err = format!("{:#}", hub(&cache, &url, false).fetch("acme/noweights", "main").unwrap_err());
        assert!(err.contains("neither model.safetensors nor model.safetensors.index.json"), "{err}");
        let err = format!("{:#}", hub(&cache, &url, false).fetch("acme/missing", "main").unwrap_err());
        assert!(err.contains("config.json not found"), "{err}");
        // Port 9 (discard) on loopback: nothing listens, the connection is refused.
        let err = format!("{:#}", hub(&cache, "http://127.0.0.1:9", false).fetch("acme/x", "main").unwrap_err());
        assert!(err.contains("cannot download config.json") && err.contains("HF_HUB_OFFLINE=1"), "{err}");
        std::fs::remove_dir_all(&cache).ok();
    }

    /// Paths built from input never leave the cache: a revision with `..`, and a mirror whose
    /// commit or etag header holds a path, are refused before anything is written.
    #[test]
    fn hostile_revisions_and_headers_stay_inside_the_cache() {
        let cache = temp("hostile");
        let outside = cache.parent().unwrap().join(format!("robovlm-hub-escape-{}", std::process::id()));
        for revision in ["../../../escape", "main/../../x", "/abs", "a//b", "..", "tag with space"] {
            let err =
                format!("{:#}", hub(&cache, "http://127.0.0.1:9", false).fetch("acme/tiny", revision).unwrap_err());
            assert!(err.contains("not a valid branch, tag or commit"), "{revision}: {err}");
            let err =
                format!("{:#}", hub(&cache, "http://127.0.0.1:9", true).fetch("acme/tiny", revision).unwrap_err());
            assert!(err.contains("not a valid branch, tag or commit"), "{revision}: {err}");
        }
        let files = model_files("fixtures/paligemma_tiny/model");
        for (commit, etag) in [("../../../robovlm-escape", None), (COMMIT, Some("../../../robovlm-escape"))] {
            let url = serve_with("acme/evil", commit, etag, files.clone());
            let err = format!("{:#}", hub(&cache, &url, false).fetch("acme/evil", "main").unwrap_err());
            assert!(err.contains("invalid"), "{err}");
        }
        assert!(!outside.exists() && !cache.parent().unwrap().join("robovlm-escape").exists());
        // Nothing but the repo folders was created inside the cache either.
        let made: Vec<_> = walk(&cache);
        assert!(made.iter().all(|p| p.starts_with(&cache)), "{made:?}");
        assert!(!made.iter().any(|p| p.extension().is_some_and(|e| e == "incomplete")), "{made:?}");
        std::fs::remove_dir_all(&cache).ok();
    }

    /// A weight map naming a file outside the repo is refused.
    #[test]
    fn shard_names_stay_inside_the_repo() {
        let dir = temp("index");
        for bad in ["../x.safetensors", "/etc/passwd", "a/../../b", "sub/dir.safetensors"] {
            let index = dir.join("model.safetensors.index.json");
            std::fs::write(&index, format!(r#"{{"weight_map": {{"w": "{bad}"}}}}"#)).unwrap();
            let err = shard_names(&index).unwrap_err().to_string();
            assert!(err.contains("not a file of the repo"), "{bad}: {err}");
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                out.extend(walk(&p));
            }
            out.push(p);
        }
        out
    }
}
