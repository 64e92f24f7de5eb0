//! Daemon settings (what strongSwan keeps in strongswan.conf): a small TOML file,
//! `/etc/ikev2d.toml` by default. Every key is optional; a missing file means the defaults.
//! Values are checked while parsing, so an error names the file, line and column of the
//! offending value (`ikev2d.toml:3:11: error: ...`), like `ikectl check` for ipsec.conf.
//!
//! ```toml
//! make_before_break = false       # reauthentication: new SAs before the old ones go
//! key_export = "/var/lib/ikev2d/keys"   # Wireshark key tables (debugging only)
//! [retransmit]
//! timeout = 4.0                   # seconds before the first retransmission
//! base = 1.8                      # the n-th wait is timeout × base^n
//! tries = 5                       # retransmissions before giving up
//! [responder]
//! half_open_timeout = 30          # seconds a responder waits for IKE_AUTH
//! max_half_open = 1024
//! cookie_threshold = 30
//! cookie_threshold_ip = 3
//! max_half_open_per_ip = 5
//! [nat]
//! keepalive = 20                  # seconds between NAT keepalives, 0 = off
//! [crypto]
//! workers = 1                     # threads making DH key pairs ahead of time (default:
//!                                 # one per core but one; 0 = none)
//! dh_reuse = 10                   # a responder reuses its DH key pair this many seconds
//!                                 # (absent, the default: never; costs forward secrecy)
//! [log]                           # charondebug levels per subsystem, -1..4
//! ike = 1
//! knl = 2
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The default settings file.
pub const DEFAULT_SETTINGS: &str = "/etc/ikev2d.toml";

/// The daemon's settings.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonSettings {
    /// Reauthenticate make-before-break (new IKE SA and CHILD_SAs first).
    pub make_before_break: bool,
    /// Write every SA's keys as Wireshark tables into this directory (debugging only);
    /// `ikev2d --wireshark-keys` overrides it.
    pub key_export: Option<PathBuf>,
    /// Retransmission of our requests.
    pub retransmit: Retransmit,
    /// Responder limits against floods of IKE_SA_INIT.
    pub responder: Responder,
    /// NAT traversal.
    pub nat: Nat,
    /// Diffie-Hellman work.
    pub crypto: Crypto,
    /// Log levels per strongSwan subsystem (`ike`, `knl`, `cfg`, `net`, `dmn`, `any`, ...);
    /// when present they replace `charondebug`.
    pub log: BTreeMap<String, LogLevel>,
}

/// `[retransmit]`: the n-th retransmission goes `timeout × base^(n-1)` after the previous
/// transmission; `timeout × base^tries` after the last one we give up.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retransmit {
    /// Seconds before the first retransmission.
    pub timeout: Seconds,
    /// Exponential base.
    pub base: Base,
    /// Retransmissions before giving up.
    pub tries: Count,
}

impl Default for Retransmit {
    fn default() -> Self {
        Self {
            timeout: Seconds(4.0),
            base: Base(1.8),
            tries: Count(5),
        }
    }
}

/// `[responder]`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Responder {
    /// Seconds a half-open responder IKE SA waits for IKE_AUTH.
    pub half_open_timeout: Seconds,
    /// Half-open responder IKE SAs at most; more IKE_SA_INIT requests are dropped.
    pub max_half_open: Count,
    /// From this many half-open SAs on, IKE_SA_INIT must echo a COOKIE.
    pub cookie_threshold: Count,
    /// From this many half-open SAs of one address on, that address must echo a COOKIE.
    pub cookie_threshold_ip: Count,
    /// Half-open SAs per peer address at most.
    pub max_half_open_per_ip: Count,
}

impl Default for Responder {
    fn default() -> Self {
        Self {
            half_open_timeout: Seconds(30.0),
            max_half_open: Count(1024),
            cookie_threshold: Count(30),
            cookie_threshold_ip: Count(3),
            max_half_open_per_ip: Count(5),
        }
    }
}

/// `[nat]`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Nat {
    /// Seconds between NAT keepalives behind a NAT (0 = none).
    pub keepalive: Count,
}

impl Nat {
    /// The keepalive interval (zero: none).
    pub fn interval(self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.keepalive.0))
    }
}

impl Default for Nat {
    fn default() -> Self {
        Self {
            keepalive: Count(20),
        }
    }
}

/// `[crypto]`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Crypto {
    /// Threads making DH key pairs ahead of time; absent: one per core but the one the
    /// engine runs on.
    pub workers: Option<Count>,
    /// Seconds a responder reuses its IKE_SA_INIT key pair of a group (RFC 7296 §2.12);
    /// absent: never (each IKE SA gets its own, for forward secrecy).
    pub dh_reuse: Option<Seconds>,
}

impl Crypto {
    /// How many key-pair threads to start.
    pub fn workers(self) -> usize {
        match self.workers {
            Some(n) => usize::try_from(n.0).unwrap_or(usize::MAX),
            None => std::thread::available_parallelism().map_or(0, |n| n.get().saturating_sub(1)),
        }
    }
}

/// A positive number of seconds, at most a day (fractions allowed).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "f64")]
pub struct Seconds(pub f64);

impl TryFrom<f64> for Seconds {
    type Error = String;
    fn try_from(v: f64) -> Result<Self, String> {
        if v.is_finite() && v > 0.0 && v <= 86_400.0 {
            Ok(Self(v))
        } else {
            Err(format!("{v} is not a number of seconds in (0, 86400]"))
        }
    }
}

impl Seconds {
    /// As a duration.
    pub fn duration(self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.0)
    }
}

/// The exponential base of the retransmission schedule, 1 to 10.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "f64")]
pub struct Base(pub f64);

impl TryFrom<f64> for Base {
    type Error = String;
    fn try_from(v: f64) -> Result<Self, String> {
        ranged("base", v, 1.0, 10.0).map(Self)
    }
}

/// `v` if it lies in `lo..=hi`, else the error naming `what`.
fn ranged<T: PartialOrd + fmt::Display>(what: &str, v: T, lo: T, hi: T) -> Result<T, String> {
    if v >= lo && v <= hi {
        Ok(v)
    } else {
        Err(format!("{what} {v} is outside {lo}..={hi}"))
    }
}

/// A count, 0 to 100000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "i64")]
pub struct Count(pub u32);

impl TryFrom<i64> for Count {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        let n = ranged("count", v, 0, 100_000)?;
        // ok: 0..=100000 fits in u32
        Ok(Self(u32::try_from(n).unwrap_or(u32::MAX)))
    }
}

/// A charondebug level, -1 (off) to 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "i64")]
pub struct LogLevel(pub i32);

impl TryFrom<i64> for LogLevel {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        let n = ranged("log level", v, -1, 4)?;
        // ok: -1..=4 fits in i32
        Ok(Self(i32::try_from(n).unwrap_or(0)))
    }
}

/// A settings file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// Reading failed (other than a missing file).
    #[error("{path}: error: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Syntax or a value out of range.
    #[error("{path}:{line}:{column}: error: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// 1-based line of the offending text.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
}

/// Parses settings text; `path` names it in errors.
pub fn parse_settings(path: &str, text: &str) -> Result<DaemonSettings, SettingsError> {
    toml::from_str(text).map_err(|e| {
        let start = e.span().map_or(0, |s| s.start).min(text.len());
        let before = text.get(..start).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        SettingsError::Invalid {
            path: path.to_string(),
            line,
            column,
            message: e.message().trim().to_string(),
        }
    })
}

/// Reads the settings file; a missing file means the defaults.
pub fn load_settings(path: &Path) -> Result<DaemonSettings, SettingsError> {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse_settings(&name, &text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DaemonSettings::default()),
        Err(source) => Err(SettingsError::Read { path: name, source }),
    }
}

impl DaemonSettings {
    /// The `[log]` table as a `charondebug` value (`"ike 2, knl 1"`), if there is one.
    pub fn charondebug(&self) -> Option<String> {
        (!self.log.is_empty()).then(|| {
            self.log
                .iter()
                .map(|(k, v)| format!("{k} {}", v.0))
                .collect::<Vec<_>>()
                .join(", ")
        })
    }
}

/// The effective settings, one `key = value` a line (for `ikectl check --settings`).
impl fmt::Display for DaemonSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.retransmit;
        let s = &self.responder;
        writeln!(f, "make_before_break = {}", self.make_before_break)?;
        match &self.key_export {
            Some(p) => writeln!(f, "key_export = {:?}", p.display().to_string())?,
            None => writeln!(f, "key_export = (off)")?,
        }
        writeln!(f, "retransmit.timeout = {} s", r.timeout.0)?;
        writeln!(f, "retransmit.base = {}", r.base.0)?;
        writeln!(f, "retransmit.tries = {}", r.tries.0)?;
        writeln!(
            f,
            "responder.half_open_timeout = {} s",
            s.half_open_timeout.0
        )?;
        writeln!(f, "responder.max_half_open = {}", s.max_half_open.0)?;
        writeln!(f, "responder.cookie_threshold = {}", s.cookie_threshold.0)?;
        writeln!(
            f,
            "responder.cookie_threshold_ip = {}",
            s.cookie_threshold_ip.0
        )?;
        writeln!(
            f,
            "responder.max_half_open_per_ip = {}",
            s.max_half_open_per_ip.0
        )?;
        writeln!(f, "nat.keepalive = {} s", self.nat.keepalive.0)?;
        writeln!(f, "crypto.workers = {}", self.crypto.workers())?;
        match self.crypto.dh_reuse {
            Some(s) => writeln!(f, "crypto.dh_reuse = {} s", s.0)?,
            None => writeln!(f, "crypto.dh_reuse = (off)")?,
        }
        match self.charondebug() {
            Some(c) => writeln!(f, "log = {c}"),
            None => writeln!(f, "log = (charondebug of ipsec.conf)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_text_and_missing_file_are_the_defaults() {
        assert_eq!(parse_settings("x", "").unwrap(), DaemonSettings::default());
        let missing = Path::new("/nonexistent/ikev2d-test/ikev2d.toml");
        assert_eq!(load_settings(missing).unwrap(), DaemonSettings::default());
        let d = DaemonSettings::default();
        assert_eq!(d.retransmit.timeout, Seconds(4.0));
        assert_eq!(d.responder.cookie_threshold, Count(30));
    }

    #[test]
    fn parses_every_key() {
        let s = parse_settings(
            "t.toml",
            "make_before_break = true\nkey_export = \"/tmp/k\"\n[retransmit]\ntimeout = 0.5\n\
             base = 1.2\ntries = 2\n[responder]\nhalf_open_timeout = 10\nmax_half_open = 50\n\
             cookie_threshold = 5\ncookie_threshold_ip = 2\nmax_half_open_per_ip = 4\n\
             [nat]\nkeepalive = 0\n[crypto]\nworkers = 3\ndh_reuse = 5\n[log]\nike = 2\nknl = -1\n",
        )
        .unwrap();
        assert!(s.make_before_break);
        assert_eq!(s.key_export.as_deref(), Some(Path::new("/tmp/k")));
        assert_eq!(
            (s.retransmit.timeout, s.retransmit.base, s.retransmit.tries),
            (Seconds(0.5), Base(1.2), Count(2))
        );
        assert_eq!(s.responder.half_open_timeout, Seconds(10.0));
        assert_eq!(s.responder.max_half_open_per_ip, Count(4));
        assert_eq!(s.nat.keepalive, Count(0));
        assert_eq!(
            (s.crypto.workers(), s.crypto.dh_reuse),
            (3, Some(Seconds(5.0)))
        );
        assert_eq!(s.charondebug().as_deref(), Some("ike 2, knl -1"));
        assert!(s.to_string().contains("retransmit.timeout = 0.5 s\n"));
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let cases = [
            (
                "[retransmit]\ntimeout = 4\nbase = 0.5\n",
                "3:8",
                "base 0.5 is outside 1..=10",
            ),
            (
                "[responder]\n\nmax_half_open = -3\n",
                "3:17",
                "count -3 is outside 0..=100000",
            ),
            ("[retransmit]\ntimout = 4\n", "2:1", "timout"),
            ("[log]\nike = 7\n", "2:7", "log level 7 is outside -1..=4"),
            (
                "[retransmit]\ntimeout = 0\n",
                "2:11",
                "0 is not a number of seconds",
            ),
            ("[nat\n", "1:5", ""),
            (
                "[crypto]\ndh_reuse = 0\n",
                "2:12",
                "0 is not a number of seconds",
            ),
        ];
        for (text, at, message) in cases {
            let e = parse_settings("ikev2d.toml", text).unwrap_err().to_string();
            assert!(e.starts_with(&format!("ikev2d.toml:{at}: error: ")), "{e}");
            assert!(e.contains(message), "{e}");
        }
    }
}
