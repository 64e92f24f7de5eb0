//! NAT detection (RFC 7296 §2.23): SHA-1(SPIi | SPIr | IP | port).

use std::net::{IpAddr, SocketAddr};

use sha1::{Digest, Sha1};

use super::payloads::notify;
use crate::wire::{NotifyType, Payload};

/// The NAT_DETECTION_* hash of one address as seen with these SPIs.
pub(crate) fn hash(spi_i: &[u8; 8], spi_r: &[u8; 8], addr: SocketAddr) -> Vec<u8> {
    let mut h = Sha1::new();
    h.update(spi_i);
    h.update(spi_r);
    match addr.ip() {
        IpAddr::V4(a) => h.update(a.octets()),
        IpAddr::V6(a) => h.update(a.octets()),
    }
    h.update(addr.port().to_be_bytes());
    h.finalize().to_vec()
}

/// NAT_DETECTION_SOURCE_IP (our `local`) and NAT_DETECTION_DESTINATION_IP (`remote`).
/// `force` (`forceencaps=yes`) sends the source hash of the unspecified address and port 0,
/// which no datagram comes from, so the peer sees us behind a NAT and both sides encapsulate.
pub(crate) fn payloads(
    spi_i: &[u8; 8],
    spi_r: &[u8; 8],
    local: SocketAddr,
    remote: SocketAddr,
    force: bool,
) -> [Payload; 2] {
    let source = if force {
        SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0)
    } else {
        local
    };
    [
        notify(
            NotifyType::NAT_DETECTION_SOURCE_IP,
            hash(spi_i, spi_r, source),
        ),
        notify(
            NotifyType::NAT_DETECTION_DESTINATION_IP,
            hash(spi_i, spi_r, remote),
        ),
    ]
}

/// Result of checking a peer's NAT_DETECTION_* notifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct NatState {
    /// The peer sent NAT-D notifies at all.
    pub(crate) supported: bool,
    /// Our address was translated (their DESTINATION hash is not our local address).
    pub(crate) local_behind: bool,
    /// The peer's address was translated (no SOURCE hash matches where it came from).
    pub(crate) remote_behind: bool,
}

impl NatState {
    /// Either side is behind a NAT.
    pub(crate) fn detected(&self) -> bool {
        self.local_behind || self.remote_behind
    }
}

/// Check the NAT-D notifies in `payloads` of a message with these header SPIs that
/// arrived at `local` from `remote`.
pub(crate) fn check(
    payloads: &[Payload],
    spi_i: &[u8; 8],
    spi_r: &[u8; 8],
    local: SocketAddr,
    remote: SocketAddr,
) -> NatState {
    let mut src = Vec::new();
    let mut dst = Vec::new();
    for p in payloads {
        if let Payload::Notify(n) = p {
            if n.notify_type == NotifyType::NAT_DETECTION_SOURCE_IP {
                src.push(n.data.as_slice());
            } else if n.notify_type == NotifyType::NAT_DETECTION_DESTINATION_IP {
                dst.push(n.data.as_slice());
            }
        }
    }
    if src.is_empty() || dst.is_empty() {
        return NatState::default();
    }
    let local_hash = hash(spi_i, spi_r, local);
    let remote_hash = hash(spi_i, spi_r, remote);
    NatState {
        supported: true,
        local_behind: !dst.contains(&local_hash.as_slice()),
        remote_behind: !src.contains(&remote_hash.as_slice()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_sha1_of_spis_ip_port() {
        let a: SocketAddr = "192.0.2.1:500".parse().unwrap();
        let mut input = vec![1u8; 8];
        input.extend([0u8; 8]);
        input.extend([192, 0, 2, 1, 0x01, 0xf4]);
        assert_eq!(hash(&[1; 8], &[0; 8], a), Sha1::digest(&input).to_vec());
    }

    #[test]
    fn detects_translation_on_each_side() {
        let i: SocketAddr = "10.0.0.1:500".parse().unwrap();
        let r: SocketAddr = "192.0.2.2:500".parse().unwrap();
        let nat: SocketAddr = "198.51.100.7:4501".parse().unwrap();
        let (si, sr) = ([1; 8], [0; 8]);
        let sent = payloads(&si, &sr, i, r, false);
        // No NAT: the responder sees the initiator's own address.
        let st = check(&sent, &si, &sr, r, i);
        assert!(st.supported && !st.detected());
        // The initiator is translated to `nat`.
        let st = check(&sent, &si, &sr, r, nat);
        assert!(st.remote_behind && !st.local_behind);
        // The responder is reached on an address it does not know as its own.
        let st = check(&sent, &si, &sr, nat, i);
        assert!(st.local_behind && !st.remote_behind);
        assert_eq!(check(&[], &si, &sr, r, i), NatState::default());
    }

    #[test]
    fn forced_source_hash_never_matches() {
        let i: SocketAddr = "10.0.0.1:500".parse().unwrap();
        let r: SocketAddr = "192.0.2.2:500".parse().unwrap();
        let (si, sr) = ([1; 8], [2; 8]);
        let sent = payloads(&si, &sr, i, r, true);
        // No NAT on the path, yet the responder sees the initiator translated.
        let st = check(&sent, &si, &sr, r, i);
        assert!(st.remote_behind && !st.local_behind);
    }
}
