//! IKE SA rekeying with CREATE_CHILD_SA, responder side (RFC 7296 §1.3.2, §2.18). a's
//! half is built here by hand, independently of the engine's initiator, to check b's answer.

use super::rekey::{IKE, assert_rekeyed, request, up};
use super::*;
use crate::crypto::{DhPrivate, derive_ike_keys_from_skeyseed, skeyseed_rekey};
use crate::ike::proposal;
use crate::ike::sa::{IkeSa, Path, SaKeys, State};
use crate::wire::{KePayload, NotifyType, Payload, SaPayload, TransformId};

const NEW_SPI_I: [u8; 8] = [0x5a; 8];
const NI: [u8; 32] = [0x21; 32];

/// a asks b to rekey IKE SA `a` with a KE of `group`; returns b's answer and a's DH.
fn ask(p: &mut Pair, a: IkeSaId, group: DhGroup) -> (Vec<Payload>, DhPrivate) {
    let mut offer = proposal::ike_offer(&[ike_prop(IKE)]);
    for o in &mut offer {
        o.spi = NEW_SPI_I.to_vec();
    }
    let dh = group.generate(&mut <ChaCha20Rng as rand::SeedableRng>::seed_from_u64(7));
    let payloads = vec![
        Payload::Sa(SaPayload { proposals: offer }),
        Payload::Nonce(NI.to_vec()),
        Payload::Ke(KePayload {
            group: TransformId(group.id()),
            data: dh.public_value(),
        }),
    ];
    (request(p, a, payloads), dh)
}

/// Completes a's side from b's answer: a new IKE SA on a with a's children; returns its id.
fn finish(p: &mut Pair, a: IkeSaId, answer: &[Payload], dh: &DhPrivate) -> IkeSaId {
    let (mut sa_ans, mut nr, mut ker) = (None, None, None);
    for pl in answer {
        match pl {
            Payload::Sa(s) => sa_ans = Some(s.clone()),
            Payload::Nonce(n) => nr = Some(n.clone()),
            Payload::Ke(k) => ker = Some(k.clone()),
            _ => {}
        }
    }
    let (sa_ans, nr, ker) = (sa_ans.unwrap(), nr.unwrap(), ker.unwrap());
    let [prop] = sa_ans.proposals.as_slice() else {
        panic!("{sa_ans:?}")
    };
    let spi_r: [u8; 8] = prop.spi.as_slice().try_into().unwrap();
    let old = p.a.sas.get_mut(&a).unwrap();
    let keys = old.keys.as_ref().unwrap();
    let suite = keys.suite;
    let mut bare = prop.clone();
    bare.spi.clear();
    assert_eq!(proposal::accept_ike(&[bare], &[ike_prop(IKE)]), Some(suite));
    let shared = dh.agree(&ker.data).unwrap();
    let seed = skeyseed_rekey(suite.prf, &keys.sk_d, &shared, &NI, &nr);
    let new_keys = derive_ike_keys_from_skeyseed(
        suite.prf,
        suite.encr,
        suite.integ,
        &seed,
        &NI,
        &nr,
        &NEW_SPI_I,
        &spi_r,
    )
    .unwrap();
    let path = Path {
        local: old.local,
        remote: old.remote,
    };
    let id = IkeSaId(1000);
    let mut new = IkeSa::new(
        id,
        old.conn.clone(),
        Role::Initiator,
        (NEW_SPI_I, spi_r),
        path,
    );
    new.keys = Some(SaKeys::new(suite, &new_keys, Role::Initiator, false).unwrap());
    new.state = State::Established;
    new.children = std::mem::take(&mut old.children);
    p.a.insert(new);
    id
}

/// An IKE SA as (id, SPIi, SPIr, inbound SPIs of its children).
type SaSpis = (IkeSaId, [u8; 8], [u8; 8], Vec<u32>);

fn spis(ep: &Endpoint<ChaCha20Rng>) -> Vec<SaSpis> {
    ep.ike_sas()
        .iter()
        .map(|s| {
            let c = s.children.iter().map(|c| c.spi_in).collect();
            (s.id, s.spi_i, s.spi_r, c)
        })
        .collect()
}

#[test]
fn responder_rekeys_ike_sa_and_children_move() {
    let (mut p, a, b, ca, cb) = up();
    let (answer, dh) = ask(&mut p, a, DhGroup::Curve25519);
    // b: the new SA holds the children, the old one none.
    let [
        Event::IkeSaRekeyed {
            old,
            new,
            spi_i,
            spi_r,
            proposal,
            ..
        },
    ] = p.b_events.as_slice()
    else {
        panic!("{:?}", p.b_events)
    };
    let (new_b, spi_r) = (*new, *spi_r);
    assert_eq!((*old, *spi_i), (b, NEW_SPI_I));
    assert_eq!(
        proposal,
        "AES_CBC_128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/CURVE_25519"
    );
    let old_spis = (p.b.sas[&b].spi_i, p.b.sas[&b].spi_r);
    assert_ne!(old_spis, (NEW_SPI_I, spi_r));
    assert_eq!(
        spis(&p.b),
        vec![
            (b, old_spis.0, old_spis.1, vec![]),
            (new_b, NEW_SPI_I, spi_r, vec![cb.spi_in])
        ]
    );
    let new_a = finish(&mut p, a, &answer, &dh);
    // a deletes the old IKE SA: nothing happens to the children.
    p.b_events.clear();
    p.a.delete_ike_sa(p.now, a).unwrap();
    p.drive();
    assert!(
        matches!(p.b_events.as_slice(), [Event::IkeSaDeleted { id, by_peer: true, .. }] if *id == b),
        "{:?}",
        p.b_events
    );
    assert_eq!(spis(&p.b), vec![(new_b, NEW_SPI_I, spi_r, vec![cb.spi_in])]);
    // The children are usable over the new SA (its keys and message IDs from 0 agree).
    p.a_events.clear();
    p.b_events.clear();
    p.a.rekey_child(p.now, new_a, ca.spi_in).unwrap();
    p.drive();
    assert_rekeyed(&p, &ca, &cb);
    assert_eq!(p.b.ike_sas()[0].id, new_b);
}

#[test]
fn responder_ike_rekey_asks_for_the_proposed_group() {
    let (mut p, a, b, _, cb) = up();
    let (answer, _) = ask(&mut p, a, DhGroup::Ecp256);
    let [Payload::Notify(n)] = answer.as_slice() else {
        panic!("{answer:?}")
    };
    assert_eq!(n.notify_type, NotifyType::INVALID_KE_PAYLOAD);
    assert_eq!(n.data, DhGroup::Curve25519.id().to_be_bytes());
    assert!(p.b_events.is_empty(), "{:?}", p.b_events);
    let (si, sr) = (p.b.sas[&b].spi_i, p.b.sas[&b].spi_r);
    assert_eq!(spis(&p.b), vec![(b, si, sr, vec![cb.spi_in])]);
}
