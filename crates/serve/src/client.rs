//! A small Rust client for the server (and any openpi policy server): connect, read the
//! metadata, send observations, receive action maps. The tests drive the server with it.

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

use crate::error::ClientError;
use crate::msgpack::{self, Value};

/// One connection = one session (one episode history on the server).
#[derive(Debug)]
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    metadata: Value,
}

impl Client {
    /// Connects to `url` (`ws://host:port`) with an optional API key and reads the metadata.
    ///
    /// # Errors
    /// Connection refused, handshake refused (wrong key), or a server that closes right away
    /// (busy: code 1013).
    pub async fn connect(url: &str, api_key: Option<&str>) -> Result<Self, ClientError> {
        let mut request = url.into_client_request().map_err(|e| ClientError::Connect(e.to_string()))?;
        if let Some(key) = api_key {
            let value =
                HeaderValue::from_str(&format!("Api-Key {key}")).map_err(|e| ClientError::Connect(e.to_string()))?;
            request.headers_mut().insert("authorization", value);
        }
        let (ws, _) = connect_async(request).await.map_err(|e| ClientError::Connect(e.to_string()))?;
        let mut client = Self { ws, metadata: Value::Nil };
        client.metadata = client.receive().await?;
        Ok(client)
    }

    /// What the server sent on connect.
    pub fn metadata(&self) -> &Value {
        &self.metadata
    }

    /// Sends one observation and waits for its reply.
    ///
    /// # Errors
    /// The server's error line, a close, or a socket failure.
    pub async fn infer(&mut self, observation: &Value) -> Result<Value, ClientError> {
        self.send_raw(Message::binary(msgpack::encode(observation))).await?;
        self.receive().await
    }

    /// Sends any message (tests use it for malformed input).
    ///
    /// # Errors
    /// If the socket fails.
    pub async fn send_raw(&mut self, message: Message) -> Result<(), ClientError> {
        self.ws.send(message).await.map_err(|e| ClientError::Socket(e.to_string()))
    }

    /// The next reply: a msgpack map, or the error the server sent, or the close.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn receive(&mut self) -> Result<Value, ClientError> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Binary(b))) => {
                    return msgpack::decode(&b).map_err(|e| ClientError::Reply(e.to_string()));
                }
                Some(Ok(Message::Text(t))) => return Err(ClientError::Server(t.to_string())),
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) =
                        frame.map_or((1005, String::new()), |f| (u16::from(f.code), f.reason.to_string()));
                    return Err(ClientError::Closed { code, reason });
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(ClientError::Socket(e.to_string())),
                None => return Err(ClientError::Closed { code: 1006, reason: "connection dropped".into() }),
            }
        }
    }

    /// Closes the connection (ends the session).
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}
