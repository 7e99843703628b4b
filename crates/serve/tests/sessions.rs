//! Many sessions at once: no state leaks between them, and memory stays flat. Alone in its test
//! binary so that the process's RSS is this test's.

mod common;

use std::sync::Arc;

use common::{episode, f32s, load_policy, observation, start};
use robovlm_core::RgbImage;
use robovlm_serve::{Client, ServeOptions};
use tokio::sync::Barrier;

const SESSIONS: usize = 16;
const STEPS: usize = 100;
/// Distinct (instruction, frame order) patterns: sessions sharing one must agree, the others
/// must not leak into them.
const PATTERNS: usize = 4;

fn pattern(p: usize, frames: &[RgbImage], prompt: &str) -> (String, Vec<RgbImage>) {
    let prompt = if p.is_multiple_of(2) { prompt.to_owned() } else { format!("{prompt} slowly") };
    let order: Vec<RgbImage> = (0..STEPS).map(|t| frames[(t * (p + 1) + p) % frames.len()].clone()).collect();
    (prompt, order)
}

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb =
        status.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok());
    kb.unwrap_or(0.0) / 1024.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_sessions_stay_apart_with_flat_memory() {
    let (prompt, frames) = episode();
    // Each pattern alone, in process: the expected actions of every session using it.
    let mut policy = load_policy();
    let solo: Vec<Vec<Vec<f32>>> = (0..PATTERNS)
        .map(|p| {
            let (prompt, order) = pattern(p, &frames, &prompt);
            policy.reset();
            order.iter().map(|f| policy.step(f, &prompt).unwrap().chunk.concat()).collect()
        })
        .collect();
    drop(policy);
    assert_ne!(solo[0], solo[1], "the patterns must differ for the test to mean anything");

    let server = start(ServeOptions { max_sessions: SESSIONS, ..ServeOptions::default() }).await;
    let barrier = Arc::new(Barrier::new(SESSIONS + 1));
    let after_warmup = Arc::new(Barrier::new(SESSIONS + 1));
    let mut tasks = Vec::new();
    for s in 0..SESSIONS {
        let (url, barrier, after_warmup) = (server.url.clone(), Arc::clone(&barrier), Arc::clone(&after_warmup));
        let (prompt, order) = pattern(s % PATTERNS, &frames, &prompt);
        let want = solo[s % PATTERNS].clone();
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(&url, None).await.unwrap();
            for (t, frame) in order.iter().enumerate() {
                if t == 10 {
                    barrier.wait().await;
                    after_warmup.wait().await;
                }
                let reply = client.infer(&observation(frame, &prompt)).await.unwrap();
                assert_eq!(f32s(&reply, "actions").1, want[t], "session {s} step {t} differs from its solo run");
            }
            // All 100 steps done, sessions still open: the second measurement.
            barrier.wait().await;
            after_warmup.wait().await;
            client.close().await;
        }));
    }
    // Every session has taken 10 steps: the baseline (and then all 100, sessions still open).
    barrier.wait().await;
    let early = rss_mb();
    after_warmup.wait().await;
    barrier.wait().await;
    let late = rss_mb();
    after_warmup.wait().await;
    for t in tasks {
        t.await.unwrap();
    }
    eprintln!("RSS after 10 steps per session: {early:.1} MiB; after {STEPS}: {late:.1} MiB");
    assert!(late <= early * 1.1, "RSS grew from {early:.0} MiB after 10 steps to {late:.0} MiB after {STEPS}");
    server.shutdown().await;
}
