//! One file per subcommand.

pub mod act;
pub mod backends;
pub mod bench;
pub mod dump;
pub mod generate;
pub mod parity;
pub mod process;

pub use crate::backend::Dtype;
