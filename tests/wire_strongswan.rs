//! Byte-exact round trips of IKE messages captured from strongSwan 5.9.8 (see tests/data/README.md).

use ikev2d::wire::{
    ExchangeType, Header, Message, NotifyType, Payload, PayloadType, ProtocolId, TransformId,
    TransformType,
};

fn load(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn parse_round_trip(name: &str) -> Message {
    let bytes = load(name);
    let msg = Message::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(msg.encode(), bytes, "{name} re-encodes byte-exactly");
    msg
}

fn notify_types(msg: &Message) -> Vec<NotifyType> {
    msg.payloads
        .iter()
        .filter_map(|p| match p {
            Payload::Notify(n) => Some(n.notify_type),
            _ => None,
        })
        .collect()
}

fn ke_group(msg: &Message) -> Option<TransformId> {
    msg.payloads.iter().find_map(|p| match p {
        Payload::Ke(ke) => Some(ke.group),
        _ => None,
    })
}

#[test]
fn ike_sa_init_request() {
    let msg = parse_round_trip("strongswan-ike-sa-init-request.bin");
    assert_eq!(msg.header.exchange, ExchangeType::IKE_SA_INIT);
    assert!(msg.header.is_initiator() && !msg.header.is_response());
    assert_eq!(msg.header.spi_r, [0; 8]);
    assert_eq!(msg.header.message_id, 0);
    assert_eq!(msg.header.length, 940);

    let sa = msg
        .payloads
        .iter()
        .find_map(|p| match p {
            Payload::Sa(sa) => Some(sa),
            _ => None,
        })
        .expect("SA payload");
    assert_eq!(sa.proposals.len(), 2);
    for (i, proposal) in sa.proposals.iter().enumerate() {
        assert_eq!(usize::from(proposal.number), i + 1);
        assert_eq!(proposal.protocol, ProtocolId::IKE);
        assert!(proposal.spi.is_empty());
        assert!(
            proposal
                .transforms
                .iter()
                .all(|t| t.other_attributes.is_empty())
        );
        assert!(
            proposal
                .transforms
                .iter()
                .any(|t| t.kind == TransformType::DH && t.id == TransformId::DH_CURVE25519)
        );
    }
    assert!(
        sa.proposals[0]
            .transforms
            .iter()
            .any(|t| t.kind == TransformType::ENCR
                && t.id == TransformId::ENCR_AES_CBC
                && t.key_length == Some(128))
    );

    assert_eq!(ke_group(&msg), Some(TransformId::DH_CURVE25519));
    let nonce = msg.payloads.iter().find_map(|p| match p {
        Payload::Nonce(n) => Some(n),
        _ => None,
    });
    assert_eq!(nonce.map(Vec::len), Some(32));
    let notifies = notify_types(&msg);
    for expected in [
        NotifyType::NAT_DETECTION_SOURCE_IP,
        NotifyType::NAT_DETECTION_DESTINATION_IP,
        NotifyType::IKEV2_FRAGMENTATION_SUPPORTED,
        NotifyType::SIGNATURE_HASH_ALGORITHMS,
        NotifyType::REDIRECT_SUPPORTED,
    ] {
        assert!(notifies.contains(&expected), "{expected} in {notifies:?}");
    }
}

#[test]
fn ike_sa_init_response() {
    let msg = parse_round_trip("strongswan-ike-sa-init-response.bin");
    assert_eq!(msg.header.exchange, ExchangeType::IKE_SA_INIT);
    assert!(msg.header.is_response() && !msg.header.is_initiator());
    assert_ne!(msg.header.spi_r, [0; 8]);
    let sa = msg
        .payloads
        .iter()
        .find_map(|p| match p {
            Payload::Sa(sa) => Some(sa),
            _ => None,
        })
        .expect("SA payload");
    let [proposal] = sa.proposals.as_slice() else {
        panic!("one chosen proposal: {sa:?}")
    };
    let chosen: Vec<_> = proposal
        .transforms
        .iter()
        .map(|t| (t.kind, t.id, t.key_length))
        .collect();
    assert_eq!(
        chosen,
        [
            (TransformType::ENCR, TransformId::ENCR_AES_CBC, Some(128)),
            (
                TransformType::INTEG,
                TransformId::AUTH_HMAC_SHA2_256_128,
                None
            ),
            (TransformType::PRF, TransformId::PRF_HMAC_SHA2_256, None),
            (TransformType::DH, TransformId::DH_CURVE25519, None),
        ]
    );
    assert_eq!(ke_group(&msg), Some(TransformId::DH_CURVE25519));
    let notifies = notify_types(&msg);
    assert!(notifies.contains(&NotifyType::NAT_DETECTION_SOURCE_IP));
    assert!(notifies.contains(&NotifyType::NAT_DETECTION_DESTINATION_IP));
}

#[test]
fn ike_auth_messages_keep_sk_opaque() {
    let init = Message::parse(&load("strongswan-ike-sa-init-response.bin")).unwrap();
    for (name, response) in [
        ("strongswan-ike-auth-request.bin", false),
        ("strongswan-ike-auth-response.bin", true),
    ] {
        let msg = parse_round_trip(name);
        assert_eq!(msg.header.exchange, ExchangeType::IKE_AUTH);
        assert_eq!(msg.header.is_response(), response);
        assert_eq!(msg.header.message_id, 1);
        assert_eq!(
            (msg.header.spi_i, msg.header.spi_r),
            (init.header.spi_i, init.header.spi_r)
        );
        let [Payload::Encrypted(sk)] = msg.payloads.as_slice() else {
            panic!("{name}: {:?}", msg.payloads)
        };
        assert_eq!(
            sk.next_inner,
            if response {
                PayloadType::IDR
            } else {
                PayloadType::IDI
            }
        );
        // IV (16) + ciphertext (whole AES blocks) + ICV (16) of AES-CBC-128 / HMAC-SHA2-256-128.
        assert_eq!((sk.data.len() - 32) % 16, 0, "{name}");
        assert_eq!(sk.data.len() + Header::LEN + 4, msg.encode().len());
    }
}
