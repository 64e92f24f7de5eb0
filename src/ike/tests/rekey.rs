//! CHILD_SA rekeying with CREATE_CHILD_SA (RFC 7296 §1.3.3, §2.8), both roles.

use super::*;
use crate::crypto::derive_child_keys;
use crate::wire::{
    ExchangeType, KePayload, Message, Notify, NotifyType, Payload, ProtocolId, SaPayload,
    TransformId,
};

pub(super) const IKE: &str = "aes128-sha256-x25519";
const ESP: &str = "aes128-sha256";

pub(super) fn up() -> (Pair, IkeSaId, IkeSaId, ChildSaReady, ChildSaReady) {
    let mut p = Pair::new(
        conn(A_IP, Some(B_IP), IKE, ESP),
        conn(B_IP, Some(A_IP), IKE, ESP),
    );
    let a = p.connect();
    let (ca, cb) = assert_up(&p);
    let b = p.b.ike_sas()[0].id;
    p.a_events.clear();
    p.b_events.clear();
    (p, a, b, ca, cb)
}

fn deleted(ev: &[Event]) -> Vec<(u32, u32)> {
    ev.iter()
        .filter_map(|e| match e {
            Event::ChildSaDeleted {
                spi_in, spi_out, ..
            } => Some((*spi_in, *spi_out)),
            _ => None,
        })
        .collect()
}

/// One rekey completed on both sides: a new matching pair replaced the old one, which is
/// gone. Returns (a's, b's) new child.
pub(super) fn assert_rekeyed(
    p: &Pair,
    old_a: &ChildSaReady,
    old_b: &ChildSaReady,
) -> (ChildSaReady, ChildSaReady) {
    let (na, nb) = one_child_each(p);
    assert_eq!(na.rekeyed_from, Some((old_a.spi_in, old_a.spi_out)));
    assert_eq!(nb.rekeyed_from, Some((old_b.spi_in, old_b.spi_out)));
    assert_eq!((na.spi_in, na.spi_out), (nb.spi_out, nb.spi_in));
    assert_eq!(na.keys_out, nb.keys_in);
    assert_eq!(na.keys_in, nb.keys_out);
    assert_ne!(na.keys_in, na.keys_out);
    assert_ne!(na.keys_in, old_a.keys_in);
    assert_ne!(na.keys_out, old_a.keys_out);
    assert_ne!(na.spi_in, old_a.spi_in);
    assert_ne!(na.spi_out, old_a.spi_out);
    assert_eq!(
        (na.local_ts.clone(), na.remote_ts.clone()),
        (old_a.local_ts.clone(), old_a.remote_ts.clone())
    );
    assert_eq!(deleted(&p.a_events), vec![(old_a.spi_in, old_a.spi_out)]);
    assert_eq!(deleted(&p.b_events), vec![(old_b.spi_in, old_b.spi_out)]);
    for (ep, c) in [(&p.a, &na), (&p.b, &nb)] {
        let st = ep.ike_sas();
        assert_eq!(st.len(), 1);
        assert_eq!(st[0].state, IkeSaState::Established);
        let spis: Vec<_> = st[0]
            .children
            .iter()
            .map(|c| (c.spi_in, c.spi_out))
            .collect();
        assert_eq!(spis, vec![(c.spi_in, c.spi_out)]);
    }
    (na, nb)
}

#[test]
fn initiator_of_ike_sa_rekeys() {
    let (mut p, a, _, ca, cb) = up();
    p.a.rekey_child(p.now, a, ca.spi_in).unwrap();
    p.drive();
    let (na, nb) = assert_rekeyed(&p, &ca, &cb);
    // The new child rekeys again.
    p.a_events.clear();
    p.b_events.clear();
    p.a.rekey_child(p.now, a, na.spi_in).unwrap();
    p.drive();
    assert_rekeyed(&p, &na, &nb);
}

#[test]
fn responder_of_ike_sa_rekeys() {
    let (mut p, _, b, ca, cb) = up();
    p.b.rekey_child(p.now, b, cb.spi_in).unwrap();
    p.drive();
    assert_rekeyed(&p, &ca, &cb);
    // Exchange roles: 2 requests from b (CREATE_CHILD_SA, Delete), 2 answers from a.
    let kinds: Vec<_> = p
        .log
        .iter()
        .rev()
        .take(4)
        .map(|(d, t)| (*d, Message::parse(&t.data).unwrap().header.exchange))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (Dir::AtoB, ExchangeType::INFORMATIONAL),
            (Dir::BtoA, ExchangeType::INFORMATIONAL),
            (Dir::AtoB, ExchangeType::CREATE_CHILD_SA),
            (Dir::BtoA, ExchangeType::CREATE_CHILD_SA),
        ]
    );
}

#[test]
fn rekey_child_commands() {
    let (mut p, a, _, ca, cb) = up();
    assert_eq!(
        p.a.rekey_child(p.now, IkeSaId(99), ca.spi_in),
        Err(IkeError::UnknownSa(99))
    );
    assert_eq!(p.a.rekey_child(p.now, a, 7), Err(IkeError::UnknownChild(7)));
    // Soft expires of both SAs of the pair ask twice: one exchange.
    let before = p.count(Dir::AtoB);
    p.a.rekey_child(p.now, a, ca.spi_in).unwrap();
    p.a.rekey_child(p.now, a, ca.spi_in).unwrap();
    p.drive();
    assert_rekeyed(&p, &ca, &cb);
    assert_eq!(
        p.count(Dir::AtoB) - before,
        2,
        "CREATE_CHILD_SA and Delete only"
    );
    // The old child is gone: asking again is an error, not a new exchange.
    assert_eq!(
        p.a.rekey_child(p.now, a, ca.spi_in),
        Err(IkeError::UnknownChild(ca.spi_in))
    );
}

#[test]
fn rekey_survives_lost_and_duplicated_messages() {
    for lose_request in [true, false] {
        let (mut p, a, _, ca, cb) = up();
        let (base_a, base_b) = (p.sent[0], p.sent[1]);
        // Lose the request or its answer once; duplicate everything else (except the
        // request whose answer is lost: its duplicate would be answered again).
        p.fault = Box::new(move |dir, n, _| match dir {
            Dir::AtoB if n == base_a => {
                if lose_request {
                    Fault::Drop
                } else {
                    Fault::Deliver
                }
            }
            Dir::BtoA if !lose_request && n == base_b => Fault::Drop,
            _ => Fault::Duplicate,
        });
        p.a.rekey_child(p.now, a, ca.spi_in).unwrap();
        p.drive();
        assert_rekeyed(&p, &ca, &cb);
        assert!(p.elapsed() >= 4.0, "a retransmission was needed");
    }
}

#[test]
fn rekey_refused_keeps_old_child() {
    let (mut p, a, _, ca, _) = up();
    // b no longer accepts a's ESP proposal for this child.
    let b = p.b.ike_sas()[0].id;
    std::sync::Arc::make_mut(&mut p.b.sas.get_mut(&b).unwrap().children[0].conn).esp_proposals =
        vec![esp_prop("aes256gcm16")];
    p.a.rekey_child(p.now, a, ca.spi_in).unwrap();
    p.drive();
    assert_eq!(
        child_failures(&p.a_events),
        vec![IkeError::NoProposalChosen]
    );
    assert_eq!(
        child_failures(&p.b_events),
        vec![IkeError::NoProposalChosen]
    );
    assert!(children(&p.a_events).is_empty() && deleted(&p.a_events).is_empty());
    assert_eq!(p.a.ike_sas()[0].children.len(), 1);
    assert_eq!(p.b.ike_sas()[0].children.len(), 1);
}

#[test]
fn simultaneous_rekeys_leave_one_child() {
    let (mut p, a, b, ca, cb) = up();
    p.a.rekey_child(p.now, a, ca.spi_in).unwrap();
    p.b.rekey_child(p.now, b, cb.spi_in).unwrap();
    p.drive();
    // Each side created one child and answered the other's request: two new children each,
    // then the redundant one and the old one are deleted.
    assert_eq!(children(&p.a_events).len(), 2, "{:?}", p.a_events);
    assert_eq!(children(&p.b_events).len(), 2, "{:?}", p.b_events);
    assert_eq!(deleted(&p.a_events).len(), 2, "{:?}", p.a_events);
    assert_eq!(deleted(&p.b_events).len(), 2, "{:?}", p.b_events);
    let (sa, sb) = (&p.a.ike_sas()[0], &p.b.ike_sas()[0]);
    assert_eq!(sa.children.len(), 1);
    assert_eq!(sb.children.len(), 1);
    let (x, y) = (&sa.children[0], &sb.children[0]);
    assert_eq!((x.spi_in, x.spi_out), (y.spi_out, y.spi_in));
    assert_ne!(x.spi_in, ca.spi_in);
    let survivor = children(&p.a_events)
        .into_iter()
        .find(|c| c.spi_in == x.spi_in)
        .unwrap()
        .clone();
    let peer = children(&p.b_events)
        .into_iter()
        .find(|c| c.spi_in == y.spi_in)
        .unwrap()
        .clone();
    assert_eq!(survivor.keys_out, peer.keys_in);
}

/// a sends a hand-made CREATE_CHILD_SA request on its SA; returns b's decrypted answer.
pub(super) fn request(p: &mut Pair, a: IkeSaId, payloads: Vec<Payload>) -> Vec<Payload> {
    p.a.with_sa(p.now, a, |sa, ctx| {
        sa.send_request(ctx, ExchangeType::CREATE_CHILD_SA, &payloads)
            .unwrap();
    });
    assert!(p.step());
    p.collect();
    let (dir, t) = p.queue.front().cloned().unwrap();
    assert_eq!(dir, Dir::BtoA);
    let msg = Message::parse(&t.data).unwrap();
    assert_eq!(msg.header.exchange, ExchangeType::CREATE_CHILD_SA);
    let inner = p.a.sas[&a].open(&t.data, &msg).unwrap();
    p.drive();
    inner
}

fn rekey_sa(spi: u32) -> Payload {
    Payload::Notify(Notify {
        protocol: ProtocolId::ESP,
        spi: spi.to_be_bytes().to_vec(),
        notify_type: NotifyType::REKEY_SA,
        data: vec![],
    })
}

#[test]
fn responder_rekey_with_and_without_pfs() {
    for pfs in [false, true] {
        let (mut p, a, _, ca, cb) = up();
        let ni = vec![0x11; 32];
        let new_in = 0xa0ff_0001;
        let mut offer = super::super::proposal::esp_offer(&[esp_prop(ESP)], new_in);
        let dh = DhGroup::Curve25519
            .generate(&mut <ChaCha20Rng as rand::SeedableRng>::seed_from_u64(11));
        let mut payloads = vec![rekey_sa(ca.spi_in)];
        if pfs {
            super::super::proposal::add_dh(&mut offer[0], DhGroup::Curve25519);
        }
        payloads.push(Payload::Sa(SaPayload { proposals: offer }));
        payloads.push(Payload::Nonce(ni.clone()));
        if pfs {
            payloads.push(Payload::Ke(KePayload {
                group: TransformId(DhGroup::Curve25519.id()),
                data: dh.public_value(),
            }));
        }
        payloads.push(Payload::TsI(ca.local_ts.clone()));
        payloads.push(Payload::TsR(ca.remote_ts.clone()));
        let answer = request(&mut p, a, payloads);
        let nr = answer
            .iter()
            .find_map(|p| match p {
                Payload::Nonce(n) => Some(n.clone()),
                _ => None,
            })
            .unwrap();
        let ker = answer.iter().find_map(|p| match p {
            Payload::Ke(k) => Some(k.clone()),
            _ => None,
        });
        assert_eq!(ker.is_some(), pfs, "{answer:?}");
        let Some(Payload::Sa(sa)) = answer.iter().find(|p| matches!(p, Payload::Sa(_))) else {
            panic!("{answer:?}")
        };
        let has_dh = sa.proposals[0]
            .transforms
            .iter()
            .any(|t| t.kind == crate::wire::TransformType::DH);
        assert_eq!(has_dh, pfs);
        // b's new child: rekeys its old one, keys = prf+(SK_d, [g^ir] | Ni | Nr), with the
        // first keys for the exchange initiator (a) to the responder (b).
        let nb = children(&p.b_events);
        assert_eq!(nb.len(), 1, "{:?}", p.b_events);
        let nb = nb[0];
        assert_eq!(nb.rekeyed_from, Some((cb.spi_in, cb.spi_out)));
        assert_eq!(nb.spi_out, new_in);
        let shared = ker.map(|k| dh.agree(&k.data).unwrap());
        let keys = p.a.sas[&a].keys.as_ref().unwrap();
        let k = derive_child_keys(
            keys.suite.prf,
            &keys.sk_d,
            &ni,
            &nr,
            nb.encr,
            nb.integ,
            shared.as_deref().map(Vec::as_slice),
        )
        .unwrap();
        assert_eq!(nb.keys_in.encr, k.encr_i);
        assert_eq!(nb.keys_in.integ, k.integ_i);
        assert_eq!(nb.keys_out.encr, k.encr_r);
        assert_ne!(nb.keys_in, cb.keys_in);
        // The old child stays until a deletes it.
        assert_eq!(p.b.ike_sas()[0].children.len(), 2);
    }
}

#[test]
fn responder_pfs_asks_for_the_proposed_group() {
    let (mut p, a, _, ca, _) = up();
    let mut offer = super::super::proposal::esp_offer(&[esp_prop(ESP)], 0xa0ff_0002);
    super::super::proposal::add_dh(&mut offer[0], DhGroup::Ecp256);
    let dh = DhGroup::Curve25519.generate(&mut rand::rng());
    let answer = request(
        &mut p,
        a,
        vec![
            rekey_sa(ca.spi_in),
            Payload::Sa(SaPayload { proposals: offer }),
            Payload::Nonce(vec![1; 32]),
            Payload::Ke(KePayload {
                group: TransformId(DhGroup::Curve25519.id()),
                data: dh.public_value(),
            }),
            Payload::TsI(ca.local_ts.clone()),
            Payload::TsR(ca.remote_ts.clone()),
        ],
    );
    let [Payload::Notify(n)] = answer.as_slice() else {
        panic!("{answer:?}")
    };
    assert_eq!(n.notify_type, NotifyType::INVALID_KE_PAYLOAD);
    assert_eq!(n.data, DhGroup::Ecp256.id().to_be_bytes());
    assert!(children(&p.b_events).is_empty());
}

#[test]
fn unknown_spi_gets_child_sa_not_found() {
    let (mut p, a, _, ca, _) = up();
    let answer = request(
        &mut p,
        a,
        vec![
            rekey_sa(0xdead_beef),
            Payload::Sa(SaPayload {
                proposals: super::super::proposal::esp_offer(&[esp_prop(ESP)], 0xa0ff_0003),
            }),
            Payload::Nonce(vec![1; 32]),
            Payload::TsI(ca.local_ts.clone()),
            Payload::TsR(ca.remote_ts.clone()),
        ],
    );
    let [Payload::Notify(n)] = answer.as_slice() else {
        panic!("{answer:?}")
    };
    assert_eq!(n.notify_type, NotifyType::CHILD_SA_NOT_FOUND);
    assert_eq!(
        (n.protocol, n.spi.as_slice()),
        (ProtocolId::ESP, &0xdead_beefu32.to_be_bytes()[..])
    );
    assert!(p.b_events.is_empty());
    assert_eq!(p.b.ike_sas()[0].children.len(), 1);
}
