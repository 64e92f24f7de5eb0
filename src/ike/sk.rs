//! Assembling and opening SK (Encrypted) messages with [`SkCrypto`] and the wire codec.

use rand::CryptoRng;

use crate::crypto::SkCrypto;
use crate::wire::{self, Header, Message, Payload, PayloadType};

/// Why an SK message could not be opened.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum OpenError {
    /// The message does not end with an Encrypted payload.
    #[error("no SK payload")]
    NotEncrypted,
    /// Integrity check or decryption failed (drop silently).
    #[error("SK payload did not decrypt")]
    Crypto,
    /// The decrypted inner payloads did not parse.
    #[error("inner payloads: {0}")]
    Inner(wire::WireError),
}

/// Length of the generic payload header that precedes the SK body.
const GENERIC_HEADER_LEN: usize = 4;

/// Encode `hdr` + SK{`inner`} protected with `crypto`. `hdr.next_payload` and
/// `hdr.length` are filled in here.
pub(crate) fn seal<R: CryptoRng>(
    hdr: &Header,
    inner: &[Payload],
    crypto: &SkCrypto,
    rng: &mut R,
) -> Result<Vec<u8>, super::IkeError> {
    let (first_inner, plain) = wire::encode_payloads(inner);
    let sealed_len = crypto.sealed_len(plain.len());
    let body_len = GENERIC_HEADER_LEN + sealed_len;
    let total = Header::LEN + body_len;
    let mut h = *hdr;
    h.next_payload = PayloadType::SK;
    h.length =
        u32::try_from(total).map_err(|_| super::IkeError::InvalidMessage("message too long"))?;
    let sk_len =
        u16::try_from(body_len).map_err(|_| super::IkeError::InvalidMessage("message too long"))?;
    let mut out = Vec::with_capacity(total);
    h.encode(&mut out);
    out.push(first_inner.0);
    out.push(0);
    out.extend_from_slice(&sk_len.to_be_bytes());
    let mut iv = vec![0u8; crypto.iv_len()];
    rng.fill_bytes(&mut iv);
    let body = crypto.seal(&out, &plain, &iv)?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// Open the SK payload of `msg` (parsed from `data`) and parse the inner payloads.
pub(crate) fn open(
    data: &[u8],
    msg: &Message,
    crypto: &SkCrypto,
) -> Result<Vec<Payload>, OpenError> {
    let Some(Payload::Encrypted(sk)) = msg.payloads.last() else {
        return Err(OpenError::NotEncrypted);
    };
    let len = usize::try_from(msg.header.length).map_err(|_| OpenError::NotEncrypted)?;
    let data = data.get(..len).ok_or(OpenError::NotEncrypted)?;
    let aad_len = data
        .len()
        .checked_sub(sk.data.len())
        .ok_or(OpenError::NotEncrypted)?;
    let (aad, body) = data.split_at(aad_len);
    if body != sk.data.as_slice() {
        return Err(OpenError::NotEncrypted);
    }
    let plain = crypto.open(aad, body).map_err(|_| OpenError::Crypto)?;
    wire::parse_payloads(sk.next_inner, &plain).map_err(OpenError::Inner)
}
