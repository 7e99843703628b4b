//! One file per subcommand.

pub mod backends;
pub mod parity;
pub mod process;
