//! One file per xtask command.

pub mod bench;
pub mod parity;
pub mod synth_model;
pub mod test_all_backends;
