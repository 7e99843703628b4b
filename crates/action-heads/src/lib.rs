#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod config;
mod discrete;
mod error;
mod gpt;
mod head;
mod history;
mod loss;
mod lstm;
mod mlp;
mod weights;

pub use config::{DownSample, HeadConfig, HeadKind};
pub use discrete::{ActionTokenizer, DiscreteMetrics, IGNORE_INDEX, ShiftedPosition, discrete_metrics};
pub use error::{Error, Result};
pub use head::{ActionHead, Decoder, FcDecoder, GptDecoder, HEAD_DTYPE, HeadOutput, LstmDecoder};
pub use history::HeadState;
pub use loss::{ContinuousLoss, continuous_loss};
