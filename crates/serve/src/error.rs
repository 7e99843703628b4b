//! Errors of the server and the client.

use std::net::SocketAddr;

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is unusable (the message names the flag).
    #[error("{0}")]
    Options(String),
    /// The policy did not load.
    #[error("{0}")]
    Load(String),
    /// The address could not be bound.
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, #[source] std::io::Error),
    /// Another socket error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// What a client call can end in.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting or the handshake failed (e.g. HTTP 401 for a wrong API key).
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The server answered with an error line (a text frame, as openpi servers do).
    #[error("server error: {0}")]
    Server(String),
    /// The server closed the connection.
    #[error("connection closed by the server (code {code}): {reason}")]
    Closed {
        /// WebSocket close code (1009 too large, 1007 malformed, 1013 busy, 1001 shutdown…).
        code: u16,
        /// The reason the server gave.
        reason: String,
    },
    /// The server sent something that is not a msgpack map.
    #[error("unreadable reply: {0}")]
    Reply(String),
    /// The socket failed.
    #[error("connection error: {0}")]
    Socket(String),
}
