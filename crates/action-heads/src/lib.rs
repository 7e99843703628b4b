#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod config;
pub mod discrete;
mod error;
pub mod gpt;
pub mod head;
pub mod history;
pub mod loss;
pub mod lstm;
pub mod mlp;
pub mod weights;


pub use config::{DownSample, HeadConfig, HeadKind};
pub use discrete::{ActionTokenizer, DiscreteMetrics, ShiftedPosition, discrete_metrics};
pub use error::{Error, Result};
pub use head::{ActionHead, HeadOutput};
pub use history::HeadState;
pub use loss::{ContinuousLoss, continuous_loss};
