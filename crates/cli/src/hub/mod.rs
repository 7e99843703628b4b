//! Resolving `--model`: a local directory, or a Hugging Face repo id (`org/name`, optionally
//! `org/name@revision`) fetched with the `hf-hub` crate into the standard HF cache, so a model
//! downloaded by Python's `huggingface_hub` is reused and vice versa.
//!
//! Environment, as `huggingface_hub` reads it:
//! - `HF_HUB_CACHE` (else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`): the cache directory;
//! - `HF_TOKEN` (else the `token` file next to the cache): for gated repos such as PaliGemma;
//! - `HF_HUB_OFFLINE=1`: never touch the network, resolve from the cache only;
//! - `HF_ENDPOINT`: a mirror instead of `https://huggingface.co`;
//! - `HF_HUB_DISABLE_PROGRESS_BARS=1`: no progress bar while downloading.
//!
//! Files already in the cache are used without a network round trip (hf-hub's `get`), so a fully
//! cached model works on an air-gapped robot even without `HF_HUB_OFFLINE`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use hf_hub::api::sync::{ApiBuilder, ApiError, ApiRepo};
use hf_hub::{Cache, Repo, RepoType};

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
        let token = non_empty_env("HF_TOKEN").or_else(|| Cache::new(cache.clone()).token());
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
        if self.offline {
            return resolve_in_cache(&self.cache, repo, revision);
        }
        let api = ApiBuilder::new()
            .with_cache_dir(self.cache.clone())
            .with_endpoint(self.endpoint.clone())
            .with_token(self.token.clone())
            .with_progress(self.progress)
            .build()
            .with_context(|| format!("{repo}: cannot set up the Hugging Face client"))?;
        let remote = api.repo(Repo::with_revision(repo.to_owned(), RepoType::Model, revision.to_owned()));
        let fetcher = Fetcher { repo, revision, remote: &remote, endpoint: &self.endpoint };
        let mut files = Vec::new();
        for name in REQUIRED {
            files.push(fetcher.required(name)?);
        }
        for name in OPTIONAL {
            files.extend(fetcher.optional(name)?);
        }
        // A sharded model is described by its index; a single file otherwise. Whatever the cache
        // already holds decides first, so a cached model needs no network at all.
        let cached = Cache::new(self.cache.clone()).repo(Repo::with_revision(
            repo.to_owned(),
            RepoType::Model,
            revision.to_owned(),
        ));
        let index = match (cached.get(INDEX), cached.get(SINGLE)) {
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
        // hf-hub files every download under the commit it came from; files of one model must
        // come from one commit (a repo updated between two runs could otherwise mix them).
        let dir = files[0].parent().map(Path::to_path_buf).unwrap_or_default();
        if let Some(stray) = files.iter().find(|f| f.parent() != Some(dir.as_path())) {
            bail!(
                "{repo}: the cached files come from different revisions ({} and {}); delete {} and download again",
                dir.display(),
                stray.display(),
                self.cache.join(repo_folder(repo)).display()
            );
        }
        Ok(dir)
    }
}

/// Downloads single files and turns hf-hub's errors into one actionable line.
struct Fetcher<'a> {
    repo: &'a str,
    revision: &'a str,
    remote: &'a ApiRepo,
    endpoint: &'a str,
}

enum Failure {
    NotFound,
    /// No HTTP response at all (no network, DNS, refused).
    Unreachable(anyhow::Error),
    Other(anyhow::Error),
}

impl Fetcher<'_> {
    fn get(&self, name: &str) -> std::result::Result<PathBuf, Failure> {
        self.remote.get(name).map_err(|e| self.explain(name, e))
    }

    fn required(&self, name: &str) -> Result<PathBuf> {
        self.get(name).map_err(|f| match f {
            Failure::NotFound => anyhow::anyhow!(
                "{}: {name} not found on {} at revision `{}` (check the repo id and revision)",
                self.repo,
                self.endpoint,
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

    fn explain(&self, name: &str, e: ApiError) -> Failure {
        let repo = self.repo;
        let status = match e {
            ApiError::RequestError(inner) => match (*inner).into_response() {
                Some(response) => response.status(),
                None => {
                    return Failure::Unreachable(anyhow::anyhow!(
                        "{repo}: cannot download {name} from {} (no network? set HF_HUB_OFFLINE=1 to use the \
                         cache only, or pass a local directory)",
                        self.endpoint
                    ));
                }
            },
            other => return Failure::Other(anyhow::Error::new(other).context(format!("{repo}: downloading {name}"))),
        };
        match status {
            404 => Failure::NotFound,
            401 | 403 => Failure::Other(anyhow::anyhow!(
                "{repo}: access to {name} denied (HTTP {status}); the repo may be gated: accept its licence on \
                 the Hub and set HF_TOKEN (or run `huggingface-cli login`)"
            )),
            _ => Failure::Other(anyhow::anyhow!("{repo}: downloading {name} failed with HTTP {status}")),
        }
    }
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
        if name.contains("..") || name.starts_with('/') {
            bail!("{}: weight_map names a file outside the repo: {name}", index.display());
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
/// that is itself a cached commit hash works too).
pub fn resolve_in_cache(cache: &Path, repo: &str, revision: &str) -> Result<PathBuf> {
    let repo_dir = cache.join(repo_folder(repo));
    let fetch = "unset HF_HUB_OFFLINE to download it, or pass a local directory";
    if !repo_dir.is_dir() {
        bail!("{repo} is not a local directory and is not in the Hugging Face cache at {} ({fetch})", cache.display());
    }
    let ref_file = repo_dir.join("refs").join(revision);
    let commit = match std::fs::read_to_string(&ref_file) {
        Ok(c) => c.trim().to_owned(),
        Err(_) if repo_dir.join("snapshots").join(revision).is_dir() => revision.to_owned(),
        Err(e) => bail!("{repo}: revision `{revision}` is not in the cache ({}: {e}; {fetch})", ref_file.display()),
    };
    let snapshot = repo_dir.join("snapshots").join(&commit);
    if !snapshot.join("config.json").is_file() {
        bail!("{repo}: cached snapshot {} has no config.json ({fetch})", snapshot.display());
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

    /// A loopback stand-in for the Hub's `resolve` endpoint, speaking the headers hf-hub reads
    /// (`etag`, `x-repo-commit`, `content-range`, ranged GETs). Returns its base URL.
    fn serve(repo: &'static str, commit: &'static str, files: BTreeMap<String, Vec<u8>>) -> String {
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
                        let mut r = format!(
                            "HTTP/1.1 206 Partial Content\r\netag: \"{:x}\"\r\nx-repo-commit: {commit}\r\n\
                             content-range: bytes {start}-{last}/{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            data.iter()
                                .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3)),
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
        std::fs::create_dir_all(repo.join("snapshots/abc123")).unwrap();
        std::fs::write(repo.join("refs/main"), "abc123\n").unwrap();
        std::fs::write(repo.join("snapshots/abc123/config.json"), "{}").unwrap();
        let hub = hub(&cache, "http://127.0.0.1:9", true);
        assert_eq!(hub.fetch("google/paligemma-3b-pt-224", "main").unwrap(), repo.join("snapshots/abc123"));
        assert_eq!(hub.fetch("google/paligemma-3b-pt-224", "abc123").unwrap(), repo.join("snapshots/abc123"));
        let err = hub.fetch("google/paligemma-3b-pt-224", "v2").unwrap_err().to_string();
        assert!(err.contains("revision `v2` is not in the cache"), "{err}");
        let err = hub.fetch("google/other", "main").unwrap_err().to_string();
        assert!(err.contains("not in the Hugging Face cache") && err.contains("HF_HUB_OFFLINE"), "{err}");
        std::fs::remove_dir_all(&cache).ok();
    }

    /// The real download path (hf-hub over HTTP, into the HF cache layout) against a loopback
    /// server; a second resolution is then served from the cache with the server gone quiet.
    #[test]
    fn downloads_single_file_model_into_the_cache() {
        let files = model_files("fixtures/paligemma_tiny/model");
        let url = serve("acme/tiny", "c0ffee", files.clone());
        let cache = temp("single");
        let dir = hub(&cache, &url, false).fetch("acme/tiny", "main").unwrap();
        assert_eq!(dir, cache.join("models--acme--tiny/snapshots/c0ffee"));
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
        let url = serve("acme/sharded", "5eed", files.clone());
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
        let url = serve("acme/noweights", "abc", files);
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
}
