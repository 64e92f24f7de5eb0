//! The ikectl ↔ ikev2d control protocol: JSON lines over a Unix stream socket.
//!
//! The client sends one [`Request`] line, e.g. `{"cmd":"up","name":"host-host"}`. The daemon
//! answers with any number of [`Reply::Progress`] lines (`{"progress":"..."}`), for `status` one
//! [`Reply::Status`] line, and always ends with one [`Reply::Done`] line
//! (`{"done":{"ok":true,"error":null}}`), then closes the connection.
//!
//! This module holds the message types, the status report (with its text rendering, shared by
//! `ikectl status` and the tests) and a blocking [`Client`]. The server side lives in
//! [`crate::daemon`].

mod client;
mod status;

pub use client::{Client, ControlError, Limits};
pub use status::{
    ChildReport, ConnReport, IkeSaReport, LeaseReport, PageReport, ResponderReport, StatusReport,
};

use serde::{Deserialize, Serialize};

/// Default path of the control socket.
pub const DEFAULT_SOCKET: &str = "/run/ikev2d.ctl";

/// Longest request line the daemon accepts (bytes).
pub const MAX_REQUEST_LEN: u64 = 4096;

/// A command sent by ikectl.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase")]
pub enum Request {
    /// Initiate the named conn; progress is streamed until its CHILD_SA is up or failed.
    Up {
        /// Conn name.
        name: String,
    },
    /// Delete every IKE SA (and its CHILD_SAs) of the named conn.
    Down {
        /// Conn name.
        name: String,
    },
    /// Report conns, IKE SAs and CHILD_SAs (all of them, or one page of the IKE SAs).
    Status {
        /// Only these IKE SAs (in id order); every one when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        page: Option<Page>,
    },
    /// Re-read ipsec.conf and ipsec.secrets.
    Reload,
}

/// A page of `status`: the IKE SAs `offset`, `offset + 1`, … (at most `limit`) in id order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    /// IKE SAs skipped.
    pub offset: usize,
    /// Most IKE SAs reported.
    pub limit: usize,
}

/// Outcome of a request: the last line the daemon sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {
    /// Whether the command succeeded.
    pub ok: bool,
    /// The cause when it did not.
    pub error: Option<String>,
}

impl Done {
    /// Success.
    pub fn ok() -> Self {
        Self {
            ok: true,
            error: None,
        }
    }

    /// Failure with its cause.
    pub fn failed(error: impl Into<String>) -> Self {
        Self {
            ok: false,
            error: Some(error.into()),
        }
    }
}

/// One line sent by the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reply {
    /// Human-readable progress (like `ipsec up`'s output).
    Progress(String),
    /// The answer to `status`.
    Status(StatusReport),
    /// The request is finished.
    Done(Done),
}

impl Reply {
    /// The JSON line for this reply, newline included.
    pub fn to_line(&self) -> Result<String, serde_json::Error> {
        let mut s = serde_json::to_string(self)?;
        s.push('\n');
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_json_shape() {
        let up = Request::Up { name: "hh".into() };
        assert_eq!(
            serde_json::to_string(&up).unwrap(),
            r#"{"cmd":"up","name":"hh"}"#
        );
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"cmd":"status"}"#).unwrap(),
            Request::Status { page: None }
        );
        assert_eq!(
            serde_json::to_string(&Request::Status { page: None }).unwrap(),
            r#"{"cmd":"status"}"#
        );
        let page = Request::Status {
            page: Some(Page {
                offset: 200,
                limit: 100,
            }),
        };
        let line = serde_json::to_string(&page).unwrap();
        assert_eq!(
            line,
            r#"{"cmd":"status","page":{"offset":200,"limit":100}}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), page);
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"cmd":"down","name":"x"}"#).unwrap(),
            Request::Down { name: "x".into() }
        );
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"explode"}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"up"}"#).is_err());
    }

    #[test]
    fn reply_json_shape() {
        assert_eq!(
            Reply::Progress("hi".into()).to_line().unwrap(),
            "{\"progress\":\"hi\"}\n"
        );
        assert_eq!(
            Reply::Done(Done::ok()).to_line().unwrap(),
            "{\"done\":{\"ok\":true,\"error\":null}}\n"
        );
        let failed = Reply::Done(Done::failed("AUTHENTICATION_FAILED"));
        let line = failed.to_line().unwrap();
        assert_eq!(serde_json::from_str::<Reply>(&line).unwrap(), failed);
    }
}
