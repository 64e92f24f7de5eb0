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
    let (aad, body) = data.split_at(aad_len); // ok: aad_len <= data.len() (checked_sub)
    if body != sk.data.as_slice() {
        return Err(OpenError::NotEncrypted);
    }
    let plain = crypto.open(aad, body).map_err(|_| OpenError::Crypto)?;
    wire::parse_payloads(sk.next_inner, &plain).map_err(OpenError::Inner)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::ChaCha20Rng;

    use super::*;
    use crate::crypto::{Encr, Integ};
    use crate::wire::{ExchangeType, Notify, NotifyType, ProtocolId};

    fn header() -> Header {
        Header {
            spi_i: [1; 8],
            spi_r: [2; 8],
            next_payload: PayloadType::NONE,
            major: 2,
            minor: 0,
            exchange: ExchangeType::INFORMATIONAL,
            flags: Header::FLAG_INITIATOR,
            message_id: 7,
            length: 0,
        }
    }

    fn inner() -> Vec<Payload> {
        vec![Payload::Notify(Notify {
            protocol: ProtocolId(0),
            spi: Vec::new(),
            notify_type: NotifyType::INITIAL_CONTACT,
            data: vec![],
        })]
    }

    #[test]
    fn seal_open_round_trip_and_tamper() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        for (encr, integ) in [
            (Encr::AesGcm16 { key_bits: 128 }, None),
            (Encr::AesCbc { key_bits: 256 }, Some(Integ::HmacSha256_128)),
        ] {
            let ek = vec![3u8; encr.key_material_len()];
            let ik = vec![4u8; integ.map_or(0, Integ::key_len)];
            let c = SkCrypto::new(encr, integ, &ek, &ik).unwrap();
            let data = seal(&header(), &inner(), &c, &mut rng).unwrap();
            let msg = Message::parse(&data).unwrap();
            assert_eq!(msg.header.message_id, 7);
            assert_eq!(open(&data, &msg, &c), Ok(inner()));
            // Any flipped bit of the header or body fails the integrity check.
            for i in [0, 20, data.len() - 1] {
                let mut bad = data.clone();
                bad[i] ^= 1;
                if let Ok(m) = Message::parse(&bad) {
                    assert_eq!(open(&bad, &m, &c), Err(OpenError::Crypto));
                }
            }
        }
    }

    #[test]
    fn plaintext_message_is_not_opened() {
        let c = SkCrypto::new(Encr::AesGcm16 { key_bits: 128 }, None, &[0; 20], &[]).unwrap();
        let msg = Message {
            header: header(),
            payloads: inner(),
        };
        let data = msg.encode();
        let parsed = Message::parse(&data).unwrap();
        assert_eq!(open(&data, &parsed, &c), Err(OpenError::NotEncrypted));
    }
}
