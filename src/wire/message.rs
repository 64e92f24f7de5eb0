//! Payload chains and whole messages (RFC 7296 §3.1, §3.2).

use super::codec::{Reader, with_len16};
use super::cp::ConfigPayload;
use super::payload::{
    AuthPayload, Delete, EncryptedFragment, EncryptedPayload, Identification, KePayload, Notify,
    SaPayload,
};
use super::ts::{TrafficSelector, read_ts_payload, write_ts_payload};
use super::{Header, PayloadType, WireError};

/// One payload. Payload types this crate does not model (CERT, CERTREQ, EAP, private use, ...)
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
    /// CP (Configuration payload).
    Cp(ConfigPayload),
    /// SK: must be the last payload of a chain.
    Encrypted(EncryptedPayload),
    /// SKF (RFC 7383): must be the last payload of a chain.
    EncryptedFragment(EncryptedFragment),
    /// A payload kept opaque. `critical` is the Critical bit written by the encoder;
    /// [`parse_payloads`] only ever produces `false` (a critical payload of a type it does not
    /// understand is an error, and the bit is ignored on the types it does understand).
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
            Payload::Cp(_) => PayloadType::CP,
            Payload::Encrypted(_) => PayloadType::SK,
            Payload::EncryptedFragment(_) => PayloadType::SKF,
            Payload::Unknown { payload_type, .. } => *payload_type,
        }
    }

    /// Parses one body. `next` is the payload's own Next Payload field (needed by SK/SKF, whose
    /// Next Payload names the first inner payload). `critical` only matters for a payload type
    /// this crate does not understand (RFC 7296 §3.2): such a payload is rejected.
    fn read(
        ty: PayloadType,
        next: PayloadType,
        critical: bool,
        body: &[u8],
    ) -> Result<Payload, WireError> {
        let r = &mut Reader::new(body);
        Ok(match ty {
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
            PayloadType::CP => Payload::Cp(ConfigPayload::read(r)?),
            PayloadType::SK => Payload::Encrypted(EncryptedPayload {
                next_inner: next,
                data: r.rest().to_vec(),
            }),
            PayloadType::SKF => Payload::EncryptedFragment(EncryptedFragment::read(next, r)?),
            _ if critical => return Err(WireError::UnsupportedCriticalPayload(ty)),
            _ => Payload::Unknown {
                payload_type: ty,
                critical: false,
                body: r.rest().to_vec(),
            },
        })
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
            Payload::Cp(cp) => cp.write(out),
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
        // Critical bit, then 7 RESERVED bits (ignored on receipt).
        let critical = r.u8(what)? & 0x80 != 0;
        let len = r.u16(what)?;
        let body_len = len.checked_sub(4).ok_or(WireError::BadLength {
            what: "payload",
            length: usize::from(len),
        })?;
        let body = r.take(usize::from(body_len), "payload body")?;
        let payload = Payload::read(ty, next, critical, body)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{AuthMethod, ExchangeType, NotifyType, ProtocolId, TransformId, TsType};

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

    /// Header bytes for `header()` with the given first payload and total length.
    fn header_bytes(next: PayloadType, length: u32) -> Vec<u8> {
        let mut out = Vec::new();
        Header {
            next_payload: next,
            length,
            ..header()
        }
        .encode(&mut out);
        out
    }

    fn message(payloads: Vec<Payload>) -> Message {
        Message {
            header: header(),
            payloads,
        }
    }

    #[test]
    fn chain_layout_and_computed_header_fields() {
        let msg = message(vec![
            Payload::Nonce(vec![0xaa; 3]),
            Payload::Notify(Notify::ike(NotifyType::INITIAL_CONTACT, vec![])),
        ]);
        let bytes = msg.encode();
        let mut expected = header_bytes(PayloadType::NONCE, 28 + 7 + 8);
        expected.extend_from_slice(&[41, 0, 0, 7, 0xaa, 0xaa, 0xaa]); // Nonce, next = Notify
        expected.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0x40, 0x00]); // Notify, last
        assert_eq!(bytes, expected);
        let parsed = Message::parse(&bytes).unwrap();
        assert_eq!(parsed.header.next_payload, PayloadType::NONCE);
        assert_eq!(parsed.header.length, 43);
        assert_eq!(parsed.payloads, msg.payloads);
        assert_eq!(
            message(vec![]).encode(),
            header_bytes(PayloadType::NONE, 28)
        );
    }

    #[test]
    fn every_payload_kind_round_trips() {
        let payloads = vec![
            Payload::Sa(SaPayload {
                proposals: vec![crate::wire::Proposal {
                    number: 1,
                    protocol: ProtocolId::ESP,
                    spi: vec![1, 2, 3, 4],
                    transforms: vec![crate::wire::Transform::new(
                        crate::wire::TransformType::ESN,
                        TransformId::ESN_NONE,
                    )],
                }],
            }),
            Payload::Ke(KePayload {
                group: TransformId::DH_ECP256,
                data: vec![4; 64],
            }),
            Payload::IdI(Identification::fqdn("alice")),
            Payload::IdR(Identification::from_ip("192.0.2.1".parse().unwrap())),
            Payload::Auth(AuthPayload {
                method: AuthMethod::SHARED_KEY_MIC,
                data: vec![5; 32],
            }),
            Payload::Nonce(vec![6; 32]),
            Payload::Notify(Notify::ike(NotifyType(50000), vec![7])),
            Payload::Delete(Delete {
                protocol: ProtocolId::ESP,
                spi_size: 4,
                spis: vec![vec![8; 4]],
            }),
            Payload::Vendor(b"ikev2d".to_vec()),
            Payload::TsI(vec![TrafficSelector::any_v4()]),
            Payload::TsR(vec![TrafficSelector::any_v6(), TrafficSelector::any_v4()]),
            Payload::Cp(crate::wire::ConfigPayload {
                cfg_type: crate::wire::CfgType::CFG_REQUEST,
                attributes: vec![crate::wire::ConfigAttribute::request(
                    crate::wire::ConfigAttrType::INTERNAL_IP4_ADDRESS,
                )],
            }),
            Payload::Unknown {
                payload_type: PayloadType::EAP,
                critical: false,
                body: vec![1, 0, 0, 0],
            },
            Payload::Unknown {
                payload_type: PayloadType(200),
                critical: false,
                body: vec![],
            },
            Payload::Encrypted(EncryptedPayload {
                next_inner: PayloadType::IDI,
                data: vec![9; 48],
            }),
        ];
        let msg = message(payloads);
        let bytes = msg.encode();
        let parsed = Message::parse(&bytes).unwrap();
        assert_eq!(parsed.payloads, msg.payloads);
        assert_eq!(parsed.encode(), bytes);
        let skf = message(vec![Payload::EncryptedFragment(EncryptedFragment {
            next_inner: PayloadType::NONE,
            fragment_number: 2,
            total_fragments: 2,
            data: vec![1; 20],
        })]);
        assert_eq!(
            Message::parse(&skf.encode()).unwrap().payloads,
            skf.payloads
        );
    }

    #[test]
    fn unknown_payloads_skipped_unless_critical() {
        let mut bytes = header_bytes(PayloadType(150), 28 + 5 + 4);
        bytes.extend_from_slice(&[40, 0, 0, 5, 0x77, 0, 0, 0, 4]); // unknown 150 → Nonce (empty)
        let msg = Message::parse(&bytes).unwrap();
        assert_eq!(
            msg.payloads,
            [
                Payload::Unknown {
                    payload_type: PayloadType(150),
                    critical: false,
                    body: vec![0x77]
                },
                Payload::Nonce(vec![])
            ]
        );
        assert_eq!(msg.encode(), bytes);

        bytes[29] = 0x80; // critical
        let err = Message::parse(&bytes).unwrap_err();
        assert_eq!(err, WireError::UnsupportedCriticalPayload(PayloadType(150)));
        assert_eq!(err.notify(), NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD);
        // A payload type this crate knows but does not model is "unsupported" too.
        let mut certreq = header_bytes(PayloadType::CERTREQ, 28 + 5 + 4);
        certreq.extend_from_slice(&bytes[28..]);
        assert_eq!(
            Message::parse(&certreq),
            Err(WireError::UnsupportedCriticalPayload(PayloadType::CERTREQ))
        );

        // Reserved bits of an unknown payload are ignored like any other.
        bytes[29] = 0x7f;
        assert_eq!(Message::parse(&bytes), Ok(msg));
    }

    /// Sets RESERVED bits everywhere and the Critical bit of each payload in a canonical encoding
    /// of an SA, KE, IDi, AUTH, TSr and SK payload: the value and its encoding do not change.
    #[test]
    fn reserved_fields_and_critical_bits_are_ignored() {
        let canonical = message(vec![
            Payload::Sa(SaPayload {
                proposals: vec![crate::wire::Proposal {
                    number: 1,
                    protocol: ProtocolId::ESP,
                    spi: vec![1, 2, 3, 4],
                    transforms: vec![crate::wire::Transform::new(
                        crate::wire::TransformType::ESN,
                        TransformId::ESN_NONE,
                    )],
                }],
            }),
            Payload::Ke(KePayload {
                group: TransformId::DH_CURVE25519,
                data: vec![4; 32],
            }),
            Payload::IdI(Identification::fqdn("alice")),
            Payload::Auth(AuthPayload {
                method: AuthMethod::SHARED_KEY_MIC,
                data: vec![5; 32],
            }),
            Payload::TsR(vec![TrafficSelector::any_v4()]),
            Payload::Encrypted(EncryptedPayload {
                next_inner: PayloadType::IDI,
                data: vec![9; 48],
            }),
        ]);
        let bytes = canonical.encode();
        let mut noisy = bytes.clone();
        assert_eq!(noisy[19], Header::FLAG_INITIATOR);
        noisy[19] |= 0xc7; // reserved bits of the header flags
        let mut set = |at: usize, bits: u8| {
            assert_eq!(noisy[at], 0, "byte {at} is not a zero RESERVED field");
            noisy[at] = bits;
        };
        let sa = 28;
        set(sa + 1, 0xff); // generic header: Critical + RESERVED
        set(sa + 5, 0x5a); // proposal RESERVED
        set(sa + 17, 0x01); // transform substructure RESERVED
        set(sa + 21, 0x80); // RESERVED after Transform Type
        let ke = sa + 24;
        set(ke + 1, 0x80);
        set(ke + 6, 0x12);
        set(ke + 7, 0x34);
        let id = ke + 8 + 32;
        set(id + 1, 0x81);
        set(id + 5, 1);
        set(id + 6, 2);
        set(id + 7, 3);
        let auth = id + 8 + 5;
        set(auth + 1, 0x80);
        set(auth + 5, 0xff);
        set(auth + 7, 0xff);
        let ts = auth + 8 + 32;
        set(ts + 1, 0xc0);
        set(ts + 5, 0xee);
        let sk = ts + 8 + 16;
        set(sk + 1, 0xfe);
        assert_eq!(sk + 4 + 48, bytes.len());
        let parsed = Message::parse(&noisy).unwrap();
        assert_eq!(parsed, Message::parse(&bytes).unwrap());
        assert_eq!(parsed.encode(), bytes);
    }

    #[test]
    fn ts_payload_with_unknown_selector_type_is_kept_opaque() {
        let body = vec![1, 0, 0, 0, 10, 0, 0, 5, 0xee];
        let mut bytes = header_bytes(PayloadType::TSI, 28 + 4 + 9);
        bytes.extend_from_slice(&[0, 0, 0, 13]);
        bytes.extend_from_slice(&body);
        let msg = Message::parse(&bytes).unwrap();
        assert_eq!(
            msg.payloads,
            [Payload::Unknown {
                payload_type: PayloadType::TSI,
                critical: false,
                body
            }]
        );
        assert_eq!(msg.encode(), bytes);
        // TSi is a payload type this crate understands, so its Critical bit is ignored.
        bytes[29] = 0x80;
        assert_eq!(Message::parse(&bytes), Ok(msg.clone()));
        assert_eq!(Message::parse(&bytes).unwrap().encode()[29], 0);
        // The body is opaque: its RESERVED octets are kept as received.
        bytes[33] = 0xff;
        let opaque = Message::parse(&bytes).unwrap();
        assert_ne!(opaque, msg);
        assert_eq!(opaque.encode()[33], 0xff);
        assert_eq!(TsType(10).name(), None);
    }

    #[test]
    fn bad_lengths_and_trailing_data() {
        let good = message(vec![Payload::Nonce(vec![1, 2]), Payload::Vendor(vec![3])]).encode();
        assert_eq!(good.len(), 28 + 6 + 5);
        let with = |i: usize, v: u8| {
            let mut b = good.clone();
            b[i] = v;
            Message::parse(&b)
        };
        assert_eq!(
            with(31, 3),
            Err(WireError::BadLength {
                what: "payload",
                length: 3
            })
        );
        assert_eq!(
            with(31, 0),
            Err(WireError::BadLength {
                what: "payload",
                length: 0
            })
        );
        assert_eq!(
            with(31, 12),
            Err(WireError::Truncated {
                what: "payload body"
            })
        );
        // Nonce length 5: the next "header" starts inside the Nonce data and has length 0.
        assert_eq!(
            with(31, 5),
            Err(WireError::BadLength {
                what: "payload",
                length: 0
            })
        );
        assert_eq!(
            with(28, 0),
            Err(WireError::TrailingData {
                what: "payload chain"
            })
        );
        assert_eq!(
            with(37, 4),
            Err(WireError::TrailingData {
                what: "payload chain"
            })
        );
        assert_eq!(
            with(27, 40),
            Err(WireError::BadLength {
                what: "IKE message",
                length: 39
            })
        );
        assert_eq!(
            with(27, 38),
            Err(WireError::BadLength {
                what: "IKE message",
                length: 39
            })
        );
        assert_eq!(
            with(26, 1),
            Err(WireError::BadLength {
                what: "IKE message",
                length: 39
            })
        );
        let mut longer = good.clone();
        longer.push(0);
        assert_eq!(
            Message::parse(&longer),
            Err(WireError::BadLength {
                what: "IKE message",
                length: 40
            })
        );
        for n in 0..good.len() {
            assert!(Message::parse(&good[..n]).is_err(), "prefix {n} accepted");
        }
        assert_eq!(
            Message::parse(&good[..27]),
            Err(WireError::Truncated { what: "IKE header" })
        );
    }

    #[test]
    fn major_version_is_checked() {
        let mut bytes = message(vec![]).encode();
        for (version, major) in [(0x10, 1), (0x30, 3), (0x21, 2)] {
            bytes[17] = version;
            let result = Message::parse(&bytes);
            if major == 2 {
                assert_eq!(result.unwrap().header.minor, 1);
            } else {
                let err = result.unwrap_err();
                assert_eq!(err, WireError::InvalidMajorVersion(major));
                assert_eq!(err.notify(), NotifyType::INVALID_MAJOR_VERSION);
                // The header itself still parses, so a responder can answer.
                assert_eq!(Header::parse(&bytes).unwrap().major, major);
            }
        }
    }

    #[test]
    fn encrypted_payload_must_be_last() {
        let msg = message(vec![Payload::Encrypted(EncryptedPayload {
            next_inner: PayloadType::IDI,
            data: vec![1; 4],
        })]);
        let mut bytes = msg.encode();
        assert_eq!(bytes[28..32], [PayloadType::IDI.0, 0, 0, 8]);
        assert_eq!(
            Message::parse(&bytes).unwrap(),
            Message {
                header: Header {
                    next_payload: PayloadType::SK,
                    length: 36,
                    ..header()
                },
                ..msg
            }
        );
        // Shrink the SK payload so that bytes follow it.
        bytes[31] = 6;
        assert_eq!(Message::parse(&bytes), Err(WireError::EncryptedNotLast));
        assert_eq!(
            Message::parse(&bytes).unwrap_err().notify(),
            NotifyType::INVALID_SYNTAX
        );
    }

    #[test]
    fn inner_chain_helpers() {
        let inner = vec![
            Payload::IdI(Identification::fqdn("a")),
            Payload::Auth(AuthPayload {
                method: AuthMethod::SHARED_KEY_MIC,
                data: vec![1; 32],
            }),
        ];
        let (first, bytes) = encode_payloads(&inner);
        assert_eq!(first, PayloadType::IDI);
        assert_eq!(bytes[0], PayloadType::AUTH.0);
        assert_eq!(parse_payloads(first, &bytes).unwrap(), inner);
        assert_eq!(
            parse_payloads(PayloadType::IDR, &bytes).unwrap()[0],
            Payload::IdR(Identification::fqdn("a"))
        );
        assert_eq!(encode_payloads(&[]), (PayloadType::NONE, vec![]));
        assert_eq!(parse_payloads(PayloadType::NONE, &[]).unwrap(), []);
        assert_eq!(
            parse_payloads(PayloadType::NONE, &[0]),
            Err(WireError::TrailingData {
                what: "payload chain"
            })
        );
    }
}
