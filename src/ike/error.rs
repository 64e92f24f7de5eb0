//! Why an IKE SA or CHILD_SA failed, in IKE terms.

use crate::crypto::CryptoError;
use crate::wire::{NotifyType, WireError};

/// Failure of the [`SpiAllocator`](super::SpiAllocator) (e.g. an empty SPI range).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SPI allocation failed: {0}")]
pub struct SpiError(pub String);

/// Cause of a failed or refused IKE SA / CHILD_SA, or of a rejected command.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum IkeError {
    /// AUTH did not verify. `local_side`: we rejected the peer's AUTH (or its identity);
    /// otherwise the peer sent AUTHENTICATION_FAILED about ours.
    #[error("AUTHENTICATION_FAILED ({})", if *local_side { "peer's authentication failed here" } else { "rejected by peer" })]
    AuthenticationFailed {
        /// true: our verification failed; false: the peer refused us.
        local_side: bool,
    },
    /// As responder: the initiator's identity `peer` (as written in ipsec.conf) matched no
    /// conn, or its AUTH payload did not verify with the key for it.
    #[error("AUTHENTICATION_FAILED (peer {peer} not authenticated here)")]
    PeerNotAuthenticated { peer: String },
    /// ipsec.secrets has no key for this pair of identities (AUTHENTICATION_FAILED on the
    /// wire). The fields are the identities as written in ipsec.conf.
    #[error("AUTHENTICATION_FAILED (no PSK for {local} <-> {peer})")]
    NoPsk { local: String, peer: String },
    /// No acceptable proposal (IKE or ESP), sent by the peer or decided here.
    #[error("NO_PROPOSAL_CHOSEN")]
    NoProposalChosen,
    /// The KE group could not be agreed (peer asked for a group we did not propose, or
    /// asked again after a retry).
    #[error("INVALID_KE_PAYLOAD (group {group})")]
    InvalidKePayload {
        /// The group the peer asked for.
        group: u16,
    },
    /// Traffic selectors have no acceptable intersection.
    #[error("TS_UNACCEPTABLE")]
    TsUnacceptable,
    /// Transport mode was required but the peer answered with tunnel mode.
    #[error("mode mismatch: transport mode requested, peer refused")]
    ModeMismatch,
    /// The peer answered with an error notify not covered by a variant above.
    #[error("peer sent error notify {0}")]
    PeerError(NotifyType),
    /// Retransmissions exhausted.
    #[error("peer not responding after {tries} retransmits")]
    PeerNotResponding {
        /// How many retransmissions were sent.
        tries: u32,
    },
    /// The peer's response broke the protocol (wrong payloads, values we did not offer).
    #[error("invalid message from peer: {0}")]
    InvalidMessage(&'static str),
    /// A half-open responder SA did not complete IKE_AUTH in time.
    #[error("half-open IKE SA timed out")]
    HalfOpenTimeout,
    /// Deleted by a local command before it was established.
    #[error("deleted locally before establishment")]
    DeletedLocally,
    /// `initiate`/`delete_conn` named an unknown conn.
    #[error("no conn named {0:?}")]
    UnknownConn(String),
    /// The conn lacks a local or remote address, so it can only respond.
    #[error("conn {0:?} has no fixed local and remote address and cannot initiate")]
    CannotInitiate(String),
    /// The conn has no IKE or ESP proposals.
    #[error("conn {0:?} has no proposals")]
    NoProposalsConfigured(String),
    /// No IKE SA with this id.
    #[error("no IKE SA with id {0}")]
    UnknownSa(u64),
    /// A CHILD_SA of this conn cannot ride that IKE SA: the peer's address, the identities,
    /// the PSK or the IKE proposals differ.
    #[error("conn {0:?} cannot share IKE SA {1} (another peer, identity, PSK or IKE proposal)")]
    ForeignConn(String, u64),
    /// No CHILD_SA with this inbound SPI on the IKE SA.
    #[error("no CHILD_SA with inbound SPI {0:08x}")]
    UnknownChild(u32),
    /// As responder: the peer asked for a virtual IP and every address of the pool is
    /// leased (INTERNAL_ADDRESS_FAILURE; the IKE SA stays, its first CHILD_SA is refused).
    #[error("INTERNAL_ADDRESS_FAILURE (no free address in pool {pool} for {peer})")]
    PoolExhausted { pool: String, peer: String },
    /// The SPI allocator failed.
    #[error(transparent)]
    Spi(#[from] SpiError),
    /// A cryptographic operation failed locally.
    #[error("crypto: {0}")]
    Crypto(#[from] CryptoError),
    /// A message could not be encoded or a payload could not be parsed.
    #[error("wire: {0}")]
    Wire(#[from] WireError),
}

impl IkeError {
    /// The notify that conveys this error to the peer (or that the peer sent), if any.
    pub fn notify(&self) -> Option<NotifyType> {
        match self {
            Self::AuthenticationFailed { .. }
            | Self::NoPsk { .. }
            | Self::PeerNotAuthenticated { .. } => Some(NotifyType::AUTHENTICATION_FAILED),
            Self::NoProposalChosen => Some(NotifyType::NO_PROPOSAL_CHOSEN),
            Self::InvalidKePayload { .. } => Some(NotifyType::INVALID_KE_PAYLOAD),
            Self::TsUnacceptable => Some(NotifyType::TS_UNACCEPTABLE),
            Self::PoolExhausted { .. } => Some(NotifyType::INTERNAL_ADDRESS_FAILURE),
            Self::PeerError(n) => Some(*n),
            Self::InvalidMessage(_) => Some(NotifyType::INVALID_SYNTAX),
            Self::Wire(e) => Some(e.notify()),
            _ => None,
        }
    }

    /// Map an error notify received from the peer to an error.
    pub(crate) fn from_peer_notify(n: NotifyType, data: &[u8]) -> Self {
        match n {
            NotifyType::AUTHENTICATION_FAILED => Self::AuthenticationFailed { local_side: false },
            NotifyType::NO_PROPOSAL_CHOSEN => Self::NoProposalChosen,
            NotifyType::TS_UNACCEPTABLE => Self::TsUnacceptable,
            NotifyType::INVALID_KE_PAYLOAD => Self::InvalidKePayload {
                group: match data {
                    [a, b] => u16::from_be_bytes([*a, *b]),
                    _ => 0,
                },
            },
            other => Self::PeerError(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_notify() {
        assert_eq!(
            IkeError::PeerNotResponding { tries: 5 }.to_string(),
            "peer not responding after 5 retransmits"
        );
        assert_eq!(IkeError::NoProposalChosen.to_string(), "NO_PROPOSAL_CHOSEN");
        assert!(
            IkeError::AuthenticationFailed { local_side: true }
                .to_string()
                .starts_with("AUTHENTICATION_FAILED")
        );
        assert_eq!(
            IkeError::TsUnacceptable.notify(),
            Some(NotifyType::TS_UNACCEPTABLE)
        );
        assert_eq!(IkeError::HalfOpenTimeout.notify(), None);
        assert_eq!(
            IkeError::from_peer_notify(NotifyType::INVALID_KE_PAYLOAD, &[0, 19]),
            IkeError::InvalidKePayload { group: 19 }
        );
        assert_eq!(
            IkeError::from_peer_notify(NotifyType::AUTHENTICATION_FAILED, &[]),
            IkeError::AuthenticationFailed { local_side: false }
        );
    }
}
