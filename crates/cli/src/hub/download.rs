//! Downloading one file of a Hub repo into the Hugging Face cache, the way `huggingface_hub`
//! lays it out (`blobs/<etag>`, `snapshots/<commit>/<file>` → `../../blobs/<etag>`,
//! `refs/<revision>`).
//!
//! This replaces hf-hub 0.4's downloader, which builds cache paths from server headers without
//! checking them: a mirror (`HF_ENDPOINT`) answering `etag: ../../x` or `x-repo-commit: ../x`
//! could make it write outside the cache, and one variant ended in an assertion panic. Here every
//! path component that comes from outside is validated first — the commit must be 40 hex digits,
//! the etag 40 or 64 (git blob SHA-1 or LFS SHA-256), the revision and file names plain
//! components — and the blob is written to a temporary file created exclusively (`O_EXCL`, so a
//! planted symlink is never followed) before it is renamed into place. hf-hub 1.0 was considered:
//! it moved to an async reqwest/tokio stack and still takes these headers as given.
//!
//! Protocol (as huggingface_hub and hf-hub speak it): a ranged `GET bytes=0-0` on
//! `{endpoint}/{repo}/resolve/{revision}/{file}`, following only relative redirects, gives the
//! `x-repo-commit`, `x-linked-etag` / `etag` and (from the final response) `content-range` total
//! size; the file itself is then fetched following every redirect (LFS files live on a CDN).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

/// Why a download did not happen.
pub enum Failure {
    /// The repo has no such file (HTTP 404).
    NotFound,
    /// No HTTP response at all (no network, DNS, refused).
    Unreachable(anyhow::Error),
    /// Anything else, explained.
    Other(anyhow::Error),
}

/// What the Hub says about a file before it is downloaded.
struct Metadata {
    commit: String,
    etag: String,
    size: u64,
}

/// Whether `s` is `len` lowercase-or-uppercase hex digits.
fn is_hex(s: &str, lens: &[usize]) -> bool {
    lens.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A commit hash as the Hub returns it: 40 hex digits.
pub fn is_commit_hash(s: &str) -> bool {
    is_hex(s, &[40])
}

/// A revision the Hub accepts: a branch or tag name (path-like, `refs/pr/1` included) or a
/// commit. Every `/`-separated component must be a plain name: no `.` / `..`, no empty part, no
/// leading `/`, only `[A-Za-z0-9._-]` — so `refs/<revision>` stays inside the cache.
pub fn check_revision(revision: &str) -> Result<()> {
    let ok = !revision.is_empty()
        && revision.len() <= 256
        && revision.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        });
    if ok { Ok(()) } else { bail!("revision {revision:?} is not a valid branch, tag or commit name") }
}

/// A file name inside a repo: one or more plain path components (no `..`, not absolute).
fn check_file_name(name: &str) -> Result<()> {
    let path = Path::new(name);
    let ok = !name.is_empty() && path.components().all(|c| matches!(c, Component::Normal(_)));
    if ok { Ok(()) } else { bail!("file name {name:?} is not a path inside the repo") }
}

/// An HTTP client for the Hub with the user's token.
pub struct Client {
    agent: ureq::Agent,
    /// Same agent settings but without following redirects (metadata requests).
    no_redirect: ureq::Agent,
    token: Option<String>,
}

impl Client {
    pub fn new(token: Option<String>) -> Self {
        let build = |redirects| {
            ureq::AgentBuilder::new()
                .redirects(redirects)
                .timeout_connect(Duration::from_secs(30))
                .timeout_read(Duration::from_secs(120))
                .user_agent(concat!("robovlm/", env!("CARGO_PKG_VERSION")))
                .build()
        };
        Self { agent: build(8), no_redirect: build(0), token }
    }

    fn request(&self, agent: &ureq::Agent, url: &str) -> ureq::Request {
        let req = agent.get(url);
        match &self.token {
            Some(t) => req.set("Authorization", &format!("Bearer {t}")),
            None => req,
        }
    }

    /// The metadata of `url`: follows relative redirects only (renamed repos), like
    /// huggingface_hub, and validates every header that becomes a path component.
    fn metadata(&self, url: &str) -> std::result::Result<Metadata, Failure> {
        let mut current = url.to_owned();
        let mut response = None;
        for _ in 0..8 {
            let r = self.request(&self.no_redirect, &current).set("Range", "bytes=0-0").call().map_err(classify)?;
            if (300..400).contains(&r.status())
                && let Some(location) = r.header("location").filter(|l| l.starts_with('/'))
            {
                current = join_origin(&current, location);
                continue;
            }
            response = Some(r);
            break;
        }
        let response = response.ok_or_else(|| Failure::Other(anyhow!("{url}: too many redirects")))?;
        let header = |name: &str| response.header(name).map(str::to_owned);
        let bad =
            |what: &str, value: &str| Failure::Other(anyhow!("{url}: the server sent an invalid {what} {value:?}"));
        let commit = header("x-repo-commit").ok_or_else(|| bad("x-repo-commit header", "(missing)"))?;
        if !is_commit_hash(&commit) {
            return Err(bad("commit hash (x-repo-commit)", &commit));
        }
        let etag = header("x-linked-etag").or_else(|| header("etag")).ok_or_else(|| bad("etag header", "(missing)"))?;
        let etag = etag.trim().trim_start_matches("W/").replace('"', "");
        if !is_hex(&etag, &[40, 64]) {
            return Err(bad("etag (expected a SHA-1 or SHA-256)", &etag));
        }
        // A redirect to a CDN (LFS) knows the size; ask it.
        let sized = if (300..400).contains(&response.status()) {
            let location = header("location").ok_or_else(|| bad("redirect", "(no location)"))?;
            self.request(&self.agent, &location).set("Range", "bytes=0-0").call().map_err(classify)?
        } else {
            response
        };
        let size = sized
            .header("content-range")
            .and_then(|r| r.rsplit('/').next())
            .and_then(|n| n.trim().parse::<u64>().ok())
            .ok_or_else(|| bad("content-range header", sized.header("content-range").unwrap_or("(missing)")))?;
        Ok(Metadata { commit: commit.to_ascii_lowercase(), etag: etag.to_ascii_lowercase(), size })
    }

    /// Downloads `file` of `repo` at `revision` into `repo_dir` (the repo's folder in the cache)
    /// unless its blob is already there; returns the snapshot path.
    pub fn download(
        &self,
        endpoint: &str,
        repo_dir: &Path,
        repo: &str,
        revision: &str,
        file: &str,
        progress: bool,
    ) -> std::result::Result<PathBuf, Failure> {
        check_revision(revision).map_err(Failure::Other)?;
        check_file_name(file).map_err(Failure::Other)?;
        let url = format!("{}/{repo}/resolve/{}/{file}", endpoint.trim_end_matches('/'), revision.replace('/', "%2F"));
        let meta = self.metadata(&url)?;
        let blob = repo_dir.join("blobs").join(&meta.etag);
        if !blob.is_file() {
            self.fetch_blob(&url, &blob, meta.size, file, progress).map_err(Failure::Other)?;
        }
        let snapshot = repo_dir.join("snapshots").join(&meta.commit).join(file);
        link(&blob, &snapshot).map_err(Failure::Other)?;
        if revision != meta.commit {
            let reference = repo_dir.join("refs").join(revision);
            write_small(&reference, meta.commit.as_bytes()).map_err(Failure::Other)?;
        }
        Ok(snapshot)
    }

    /// Streams the file into a fresh temporary file next to `blob`, checks its size, renames.
    fn fetch_blob(&self, url: &str, blob: &Path, size: u64, name: &str, progress: bool) -> Result<()> {
        let dir = blob.parent().context("blob path without a folder")?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let (tmp_path, mut tmp) = exclusive_temp(dir)?;
        let result = (|| -> Result<()> {
            let response = self.request(&self.agent, url).call().map_err(|e| match classify(e) {
                Failure::Other(e) | Failure::Unreachable(e) => e,
                Failure::NotFound => anyhow!("{url}: vanished during the download"),
            })?;
            let mut body = response.into_reader().take(size + 1);
            let mut buf = vec![0u8; 1 << 20];
            let (mut done, mut shown) = (0u64, 0u64);
            loop {
                let n = body.read(&mut buf).with_context(|| format!("downloading {name}"))?;
                if n == 0 {
                    break;
                }
                tmp.write_all(&buf[..n]).with_context(|| format!("writing {}", tmp_path.display()))?;
                done += n as u64;
                if progress && (done - shown >= 64 << 20 || done == size) {
                    eprint!("\r{name}: {} / {} MiB", done >> 20, size >> 20);
                    shown = done;
                }
            }
            if progress {
                eprintln!();
            }
            if done != size {
                bail!("{name}: received {done} bytes, the server announced {size}");
            }
            tmp.sync_all().with_context(|| format!("writing {}", tmp_path.display()))?;
            std::fs::rename(&tmp_path, blob).with_context(|| format!("moving the download to {}", blob.display()))
        })();
        if result.is_err() {
            std::fs::remove_file(&tmp_path).ok();
        }
        result
    }
}

/// `scheme://host[:port]` of `url` joined with an absolute `path`.
fn join_origin(url: &str, path: &str) -> String {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let origin_end = url[after_scheme..].find('/').map_or(url.len(), |i| after_scheme + i);
    format!("{}{path}", &url[..origin_end])
}

/// Turns a ureq error into a [`Failure`] (404 → not found; no response → unreachable).
fn classify(e: ureq::Error) -> Failure {
    match e {
        ureq::Error::Status(404, _) => Failure::NotFound,
        ureq::Error::Status(status @ (401 | 403), r) => Failure::Other(anyhow!(
            "{}: access denied (HTTP {status}); the repo may be gated: accept its licence on the Hub and set \
             HF_TOKEN (or run `huggingface-cli login`)",
            r.get_url()
        )),
        ureq::Error::Status(status, r) => Failure::Other(anyhow!("{}: HTTP {status}", r.get_url())),
        ureq::Error::Transport(t) => Failure::Unreachable(anyhow!("{t}")),
    }
}

/// Creates a new, empty temporary file in `dir` that did not exist before (`O_EXCL`: an
/// existing file or a planted symlink makes the attempt fail, never followed).
pub fn exclusive_temp(dir: &Path) -> Result<(PathBuf, File)> {
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    for attempt in 0u32..100 {
        let name = format!(".robovlm-{}-{seed:x}-{attempt}.incomplete", std::process::id());
        let path = dir.join(name);
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => return Ok((path, file)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating a temporary file in {}", dir.display())),
        }
    }
    bail!("cannot create a temporary file in {}", dir.display())
}

/// Writes a small file (a ref) through a temporary file and a rename, so a symlink planted at
/// the destination is replaced, not followed.
fn write_small(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().context("ref path without a folder")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (tmp_path, mut tmp) = exclusive_temp(dir)?;
    tmp.write_all(bytes).and_then(|()| tmp.sync_all()).with_context(|| format!("writing {}", tmp_path.display()))?;
    std::fs::rename(&tmp_path, path).with_context(|| format!("writing {}", path.display()))
}

/// Points `snapshot` at `blob` with a relative symlink (`../../blobs/<etag>`, as
/// huggingface_hub does), replacing whatever is there.
fn link(blob: &Path, snapshot: &Path) -> Result<()> {
    let dir = snapshot.parent().context("snapshot path without a folder")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // snapshots/<commit>/<file...>: up to the repo folder, then into blobs/.
    let depth = snapshot
        .strip_prefix(blob.parent().and_then(Path::parent).unwrap_or(Path::new("")))
        .map_or(2, |rel| rel.components().count() - 1);
    let mut target = PathBuf::new();
    for _ in 0..depth {
        target.push("..");
    }
    target.push("blobs");
    target.push(blob.file_name().context("blob without a name")?);
    if std::fs::symlink_metadata(snapshot).is_ok() {
        std::fs::remove_file(snapshot).with_context(|| format!("replacing {}", snapshot.display()))?;
    }
    std::os::unix::fs::symlink(&target, snapshot).with_context(|| format!("linking {}", snapshot.display()))
}
