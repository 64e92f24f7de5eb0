//! What the engine hands back: datagrams, events, status snapshots.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use zeroize::Zeroizing;

use super::error::IkeError;
use crate::crypto::{Encr, Integ};
use crate::kernel::{IpsecProto, Mode};
use crate::wire::{Identification, TrafficSelector};

/// Handle of one IKE SA inside an [`Endpoint`](super::Endpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IkeSaId(pub u64);

impl fmt::Display for IkeSaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Which side of the IKE SA we are (the original initiator or responder).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// We sent IKE_SA_INIT.
    Initiator,
    /// We answered IKE_SA_INIT.
    Responder,
}

/// A datagram to send from `local` to `remote` (without any non-ESP marker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Source address and port (answer from where the request arrived).
    pub local: SocketAddr,
    /// Destination address and port.
    pub remote: SocketAddr,
    /// The IKE message.
    pub data: Vec<u8>,
}

/// Keys for one direction of a CHILD_SA. GCM `encr` includes the 4-byte salt.
#[derive(Clone, PartialEq, Eq)]
pub struct ChildDirKeys {
    /// Encryption key (‖ salt for AEAD; empty for AH).
    pub encr: Zeroizing<Vec<u8>>,
    /// Integrity key (empty for AEAD).
    pub integ: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for ChildDirKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ChildDirKeys {{ encr: <{} bytes redacted>, integ: <{} bytes redacted> }}",
            self.encr.len(),
            self.integ.len()
        )
    }
}

/// An IKE SA's encryption and integrity keys, handed out only when
/// [`EndpointConfig::export_keys`](super::EndpointConfig::export_keys) is set: for a debugging
/// key log that lets Wireshark decrypt the SK payloads. GCM keys include the 4-byte salt; the
/// integrity keys are empty for AEAD. `Debug` shows lengths only.
#[derive(Clone, PartialEq, Eq)]
pub struct IkeSaExportedKeys {
    /// Encryption transform.
    pub encr: Encr,
    /// Integrity transform (`None` for AEAD).
    pub integ: Option<Integ>,
    /// SK_ei (initiator → responder).
    pub sk_ei: Zeroizing<Vec<u8>>,
    /// SK_er (responder → initiator).
    pub sk_er: Zeroizing<Vec<u8>>,
    /// SK_ai.
    pub sk_ai: Zeroizing<Vec<u8>>,
    /// SK_ar.
    pub sk_ar: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for IkeSaExportedKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "IkeSaExportedKeys {{ encr: {:?}, integ: {:?}, sk_e: <2 x {} bytes redacted>, sk_a: <2 x {} bytes redacted> }}",
            self.encr,
            self.integ,
            self.sk_ei.len(),
            self.sk_ai.len()
        )
    }
}

/// Everything the kernel layer needs to install one CHILD_SA (both directions).
#[derive(Debug, Clone, PartialEq)]
pub struct ChildSaReady {
    /// Owning IKE SA.
    pub ike_sa: IkeSaId,
    /// Conn name.
    pub conn: String,
    /// Our address (outer source of outbound ESP).
    pub local: IpAddr,
    /// Peer address.
    pub remote: IpAddr,
    /// Negotiated mode.
    pub mode: Mode,
    /// SPI the peer uses to send to us (we allocated it).
    pub spi_in: u32,
    /// SPI we use to send to the peer.
    pub spi_out: u32,
    /// Our selectors (narrowed).
    pub local_ts: Vec<TrafficSelector>,
    /// Peer selectors (narrowed).
    pub remote_ts: Vec<TrafficSelector>,
    /// ESP or AH.
    pub protocol: IpsecProto,
    /// ESP encryption (`None` for AH).
    pub encr: Option<Encr>,
    /// Integrity (`None` for AEAD ESP; always set for AH).
    pub integ: Option<Integ>,
    /// Extended sequence numbers negotiated.
    pub esn: bool,
    /// Keys of the inbound SA (peer → us).
    pub keys_in: ChildDirKeys,
    /// Keys of the outbound SA (us → peer).
    pub keys_out: ChildDirKeys,
    /// Anti-replay window.
    pub replay_window: u32,
    /// Configured CHILD_SA lifetime.
    pub lifetime: std::time::Duration,
    /// The conn's kernel reqid ([`ConnSpec::reqid`](super::ConnSpec::reqid)).
    pub reqid: u32,
    /// The conn's `rekeymargin` and `rekeyfuzz` (percent), for the soft lifetime.
    pub rekey_margin: std::time::Duration,
    /// See `rekey_margin`.
    pub rekey_fuzz_percent: u32,
    /// When a NAT was detected on the IKE SA: the peer's IKE port, where UDP-encapsulated
    /// ESP goes (RFC 3948).
    pub natt_remote_port: Option<u16>,
    /// Set when this CHILD_SA rekeys an installed one: that one's `(spi_in, spi_out)`. The
    /// old CHILD_SA stays until its own [`Event::ChildSaDeleted`]; the new one replaces it
    /// (same conn, selectors and policies).
    pub rekeyed_from: Option<(u32, u32)>,
    /// We initiated the exchange that created this CHILD_SA (false: we answered it).
    pub initiator: bool,
}

/// Something the daemon must act on or log.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// IKE SA authenticated in both directions.
    IkeSaEstablished {
        /// The SA.
        id: IkeSaId,
        /// Conn name.
        conn: String,
        /// Our role.
        role: Role,
        /// Our address and port.
        local: SocketAddr,
        /// Peer address and port.
        remote: SocketAddr,
        /// SPIi.
        spi_i: [u8; 8],
        /// SPIr.
        spi_r: [u8; 8],
        /// Chosen algorithms, e.g. `AES_GCM_16_128/PRF_HMAC_SHA2_256/CURVE_25519`.
        proposal: String,
        /// A NAT was detected (either side) by NAT_DETECTION_* notifies.
        nat_detected: bool,
        /// Our identity.
        local_id: Identification,
        /// Peer's authenticated identity.
        remote_id: Identification,
        /// The SA's keys, only with [`EndpointConfig::export_keys`](super::EndpointConfig::export_keys).
        exported_keys: Option<Box<IkeSaExportedKeys>>,
        /// Initiator: the virtual IPs the peer assigned us (CFG_REPLY), to install locally.
        virtual_ips: Vec<IpAddr>,
        /// Responder: the virtual IPs leased to the peer from our pools.
        peer_virtual_ips: Vec<IpAddr>,
        /// Initiator: the DNS servers the peer assigned us (when asked for).
        dns_servers: Vec<IpAddr>,
    },
    /// A new IKE_SA_INIT request was refused or challenged (no state kept): for the log.
    /// (INVALID_KE_PAYLOAD is a normal step of the negotiation, not reported.)
    InitRefused {
        /// Where it came from.
        peer: SocketAddr,
        /// The conn that matched the addresses, when one did.
        conn: Option<String>,
        /// Why.
        reason: InitRefusal,
    },
    /// IKE SA setup failed; the SA is gone.
    IkeSaFailed {
        /// The SA (or the refused attempt).
        id: IkeSaId,
        /// Conn, when known.
        conn: Option<String>,
        /// Cause.
        error: IkeError,
    },
    /// Install this CHILD_SA.
    ChildSaReady(ChildSaReady),
    /// The CHILD_SA in IKE_AUTH failed; the IKE SA stays up.
    ChildSaFailed {
        /// Owning IKE SA.
        id: IkeSaId,
        /// Conn name.
        conn: String,
        /// Cause.
        error: IkeError,
    },
    /// Remove this CHILD_SA.
    ChildSaDeleted {
        /// Owning IKE SA.
        id: IkeSaId,
        /// Conn name.
        conn: String,
        /// Inbound SPI.
        spi_in: u32,
        /// Outbound SPI.
        spi_out: u32,
    },
    /// IKE SA `old` was rekeyed (CREATE_CHILD_SA, RFC 7296 §2.18, by either side): the new
    /// IKE SA `new` took over all CHILD_SAs of `old`, whose SPIs and kernel state stay. `old`
    /// has no children left; its deletion (by the rekey's initiator, right away) follows as
    /// [`Event::IkeSaDeleted`] without ChildSaDeleted events. After simultaneous rekeys
    /// (§2.8.2) `old` may itself be a new SA reported just before, which lost.
    IkeSaRekeyed {
        /// The old SA.
        old: IkeSaId,
        /// The new SA.
        new: IkeSaId,
        /// Conn name.
        conn: String,
        /// SPIi of the new SA.
        spi_i: [u8; 8],
        /// SPIr of the new SA.
        spi_r: [u8; 8],
        /// Chosen algorithms of the new SA.
        proposal: String,
        /// The new SA's keys, only with [`EndpointConfig::export_keys`](super::EndpointConfig::export_keys).
        exported_keys: Option<Box<IkeSaExportedKeys>>,
    },
    /// Our rekey of IKE SA `id` ([`Endpoint::rekey_ike`](super::Endpoint::rekey_ike)) failed;
    /// the SA and its CHILD_SAs stay as they were. (A peer that stops answering ends the SA
    /// instead: [`Event::IkeSaDeleted`] with `PeerNotResponding`.)
    IkeSaRekeyFailed {
        /// The SA.
        id: IkeSaId,
        /// Conn name.
        conn: String,
        /// Cause, e.g. the peer's NO_PROPOSAL_CHOSEN.
        error: IkeError,
    },
    /// Our outstanding request got no answer in time and was sent again.
    Retransmit {
        /// The SA.
        id: IkeSaId,
        /// Conn name.
        conn: String,
        /// Where it went.
        remote: SocketAddr,
        /// Which retransmission this is (1 = the first).
        attempt: u32,
        /// Retransmissions before giving up.
        of: u32,
        /// The next retransmission (or giving up) follows after this long without an answer.
        next_in: std::time::Duration,
    },
    /// The peer of a responder IKE SA with a NAT on the path sent an authenticated request
    /// from another address or port (its NAT mapping changed, RFC 7296 §2.23): the IKE SA
    /// follows it; the CHILD_SAs' UDP encapsulation still names the old port until they are
    /// replaced (the daemon rekeys them).
    PeerMoved {
        /// The SA.
        id: IkeSaId,
        /// Conn name.
        conn: String,
        /// The old address and port.
        from: SocketAddr,
        /// The new address and port.
        to: SocketAddr,
    },
    /// `uniqueids=yes|replace`: the peer authenticated IKE SA `new` with the identity of
    /// our older responder SA `old` (without INITIAL_CONTACT), so `old` goes: at once when
    /// `new` came from another address, after `delete_in` ([`REAUTH_GRACE`](super::REAUTH_GRACE))
    /// from the same address, where the peer is probably reauthenticating and deletes `old`
    /// itself. Reported just before `new`'s [`Event::IkeSaEstablished`]; `old`'s deletion
    /// follows as [`Event::IkeSaDeleted`].
    DuplicateIkeSa {
        /// The older SA, to be deleted.
        old: IkeSaId,
        /// The new SA of the same peer.
        new: IkeSaId,
        /// Conn name.
        conn: String,
        /// Zero, or the grace the peer has to delete `old` itself.
        delete_in: std::time::Duration,
    },
    /// An established IKE SA is gone (its CHILD_SAs were reported deleted just before).
    IkeSaDeleted {
        /// The SA.
        id: IkeSaId,
        /// Conn name.
        conn: String,
        /// The peer deleted it.
        by_peer: bool,
        /// Why, when not by a Delete: `PeerNotResponding` when a request of ours (a liveness
        /// check, a rekey, a Delete, ...) went unanswered through all its retransmissions.
        error: Option<IkeError>,
    },
}

/// Why a responder refused a new IKE_SA_INIT request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InitRefusal {
    /// No acceptable proposal (NO_PROPOSAL_CHOSEN sent).
    NoProposal,
    /// SA, KE or Nonce missing or unusable (INVALID_SYNTAX sent).
    InvalidSyntax,
    /// Under load: a COOKIE was demanded.
    Cookie,
    /// Dropped: too many half-open SAs of this address.
    TooManyFromPeer,
    /// Dropped: too many half-open SAs in all.
    TooMany,
}

impl fmt::Display for InitRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NoProposal => "no acceptable proposal (NO_PROPOSAL_CHOSEN)",
            Self::InvalidSyntax => "malformed (INVALID_SYNTAX)",
            Self::Cookie => "COOKIE demanded (under load)",
            Self::TooManyFromPeer => "dropped: too many half-open IKE SAs from this address",
            Self::TooMany => "dropped: too many half-open IKE SAs",
        })
    }
}

/// Lifecycle state of an IKE SA, for status output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IkeSaState {
    /// Initiator: IKE_SA_INIT sent.
    Connecting,
    /// Initiator: IKE_AUTH sent. Responder: IKE_SA_INIT answered.
    Authenticating,
    /// Established.
    Established,
    /// Delete sent, awaiting the answer.
    Deleting,
}

impl fmt::Display for IkeSaState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Connecting => "CONNECTING",
            Self::Authenticating => "AUTHENTICATING",
            Self::Established => "ESTABLISHED",
            Self::Deleting => "DELETING",
        })
    }
}

/// One CHILD_SA, for status output.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildSaStatus {
    /// Inbound SPI.
    pub spi_in: u32,
    /// Outbound SPI.
    pub spi_out: u32,
    /// Mode.
    pub mode: Mode,
    /// Our selectors.
    pub local_ts: Vec<TrafficSelector>,
    /// Peer selectors.
    pub remote_ts: Vec<TrafficSelector>,
    /// Algorithms, e.g. `AES_GCM_16_128` or `AES_CBC_128/HMAC_SHA2_256_128`.
    pub algorithms: String,
    /// A rekey replaced it; it only waits for its deletion.
    pub replaced: bool,
}

/// One IKE SA, for `ikectl status`.
#[derive(Debug, Clone, PartialEq)]
pub struct IkeSaStatus {
    /// Handle.
    pub id: IkeSaId,
    /// Conn name.
    pub conn: String,
    /// State.
    pub state: IkeSaState,
    /// Our role.
    pub role: Role,
    /// SPIi.
    pub spi_i: [u8; 8],
    /// SPIr (zero until known).
    pub spi_r: [u8; 8],
    /// Our address and port.
    pub local: SocketAddr,
    /// Peer address and port.
    pub remote: SocketAddr,
    /// Our identity.
    pub local_id: Identification,
    /// Peer identity once authenticated.
    pub remote_id: Option<Identification>,
    /// Chosen IKE proposal once known.
    pub proposal: Option<String>,
    /// When the IKE SA was established.
    pub established_at: Option<Instant>,
    /// When an authentic (decrypted and verified) message from the peer last arrived; the
    /// daemon's dead peer detection (`dpddelay`) measures silence from here.
    pub last_received: Option<Instant>,
    /// NAT detected.
    pub nat_detected: bool,
    /// We are behind a NAT (or `forceencaps`): NAT keepalives are due on this SA's path.
    pub behind_nat: bool,
    /// Virtual IPs the peer assigned us.
    pub virtual_ips: Vec<IpAddr>,
    /// Virtual IPs leased to the peer from our pools.
    pub peer_virtual_ips: Vec<IpAddr>,
    /// DNS servers the peer assigned us.
    pub dns_servers: Vec<IpAddr>,
    /// CHILD_SAs.
    pub children: Vec<ChildSaStatus>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_keys_debug_redacts() {
        let k = ChildDirKeys {
            encr: Zeroizing::new(vec![0xAB; 20]),
            integ: Zeroizing::new(vec![]),
        };
        let s = format!("{k:?}");
        assert!(s.contains("20 bytes redacted"));
        assert!(!s.contains("171") && !s.to_lowercase().contains("ab, "));
    }
}
