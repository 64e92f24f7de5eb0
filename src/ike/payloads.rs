//! Payload helpers shared by the exchange modules: finding payloads in a decoded list,
//! building notify and Delete payloads, and nonces.

use rand::CryptoRng;

use crate::kernel::IpsecProto;
use crate::wire::{Delete, KePayload, Notify, NotifyType, Payload, Proposal, ProtocolId};

/// Our nonce length (≥ half of any PRF key we support, RFC 7296 §2.10).
pub(crate) const NONCE_LEN: usize = 32;
/// Accepted peer nonce lengths (RFC 7296 §3.9: 16..=256 octets).
pub(crate) const NONCE_RANGE: std::ops::RangeInclusive<usize> = 16..=256;

/// `len` bytes from `rng` (nonces).
pub(crate) fn random<R: CryptoRng>(rng: &mut R, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    v
}

/// A notify payload without SPI.
pub(crate) fn notify(notify_type: NotifyType, data: Vec<u8>) -> Payload {
    Payload::Notify(Notify {
        protocol: ProtocolId(0),
        spi: Vec::new(),
        notify_type,
        data,
    })
}

/// The first notify of a given type in a payload list.
pub(crate) fn find_notify(payloads: &[Payload], t: NotifyType) -> Option<&Notify> {
    payloads.iter().find_map(|p| match p {
        Payload::Notify(n) if n.notify_type == t => Some(n),
        _ => None,
    })
}

/// Whether a payload list carries a notify of this type.
pub(crate) fn has_notify(payloads: &[Payload], t: NotifyType) -> bool {
    find_notify(payloads, t).is_some()
}

/// The first error notify (type < 16384), if any.
pub(crate) fn first_error(payloads: &[Payload]) -> Option<&Notify> {
    payloads.iter().find_map(|p| match p {
        Payload::Notify(n) if n.notify_type.is_error() => Some(n),
        _ => None,
    })
}

/// The proposals of the first SA payload.
pub(crate) fn sa_payload(payloads: &[Payload]) -> Option<&[Proposal]> {
    payloads.iter().find_map(|p| match p {
        Payload::Sa(sa) => Some(sa.proposals.as_slice()),
        _ => None,
    })
}

/// The data of the first Nonce payload.
pub(crate) fn nonce(payloads: &[Payload]) -> Option<&[u8]> {
    payloads.iter().find_map(|p| match p {
        Payload::Nonce(n) => Some(n.as_slice()),
        _ => None,
    })
}

/// The first KE payload.
pub(crate) fn ke(payloads: &[Payload]) -> Option<&KePayload> {
    payloads.iter().find_map(|p| match p {
        Payload::Ke(k) => Some(k),
        _ => None,
    })
}

/// Delete(IKE): protocol IKE, no SPIs (the header names the SA).
pub(crate) fn delete_ike_payload() -> Payload {
    Payload::Delete(Delete {
        protocol: ProtocolId::IKE,
        spi_size: 0,
        spis: Vec::new(),
    })
}

/// Delete(ESP) or Delete(AH) for our inbound SPIs.
pub(crate) fn delete_child_payload(proto: IpsecProto, spis: &[u32]) -> Payload {
    Payload::Delete(Delete {
        protocol: super::proposal::protocol_id(proto),
        spi_size: 4,
        spis: spis.iter().map(|s| s.to_be_bytes().to_vec()).collect(),
    })
}
