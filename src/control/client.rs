//! Blocking control-socket client used by ikectl and the integration tests.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Done, Reply, Request};

/// Why a control request could not be completed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Nobody listens on the socket (missing file or connection refused).
    #[error("ikev2d is not running (no control socket at {path}: {source})")]
    NotRunning {
        /// Socket path.
        path: PathBuf,
        /// The connect error.
        source: io::Error,
    },
    /// Reading or writing the socket failed.
    #[error("control socket I/O: {0}")]
    Io(#[from] io::Error),
    /// The daemon sent a line that is not a [`Reply`].
    #[error("malformed reply from ikev2d: {0}")]
    Malformed(#[from] serde_json::Error),
    /// The daemon closed the connection before its final `done` line.
    #[error("ikev2d closed the control connection without an answer")]
    Closed,
    /// Nothing arrived for longer than the request's idle limit.
    #[error("no answer from ikev2d for {} s (the daemon is stuck or overloaded)", .0.as_secs())]
    Timeout(Duration),
    /// A reply line is longer than the limit: not something ikev2d sends.
    #[error("a reply line from the control socket exceeds {0} bytes: not ikev2d?")]
    LineTooLong(usize),
}

/// Bounds on one request's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest wait for the next reply line.
    pub idle: Duration,
    /// Longest reply line accepted (a full `status` of many SAs is one line).
    pub max_line: usize,
}

impl Limits {
    /// Largest reply line ikectl accepts by default: 256 MiB (a `status --json` of 100,000 SAs
    /// fits several times over).
    pub const MAX_LINE: usize = 256 << 20;

    /// The default bounds for `request`: `up` and `down` may wait out a whole retransmission
    /// schedule (165 s with the defaults) between progress lines, the rest answer at once.
    pub fn for_request(request: &Request) -> Self {
        let idle = match request {
            Request::Up { .. } | Request::Down { .. } => Duration::from_secs(200),
            _ => Duration::from_secs(30),
        };
        Self {
            idle,
            max_line: Self::MAX_LINE,
        }
    }
}

/// A connection to the daemon's control socket.
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
}

impl Client {
    /// Connects to the control socket at `path`.
    pub fn connect(path: &Path) -> Result<Self, ControlError> {
        match UnixStream::connect(path) {
            Ok(stream) => Ok(Self { stream }),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                ) =>
            {
                Err(ControlError::NotRunning {
                    path: path.to_path_buf(),
                    source: e,
                })
            }
            Err(e) => Err(ControlError::Io(e)),
        }
    }

    /// Sends `request`, hands every progress/status line to `on_reply` as it arrives and
    /// returns the final [`Done`]. Fails with [`ControlError::Timeout`] when no line arrives
    /// within `limits.idle` and with [`ControlError::LineTooLong`] on a line over
    /// `limits.max_line` bytes, so a stuck daemon or a foreign socket cannot hang or exhaust
    /// ikectl.
    pub fn call(
        mut self,
        request: &Request,
        limits: Limits,
        mut on_reply: impl FnMut(&Reply),
    ) -> Result<Done, ControlError> {
        let mut line = serde_json::to_string(request)?;
        line.push('\n');
        self.stream.set_write_timeout(Some(limits.idle))?;
        self.stream.set_read_timeout(Some(limits.idle))?;
        self.stream
            .write_all(line.as_bytes())
            .map_err(|e| timeout_or_io(e, limits))?;
        let mut reader = BufReader::new(self.stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let cap = u64::try_from(limits.max_line)
                .unwrap_or(u64::MAX)
                .saturating_add(1);
            let n = (&mut reader)
                .take(cap)
                .read_until(b'\n', &mut buf)
                .map_err(|e| timeout_or_io(e, limits))?;
            if n == 0 {
                return Err(ControlError::Closed);
            }
            if buf.last() != Some(&b'\n') && buf.len() > limits.max_line {
                return Err(ControlError::LineTooLong(limits.max_line));
            }
            let text = std::str::from_utf8(&buf)
                .map_err(|e| ControlError::Io(io::Error::new(io::ErrorKind::InvalidData, e)))?;
            if text.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Reply>(text)? {
                Reply::Done(done) => return Ok(done),
                other => on_reply(&other),
            }
        }
    }
}

/// A read or write that hit the socket timeout becomes [`ControlError::Timeout`].
fn timeout_or_io(e: io::Error, limits: Limits) -> ControlError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ControlError::Timeout(limits.idle),
        _ => ControlError::Io(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn missing_socket_is_not_running() {
        let err = Client::connect(Path::new("/nonexistent/ikev2d-test.ctl")).unwrap_err();
        assert!(matches!(err, ControlError::NotRunning { .. }), "{err}");
    }

    #[test]
    fn streams_until_done() {
        let dir = std::env::temp_dir().join(format!("ikev2d-ctl-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.ctl");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut req = String::new();
            BufReader::new(&stream).read_line(&mut req).unwrap();
            let mut w = &stream;
            w.write_all(Reply::Progress("one".into()).to_line().unwrap().as_bytes())
                .unwrap();
            w.write_all(
                Reply::Done(Done::failed("NO_PROPOSAL_CHOSEN"))
                    .to_line()
                    .unwrap()
                    .as_bytes(),
            )
            .unwrap();
            req
        });
        let mut seen = Vec::new();
        let done = Client::connect(&path)
            .unwrap()
            .call(
                &Request::Up { name: "c".into() },
                Limits::for_request(&Request::Status { page: None }),
                |r| seen.push(r.clone()),
            )
            .unwrap();
        assert_eq!(done, Done::failed("NO_PROPOSAL_CHOSEN"));
        assert_eq!(seen, vec![Reply::Progress("one".into())]);
        assert_eq!(server.join().unwrap(), "{\"cmd\":\"up\",\"name\":\"c\"}\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A listener in a fresh directory that answers the first connection with `serve`.
    fn serve_once(
        tag: &str,
        serve: impl FnOnce(UnixStream) + Send + 'static,
    ) -> (PathBuf, std::thread::JoinHandle<()>) {
        let dir = std::env::temp_dir().join(format!("ikev2d-ctl-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.ctl");
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            serve(stream);
        });
        (path, server)
    }

    #[test]
    fn silent_daemon_times_out() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (path, server) = serve_once("silent", move |stream| {
            // Hold the connection open, answering nothing, until the client gave up.
            let _ = rx.recv();
            drop(stream);
        });
        let limits = Limits {
            idle: Duration::from_millis(50),
            max_line: 1024,
        };
        let err = Client::connect(&path)
            .unwrap()
            .call(&Request::Status { page: None }, limits, |_| {})
            .unwrap_err();
        tx.send(()).unwrap();
        server.join().unwrap();
        assert!(
            matches!(err, ControlError::Timeout(d) if d == limits.idle),
            "{err}"
        );
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn endless_line_is_refused_at_the_limit() {
        let (path, server) = serve_once("endless", |stream| {
            let mut w = &stream;
            // Far more than the limit, without a newline; the client stops reading early.
            let chunk = [b'x'; 4096];
            for _ in 0..64 {
                if w.write_all(&chunk).is_err() {
                    break;
                }
            }
        });
        let limits = Limits {
            idle: Duration::from_secs(5),
            max_line: 10_000,
        };
        let err = Client::connect(&path)
            .unwrap()
            .call(&Request::Status { page: None }, limits, |_| {})
            .unwrap_err();
        server.join().unwrap();
        assert!(matches!(err, ControlError::LineTooLong(10_000)), "{err}");
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
}
