//! Helpers shared by the binary's integration tests.
#![allow(dead_code)] // each test file uses a subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn robovlm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_robovlm"))
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .output()
        .expect("robovlm runs")
}

pub fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("robovlm-cli-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn assert_clean_error(o: &Output, needle: &str) {
    let (_, err) = text(o);
    assert!(!o.status.success(), "expected failure, stderr: {err}");
    assert!(err.contains(needle), "stderr should name {needle:?}: {err}");
    assert!(!err.contains("panicked") && !err.contains("internal error"), "panic: {err}");
}

/// `robovlm` with extra environment variables.
pub fn robovlm_env(args: &[&str], envs: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_robovlm"))
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(repo())
        .output()
        .expect("robovlm runs")
}

/// The repository root (the binary runs from there, so fixture paths are relative to it).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Copies every file of `from` (not recursive) into `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}
