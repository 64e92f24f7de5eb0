//! AH CHILD_SAs (RFC 4302 negotiated with IKEv2): protocol ID AH with integrity (and ESN)
//! transforms only, in IKE_AUTH and CREATE_CHILD_SA, both roles; integrity-only KEYMAT.

use super::children::{assert_both_refused, create_child_sa_payloads};
use super::rekey::{IKE, assert_rekeyed};
use super::*;
use crate::kernel::IpsecProto;
use crate::wire::{ExchangeType, Message, Payload, ProtocolId, TransformType};

/// The SA payloads' proposals (protocol, transform types) in the IKE_AUTH messages.
fn ike_auth_proposals(p: &Pair, a: IkeSaId, b: IkeSaId) -> Vec<(ProtocolId, Vec<TransformType>)> {
    p.log
        .iter()
        .filter_map(|(d, t)| {
            let msg = Message::parse(&t.data).unwrap();
            (msg.header.exchange == ExchangeType::IKE_AUTH).then(|| match d {
                Dir::AtoB => p.b.sas[&b].open(&t.data, &msg).unwrap(),
                Dir::BtoA => p.a.sas[&a].open(&t.data, &msg).unwrap(),
            })
        })
        .flat_map(|payloads| sa_proposals(&payloads))
        .collect()
}

fn sa_proposals(payloads: &[Payload]) -> Vec<(ProtocolId, Vec<TransformType>)> {
    payloads
        .iter()
        .filter_map(|p| match p {
            Payload::Sa(sa) => Some(sa.proposals.clone()),
            _ => None,
        })
        .flatten()
        .map(|q| (q.protocol, q.transforms.iter().map(|t| t.kind).collect()))
        .collect()
}

/// One AH CHILD_SA as seen from one side: AH, no encryption, HMAC-SHA1-96 with 20-byte keys.
fn assert_ah(c: &ChildSaReady) {
    assert_eq!(c.protocol, IpsecProto::Ah);
    assert_eq!((c.encr, c.integ), (None, Some(Integ::HmacSha1_96)));
    for k in [&c.keys_in, &c.keys_out] {
        assert!(k.encr.is_empty());
        assert_eq!(k.integ.len(), 20);
    }
}

fn ah_pair() -> (Pair, IkeSaId, IkeSaId, ChildSaReady, ChildSaReady) {
    let mut p = Pair::new(
        conn(A_IP, Some(B_IP), IKE, "ah-sha256-sha1"),
        conn(B_IP, Some(A_IP), IKE, "ah-sha1"),
    );
    let a = p.connect();
    let (ca, cb) = assert_up(&p);
    let b = p.b.ike_sas()[0].id;
    (p, a, b, ca, cb)
}

#[test]
fn ah_child_sa_in_ike_auth() {
    let (p, a, b, ca, cb) = ah_pair();
    assert_ah(&ca);
    assert_ah(&cb);
    // The offer and the answer carry protocol AH with INTEG and ESN transforms only.
    let integ_esn = vec![
        TransformType::INTEG,
        TransformType::INTEG,
        TransformType::ESN,
    ];
    assert_eq!(
        ike_auth_proposals(&p, a, b),
        vec![
            (ProtocolId::AH, integ_esn),
            (
                ProtocolId::AH,
                vec![TransformType::INTEG, TransformType::ESN]
            ),
        ]
    );
    let st = p.a.ike_sas();
    assert_eq!(st[0].children.len(), 1);
}

#[test]
fn ah_child_sa_rekeys_in_both_roles_and_deletes_the_old_one() {
    for b_rekeys in [false, true] {
        let (mut p, a, b, ca, cb) = ah_pair();
        p.a_events.clear();
        p.b_events.clear();
        if b_rekeys {
            p.b.rekey_child(p.now, b, cb.spi_in).unwrap();
        } else {
            p.a.rekey_child(p.now, a, ca.spi_in).unwrap();
        }
        p.drive();
        // assert_rekeyed also checks that both sides deleted the old pair (Delete(AH)).
        let (na, nb) = assert_rekeyed(&p, &ca, &cb);
        assert_ah(&na);
        assert_ah(&nb);
        let wire = create_child_sa_payloads(&p, a, b);
        assert_eq!(wire.len(), 2, "request and answer");
        let rekey_sa = |payloads: &[Payload]| {
            payloads.iter().find_map(|p| match p {
                Payload::Notify(n) if n.notify_type == crate::wire::NotifyType::REKEY_SA => {
                    Some(n.protocol)
                }
                _ => None,
            })
        };
        assert_eq!(rekey_sa(&wire[0].1), Some(ProtocolId::AH));
        for (_, payloads) in &wire {
            assert!(
                sa_proposals(payloads).iter().all(|(proto, t)| *proto == ProtocolId::AH
                    && !t.contains(&TransformType::ENCR)),
                "{payloads:?}"
            );
        }
    }
}

#[test]
fn ah_offered_when_esp_wanted_and_the_reverse_get_no_proposal_chosen() {
    for (a_child, b_child) in [("ah-sha1", "aes128-sha1"), ("aes128-sha1", "ah-sha1")] {
        let mut p = Pair::new(
            conn(A_IP, Some(B_IP), IKE, a_child),
            conn(B_IP, Some(A_IP), IKE, b_child),
        );
        p.connect();
        assert_eq!(established(&p.a_events).len(), 1);
        assert!(children(&p.a_events).is_empty() && children(&p.b_events).is_empty());
        assert_both_refused(&p, IkeError::NoProposalChosen);
    }
}
