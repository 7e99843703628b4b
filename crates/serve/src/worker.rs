//! The inference worker: one thread owns the loaded policy and every session's episode state;
//! connections send it jobs through a bounded queue (back-pressure: a full queue makes senders
//! wait, memory never grows with the load) and await their own reply.
//!
//! Why a plain thread: inference is blocking, CPU- or device-bound work; keeping it off the async
//! runtime means a slow step never stalls the sockets of other sessions, and the policy (Burn
//! modules, device state) never has to move between threads — it is loaded inside this one.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use burn::prelude::Backend;
use robovlm_core::robovlms::{Episode, Executor};
use robovlm_core::{RoboPolicy, StepDetail};
use tokio::sync::{mpsc, oneshot};

use crate::options::ServeOptions;
use crate::protocol::{Observation, PolicyInfo, StepReply};

/// A loaded policy and how it is described to clients.
#[derive(Debug)]
pub struct Loaded<B: Backend> {
    /// The policy.
    pub policy: RoboPolicy<B>,
    /// Name reported in the metadata (e.g. the policy directory's name).
    pub name: String,
    /// Backend name (`flex`, `cuda`, …).
    pub backend: String,
    /// Precision name (`f32`, …).
    pub dtype: String,
}

/// What connections ask the worker.
#[derive(Debug)]
pub(crate) enum Job {
    /// Run one step of `session`'s episode.
    Step { session: u64, obs: Box<Observation>, reply: oneshot::Sender<Result<StepReply, String>> },
    /// The connection ended: free its episode.
    Close { session: u64 },
}

struct Session<B: Backend> {
    episode: Episode<B>,
    executor: Executor,
    prompt: Option<String>,
}

/// Starts the worker thread; it loads the policy with `load` and reports the policy's
/// description (or the load error) before serving jobs.
pub(crate) fn spawn<B, F>(
    load: F,
    options: ServeOptions,
    capacity: usize,
) -> (mpsc::Sender<Job>, oneshot::Receiver<Result<PolicyInfo, String>>, std::thread::JoinHandle<()>)
where
    B: Backend,
    F: FnOnce() -> Result<Loaded<B>, String> + Send + 'static,
{
    let (jobs, mut rx) = mpsc::channel::<Job>(capacity.max(1));
    let (ready_tx, ready_rx) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("robovlm-inference".into())
        .spawn(move || {
            let loaded = match catch_unwind(AssertUnwindSafe(load)) {
                Ok(Ok(l)) => l,
                Ok(Err(e)) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
                Err(_) => {
                    let _ = ready_tx.send(Err("internal error while loading the policy (a robovlm bug)".into()));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(describe(&loaded)));
            let policy = loaded.policy;
            let mut sessions: HashMap<u64, Session<B>> = HashMap::new();
            while let Some(job) = rx.blocking_recv() {
                match job {
                    Job::Step { session, obs, reply } => {
                        let s = sessions.entry(session).or_insert_with(|| Session {
                            episode: policy.new_episode(),
                            executor: Executor::new(options.execution),
                            prompt: None,
                        });
                        let result = match catch_unwind(AssertUnwindSafe(|| step(&policy, s, &obs, &options))) {
                            Ok(r) => r,
                            Err(_) => {
                                // The episode may be half-updated: start it over.
                                sessions.remove(&session);
                                Err("internal error during inference (a robovlm bug); the episode was reset".into())
                            }
                        };
                        // The client may have gone; its reply is simply dropped.
                        let _ = reply.send(result);
                    }
                    Job::Close { session } => {
                        sessions.remove(&session);
                    }
                }
            }
        })
        .expect("spawning the inference thread");
    (jobs, ready_rx, thread)
}

fn describe<B: Backend>(l: &Loaded<B>) -> PolicyInfo {
    let config = l.policy.config();
    let discrete = matches!(l.policy, RoboPolicy::Discrete(_));
    PolicyInfo {
        name: l.name.clone(),
        kind: if discrete { "discrete" } else { "continuous" }.into(),
        action_dim: config.action_dim,
        chunk: if discrete { 1 } else { config.fwd_pred_next_n },
        window_size: config.window_size,
        backend: l.backend.clone(),
        dtype: l.dtype.clone(),
    }
}

fn step<B: Backend>(
    policy: &RoboPolicy<B>,
    s: &mut Session<B>,
    obs: &Observation,
    options: &ServeOptions,
) -> Result<StepReply, String> {
    let prompt_changed = s.prompt.as_deref().is_some_and(|p| p != obs.prompt);
    if obs.reset || (options.new_episode_on_prompt_change && prompt_changed) {
        s.episode.reset();
        s.executor.reset();
    }
    s.prompt = Some(obs.prompt.clone());
    let episode_step = s.episode.steps();
    let start = Instant::now();
    let result = policy.step_in(&mut s.episode, &obs.frame, &obs.prompt);
    let infer_ms = start.elapsed().as_secs_f64() * 1e3;
    let step = result.map_err(|e| e.to_string())?;
    let action = s.executor.next(&step.chunk);
    let (arm, gripper_logits, action_ids) = match &step.detail {
        StepDetail::Continuous(c) => (Some(c.arm.clone()), Some(c.gripper_logits.clone()), None),
        StepDetail::Discrete(d) => (None, None, Some(d.generated_ids.clone())),
    };
    Ok(StepReply {
        actions: step.chunk,
        action,
        arm,
        gripper_logits,
        action_ids,
        episode_step,
        new_episode: episode_step == 0,
        infer_ms,
    })
}
