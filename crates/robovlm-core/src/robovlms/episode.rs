//! [`Episode`]: the per-episode history of a policy, owned by the caller, so that one loaded
//! policy can run many episodes at once (a server's sessions) without copying its weights.

use action_heads::HeadState;
use burn::prelude::*;

/// One episode's history: a continuous head's window / recurrent state and the step count.
/// Discrete policies keep no history; for them only the count advances.
#[derive(Debug, Clone)]
pub struct Episode<B: Backend> {
    pub(crate) head: HeadState<B>,
    pub(crate) steps: usize,
}

impl<B: Backend> Default for Episode<B> {
    fn default() -> Self {
        Self { head: HeadState::new(), steps: 0 }
    }
}

impl<B: Backend> Episode<B> {
    /// A fresh episode.
    pub fn new() -> Self {
        Self::default()
    }

    /// Steps taken since the episode started.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Starts over (RoboVLMs' `reset()`).
    pub fn reset(&mut self) {
        self.head.reset();
        self.steps = 0;
    }
}
