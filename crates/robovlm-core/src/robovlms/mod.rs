//! RoboVLMs' RoboPaligemma policies (commit 8adc1d28): the config a policy was trained with, its
//! checkpoint layout, the backbone, the sequence the VLM sees, continuous and discrete heads,
//! CALVIN post-processing — and [`RoboPolicy`], which loads any of them.

mod backbone;
mod checkpoint;
mod config;
mod continuous;
mod discrete;
mod episode;
mod execution;
mod policy;
mod postprocess;
mod prompt;
mod sequence;

pub use backbone::Backbone;
pub use checkpoint::{PolicyCheckpoint, PolicyFiles, find_prefix};
pub use config::{HeadSpec, RoboVlmsConfig};
pub use continuous::{ContinuousPolicy, PolicyStep, VlmForward, VlmOutputs, forward_vlm_ids};
pub use discrete::{DiscreteBatch, DiscretePolicy, DiscreteStep, DiscreteTraining};
pub use episode::Episode;
pub use execution::{Execution, Executor};
pub use policy::{ActionLabels, BatchOutput, RoboPolicy, RoboStep, StepDetail};
pub use postprocess::{ProcessedAction, postprocess};
pub use prompt::{discrete_inference_ids, discrete_prompt_text, instruction_batch};
