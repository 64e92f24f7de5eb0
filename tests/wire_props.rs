//! Property tests of the wire codec: structured messages round-trip, and arbitrary or mutated
//! bytes never make the parser panic. Whatever it accepts re-encodes to a canonical form that
//! parses to the same value and differs from the input only in ignored bits (RESERVED fields and
//! the Critical bit of modelled payload types), which [`ignored_bits`] locates independently of
//! the codec, from the RFC 7296 layouts.

use std::net::IpAddr;

use ikev2d::wire::{
    AuthMethod, AuthPayload, CfgType, ConfigAttrType, ConfigAttribute, ConfigPayload, Delete,
    EncryptedFragment, EncryptedPayload, ExchangeType, Header, IdType, Identification, KePayload,
    Message, Notify, NotifyType, Payload, PayloadType, Proposal, ProtocolId, SaPayload,
    TrafficSelector, Transform, TransformId, TransformType, TsType, encode_payloads,
    parse_payloads,
};
use proptest::collection::vec;
use proptest::prelude::*;

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..=max)
}

fn attribute() -> impl Strategy<Value = (u16, Vec<u8>)> {
    prop_oneof![
        (0x8000u16..=0xffff, any::<[u8; 2]>()).prop_map(|(t, v)| (t, v.to_vec())),
        (0u16..0x8000, bytes(6)),
    ]
}

fn transform() -> impl Strategy<Value = Transform> {
    (
        any::<u8>(),
        any::<u16>(),
        proptest::option::of(any::<u16>()),
        vec(attribute(), 0..3),
    )
        .prop_map(|(kind, id, key_length, mut other_attributes)| {
            // A leading Key Length attribute is parsed into `key_length`, so it cannot also be
            // the first "other" attribute.
            if key_length.is_none() && other_attributes.first().is_some_and(|(t, _)| *t == 0x800e) {
                other_attributes.remove(0);
            }
            Transform {
                kind: TransformType(kind),
                id: TransformId(id),
                key_length,
                other_attributes,
            }
        })
}

fn proposal() -> impl Strategy<Value = Proposal> {
    (any::<u8>(), any::<u8>(), bytes(8), vec(transform(), 0..6)).prop_map(
        |(number, protocol, spi, transforms)| Proposal {
            number,
            protocol: ProtocolId(protocol),
            spi,
            transforms,
        },
    )
}

fn traffic_selector() -> impl Strategy<Value = TrafficSelector> {
    let addrs = prop_oneof![
        (any::<[u8; 4]>(), any::<[u8; 4]>()).prop_map(|(a, b)| (
            TsType::IPV4_ADDR_RANGE,
            IpAddr::from(a),
            IpAddr::from(b)
        )),
        (any::<[u8; 16]>(), any::<[u8; 16]>()).prop_map(|(a, b)| (
            TsType::IPV6_ADDR_RANGE,
            IpAddr::from(a),
            IpAddr::from(b)
        )),
    ];
    (addrs, any::<u8>(), any::<u16>(), any::<u16>()).prop_map(
        |((ts_type, start_addr, end_addr), ip_protocol, start_port, end_port)| TrafficSelector {
            ts_type,
            ip_protocol,
            start_port,
            end_port,
            start_addr,
            end_addr,
        },
    )
}

fn identification() -> impl Strategy<Value = Identification> {
    (any::<u8>(), bytes(32)).prop_map(|(t, data)| Identification {
        id_type: IdType(t),
        data,
    })
}

/// Payload types that the codec models; anything else can be an `Unknown` payload.
const MODELED: [PayloadType; 15] = [
    PayloadType::NONE,
    PayloadType::SA,
    PayloadType::KE,
    PayloadType::IDI,
    PayloadType::IDR,
    PayloadType::AUTH,
    PayloadType::NONCE,
    PayloadType::NOTIFY,
    PayloadType::DELETE,
    PayloadType::VENDOR,
    PayloadType::TSI,
    PayloadType::TSR,
    PayloadType::CP,
    PayloadType::SK,
    PayloadType::SKF,
];

fn payload() -> impl Strategy<Value = Payload> {
    let delete = (any::<u8>(), 0u8..=8, 0usize..4).prop_flat_map(|(protocol, spi_size, n)| {
        vec(vec(any::<u8>(), usize::from(spi_size)), n).prop_map(move |spis| {
            Payload::Delete(Delete {
                protocol: ProtocolId(protocol),
                spi_size,
                spis,
            })
        })
    });
    prop_oneof![
        vec(proposal(), 0..4).prop_map(|proposals| Payload::Sa(SaPayload { proposals })),
        (any::<u16>(), bytes(64)).prop_map(|(g, data)| Payload::Ke(KePayload {
            group: TransformId(g),
            data
        })),
        identification().prop_map(Payload::IdI),
        identification().prop_map(Payload::IdR),
        (any::<u8>(), bytes(64)).prop_map(|(m, data)| Payload::Auth(AuthPayload {
            method: AuthMethod(m),
            data
        })),
        bytes(64).prop_map(Payload::Nonce),
        (any::<u8>(), bytes(16), any::<u16>(), bytes(32)).prop_map(|(p, spi, t, data)| {
            Payload::Notify(Notify {
                protocol: ProtocolId(p),
                spi,
                notify_type: NotifyType(t),
                data,
            })
        }),
        delete,
        bytes(32).prop_map(Payload::Vendor),
        vec(traffic_selector(), 0..4).prop_map(Payload::TsI),
        vec(traffic_selector(), 0..4).prop_map(Payload::TsR),
        (any::<u8>(), vec((0u16..0x8000, bytes(20)), 0..4)).prop_map(|(t, attrs)| {
            Payload::Cp(ConfigPayload {
                cfg_type: CfgType(t),
                attributes: attrs
                    .into_iter()
                    .map(|(a, value)| ConfigAttribute {
                        attr_type: ConfigAttrType(a),
                        value,
                    })
                    .collect(),
            })
        }),
        (
            any::<u8>().prop_filter("modeled type", |t| !MODELED.contains(&PayloadType(*t))),
            bytes(32)
        )
            .prop_map(|(t, body)| Payload::Unknown {
                payload_type: PayloadType(t),
                critical: false,
                body
            }),
    ]
}

/// SK or SKF, which may only end a chain.
fn terminal() -> impl Strategy<Value = Payload> {
    prop_oneof![
        (any::<u8>(), bytes(64)).prop_map(|(n, data)| Payload::Encrypted(EncryptedPayload {
            next_inner: PayloadType(n),
            data
        })),
        (any::<u8>(), any::<u16>(), any::<u16>(), bytes(64)).prop_map(
            |(n, fragment_number, total_fragments, data)| {
                Payload::EncryptedFragment(EncryptedFragment {
                    next_inner: PayloadType(n),
                    fragment_number,
                    total_fragments,
                    data,
                })
            }
        ),
    ]
}

fn chain() -> impl Strategy<Value = Vec<Payload>> {
    (vec(payload(), 0..8), proptest::option::of(terminal())).prop_map(|(mut payloads, last)| {
        payloads.extend(last);
        payloads
    })
}

fn message() -> impl Strategy<Value = Message> {
    (
        any::<[u8; 8]>(),
        any::<[u8; 8]>(),
        0u8..16,
        any::<u8>(),
        any::<u8>().prop_map(|flags| flags & Header::FLAGS_DEFINED),
        any::<u32>(),
        chain(),
    )
        .prop_map(
            |(spi_i, spi_r, minor, exchange, flags, message_id, payloads)| Message {
                header: Header {
                    spi_i,
                    spi_r,
                    next_payload: payloads
                        .first()
                        .map_or(PayloadType::NONE, Payload::payload_type),
                    major: 2,
                    minor,
                    exchange: ExchangeType(exchange),
                    flags,
                    message_id,
                    length: 0,
                },
                payloads,
            },
        )
}

fn be16(bytes: &[u8], at: usize) -> usize {
    usize::from(u16::from_be_bytes([bytes[at], bytes[at + 1]]))
}

/// For a message that [`Message::parse`] accepts: a mask of the bits that RFC 7296 says to ignore
/// on receipt and that the encoder writes as zero — reserved header flags, the reserved bits of
/// every generic payload header and the Critical bit of modelled payload types, the RESERVED
/// octets of KE, ID, AUTH and (fully modelled) TS payloads and of proposals and transforms.
fn ignored_bits(bytes: &[u8]) -> Vec<u8> {
    let mut mask = vec![0u8; bytes.len()];
    mask[19] = !Header::FLAGS_DEFINED;
    let mut ty = PayloadType(bytes[16]);
    let mut at = Header::LEN;
    while ty != PayloadType::NONE {
        let len = be16(bytes, at + 2);
        let body = at + 4;
        let end = at + len;
        mask[at + 1] = if MODELED.contains(&ty) { 0xff } else { 0x7f };
        let mut reserved = |range: std::ops::Range<usize>| mask[range].fill(0xff);
        match ty {
            PayloadType::KE => reserved(body + 2..body + 4),
            PayloadType::IDI | PayloadType::IDR | PayloadType::AUTH => reserved(body + 1..body + 4),
            PayloadType::TSI | PayloadType::TSR => {
                // Only a TS payload made of IPv4/IPv6 ranges is decoded; others stay opaque.
                let mut sel = body + 4;
                let mut modelled = true;
                while sel < end {
                    modelled &= matches!(
                        TsType(bytes[sel]),
                        TsType::IPV4_ADDR_RANGE | TsType::IPV6_ADDR_RANGE
                    );
                    sel += be16(bytes, sel + 2);
                }
                if modelled {
                    reserved(body + 1..body + 4);
                }
            }
            PayloadType::SA => {
                let mut proposal = body;
                while proposal < end {
                    reserved(proposal + 1..proposal + 2);
                    let spi_size = usize::from(bytes[proposal + 6]);
                    let mut transform = proposal + 8 + spi_size;
                    for _ in 0..bytes[proposal + 7] {
                        reserved(transform + 1..transform + 2);
                        reserved(transform + 5..transform + 6);
                        transform += be16(bytes, transform + 2);
                    }
                    proposal += be16(bytes, proposal + 2);
                }
            }
            PayloadType::CP => {
                // CFG Type, 3 RESERVED octets, then attributes whose type's top bit is R.
                reserved(body + 1..body + 4);
                let mut attr = body + 4;
                while attr < end {
                    mask[attr] = 0x80;
                    attr += 4 + be16(bytes, attr + 2);
                }
            }
            PayloadType::SK | PayloadType::SKF => break,
            _ => {}
        }
        ty = PayloadType(bytes[at]);
        at = end;
    }
    mask
}

/// Parses `bytes`; if accepted, checks the round-trip guarantee: the encoding parses to the same
/// message, and equals `bytes` with the ignored bits cleared (so it equals `bytes` when those
/// are already zero, i.e. when `bytes` is canonical).
fn check_round_trip(bytes: &[u8]) -> Result<(), TestCaseError> {
    let Ok(msg) = Message::parse(bytes) else {
        return Ok(());
    };
    let encoded = msg.encode();
    prop_assert_eq!(Message::parse(&encoded), Ok(msg));
    let mask = ignored_bits(bytes);
    let cleared: Vec<u8> = bytes.iter().zip(&mask).map(|(b, m)| b & !m).collect();
    prop_assert_eq!(&encoded, &cleared);
    if cleared == bytes {
        prop_assert_eq!(encoded, bytes);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn structured_messages_round_trip(mut msg in message()) {
        let bytes = msg.encode();
        msg.header.length = u32::try_from(bytes.len()).unwrap();
        let parsed = Message::parse(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&parsed, &msg);
        prop_assert_eq!(&parsed.encode(), &bytes);
        // The encoder writes the canonical form.
        let mask = ignored_bits(&bytes);
        prop_assert!(bytes.iter().zip(&mask).all(|(b, m)| b & m == 0));
    }

    #[test]
    fn ignored_bits_do_not_change_the_message(
        msg in message(),
        noise in vec(any::<u8>(), 1..64),
    ) {
        let bytes = msg.encode();
        let mask = ignored_bits(&bytes);
        let noisy: Vec<u8> = bytes
            .iter()
            .zip(&mask)
            .zip(noise.iter().cycle())
            .map(|((b, m), n)| b | (m & n))
            .collect();
        let parsed = Message::parse(&noisy).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(Message::parse(&bytes), Ok(parsed.clone()));
        prop_assert_eq!(parsed.encode(), bytes);
        check_round_trip(&noisy)?;
    }

    #[test]
    fn inner_chains_round_trip(payloads in chain()) {
        let (first, bytes) = encode_payloads(&payloads);
        prop_assert_eq!(parse_payloads(first, &bytes).map_err(|e| TestCaseError::fail(e.to_string()))?, payloads);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in bytes(600)) {
        check_round_trip(&bytes)?;
    }

    #[test]
    fn arbitrary_bodies_behind_a_valid_header(first in any::<u8>(), body in bytes(300)) {
        let mut bytes = Vec::new();
        Header {
            spi_i: [1; 8],
            spi_r: [0; 8],
            next_payload: PayloadType(first),
            major: 2,
            minor: 0,
            exchange: ExchangeType::IKE_SA_INIT,
            flags: Header::FLAG_INITIATOR,
            message_id: 0,
            length: u32::try_from(Header::LEN + body.len()).unwrap(),
        }
        .encode(&mut bytes);
        bytes.extend_from_slice(&body);
        check_round_trip(&bytes)?;
    }

    #[test]
    fn mutated_messages_never_panic(
        msg in message(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = msg.encode();
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        check_round_trip(&bytes)?;
    }
}
