//! One file per xtask command.

pub mod bench;
pub mod parity;
pub mod test_all_backends;
