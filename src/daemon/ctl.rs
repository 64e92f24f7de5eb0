//! Control-socket server: accepts ikectl connections, reads one [`Request`] line, hands it to
//! the driver with a reply channel and writes the replies back until the final `done` line.
//!
//! Bounded against misbehaving clients ([`CtlLimits`]): a request line must arrive within a
//! read timeout, each reply line must be taken within a write timeout, at most
//! `max_connections` are served at once (a connection beyond that gets one `done` line
//! refusing it and is closed), and a failing `accept` (EMFILE at the descriptor limit) backs
//! off exponentially instead of spinning, logging once per streak of failures.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, mpsc};

use crate::control::{Done, MAX_REQUEST_LEN, Reply, Request};

/// A request for the driver with the channel its replies go to.
#[derive(Debug)]
pub struct CtlRequest {
    /// The command.
    pub request: Request,
    /// Where progress, status and the final [`Reply::Done`] go.
    pub replies: mpsc::UnboundedSender<Reply>,
}

/// Control-socket errors.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// Another daemon answers on the socket.
    #[error("control socket {0} is in use by a running ikev2d")]
    InUse(PathBuf),
    /// The socket could not be created.
    #[error("control socket {path}: {source}")]
    Bind {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
}

/// Bounds of the control-socket server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CtlLimits {
    /// Longest wait for the request line after a connection is accepted.
    pub read_timeout: Duration,
    /// Longest wait for the client to take one reply line.
    pub write_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Default for CtlLimits {
    fn default() -> Self {
        Self {
            read_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
            max_connections: 64,
        }
    }
}

/// Exponential back-off after failed `accept` calls: 10 ms doubling to 1 s, reset by a
/// success.
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_secs(1);

    /// A failure: how long to wait before the next `accept`, and whether it starts a streak.
    fn failed(&mut self) -> (Duration, bool) {
        let first = self.failures == 0;
        let shift = self.failures.min(16);
        self.failures = self.failures.saturating_add(1);
        let wait = Self::FIRST.saturating_mul(1u32 << shift).min(Self::MAX);
        (wait, first)
    }

    /// A success: how many failures the streak had.
    fn succeeded(&mut self) -> u32 {
        std::mem::take(&mut self.failures)
    }
}

/// The listening control socket; removes its file when dropped.
#[derive(Debug)]
pub struct CtlSocket {
    path: PathBuf,
}

impl CtlSocket {
    /// Creates the socket at `path` (replacing a stale one) and starts accepting; requests go
    /// to `tx`.
    pub fn bind(
        path: &Path,
        tx: mpsc::Sender<CtlRequest>,
        limits: CtlLimits,
    ) -> Result<Self, CtlError> {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(CtlError::InUse(path.to_path_buf()));
        }
        let bind_err = |source| CtlError::Bind {
            path: path.to_path_buf(),
            source,
        };
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(bind_err(e)),
            _ => {}
        }
        let listener = UnixListener::bind(path).map_err(bind_err)?;
        tokio::spawn(accept(listener, tx, limits));
        tracing::info!(target: "ctl", "control socket {}", path.display());
        Ok(Self {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for CtlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn accept(listener: UnixListener, tx: mpsc::Sender<CtlRequest>, limits: CtlLimits) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut backoff = Backoff::default();
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let n = backoff.succeeded();
                if n > 0 {
                    tracing::info!(target: "ctl", "accepting again after {n} failed attempts");
                }
                match Arc::clone(&slots).try_acquire_owned() {
                    Ok(permit) => {
                        let tx = tx.clone();
                        tokio::spawn(async move {
                            serve(stream, tx, limits).await;
                            drop(permit);
                        });
                    }
                    Err(_) => refuse(&stream, limits.max_connections),
                }
            }
            Err(e) => {
                // At the descriptor limit (EMFILE) accept fails at once, again and again.
                let (wait, first) = backoff.failed();
                if first {
                    tracing::warn!(target: "ctl", "accept: {e}; backing off (up to {} ms between attempts)", Backoff::MAX.as_millis());
                }
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Over the connection cap: one `done` line if the socket takes it at once, then close.
fn refuse(stream: &UnixStream, max: usize) {
    tracing::debug!(target: "ctl", "refusing a control connection: {max} already open");
    let done = Reply::Done(Done::failed(format!(
        "too many control connections (at most {max})"
    )));
    if let Ok(line) = done.to_line() {
        // Best effort: the connection is closed right after either way.
        let _ = stream.try_write(line.as_bytes());
    }
}

async fn serve(stream: UnixStream, tx: mpsc::Sender<CtlRequest>, limits: CtlLimits) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(MAX_REQUEST_LEN));
    let parsed = match tokio::time::timeout(limits.read_timeout, reader.read_line(&mut line)).await
    {
        Ok(Ok(_)) => {
            serde_json::from_str::<Request>(&line).map_err(|e| format!("bad request: {e}"))
        }
        Ok(Err(e)) => Err(format!("reading request: {e}")),
        Err(_) => Err(format!(
            "no request within {} s",
            limits.read_timeout.as_secs_f64()
        )),
    };
    let (reply_tx, mut reply_rx) = mpsc::unbounded_channel();
    match parsed {
        Ok(request) => {
            tracing::debug!(target: "ctl", "request {request:?}");
            let req = CtlRequest {
                request,
                replies: reply_tx,
            };
            if tx.send(req).await.is_err() {
                return;
            }
        }
        Err(e) => {
            tracing::warn!(target: "ctl", "{e}");
            let _ = reply_tx.send(Reply::Done(Done::failed(e)));
        }
    }
    while let Some(reply) = reply_rx.recv().await {
        let last = matches!(reply, Reply::Done(_));
        let Ok(text) = reply.to_line() else { return };
        match tokio::time::timeout(limits.write_timeout, write.write_all(text.as_bytes())).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return, // ikectl went away
            Err(_) => {
                tracing::debug!(target: "ctl", "a client did not read its replies: closed");
                return;
            }
        }
        if last {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncBufReadExt;

    #[test]
    fn backoff_doubles_to_a_second_and_resets() {
        let mut b = Backoff::default();
        let waits: Vec<(u64, bool)> = (0..9)
            .map(|_| {
                let (w, first) = b.failed();
                (u64::try_from(w.as_millis()).unwrap(), first)
            })
            .collect();
        assert_eq!(
            waits,
            [
                (10, true),
                (20, false),
                (40, false),
                (80, false),
                (160, false),
                (320, false),
                (640, false),
                (1000, false),
                (1000, false)
            ]
        );
        assert_eq!(b.succeeded(), 9);
        assert_eq!(b.failed(), (Backoff::FIRST, true));
        for _ in 0..100 {
            b.failed();
        }
        assert_eq!(b.failed().0, Backoff::MAX);
    }

    fn socket_path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("ikev2d-ctl-test-{}-{name}", std::process::id()))
    }

    async fn read_all(stream: UnixStream) -> Vec<String> {
        let mut lines = Vec::new();
        let mut r = BufReader::new(stream).lines();
        while let Ok(Some(l)) = r.next_line().await {
            lines.push(l);
        }
        lines
    }

    #[tokio::test(flavor = "current_thread")]
    async fn silent_client_is_answered_and_closed_after_the_read_timeout() {
        let path = socket_path("idle");
        let (tx, _rx) = mpsc::channel(4);
        let limits = CtlLimits {
            read_timeout: Duration::from_millis(50),
            ..CtlLimits::default()
        };
        let _sock = CtlSocket::bind(&path, tx, limits).unwrap();
        let idle = UnixStream::connect(&path).await.unwrap();
        let lines = read_all(idle).await;
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("no request within 0.05 s"), "{lines:?}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn connections_over_the_cap_are_refused_at_once() {
        let path = socket_path("cap");
        let (tx, _rx) = mpsc::channel(4);
        let limits = CtlLimits {
            read_timeout: Duration::from_secs(60),
            max_connections: 2,
            ..CtlLimits::default()
        };
        let _sock = CtlSocket::bind(&path, tx, limits).unwrap();
        let _a = UnixStream::connect(&path).await.unwrap();
        let _b = UnixStream::connect(&path).await.unwrap();
        let third = UnixStream::connect(&path).await.unwrap();
        let lines = read_all(third).await;
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].contains("too many control connections (at most 2)"),
            "{lines:?}"
        );
    }
}
