//! The accept loop and one task per connection (= one session = one episode history).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use burn::prelude::Backend;
use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{WebSocketStream, accept_hdr_async_with_config};
use tracing::{info, warn};

use crate::error::Error;
use crate::msgpack;
use crate::options::ServeOptions;
use crate::protocol::{self, PolicyInfo};
use crate::worker::{self, Job, Loaded};

/// How long a client may take to send its HTTP request / WebSocket handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for in-flight requests before closing the rest.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a reply may wait for a client that stopped reading before the session is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Latency samples kept per session for the end-of-session percentiles.
const LATENCY_SAMPLES: usize = 4096;

/// A bound server: the policy is loaded and the port is open; [`Server::run`] serves.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
    worker: std::thread::JoinHandle<()>,
}

#[derive(Debug)]
struct Shared {
    options: ServeOptions,
    info: PolicyInfo,
    metadata: Vec<u8>,
    jobs: mpsc::Sender<Job>,
    sessions: Arc<Semaphore>,
    next_session: AtomicU64,
}

impl Server {
    /// Loads the policy (on the inference thread, with `load`) and binds `options.addr`.
    ///
    /// # Errors
    /// Invalid options, a policy that does not load, an address that cannot be bound.
    pub async fn bind<B, F>(options: ServeOptions, load: F) -> Result<Self, Error>
    where
        B: Backend,
        F: FnOnce() -> Result<Loaded<B>, String> + Send + 'static,
    {
        options.validate().map_err(Error::Options)?;
        let (jobs, ready, worker) = worker::spawn(load, options.clone(), options.max_sessions);
        let info = ready.await.map_err(|_| Error::Load("the inference thread stopped".into()))?.map_err(Error::Load)?;
        let listener = TcpListener::bind(options.addr).await.map_err(|e| Error::Bind(options.addr, e))?;
        let metadata = msgpack::encode(&protocol::metadata(&info, &options));
        let sessions = Arc::new(Semaphore::new(options.max_sessions));
        let shared = Arc::new(Shared { options, info, metadata, jobs, sessions, next_session: AtomicU64::new(1) });
        Ok(Self { listener, shared, worker })
    }

    /// The address actually bound (port 0 picks a free one).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// The loaded policy's description (what clients receive as metadata).
    pub fn info(&self) -> &PolicyInfo {
        &self.shared.info
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets every in-flight request
    /// finish and be answered, closes the sockets (code 1001) and stops the inference thread.
    ///
    /// # Errors
    /// Only if the listener fails irrecoverably.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let Self { listener, shared, worker } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        info!(addr = %listener.local_addr().map_err(Error::Io)?, policy = %shared.info.name, "serving");
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        tasks.spawn(connection(stream, peer, Arc::clone(&shared), stop_rx.clone()));
                    }
                    // Out of file descriptors and the like: keep serving the sessions we have.
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        info!(sessions = tasks.len(), "shutting down: draining in-flight requests");
        drop(listener);
        let _ = stop_tx.send(true);
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            warn!("sessions still busy after {DRAIN_TIMEOUT:?}; closing them");
            tasks.shutdown().await;
        }
        // The last sender goes with `shared`: the worker's queue closes and its thread ends.
        drop(shared);
        tokio::task::spawn_blocking(move || worker.join()).await.ok();
        info!("stopped");
        Ok(())
    }
}

/// Reads the request head without consuming it: `/healthz` is answered here (plain HTTP, no
/// WebSocket upgrade), anything else goes on to the handshake.
async fn is_health_check(stream: &TcpStream) -> bool {
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    loop {
        let n = match tokio::time::timeout_at(deadline.into(), stream.peek(&mut buf)).await {
            Ok(Ok(n)) => n,
            _ => return false,
        };
        let head = &buf[..n];
        let complete = head.windows(4).any(|w| w == b"\r\n\r\n");
        if n == 0 || complete || n == buf.len() {
            let text = String::from_utf8_lossy(head).to_ascii_lowercase();
            let upgrade = text.lines().any(|l| l.starts_with("upgrade:") && l.contains("websocket"));
            return text.starts_with("get /healthz ") && !upgrade;
        }
        // Not all of the head is here yet: wait a little for more.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Compares without an early exit, so the key cannot be guessed byte by byte from timings.
fn same_key(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn connection(mut stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>, stop: watch::Receiver<bool>) {
    if is_health_check(&stream).await {
        let _ = stream
            .write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nOK\n",
            )
            .await;
        let _ = stream.shutdown().await;
        return;
    }
    let expected = shared.options.api_key.clone();
    // The large error type is tungstenite's handshake callback API (an HTTP response).
    #[allow(clippy::result_large_err)]
    let check_key = move |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        let Some(key) = &expected else { return Ok(response) };
        let sent = request.headers().get("authorization").map(|v| v.as_bytes()).unwrap_or_default();
        let given = sent.strip_prefix(b"Api-Key ").unwrap_or_default();
        if same_key(given, key.as_bytes()) {
            Ok(response)
        } else {
            let mut r = ErrorResponse::new(Some("missing or wrong API key (Authorization: Api-Key <key>)\n".into()));
            *r.status_mut() = StatusCode::UNAUTHORIZED;
            Err(r)
        }
    };
    let max = shared.options.max_message_bytes;
    let config = WebSocketConfig::default().max_message_size(Some(max)).max_frame_size(Some(max));
    let ws =
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, accept_hdr_async_with_config(stream, check_key, Some(config)))
            .await
        {
            Ok(Ok(ws)) => ws,
            Ok(Err(e)) => {
                info!(%peer, error = %e, "handshake refused");
                return;
            }
            Err(_) => {
                info!(%peer, "handshake timed out");
                return;
            }
        };
    // Counted only once the handshake succeeded: health checks and half-open sockets never
    // take a session.
    let permit: Option<OwnedSemaphorePermit> = Arc::clone(&shared.sessions).try_acquire_owned().ok();
    let Some(permit) = permit else {
        let reason = format!("server busy: all {} sessions in use, try again later", shared.options.max_sessions);
        info!(%peer, "refused: {reason}");
        close(ws, CloseCode::Again, &reason).await;
        return;
    };
    let session = shared.next_session.fetch_add(1, Ordering::Relaxed);
    info!(session, %peer, "session started");
    let started = Instant::now();
    let mut stats = Latencies::default();
    let outcome = serve_session(ws, session, &shared, &mut stats, stop).await;
    let _ = shared.jobs.send(Job::Close { session }).await;
    drop(permit);
    let (p50, p90, p99) = stats.percentiles();
    info!(
        session,
        %peer,
        steps = stats.steps,
        p50_ms = format_args!("{p50:.1}"),
        p90_ms = format_args!("{p90:.1}"),
        p99_ms = format_args!("{p99:.1}"),
        seconds = format_args!("{:.1}", started.elapsed().as_secs_f64()),
        end = %outcome,
        "session ended"
    );
}

/// Inference latencies of one session (the last [`LATENCY_SAMPLES`]).
#[derive(Debug, Default)]
struct Latencies {
    steps: usize,
    samples: Vec<f64>,
}

impl Latencies {
    fn push(&mut self, ms: f64) {
        if self.samples.len() < LATENCY_SAMPLES {
            self.samples.push(ms);
        } else {
            self.samples[self.steps % LATENCY_SAMPLES] = ms;
        }
        self.steps += 1;
    }

    fn percentiles(&self) -> (f64, f64, f64) {
        let mut s = self.samples.clone();
        s.sort_by(f64::total_cmp);
        let at = |q: f64| s.get(((s.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0.0);
        (at(0.5), at(0.9), at(0.99))
    }
}

async fn close(mut ws: WebSocketStream<TcpStream>, code: CloseCode, reason: &str) {
    // A close reason is at most 123 bytes.
    let reason: String = reason
        .chars()
        .scan(0, |n, c| {
            *n += c.len_utf8();
            (*n <= 123).then_some(c)
        })
        .collect();
    let _ = ws.close(Some(CloseFrame { code, reason: reason.into() })).await;
}

/// Sends a one-line error as a text frame (openpi clients raise it) and closes with `code`.
async fn fail(mut ws: WebSocketStream<TcpStream>, code: CloseCode, message: &str) -> String {
    let line = message.replace(['\n', '\r'], " ");
    let _ = ws.send(Message::text(line.clone())).await;
    close(ws, code, &line).await;
    line
}

/// The message loop of one session; returns how it ended (for the log line).
async fn serve_session(
    mut ws: WebSocketStream<TcpStream>,
    session: u64,
    shared: &Shared,
    stats: &mut Latencies,
    mut stop: watch::Receiver<bool>,
) -> String {
    if ws.send(Message::binary(shared.metadata.clone())).await.is_err() {
        return "client gone before the metadata".into();
    }
    let mut prev_total_ms = None;
    let mut warned_unused = false;
    loop {
        // Biased: a message already received is served before a pending shutdown closes.
        let message = tokio::select! {
            biased;
            m = ws.next() => Some(m),
            _ = stop.wait_for(|s| *s) => None,
        };
        let Some(message) = message else {
            close(ws, CloseCode::Away, "server shutting down").await;
            return "server shutdown".into();
        };
        let start = Instant::now();
        let bytes = match message {
            None => return "client disconnected".into(),
            Some(Ok(Message::Binary(b))) => b,
            Some(Ok(Message::Close(_))) => return "client closed".into(),
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            Some(Ok(Message::Text(_))) => {
                return fail(ws, CloseCode::Unsupported, "expected a binary msgpack observation, got a text frame")
                    .await;
            }
            Some(Err(WsError::Capacity(e))) => {
                let msg = format!(
                    "message too large ({e}); the limit is --max-message-bytes {}",
                    shared.options.max_message_bytes
                );
                return fail(ws, CloseCode::Size, &msg).await;
            }
            Some(Err(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake))) => {
                return "client disconnected without a close handshake".into();
            }
            Some(Err(e)) => return format!("connection error: {e}"),
        };
        let obs = match msgpack::decode(&bytes)
            .map_err(|e| e.to_string())
            .and_then(|v| protocol::observation(&v, &shared.options))
        {
            Ok(o) => o,
            Err(e) => return fail(ws, CloseCode::Invalid, &e).await,
        };
        if !warned_unused && !obs.unused_images.is_empty() {
            warned_unused = true;
            info!(session, keys = ?obs.unused_images, "images under these keys are accepted but unused by this policy");
        }
        let (reply_tx, reply_rx) = oneshot::channel();
        if shared.jobs.send(Job::Step { session, obs: Box::new(obs), reply: reply_tx }).await.is_err() {
            return fail(ws, CloseCode::Error, "the inference thread stopped").await;
        }
        let reply = match reply_rx.await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return fail(ws, CloseCode::Error, &e).await,
            Err(_) => return fail(ws, CloseCode::Error, "the inference thread stopped").await,
        };
        stats.push(reply.infer_ms);
        let out = msgpack::encode(&protocol::response(&reply, prev_total_ms));
        match tokio::time::timeout(SEND_TIMEOUT, ws.send(Message::binary(out))).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return "client gone before the reply".into(),
            Err(_) => return format!("client stopped reading for {SEND_TIMEOUT:?}; session dropped"),
        }
        prev_total_ms = Some(start.elapsed().as_secs_f64() * 1e3);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_comparison_and_percentiles() {
        assert!(same_key(b"abc", b"abc") && !same_key(b"abc", b"abd") && !same_key(b"ab", b"abc"));
        let mut l = Latencies::default();
        (1..=100).for_each(|i| l.push(f64::from(i)));
        assert_eq!(l.percentiles(), (51.0, 90.0, 99.0));
    }
}
