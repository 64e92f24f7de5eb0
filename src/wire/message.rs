//! Payload chains and whole messages (RFC 7296 §3.1, §3.2).

use super::codec::{Reader, with_len16};
use super::payload::{
    AuthPayload, Delete, EncryptedFragment, EncryptedPayload, Identification, KePayload, Notify,
    SaPayload,
};
use super::ts::{TrafficSelector, read_ts_payload, write_ts_payload};
use super::{Header, PayloadType, WireError};

/// One payload. Payload types this crate does not model (CERT, CERTREQ, CP, EAP, private use, ...)
/// and TS payloads holding selector types it does not model are kept as [`Payload::Unknown`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    Sa(SaPayload),
    Ke(KePayload),
    IdI(Identification),
    IdR(Identification),
    Auth(AuthPayload),
    Nonce(Vec<u8>),
    Notify(Notify),
    Delete(Delete),
    Vendor(Vec<u8>),
    TsI(Vec<TrafficSelector>),
    TsR(Vec<TrafficSelector>),
    /// SK: must be the last payload of a chain.
    Encrypted(EncryptedPayload),
    /// SKF (RFC 7383): must be the last payload of a chain.
    EncryptedFragment(EncryptedFragment),
    /// A payload kept opaque. `critical` is the Critical bit; [`parse_payloads`] only ever
    /// produces `false` (a critical payload it does not understand is an error).
    Unknown {
        payload_type: PayloadType,
        critical: bool,
        body: Vec<u8>,
    },
}

impl Payload {
    /// The Next Payload code of this payload.
    pub fn payload_type(&self) -> PayloadType {
        match self {
            Payload::Sa(_) => PayloadType::SA,
            Payload::Ke(_) => PayloadType::KE,
            Payload::IdI(_) => PayloadType::IDI,
            Payload::IdR(_) => PayloadType::IDR,
            Payload::Auth(_) => PayloadType::AUTH,
            Payload::Nonce(_) => PayloadType::NONCE,
            Payload::Notify(_) => PayloadType::NOTIFY,
            Payload::Delete(_) => PayloadType::DELETE,
            Payload::Vendor(_) => PayloadType::VENDOR,
            Payload::TsI(_) => PayloadType::TSI,
            Payload::TsR(_) => PayloadType::TSR,
            Payload::Encrypted(_) => PayloadType::SK,
            Payload::EncryptedFragment(_) => PayloadType::SKF,
            Payload::Unknown { payload_type, .. } => *payload_type,
        }
    }

    /// Parses one body. `next` is the payload's own Next Payload field (needed by SK/SKF, whose
    /// Next Payload names the first inner payload).
    fn read(
        ty: PayloadType,
        next: PayloadType,
        critical: bool,
        body: &[u8],
    ) -> Result<Payload, WireError> {
        let r = &mut Reader::new(body);
        let payload = match ty {
            PayloadType::SA => Payload::Sa(SaPayload::read(r)?),
            PayloadType::KE => Payload::Ke(KePayload::read(r)?),
            PayloadType::IDI => Payload::IdI(Identification::read(r)?),
            PayloadType::IDR => Payload::IdR(Identification::read(r)?),
            PayloadType::AUTH => Payload::Auth(AuthPayload::read(r)?),
            PayloadType::NONCE => Payload::Nonce(r.rest().to_vec()),
            PayloadType::NOTIFY => Payload::Notify(Notify::read(r)?),
            PayloadType::DELETE => Payload::Delete(Delete::read(r)?),
            PayloadType::VENDOR => Payload::Vendor(r.rest().to_vec()),
            PayloadType::TSI | PayloadType::TSR => match read_ts_payload(r)? {
                Some(ts) if ty == PayloadType::TSI => Payload::TsI(ts),
                Some(ts) => Payload::TsR(ts),
                None => Payload::Unknown {
                    payload_type: ty,
                    critical: false,
                    body: body.to_vec(),
                },
            },
            PayloadType::SK => Payload::Encrypted(EncryptedPayload {
                next_inner: next,
                data: r.rest().to_vec(),
            }),
            PayloadType::SKF => Payload::EncryptedFragment(EncryptedFragment::read(next, r)?),
            _ => Payload::Unknown {
                payload_type: ty,
                critical: false,
                body: r.rest().to_vec(),
            },
        };
        match payload {
            Payload::Unknown { .. } if critical => Err(WireError::UnsupportedCriticalPayload(ty)),
            _ if critical => Err(WireError::CriticalBitOnKnownPayload(ty)),
            payload => Ok(payload),
        }
    }

    fn write_body(&self, out: &mut Vec<u8>) {
        match self {
            Payload::Sa(sa) => sa.write(out),
            Payload::Ke(ke) => ke.write(out),
            Payload::IdI(id) | Payload::IdR(id) => id.write(out),
            Payload::Auth(auth) => auth.write(out),
            Payload::Nonce(bytes) | Payload::Vendor(bytes) => out.extend_from_slice(bytes),
            Payload::Notify(notify) => notify.write(out),
            Payload::Delete(delete) => delete.write(out),
            Payload::TsI(ts) | Payload::TsR(ts) => write_ts_payload(ts, out),
            Payload::Encrypted(sk) => out.extend_from_slice(&sk.data),
            Payload::EncryptedFragment(skf) => skf.write(out),
            Payload::Unknown { body, .. } => out.extend_from_slice(body),
        }
    }

    /// The Next Payload value written in this payload's own generic header, given the type of the
    /// payload that follows it.
    fn next_field(&self, following: PayloadType) -> PayloadType {
        match self {
            Payload::Encrypted(sk) => sk.next_inner,
            Payload::EncryptedFragment(skf) => skf.next_inner,
            _ => following,
        }
    }

    /// Whether nothing may follow this payload in its chain (SK and SKF extend to the end).
    fn is_terminal(&self) -> bool {
        matches!(self, Payload::Encrypted(_) | Payload::EncryptedFragment(_))
    }
}

/// Parses a payload chain whose first payload has type `first` and which must fill `bytes`
/// exactly. Used for the message body and for the decrypted content of an SK payload.
pub fn parse_payloads(first: PayloadType, bytes: &[u8]) -> Result<Vec<Payload>, WireError> {
    let mut r = Reader::new(bytes);
    let mut payloads = Vec::new();
    let mut ty = first;
    while ty != PayloadType::NONE {
        let what = "generic payload header";
        let next = PayloadType(r.u8(what)?);
        let flags = r.u8(what)?;
        if flags & 0x7f != 0 {
            return Err(WireError::NonZeroReserved { what });
        }
        let len = r.u16(what)?;
        let body_len = len.checked_sub(4).ok_or(WireError::BadLength {
            what: "payload",
            length: usize::from(len),
        })?;
        let body = r.take(usize::from(body_len), "payload body")?;
        let payload = Payload::read(ty, next, flags & 0x80 != 0, body)?;
        let terminal = payload.is_terminal();
        payloads.push(payload);
        if terminal {
            if !r.is_empty() {
                return Err(WireError::EncryptedNotLast);
            }
            break;
        }
        ty = next;
    }
    r.expect_end("payload chain")?;
    Ok(payloads)
}

/// Encodes a payload chain, computing every Next Payload and length field. Returns the type of
/// the first payload (NONE for an empty chain) and the bytes. An SK/SKF payload must be last: its
/// Next Payload field carries `next_inner` instead of the type of a following payload.
pub fn encode_payloads(payloads: &[Payload]) -> (PayloadType, Vec<u8>) {
    let mut out = Vec::new();
    write_payloads(payloads, &mut out);
    (
        payloads
            .first()
            .map_or(PayloadType::NONE, Payload::payload_type),
        out,
    )
}

fn write_payloads(payloads: &[Payload], out: &mut Vec<u8>) {
    let following = payloads
        .iter()
        .skip(1)
        .map(Payload::payload_type)
        .chain([PayloadType::NONE]);
    for (payload, following) in payloads.iter().zip(following) {
        let critical = matches!(payload, Payload::Unknown { critical: true, .. });
        with_len16(
            out,
            |out| {
                out.extend_from_slice(&[
                    payload.next_field(following).0,
                    if critical { 0x80 } else { 0 },
                ])
            },
            |out| payload.write_body(out),
        );
    }
}

/// A whole IKE message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub header: Header,
    pub payloads: Vec<Payload>,
}

impl Message {
    /// Parses a datagram (without the 4-byte non-ESP marker of port 4500). The header's Length
    /// must equal `bytes.len()`, the major version must be 2, and the payload chain must fill
    /// the message exactly. An SK payload's content is left encrypted.
    pub fn parse(bytes: &[u8]) -> Result<Message, WireError> {
        let mut r = Reader::new(bytes);
        let header = Header::read(&mut r)?;
        if header.major != Header::MAJOR_VERSION {
            return Err(WireError::InvalidMajorVersion(header.major));
        }
        if usize::try_from(header.length).ok() != Some(bytes.len()) {
            return Err(WireError::BadLength {
                what: "IKE message",
                length: bytes.len(),
            });
        }
        let payloads = parse_payloads(header.next_payload, r.rest())?;
        Ok(Message { header, payloads })
    }

    /// Encodes the message. `header.next_payload` and `header.length` are computed from the
    /// payloads; every other header field is written as given.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Header::LEN + 256);
        let header = Header {
            next_payload: self
                .payloads
                .first()
                .map_or(PayloadType::NONE, Payload::payload_type),
            ..self.header
        };
        header.encode(&mut out);
        write_payloads(&self.payloads, &mut out);
        let length = u32::try_from(out.len()).unwrap_or(u32::MAX);
        if let Some(slot) = out.get_mut(24..Header::LEN) {
            slot.copy_from_slice(&length.to_be_bytes());
        }
        out
    }
}
