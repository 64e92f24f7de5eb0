//! Our responder against an IKE_SA_INIT request captured from strongSwan 5.9.8 (default
//! proposals, KE = Curve25519; the wire helper's tests/data).

use super::*;
use crate::wire::{Header, Message, NotifyType, Payload, TransformId};

const STRONGSWAN_INIT: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/strongswan-ike-sa-init-request.bin"
));

/// Feed the capture to a responder configured with `ike`; return its one answer.
fn answer(ike: &str) -> (Message, Vec<Event>) {
    let mut b = Endpoint::new(
        EndpointConfig::default(),
        rand::rngs::ChaCha20Rng::seed_from_u64(5),
        Box::new(SeqSpis(1)),
    );
    b.set_conns(vec![conn(B_IP, None, ike, "aes128gcm16")]);
    let (local, remote) = (
        SocketAddr::new(ip(B_IP), 500),
        SocketAddr::new(ip(A_IP), 500),
    );
    b.handle_datagram(Instant::now(), local, remote, STRONGSWAN_INIT);
    let t = b.poll_transmit().expect("an answer");
    assert_eq!((t.local, t.remote), (local, remote));
    assert!(b.poll_transmit().is_none());
    let events = std::iter::from_fn(|| b.poll_event()).collect();
    (Message::parse(&t.data).unwrap(), events)
}

fn notifies(m: &Message) -> Vec<NotifyType> {
    m.payloads
        .iter()
        .filter_map(|p| match p {
            Payload::Notify(n) => Some(n.notify_type),
            _ => None,
        })
        .collect()
}

#[test]
fn accepts_strongswan_default_proposals() {
    for ike in ["aes128-sha256-x25519", "aes256gcm16-prfsha384-x25519"] {
        let (m, events) = answer(ike);
        assert!(events.is_empty(), "{events:?}");
        assert!(m.header.is_response() && !m.header.is_initiator());
        assert_ne!(m.header.spi_r, [0; 8]);
        let Some(Payload::Sa(sa)) = m.payloads.first() else {
            panic!("{ike}: {m:?}")
        };
        let offered = ike_prop(ike);
        let chosen = super::super::proposal::accept_ike(&sa.proposals, &[offered]).unwrap();
        assert_eq!(chosen.dh, DhGroup::Curve25519);
        assert!(m.payloads.iter().any(|p| matches!(
            p,
            Payload::Ke(k) if k.group == TransformId::DH_CURVE25519 && k.data.len() == 32
        )));
        let n = notifies(&m);
        assert!(n.contains(&NotifyType::NAT_DETECTION_SOURCE_IP));
        assert!(n.contains(&NotifyType::NAT_DETECTION_DESTINATION_IP));
    }
}

#[test]
fn asks_strongswan_for_another_group() {
    let (m, events) = answer("aes128-sha256-modp2048");
    assert!(events.is_empty());
    assert_eq!(m.header.spi_r, [0; 8]);
    assert_eq!(m.header.flags, Header::FLAG_RESPONSE);
    let [Payload::Notify(n)] = m.payloads.as_slice() else {
        panic!("{m:?}")
    };
    assert_eq!(n.notify_type, NotifyType::INVALID_KE_PAYLOAD);
    assert_eq!(n.data, DhGroup::Modp2048.id().to_be_bytes());
}
