//! Control-socket server: accepts ikectl connections, reads one [`Request`] line, hands it to
//! the driver with a reply channel and writes the replies back until the final `done` line.

use std::io;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

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

/// The listening control socket; removes its file when dropped.
#[derive(Debug)]
pub struct CtlSocket {
    path: PathBuf,
}

impl CtlSocket {
    /// Creates the socket at `path` (replacing a stale one) and starts accepting; requests go
    /// to `tx`.
    pub fn bind(path: &Path, tx: mpsc::Sender<CtlRequest>) -> Result<Self, CtlError> {
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
        tokio::spawn(accept(listener, tx));
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

async fn accept(listener: UnixListener, tx: mpsc::Sender<CtlRequest>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve(stream, tx.clone()));
            }
            Err(e) => tracing::warn!(target: "ctl", "accept: {e}"),
        }
    }
}

async fn serve(stream: UnixStream, tx: mpsc::Sender<CtlRequest>) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(MAX_REQUEST_LEN));
    let parsed = match reader.read_line(&mut line).await {
        Ok(_) => serde_json::from_str::<Request>(&line).map_err(|e| format!("bad request: {e}")),
        Err(e) => Err(format!("reading request: {e}")),
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
        if write.write_all(text.as_bytes()).await.is_err() {
            return; // ikectl went away
        }
        if last {
            return;
        }
    }
}
