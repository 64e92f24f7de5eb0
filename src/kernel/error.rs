//! Typed kernel errors naming the SA or policy concerned.

use std::fmt;
use std::io;
use std::net::IpAddr;

use thiserror::Error;

use super::spec::{Dir, PolicyKey};
use super::types::ChildId;

/// The kernel object an operation was about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One ESP SA.
    Sa {
        /// Destination address.
        dst: IpAddr,
        /// SPI.
        spi: u32,
    },
    /// One policy.
    Policy(Box<PolicyKey>),
    /// A CHILD_SA as a whole.
    Child(ChildId),
    /// The trap (auto=route) policies of a reqid.
    Trap(u32),
    /// Listing the SA table.
    SaTable,
    /// Listing the policy table.
    PolicyTable,
    /// A socket option on an IKE socket.
    Socket(&'static str),
    /// The XFRM event socket.
    Events,
    /// A virtual IP on `lo`.
    Address(IpAddr),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sa { dst, spi } => write!(f, "ESP SA {spi:#010x} to {dst}"),
            Self::Policy(key) => write!(f, "policy {key}"),
            Self::Child(id) => write!(f, "{id}"),
            Self::Trap(reqid) => write!(f, "trap policies reqid {reqid:#x}"),
            Self::SaTable => f.write_str("SA table"),
            Self::PolicyTable => f.write_str("policy table"),
            Self::Socket(opt) => write!(f, "socket option {opt}"),
            Self::Events => f.write_str("XFRM event socket"),
            Self::Address(a) => write!(f, "virtual IP {a}"),
        }
    }
}

/// Errors of the kernel layer. Every variant names what was being done.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KernelError {
    /// The object already exists (EEXIST).
    #[error("{target}: already exists")]
    Exists {
        /// What.
        target: Target,
    },
    /// The object does not exist (ESRCH/ENOENT).
    #[error("{target}: not found")]
    NotFound {
        /// What.
        target: Target,
    },
    /// This kernel has no ESP support (EPROTONOSUPPORT on SA add: `CONFIG_INET_ESP` missing).
    #[error("{target}: this kernel has no ESP support (CONFIG_INET_ESP/INET6_ESP)")]
    NoEsp {
        /// What.
        target: Target,
    },
    /// The kernel does not know an algorithm (ENOSYS on SA add).
    #[error("{target}: algorithm {algs} not supported by this kernel")]
    UnsupportedAlgorithm {
        /// What.
        target: Target,
        /// Algorithm names requested.
        algs: String,
    },
    /// Any other refusal by the kernel or failure of a socket call.
    #[error("{target}: {}", io::Error::from_raw_os_error(*errno))]
    Os {
        /// What.
        target: Target,
        /// Positive errno.
        errno: i32,
    },
    /// The kernel's answer could not be decoded or was not the expected one.
    #[error("{target}: unexpected answer from the kernel: {reason}")]
    Protocol {
        /// What.
        target: Target,
        /// Details.
        reason: String,
    },
    /// A CHILD_SA's transforms are for another protocol than its policies.
    #[error("{sa} transforms with {policy} policies")]
    ProtoMismatch {
        /// Protocol of the transforms.
        sa: super::types::IpsecProto,
        /// Protocol of the policies.
        policy: super::types::IpsecProto,
    },
    /// A key has the wrong length for its algorithm.
    #[error("key of {len} bytes is invalid for {alg}")]
    InvalidKeyLength {
        /// Kernel algorithm name.
        alg: &'static str,
        /// Length given.
        len: usize,
    },
    /// A soft lifetime exceeds its hard lifetime.
    #[error("soft lifetime {soft} {what} exceeds hard lifetime {hard}")]
    InvalidLifetime {
        /// Unit.
        what: &'static str,
        /// Soft limit.
        soft: u64,
        /// Hard limit.
        hard: u64,
    },
    /// The reqid is outside the range reserved for ikev2d.
    #[error("reqid {reqid:#x} is outside ikev2d's reserved range")]
    ReqidNotOurs {
        /// The reqid.
        reqid: u32,
    },
    /// Traffic selectors that cannot be expressed as kernel selectors.
    #[error("traffic selectors: {reason}")]
    InvalidSelector {
        /// Details.
        reason: String,
    },
    /// The event socket overflowed: events were lost, state must be re-read.
    #[error("XFRM event socket overflowed: events were lost")]
    EventsLost,
    /// Removing an object met several errors (each is listed).
    #[error("{target}: removal incomplete: {}", list(errors))]
    Incomplete {
        /// What was being removed.
        target: Target,
        /// The errors.
        errors: Vec<KernelError>,
    },
    /// An install failed and undoing its partial effects failed too.
    #[error("{cause}; rolling back also failed: {}", list(failures))]
    Rollback {
        /// The error that triggered the rollback.
        cause: Box<KernelError>,
        /// Errors met while undoing.
        failures: Vec<KernelError>,
    },
}

fn list(errors: &[KernelError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl KernelError {
    /// Maps a (positive) errno returned by the kernel for `target`.
    ///
    /// `algs` names the algorithms of an SA being added, for ENOSYS.
    pub(crate) fn from_errno(target: Target, errno: i32, algs: Option<String>) -> Self {
        match (errno, algs) {
            (libc::EEXIST, _) => Self::Exists { target },
            (libc::ESRCH | libc::ENOENT, _) => Self::NotFound { target },
            (libc::EPROTONOSUPPORT, Some(_)) => Self::NoEsp { target },
            (libc::ENOSYS, Some(algs)) => Self::UnsupportedAlgorithm { target, algs },
            (errno, _) => Self::Os { target, errno },
        }
    }

    /// Wraps a socket-level I/O error.
    pub(crate) fn io(target: Target, err: &io::Error) -> Self {
        Self::Os {
            target,
            errno: err.raw_os_error().unwrap_or(libc::EIO),
        }
    }

    /// `Ok` without errors, the error itself if there is one, else [`KernelError::Incomplete`].
    pub(crate) fn collect(target: Target, mut errors: Vec<KernelError>) -> Result<(), KernelError> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(KernelError::Incomplete { target, errors }),
        }
    }

    /// Whether this is a "not found" answer.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }
}

/// Direction names for messages.
impl fmt::Display for Dir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::In => "in",
            Self::Out => "out",
            Self::Fwd => "fwd",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa() -> Target {
        Target::Sa {
            dst: "10.0.0.2".parse().unwrap(),
            spi: 0xc000_0001,
        }
    }

    #[test]
    fn errno_mapping() {
        assert_eq!(
            KernelError::from_errno(sa(), libc::EPROTONOSUPPORT, Some("cbc(aes)".into())),
            KernelError::NoEsp { target: sa() }
        );
        assert!(matches!(
            KernelError::from_errno(sa(), libc::ENOSYS, Some("x".into())),
            KernelError::UnsupportedAlgorithm { .. }
        ));
        assert_eq!(
            KernelError::from_errno(sa(), libc::EEXIST, None),
            KernelError::Exists { target: sa() }
        );
        assert!(KernelError::from_errno(sa(), libc::ESRCH, None).is_not_found());
        assert_eq!(
            KernelError::from_errno(sa(), libc::EPERM, None),
            KernelError::Os {
                target: sa(),
                errno: libc::EPERM
            }
        );
    }

    #[test]
    fn messages_name_the_object() {
        let e = KernelError::NoEsp { target: sa() };
        assert_eq!(
            e.to_string(),
            "ESP SA 0xc0000001 to 10.0.0.2: this kernel has no ESP support (CONFIG_INET_ESP/INET6_ESP)"
        );
        let e = KernelError::Os {
            target: sa(),
            errno: libc::EPERM,
        };
        assert!(e.to_string().starts_with("ESP SA 0xc0000001 to 10.0.0.2: "));
    }
}
