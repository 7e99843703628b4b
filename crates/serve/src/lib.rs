#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod client;
mod error;
pub mod msgpack;
pub mod ndarray;
mod options;
pub mod protocol;
mod server;
mod worker;

pub use client::Client;
pub use error::{ClientError, Error};
pub use options::ServeOptions;
pub use protocol::{PolicyInfo, StepReply};
pub use server::Server;
pub use worker::Loaded;
