//! Per-episode head state (history window and LSTM state), owned by the caller, not the module.

use std::collections::VecDeque;

use burn::prelude::*;

use crate::lstm::LstmState;

/// What an [`crate::ActionHead`] remembers between rollout steps. `reset()` at every episode
/// start (RoboVLMs' `reset()`).
#[derive(Debug, Clone)]
pub struct HeadState<B: Backend> {
    history: VecDeque<Tensor<B, 3>>,
    pub(crate) lstm: Option<LstmState<B>>,
}

impl<B: Backend> Default for HeadState<B> {
    fn default() -> Self {
        Self { history: VecDeque::new(), lstm: None }
    }
}

impl<B: Backend> HeadState<B> {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Clears history and recurrent state.
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// Steps currently in the history.
    pub fn len(&self) -> usize {
        self.history.len()
    }

    /// Whether the history is empty.
    pub fn is_empty(&self) -> bool {
        self.history.is_empty()
    }

    /// Whether an LSTM state is being carried.
    pub fn has_recurrent_state(&self) -> bool {
        self.lstm.is_some()
    }

    pub(crate) fn push(&mut self, x: Tensor<B, 3>) {
        self.history.push_back(x);
    }

    pub(crate) fn keep_last(&mut self, n: usize) {
        while self.history.len() > n {
            self.history.pop_front();
        }
    }

    /// The history as one `[batch, len, d]` sequence.
    pub(crate) fn window(&self) -> Tensor<B, 3> {
        Tensor::cat(self.history.iter().cloned().collect(), 1)
    }
}
