//! How a robot executes the action chunks a policy predicts, one control step at a time.
//!
//! A RoboVLMs policy predicts a chunk of `fwd_pred_next_n` actions per frame. Three ways to turn
//! the stream of chunks into one action per step:
//! - [`Execution::Replan`] (RoboVLMs' default): re-plan every step, execute action 0 of the newest
//!   chunk.
//! - [`Execution::OpenLoop`]`(n)`: execute the first `n` actions of a chunk in order, then take the
//!   next chunk; chunks predicted meanwhile are not used.
//! - [`Execution::TemporalEnsemble`]`(m)` (ACT): at step `t` average every prediction for `t` —
//!   action `k` of the chunk predicted at `t − k` — with weights `exp(−m · i)`, `i = 0` for the
//!   oldest prediction (ACT's `exp_weights`); the gripper is the sign of its weighted mean.
//!
//! The policy itself is still stepped on every frame (its history is per frame, as trained); the
//! executor only chooses what to send to the robot. Pure host code, shared by `robovlm act
//! --execute` and the server.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;

/// An execution strategy (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum Execution {
    /// Execute action 0 of every new chunk.
    #[default]
    Replan,
    /// Execute the first `n` actions of a chunk before taking the next one.
    OpenLoop(usize),
    /// ACT temporal ensembling with weight decay `m`.
    TemporalEnsemble(f64),
}

impl fmt::Display for Execution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Replan => write!(f, "replan"),
            Self::OpenLoop(n) => write!(f, "open-loop:{n}"),
            Self::TemporalEnsemble(m) => write!(f, "ensemble:{m}"),
        }
    }
}

impl FromStr for Execution {
    type Err = String;

    /// `replan`, `open-loop:N` (N ≥ 1) or `ensemble:M` (M ≥ 0, finite; ACT uses 0.01).
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?}: expected replan, open-loop:N (N >= 1) or ensemble:M (M >= 0)");
        match s.split_once(':') {
            None if s == "replan" => Ok(Self::Replan),
            Some(("open-loop", n)) => match n.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(Self::OpenLoop(n)),
                _ => Err(bad()),
            },
            Some(("ensemble", m)) => match m.parse::<f64>() {
                Ok(m) if m >= 0.0 && m.is_finite() => Ok(Self::TemporalEnsemble(m)),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        }
    }
}

/// Turns one chunk per step into one action per step; one per episode.
#[derive(Debug, Clone)]
pub struct Executor {
    mode: Execution,
    /// Open loop: actions still to execute from the current chunk.
    plan: VecDeque<Vec<f32>>,
    /// Ensembling: the chunks of the last steps, newest last, with the step each was predicted at.
    history: VecDeque<(usize, Vec<Vec<f32>>)>,
    step: usize,
}

impl Executor {
    /// A fresh executor for one episode.
    pub fn new(mode: Execution) -> Self {
        Self { mode, plan: VecDeque::new(), history: VecDeque::new(), step: 0 }
    }

    /// The strategy.
    pub fn mode(&self) -> Execution {
        self.mode
    }

    /// Starts a new episode.
    pub fn reset(&mut self) {
        *self = Self::new(self.mode);
    }

    /// The action to execute at this step, given the chunk predicted at this step (rows of
    /// post-processed actions: arm, then the ±1 gripper last).
    ///
    /// # Panics
    /// If `chunk` is empty (a policy always predicts at least one action).
    pub fn next(&mut self, chunk: &[Vec<f32>]) -> Vec<f32> {
        assert!(!chunk.is_empty(), "an empty action chunk");
        let t = self.step;
        self.step += 1;
        match self.mode {
            Execution::Replan => chunk[0].clone(),
            Execution::OpenLoop(n) => {
                if self.plan.is_empty() {
                    self.plan.extend(chunk.iter().take(n).cloned());
                }
                self.plan.pop_front().expect("refilled above")
            }
            Execution::TemporalEnsemble(m) => {
                self.history.push_back((t, chunk.to_vec()));
                // A chunk predicted at `s` covers steps s .. s + len − 1.
                self.history.retain(|(s, c)| s + c.len() > t);
                let mut sum = vec![0f64; chunk[0].len()];
                let mut total = 0f64;
                for (i, (s, c)) in self.history.iter().enumerate() {
                    let w = (-m * i as f64).exp();
                    total += w;
                    for (acc, &x) in sum.iter_mut().zip(&c[t - s]) {
                        *acc += w * f64::from(x);
                    }
                }
                let mut action: Vec<f32> = sum.iter().map(|x| (x / total) as f32).collect();
                if let Some(g) = action.last_mut() {
                    *g = if *g > 0.0 { 1.0 } else { -1.0 };
                }
                action
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chunk predicted at step `t`: row `k` = [10t + k, gripper].
    fn chunk(t: usize, len: usize, gripper: f32) -> Vec<Vec<f32>> {
        (0..len).map(|k| vec![(10 * t + k) as f32, gripper]).collect()
    }

    #[test]
    fn parses_and_prints() {
        for s in ["replan", "open-loop:3", "ensemble:0.01"] {
            assert_eq!(s.parse::<Execution>().unwrap().to_string(), s);
        }
        for s in ["", "open-loop:0", "open-loop:x", "ensemble:-1", "ensemble:nan", "replan:1", "act"] {
            assert!(s.parse::<Execution>().is_err(), "{s}");
        }
    }

    #[test]
    fn replan_executes_action_zero_of_each_chunk() {
        let mut e = Executor::new(Execution::Replan);
        let got: Vec<f32> = (0..4).map(|t| e.next(&chunk(t, 3, 1.0))[0]).collect();
        assert_eq!(got, [0.0, 10.0, 20.0, 30.0]);
    }

    #[test]
    fn open_loop_executes_n_actions_then_takes_the_current_chunk() {
        let mut e = Executor::new(Execution::OpenLoop(2));
        let got: Vec<f32> = (0..5).map(|t| e.next(&chunk(t, 3, 1.0))[0]).collect();
        // Steps 0,1 from the chunk of step 0; 2,3 from step 2's; 4 from step 4's.
        assert_eq!(got, [0.0, 1.0, 20.0, 21.0, 40.0]);
        e.reset();
        assert_eq!(e.next(&chunk(7, 3, 1.0))[0], 70.0);
        // n beyond the chunk length: the whole chunk, then the next.
        let mut e = Executor::new(Execution::OpenLoop(5));
        let got: Vec<f32> = (0..4).map(|t| e.next(&chunk(t, 2, 1.0))[0]).collect();
        assert_eq!(got, [0.0, 1.0, 20.0, 21.0]);
    }

    #[test]
    fn temporal_ensemble_matches_hand_computation() {
        let m = 0.5f64;
        let mut e = Executor::new(Execution::TemporalEnsemble(m));
        let w = |i: i32| (-m * f64::from(i)).exp();
        // t = 0: only chunk 0, row 0 → 0.
        assert_eq!(e.next(&chunk(0, 3, 1.0)), [0.0, 1.0]);
        // t = 1: chunk 0 row 1 (= 1, oldest, weight 1) and chunk 1 row 0 (= 10, weight e^-0.5).
        let a = e.next(&chunk(1, 3, -1.0));
        let want = (1.0 * w(0) + 10.0 * w(1)) / (w(0) + w(1));
        assert!((f64::from(a[0]) - want).abs() < 1e-5, "{a:?} vs {want}");
        // Gripper: (+1·w0 − 1·w1) / (w0 + w1) > 0 → +1.
        assert_eq!(a[1], 1.0);
        // t = 2: chunk 0 row 2 (2), chunk 1 row 1 (11), chunk 2 row 0 (20).
        let a = e.next(&chunk(2, 3, -1.0));
        let want = (2.0 * w(0) + 11.0 * w(1) + 20.0 * w(2)) / (w(0) + w(1) + w(2));
        assert!((f64::from(a[0]) - want).abs() < 1e-4, "{a:?} vs {want}");
        // Gripper: +1·1 − 1·e^-0.5 − 1·e^-1 = +0.025: the oldest (open) prediction still wins.
        assert_eq!(a[1], 1.0);
        // t = 3: chunk 0 no longer covers step 3.
        let a = e.next(&chunk(3, 3, 1.0));
        let want = (12.0 * w(0) + 21.0 * w(1) + 30.0 * w(2)) / (w(0) + w(1) + w(2));
        assert!((f64::from(a[0]) - want).abs() < 1e-4, "{a:?} vs {want}");
        // m = 0: a plain mean.
        let mut e = Executor::new(Execution::TemporalEnsemble(0.0));
        e.next(&chunk(0, 2, 1.0));
        assert_eq!(e.next(&chunk(1, 2, 1.0))[0], 5.5);
    }
}
