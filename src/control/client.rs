//! Blocking control-socket client used by ikectl and the integration tests.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

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
    /// returns the final [`Done`].
    pub fn call(
        mut self,
        request: &Request,
        mut on_reply: impl FnMut(&Reply),
    ) -> Result<Done, ControlError> {
        let mut line = serde_json::to_string(request)?;
        line.push('\n');
        self.stream.write_all(line.as_bytes())?;
        let reader = BufReader::new(self.stream);
        for line in reader.lines() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Reply>(&line)? {
                Reply::Done(done) => return Ok(done),
                other => on_reply(&other),
            }
        }
        Err(ControlError::Closed)
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
            .call(&Request::Up { name: "c".into() }, |r| seen.push(r.clone()))
            .unwrap();
        assert_eq!(done, Done::failed("NO_PROPOSAL_CHOSEN"));
        assert_eq!(seen, vec![Reply::Progress("one".into())]);
        assert_eq!(server.join().unwrap(), "{\"cmd\":\"up\",\"name\":\"c\"}\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
