//! One file per xtask command.

pub mod parity;
pub mod test_all_backends;
