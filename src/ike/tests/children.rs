//! CREATE_CHILD_SA for additional CHILD_SAs ([`Endpoint::create_child`], both roles) and
//! PFS (RFC 7296 §2.17) on new and rekeyed CHILD_SAs.

use super::rekey::assert_rekeyed;
use super::*;
use crate::crypto::derive_child_keys;
use crate::wire::{ExchangeType, Message, Payload};

const IKE: &str = "aes128-sha256-x25519";

/// `net` (host to host, IKE SA) and `lan` (subnet to subnet, same peer, IDs and PSK) on
/// both sides, with these ESP proposals.
fn two_conns(esp_net: &str, esp_lan: &str) -> Pair {
    let (a_net, b_net) = (
        conn(A_IP, Some(B_IP), IKE, esp_net),
        conn(B_IP, Some(A_IP), IKE, esp_net),
    );
    let mut a_lan = conn(A_IP, Some(B_IP), IKE, esp_lan);
    let mut b_lan = conn(B_IP, Some(A_IP), IKE, esp_lan);
    a_lan.name = "lan".into();
    b_lan.name = "lan".into();
    a_lan.local_ts = vec![subnet("10.1.1.0", "10.1.1.255")];
    a_lan.remote_ts = vec![subnet("10.1.2.0", "10.1.2.255")];
    b_lan.local_ts = a_lan.remote_ts.clone();
    b_lan.remote_ts = a_lan.local_ts.clone();
    let mut p = Pair::new(a_net.clone(), b_net.clone());
    p.a.set_conns(vec![a_net, a_lan]);
    p.b.set_conns(vec![b_net, b_lan]);
    p
}

fn up(p: &mut Pair) -> (IkeSaId, IkeSaId, ChildSaReady, ChildSaReady) {
    let a = p.connect();
    let (ca, cb) = assert_up(p);
    let b = p.b.ike_sas()[0].id;
    p.a_events.clear();
    p.b_events.clear();
    (a, b, ca, cb)
}

/// The CREATE_CHILD_SA requests and answers on the wire, decrypted with the IKE SAs.
pub(super) fn create_child_sa_payloads(
    p: &Pair,
    a: IkeSaId,
    b: IkeSaId,
) -> Vec<(Dir, Vec<Payload>)> {
    p.log
        .iter()
        .filter_map(|(d, t)| {
            let msg = Message::parse(&t.data).unwrap();
            (msg.header.exchange == ExchangeType::CREATE_CHILD_SA).then(|| {
                let opened = match d {
                    Dir::AtoB => p.b.sas[&b].open(&t.data, &msg),
                    Dir::BtoA => p.a.sas[&a].open(&t.data, &msg),
                };
                (*d, opened.unwrap())
            })
        })
        .collect()
}

fn ke_group(payloads: &[Payload]) -> Option<u16> {
    crate::ike::payloads::ke(payloads).map(|k| k.group.0)
}

/// Both sides reported the CHILD_SA request failed with `error`.
pub(super) fn assert_both_refused(p: &Pair, error: IkeError) {
    let failed = (child_failures(&p.a_events), child_failures(&p.b_events));
    assert_eq!(failed, (vec![error.clone()], vec![error]));
}

/// a's and b's views of one new CHILD_SA agree.
fn assert_pair(x: &ChildSaReady, y: &ChildSaReady) {
    assert_eq!((x.spi_in, x.spi_out), (y.spi_out, y.spi_in));
    assert_eq!((&x.keys_in, &x.keys_out), (&y.keys_out, &y.keys_in));
    assert_eq!((&x.local_ts, &x.remote_ts), (&y.remote_ts, &y.local_ts));
    assert_eq!(x.conn, y.conn);
}

#[test]
fn additional_child_sa_for_another_conn_in_both_roles() {
    for b_asks in [false, true] {
        let mut p = two_conns("aes128-sha256", "aes128gcm16");
        let (a, b, ca, cb) = up(&mut p);
        if b_asks {
            p.b.create_child(p.now, b, "lan").unwrap();
        } else {
            p.a.create_child(p.now, a, "lan").unwrap();
        }
        p.drive();
        let (na, nb) = one_child_each(&p);
        assert_pair(&na, &nb);
        // The responder picked `lan` by the selectors (its IKE SA's conn `net` refuses them).
        assert_eq!(na.conn, "lan");
        assert_eq!(na.local_ts, vec![subnet("10.1.1.0", "10.1.1.255")]);
        assert_eq!(
            na.encr,
            Some(crate::crypto::Encr::AesGcm16 { key_bits: 128 })
        );
        assert_eq!((na.ike_sa, nb.ike_sa, na.rekeyed_from), (a, b, None));
        assert!(child_failures(&p.a_events).is_empty() && child_failures(&p.b_events).is_empty());
        for ep in [&p.a, &p.b] {
            let st = ep.ike_sas();
            assert_eq!((st.len(), st[0].children.len()), (1, 2));
        }
        // It rekeys with its own conn's proposals; deleting the IKE SA takes both children.
        p.a_events.clear();
        p.b_events.clear();
        p.a.rekey_child(p.now, a, na.spi_in).unwrap();
        p.drive();
        let r = children(&p.a_events);
        assert_eq!(r.len(), 1);
        assert_eq!(
            (r[0].conn.as_str(), r[0].rekeyed_from),
            ("lan", Some((na.spi_in, na.spi_out)))
        );
        p.a_events.clear();
        p.b_events.clear();
        p.a.delete_ike_sa(p.now, a).unwrap();
        p.drive();
        let gone: Vec<(String, u32)> = p
            .b_events
            .iter()
            .filter_map(|e| match e {
                Event::ChildSaDeleted { conn, spi_in, .. } => Some((conn.clone(), *spi_in)),
                _ => None,
            })
            .collect();
        assert_eq!(gone.len(), 2);
        assert!(gone.contains(&("net".to_string(), cb.spi_in)), "{gone:?}");
        assert!(gone.iter().any(|(c, _)| c == "lan"), "{gone:?}");
        assert!(p.a.ike_sas().is_empty() && p.b.ike_sas().is_empty());
        assert!(
            !gone.contains(&("net".to_string(), ca.spi_in)),
            "b's SPIs, not a's"
        );
    }
}

#[test]
fn additional_child_sa_refusals() {
    let mut p = two_conns("aes128-sha256", "aes128-sha256");
    let (a, _, _, _) = up(&mut p);
    assert_eq!(
        p.a.create_child(p.now, a, "nope"),
        Err(IkeError::UnknownConn("nope".into()))
    );
    // A conn with another PSK may not ride this IKE SA.
    let mut other = p.a.conns.iter().map(|c| (**c).clone()).collect::<Vec<_>>();
    other[1].psk = Psks::fixed(b"another key");
    p.a.set_conns(other);
    assert_eq!(
        p.a.create_child(p.now, a, "lan"),
        Err(IkeError::ForeignConn("lan".into(), a.0))
    );
    // b has no conn for these selectors: TS_UNACCEPTABLE, nothing installed.
    let mut only_net = p.b.conns.iter().map(|c| (**c).clone()).collect::<Vec<_>>();
    only_net.truncate(1);
    p.b.set_conns(only_net);
    let mut lan = p.a.conns.iter().map(|c| (**c).clone()).collect::<Vec<_>>();
    lan[1].psk = lan[0].psk.clone();
    p.a.set_conns(lan);
    p.a.create_child(p.now, a, "lan").unwrap();
    p.drive();
    assert_both_refused(&p, IkeError::TsUnacceptable);
    assert!(children(&p.a_events).is_empty() && children(&p.b_events).is_empty());
    assert_eq!(p.b.ike_sas()[0].children.len(), 1);
}

/// KEYMAT without the DH secret, to show that a PFS child's keys are not that.
fn keys_without_dh(p: &Pair, a: IkeSaId, ni: &[u8], nr: &[u8], c: &ChildSaReady) -> Vec<u8> {
    let keys = p.a.sas[&a].keys.as_ref().unwrap();
    let k = derive_child_keys(keys.suite.prf, &keys.sk_d, ni, nr, c.encr, c.integ, None).unwrap();
    k.encr_i.to_vec()
}

#[test]
fn pfs_on_rekeyed_and_new_child_sas_with_each_group() {
    for (g, group) in [
        ("x25519", DhGroup::Curve25519),
        ("ecp256", DhGroup::Ecp256),
        ("modp2048", DhGroup::Modp2048),
    ] {
        for b_initiates in [false, true] {
            let esp = format!("aes128-sha256-{g}");
            let mut p = two_conns(&esp, &esp);
            let (a, b, ca, cb) = up(&mut p);
            // IKE_AUTH's child takes no KE: its ESP proposals list no DH group.
            let (_, auth) = p
                .log
                .iter()
                .find(|(d, t)| {
                    *d == Dir::AtoB
                        && Message::parse(&t.data).unwrap().header.exchange
                            == ExchangeType::IKE_AUTH
                })
                .unwrap();
            let msg = Message::parse(&auth.data).unwrap();
            let auth = p.b.sas[&b].open(&auth.data, &msg).unwrap();
            let offer = crate::ike::payloads::sa_payload(&auth).unwrap();
            assert!(
                offer
                    .iter()
                    .flat_map(|o| &o.transforms)
                    .all(|t| t.kind != crate::wire::TransformType::DH)
            );
            if b_initiates {
                p.b.rekey_child(p.now, b, cb.spi_in).unwrap();
            } else {
                p.a.rekey_child(p.now, a, ca.spi_in).unwrap();
            }
            p.drive();
            let (na, _) = assert_rekeyed(&p, &ca, &cb);
            p.a_events.clear();
            p.b_events.clear();
            if b_initiates {
                p.b.create_child(p.now, b, "lan").unwrap();
            } else {
                p.a.create_child(p.now, a, "lan").unwrap();
            }
            p.drive();
            let (la, lb) = (
                children(&p.a_events)[0].clone(),
                children(&p.b_events)[0].clone(),
            );
            assert_pair(&la, &lb);
            assert_eq!(la.conn, "lan");
            // Rekey request+answer, Delete (INFORMATIONAL), new child request+answer: each
            // CREATE_CHILD_SA message carries a KE of the group, listed in its proposals.
            let wire = create_child_sa_payloads(&p, a, b);
            assert_eq!(wire.len(), 4, "{wire:?}");
            for (i, (_, pl)) in wire.iter().enumerate() {
                assert_eq!(ke_group(pl), Some(group.id()), "message {i}");
            }
            let nonces: Vec<Vec<u8>> = wire
                .iter()
                .map(|(_, pl)| crate::ike::payloads::nonce(pl).unwrap().to_vec())
                .collect();
            // g^ir is in KEYMAT: neither direction's key is prf+(SK_d, Ni | Nr) alone.
            for (child, (ni, nr)) in [
                (&na, (&nonces[0], &nonces[1])),
                (&la, (&nonces[2], &nonces[3])),
            ] {
                let plain = keys_without_dh(&p, a, ni, nr, child);
                assert_ne!(&child.keys_in.encr[..], &plain[..]);
                assert_ne!(&child.keys_out.encr[..], &plain[..]);
            }
        }
    }
}

#[test]
fn responder_with_pfs_refuses_a_rekey_without() {
    let (ike_a, ike_b) = (
        conn(A_IP, Some(B_IP), IKE, "aes128-sha256"),
        conn(B_IP, Some(A_IP), IKE, "aes128-sha256-modp2048"),
    );
    let mut p = Pair::new(ike_a, ike_b);
    let (a, _, ca, _) = up(&mut p);
    p.a.rekey_child(p.now, a, ca.spi_in).unwrap();
    p.drive();
    assert_both_refused(&p, IkeError::NoProposalChosen);
    assert_eq!(p.a.ike_sas()[0].children.len(), 1);
}

#[test]
fn pfs_group_asked_for_by_invalid_ke_is_used_on_the_retry() {
    let (ike_a, ike_b) = (
        conn(A_IP, Some(B_IP), IKE, "aes128-sha256-x25519-modp2048"),
        conn(B_IP, Some(A_IP), IKE, "aes128-sha256-modp2048"),
    );
    let mut p = Pair::new(ike_a, ike_b);
    let (a, b, ca, cb) = up(&mut p);
    p.a.rekey_child(p.now, a, ca.spi_in).unwrap();
    p.drive();
    assert_rekeyed(&p, &ca, &cb);
    assert!(child_failures(&p.a_events).is_empty(), "{:?}", p.a_events);
    let wire = create_child_sa_payloads(&p, a, b);
    let groups: Vec<Option<u16>> = wire.iter().map(|(_, pl)| ke_group(pl)).collect();
    let (x, m) = (DhGroup::Curve25519.id(), DhGroup::Modp2048.id());
    assert_eq!(groups, vec![Some(x), None, Some(m), Some(m)]);
    let Some(Payload::Notify(n)) = wire[1].1.first() else {
        panic!("{wire:?}")
    };
    assert_eq!(n.notify_type, crate::wire::NotifyType::INVALID_KE_PAYLOAD);
    assert_eq!(n.data, m.to_be_bytes());
}
