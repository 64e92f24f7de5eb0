//! IKE SA rekeying as initiator ([`Endpoint::rekey_ike`], RFC 7296 §2.18) and its
//! collisions (§2.8.2, §2.25), reauthentication's second IKE SA, and liveness give-up.

use super::rekey::{assert_rekeyed, up};
use super::*;
use crate::wire::{ExchangeType, Message, Payload};

fn rekeyed(ev: &[Event]) -> Vec<(IkeSaId, IkeSaId)> {
    ev.iter()
        .filter_map(|e| match e {
            Event::IkeSaRekeyed { old, new, .. } => Some((*old, *new)),
            _ => None,
        })
        .collect()
}

fn ike_deleted(ev: &[Event]) -> Vec<(IkeSaId, bool, Option<IkeError>)> {
    ev.iter()
        .filter_map(|e| match e {
            Event::IkeSaDeleted {
                id, by_peer, error, ..
            } => Some((*id, *by_peer, error.clone())),
            _ => None,
        })
        .collect()
}

fn child_deleted(ev: &[Event]) -> Vec<u32> {
    ev.iter()
        .filter_map(|e| match e {
            Event::ChildSaDeleted { spi_in, .. } => Some(*spi_in),
            _ => None,
        })
        .collect()
}

/// Both sides hold exactly one IKE SA, the same one (SPIs), with one matching child, and
/// its SPIs differ from `old`'s. Returns (a's, b's) SA id.
fn assert_one_new_sa(p: &Pair, old: ([u8; 8], [u8; 8])) -> (IkeSaId, IkeSaId) {
    let (sa, sb) = (p.a.ike_sas(), p.b.ike_sas());
    assert_eq!((sa.len(), sb.len()), (1, 1), "{sa:?}\n{sb:?}");
    let (x, y) = (&sa[0], &sb[0]);
    assert_eq!((x.spi_i, x.spi_r), (y.spi_i, y.spi_r));
    assert_ne!(x.role, y.role, "one side initiated the new SA");
    assert_ne!((x.spi_i, x.spi_r), old);
    assert_eq!(
        (x.state, y.state),
        (IkeSaState::Established, IkeSaState::Established)
    );
    assert_eq!((x.children.len(), y.children.len()), (1, 1));
    assert_eq!(x.children[0].spi_in, y.children[0].spi_out);
    (x.id, y.id)
}

fn old_spis(p: &Pair) -> ([u8; 8], [u8; 8]) {
    let s = &p.a.ike_sas()[0];
    (s.spi_i, s.spi_r)
}

#[test]
fn initiator_rekeys_ike_sa_either_side() {
    for b_initiates in [false, true] {
        let (mut p, a, b, ca, cb) = up();
        let old = old_spis(&p);
        if b_initiates {
            p.b.rekey_ike(p.now, b).unwrap();
        } else {
            p.a.rekey_ike(p.now, a).unwrap();
        }
        p.drive();
        let (na, nb) = assert_one_new_sa(&p, old);
        let role = if b_initiates {
            Role::Responder
        } else {
            Role::Initiator
        };
        assert_eq!(p.a.ike_sas()[0].role, role);
        // The children moved without a kernel change; the old SA went without them.
        assert_eq!(p.a.ike_sas()[0].children[0].spi_in, ca.spi_in);
        assert_eq!(p.b.ike_sas()[0].children[0].spi_in, cb.spi_in);
        assert_eq!(rekeyed(&p.a_events), vec![(a, na)]);
        assert_eq!(rekeyed(&p.b_events), vec![(b, nb)]);
        assert!(children(&p.a_events).is_empty() && child_deleted(&p.a_events).is_empty());
        assert!(children(&p.b_events).is_empty() && child_deleted(&p.b_events).is_empty());
        assert_eq!(ike_deleted(&p.a_events), vec![(a, b_initiates, None)]);
        assert_eq!(ike_deleted(&p.b_events), vec![(b, !b_initiates, None)]);
        // Both derived the same keys: the new SA carries a CHILD_SA rekey, then rekeys again.
        p.a_events.clear();
        p.b_events.clear();
        p.a.rekey_child(p.now, na, ca.spi_in).unwrap();
        p.drive();
        assert_rekeyed(&p, &ca, &cb);
        let old = old_spis(&p);
        p.a.rekey_ike(p.now, na).unwrap();
        p.drive();
        assert_one_new_sa(&p, old);
    }
}

#[test]
fn ike_rekey_commands_and_refusal() {
    let (mut p, a, b, _, _) = up();
    assert_eq!(
        p.a.rekey_ike(p.now, IkeSaId(99)),
        Err(IkeError::UnknownSa(99))
    );
    // Asked twice: one exchange. b no longer accepts a's IKE proposal: the SA stays.
    std::sync::Arc::make_mut(&mut p.b.sas.get_mut(&b).unwrap().conn).ike_proposals =
        vec![ike_prop("aes256gcm16-prfsha384-ecp256")];
    let before = p.count(Dir::AtoB);
    p.a.rekey_ike(p.now, a).unwrap();
    p.a.rekey_ike(p.now, a).unwrap();
    p.drive();
    assert_eq!(p.count(Dir::AtoB) - before, 1);
    let [Event::IkeSaRekeyFailed { id, error, .. }] = p.a_events.as_slice() else {
        panic!("{:?}", p.a_events)
    };
    assert_eq!((*id, error), (a, &IkeError::NoProposalChosen));
    assert!(p.b_events.is_empty(), "{:?}", p.b_events);
    assert_eq!(p.a.ike_sas().len(), 1);
    assert_eq!(p.a.ike_sas()[0].children.len(), 1);
}

#[test]
fn ike_rekey_retries_with_the_group_asked_for() {
    let (mut p, a, b, _, _) = up();
    let old = old_spis(&p);
    // a offers x25519 and MODP-2048 and sends KEi of the current group (x25519); b now
    // wants MODP-2048 only: INVALID_KE_PAYLOAD, then a asks again with that group.
    std::sync::Arc::make_mut(&mut p.a.sas.get_mut(&a).unwrap().conn).ike_proposals =
        vec![ike_prop("aes128-sha256-x25519-modp2048")];
    std::sync::Arc::make_mut(&mut p.b.sas.get_mut(&b).unwrap().conn).ike_proposals =
        vec![ike_prop("aes128-sha256-modp2048")];
    p.a.rekey_ike(p.now, a).unwrap();
    p.drive();
    assert_one_new_sa(&p, old);
    let Some(Event::IkeSaRekeyed { proposal, .. }) = p.a_events.first() else {
        panic!("{:?}", p.a_events)
    };
    assert!(proposal.ends_with("MODP_2048"), "{proposal}");
    let rekeys = p
        .log
        .iter()
        .filter(|(d, t)| {
            *d == Dir::AtoB
                && Message::parse(&t.data).unwrap().header.exchange == ExchangeType::CREATE_CHILD_SA
        })
        .count();
    assert_eq!(rekeys, 2);
}

/// The plaintext payloads of a datagram on the wire, opened with SA `id` of `ep`.
fn open(ep: &Endpoint<ChaCha20Rng>, id: IkeSaId, t: &Transmit) -> (bool, Vec<Payload>) {
    let msg = Message::parse(&t.data).unwrap();
    assert_eq!(msg.header.exchange, ExchangeType::CREATE_CHILD_SA);
    (
        msg.header.is_response(),
        ep.sas[&id].open(&t.data, &msg).unwrap(),
    )
}

fn nonce_of(payloads: &[Payload]) -> Vec<u8> {
    crate::ike::payloads::nonce(payloads).unwrap().to_vec()
}

#[test]
fn simultaneous_ike_rekeys_the_lowest_nonce_loses() {
    let mut winners = Vec::new();
    // Earlier CHILD_SA rekeys consume randomness, so the nonces (and winners) vary.
    for warmup in 0..4 {
        let (mut p, a, b, mut ca, mut cb) = up();
        for _ in 0..warmup {
            p.a.rekey_child(p.now, a, ca.spi_in).unwrap();
            p.drive();
            (ca, cb) = assert_rekeyed(&p, &ca, &cb);
            p.a_events.clear();
            p.b_events.clear();
        }
        let old = old_spis(&p);
        p.a.rekey_ike(p.now, a).unwrap();
        p.b.rekey_ike(p.now, b).unwrap();
        // Both requests cross, then both answers: read the four nonces on the way.
        p.collect();
        let wire: Vec<(Dir, Transmit)> = p.queue.iter().cloned().collect();
        assert_eq!(wire.len(), 2);
        let mut ni = [vec![], vec![]];
        for (dir, t) in &wire {
            let (resp, pl) = match dir {
                Dir::AtoB => open(&p.b, b, t),
                Dir::BtoA => open(&p.a, a, t),
            };
            assert!(!resp);
            ni[usize::from(*dir == Dir::BtoA)] = nonce_of(&pl);
        }
        assert!(p.step() && p.step());
        p.collect();
        let answers: Vec<(Dir, Transmit)> = p.queue.iter().cloned().collect();
        assert_eq!(answers.len(), 2, "both answered as usual");
        let mut nr = [vec![], vec![]];
        for (dir, t) in &answers {
            let (resp, pl) = match dir {
                Dir::AtoB => open(&p.b, b, t),
                Dir::BtoA => open(&p.a, a, t),
            };
            assert!(resp);
            // b's answer (b→a) belongs to a's exchange.
            nr[usize::from(*dir == Dir::AtoB)] = nonce_of(&pl);
        }
        p.drive();
        let lowest_a = ni[0].clone().min(nr[0].clone());
        let lowest_b = ni[1].clone().min(nr[1].clone());
        let a_wins = lowest_b < lowest_a;
        winners.push(a_wins);
        let (na, nb) = assert_one_new_sa(&p, old);
        // The survivor is the SA the winner's exchange made (its initiator is the winner).
        let role = if a_wins {
            Role::Initiator
        } else {
            Role::Responder
        };
        assert_eq!(p.a.ike_sas()[0].role, role);
        assert_eq!(p.a.ike_sas()[0].children[0].spi_in, ca.spi_in);
        assert_eq!(p.b.ike_sas()[0].children[0].spi_in, cb.spi_in);
        // The children ended on the survivor; no CHILD_SA was touched.
        for ev in [&p.a_events, &p.b_events] {
            assert!(
                children(ev).is_empty() && child_deleted(ev).is_empty(),
                "{ev:?}"
            );
            let r = rekeyed(ev);
            assert_eq!(
                r.last().map(|x| x.1),
                Some(if std::ptr::eq(ev, &p.a_events) {
                    na
                } else {
                    nb
                }),
                "{ev:?}"
            );
        }
        // The winner deleted the old SA; the loser's redundant SA went unreported on its
        // side and was reported deleted by the peer on the winner's.
        let (win_ev, lose_ev, win_old, lose_old) = if a_wins {
            (&p.a_events, &p.b_events, a, b)
        } else {
            (&p.b_events, &p.a_events, b, a)
        };
        assert_eq!(rekeyed(lose_ev).len(), 1, "{lose_ev:?}");
        assert_eq!(ike_deleted(lose_ev), vec![(lose_old, true, None)]);
        assert_eq!(rekeyed(win_ev).len(), 2, "{win_ev:?}");
        let redundant = rekeyed(win_ev)[0].1;
        let mut d = ike_deleted(win_ev);
        d.sort_by_key(|x| x.0);
        assert_eq!(d, vec![(win_old, false, None), (redundant, true, None)]);
    }
    assert!(
        winners.contains(&true) && winners.contains(&false),
        "{winners:?}"
    );
}

#[test]
fn ike_rekey_racing_child_rekey_retries_after_temporary_failure() {
    for ike_side_a in [true, false] {
        let (mut p, a, b, ca, cb) = up();
        let old = old_spis(&p);
        if ike_side_a {
            p.a.rekey_ike(p.now, a).unwrap();
            p.b.rekey_child(p.now, b, cb.spi_in).unwrap();
        } else {
            p.a.rekey_child(p.now, a, ca.spi_in).unwrap();
            p.b.rekey_ike(p.now, b).unwrap();
        }
        p.drive();
        // Both were refused once (TEMPORARY_FAILURE), both retried and succeeded.
        assert!(p.elapsed() >= 2.0, "{}", p.elapsed());
        assert!(child_failures(&p.a_events).is_empty() && child_failures(&p.b_events).is_empty());
        let (na, nb) = assert_one_new_sa(&p, old);
        assert_eq!(rekeyed(&p.a_events).last().map(|x| x.1), Some(na));
        assert_eq!(rekeyed(&p.b_events).last().map(|x| x.1), Some(nb));
        let (x, y) = (&p.a.ike_sas()[0].children[0], &p.b.ike_sas()[0].children[0]);
        assert_ne!(x.spi_in, ca.spi_in, "the CHILD_SA was rekeyed");
        assert_eq!(children(&p.a_events).len(), 1);
        assert_eq!(children(&p.a_events)[0].spi_in, x.spi_in);
        assert_eq!(children(&p.b_events)[0].spi_in, y.spi_in);
        assert_eq!(child_deleted(&p.a_events), vec![ca.spi_in]);
        assert_eq!(child_deleted(&p.b_events), vec![cb.spi_in]);
    }
}

#[test]
fn ike_rekey_racing_ike_delete() {
    let (mut p, a, b, ca, cb) = up();
    p.a.rekey_ike(p.now, a).unwrap();
    p.b.delete_ike_sa(p.now, b).unwrap();
    p.drive();
    // b refused the rekey (TEMPORARY_FAILURE while deleting); a answered the Delete and
    // forgot its own rekey (RFC 7296 §2.25.2).
    assert!(p.a.ike_sas().is_empty() && p.b.ike_sas().is_empty());
    assert!(rekeyed(&p.a_events).is_empty() && rekeyed(&p.b_events).is_empty());
    assert_eq!(child_deleted(&p.a_events), vec![ca.spi_in]);
    assert_eq!(child_deleted(&p.b_events), vec![cb.spi_in]);
    assert_eq!(ike_deleted(&p.a_events), vec![(a, true, None)]);
    assert_eq!(ike_deleted(&p.b_events), vec![(b, false, None)]);
}

#[test]
fn ike_rekey_racing_child_delete() {
    let (mut p, a, b, ca, cb) = up();
    let old = old_spis(&p);
    p.a.rekey_ike(p.now, a).unwrap();
    p.b.delete_child(p.now, b, cb.spi_in).unwrap();
    p.drive();
    // b was busy with its Delete: TEMPORARY_FAILURE; a retried with no children left.
    assert!(p.elapsed() >= 2.0);
    assert_eq!(child_deleted(&p.a_events), vec![ca.spi_in]);
    assert_eq!(child_deleted(&p.b_events), vec![cb.spi_in]);
    let (sa, sb) = (p.a.ike_sas(), p.b.ike_sas());
    assert_eq!((sa.len(), sb.len()), (1, 1));
    assert_ne!((sa[0].spi_i, sa[0].spi_r), old);
    assert_eq!((sa[0].spi_i, sa[0].spi_r), (sb[0].spi_i, sb[0].spi_r));
    assert!(sa[0].children.is_empty() && sb[0].children.is_empty());
    assert_eq!(rekeyed(&p.a_events).len(), 1);
    assert_eq!(rekeyed(&p.b_events).len(), 1);
}

#[test]
fn lost_ike_rekey_answer_is_resent_from_cache_once() {
    let (mut p, a, b, _, _) = up();
    let old = old_spis(&p);
    let base_b = p.sent[1];
    p.fault = Box::new(move |dir, n, _| {
        if dir == Dir::BtoA && n == base_b {
            Fault::Drop
        } else {
            Fault::Deliver
        }
    });
    p.a.rekey_ike(p.now, a).unwrap();
    p.drive();
    assert_one_new_sa(&p, old);
    // b answered the retransmission byte for byte and made one new SA.
    let answers: Vec<&Transmit> = p
        .log
        .iter()
        .filter(|(d, t)| {
            *d == Dir::BtoA
                && Message::parse(&t.data).unwrap().header.exchange == ExchangeType::CREATE_CHILD_SA
        })
        .map(|(_, t)| t)
        .collect();
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[0].data, answers[1].data);
    assert_eq!(rekeyed(&p.b_events).len(), 1);
    assert_eq!(rekeyed(&p.a_events).len(), 1);
    assert_eq!(ike_deleted(&p.b_events), vec![(b, true, None)]);
    assert!(p.elapsed() >= 4.0);
}

#[test]
fn unanswered_liveness_check_gives_up_with_peer_not_responding() {
    let (mut p, a, _, ca, _) = up();
    p.fault = Box::new(|_, _, _| Fault::Drop);
    p.a.check_liveness(p.now, a).unwrap();
    p.drive();
    // 1 + 5 retransmits, give up after ≈165 s; the children go with the SA.
    assert!((p.elapsed() - 165.06).abs() < 0.1, "{}", p.elapsed());
    assert_eq!(child_deleted(&p.a_events), vec![ca.spi_in]);
    assert_eq!(
        ike_deleted(&p.a_events),
        vec![(a, false, Some(IkeError::PeerNotResponding { tries: 5 }))]
    );
    assert!(p.a.ike_sas().is_empty());
}

#[test]
fn reauthentication_second_ike_sa_coexists_and_old_goes_alone() {
    let (mut p, a, b, ca, cb) = up();
    // Make-before-break: a second IKE SA of the same conn while the first is up. Without
    // INITIAL_CONTACT b keeps the first one.
    let a2 = p.a.initiate(p.now, "net").unwrap();
    p.drive();
    assert_eq!((p.a.ike_sas().len(), p.b.ike_sas().len()), (2, 2));
    assert!(ike_deleted(&p.b_events).is_empty(), "{:?}", p.b_events);
    let (na, nb) = (
        children(&p.a_events)[0].clone(),
        children(&p.b_events)[0].clone(),
    );
    assert_eq!((na.ike_sa, na.spi_out), (a2, nb.spi_in));
    let b2 = nb.ike_sa;
    assert_ne!(b2, b);
    // Break: deleting the old SA takes only its own children, on both sides.
    p.a_events.clear();
    p.b_events.clear();
    p.a.delete_ike_sa(p.now, a).unwrap();
    p.drive();
    assert_eq!(child_deleted(&p.a_events), vec![ca.spi_in]);
    assert_eq!(child_deleted(&p.b_events), vec![cb.spi_in]);
    assert_eq!(ike_deleted(&p.a_events), vec![(a, false, None)]);
    assert_eq!(ike_deleted(&p.b_events), vec![(b, true, None)]);
    let (sa, sb) = (p.a.ike_sas(), p.b.ike_sas());
    assert_eq!((sa.len(), sb.len()), (1, 1));
    assert_eq!((sa[0].id, sb[0].id), (a2, b2));
    assert_eq!(sa[0].children[0].spi_in, na.spi_in);
    assert_eq!(sb[0].children[0].spi_in, nb.spi_in);
}

#[test]
fn a_peer_busy_for_minutes_gets_the_ike_sa_closed() {
    let (mut p, a, b, ca, _) = up();
    // b answers every CREATE_CHILD_SA with TEMPORARY_FAILURE (it believes it is deleting).
    p.b.sas.get_mut(&b).unwrap().state = crate::ike::sa::State::Deleting;
    p.a.rekey_child(p.now, a, ca.spi_in).unwrap();
    p.drive();
    // Retried every 2–10 s for 5 minutes, then a deletes the IKE SA (RFC 7296 §2.25).
    assert!((300.0..315.0).contains(&p.elapsed()), "{}", p.elapsed());
    let tries = p
        .log
        .iter()
        .filter(|(d, t)| {
            *d == Dir::AtoB
                && Message::parse(&t.data).unwrap().header.exchange == ExchangeType::CREATE_CHILD_SA
        })
        .count();
    assert!((30..=151).contains(&tries), "{tries}");
    assert!(child_failures(&p.a_events).is_empty());
    assert_eq!(child_deleted(&p.a_events), vec![ca.spi_in]);
    assert_eq!(ike_deleted(&p.a_events), vec![(a, false, None)]);
    assert!(p.a.ike_sas().is_empty() && p.b.ike_sas().is_empty());
}

#[test]
fn uniqueids_decides_which_of_two_sas_of_one_peer_stays() {
    for (mode, new_stays) in [
        (UniqueIds::Yes, true),
        (UniqueIds::Replace, true),
        (UniqueIds::Keep, false),
    ] {
        let (mut p, a, _, _, _) = up();
        p.b.set_config(EndpointConfig {
            unique_ids: mode,
            ..EndpointConfig::default()
        });
        // A second IKE SA of the same conn and identities, without INITIAL_CONTACT.
        let a2 = p.a.initiate(p.now, "net").unwrap();
        p.drive();
        let (stays, goes) = if new_stays { (a2, a) } else { (a, a2) };
        let (sa, sb) = (p.a.ike_sas(), p.b.ike_sas());
        assert_eq!((sa.len(), sb.len()), (1, 1), "{mode:?}");
        assert_eq!(sa[0].id, stays, "{mode:?}");
        // b deleted the other one with a Delete (after REAUTH_GRACE: the same address), so
        // a reports it deleted by the peer.
        assert_eq!(
            ike_deleted(&p.a_events),
            vec![(goes, true, None)],
            "{mode:?}"
        );
    }
}

#[test]
fn uniqueids_gives_a_reauthenticating_peer_time_to_delete_the_old_sa() {
    let (mut p, a, _, _, _) = up();
    p.b.set_config(EndpointConfig {
        unique_ids: UniqueIds::Yes,
        ..EndpointConfig::default()
    });
    // a reauthenticates make-before-break from the same address: the new SA first.
    let start = p.elapsed();
    let a2 = p.a.initiate(p.now, "net").unwrap();
    p.drive_for(start + REAUTH_GRACE.as_secs_f64() - 1.0);
    assert_eq!(p.b.ike_sas().len(), 2, "b waits for a to delete the old SA");
    let grace: Vec<_> = p
        .b_events
        .iter()
        .filter_map(|e| match e {
            Event::DuplicateIkeSa { delete_in, .. } => Some(*delete_in),
            _ => None,
        })
        .collect();
    assert_eq!(grace, vec![REAUTH_GRACE]);
    // a deletes the old SA itself within the grace: b never sends its own Delete.
    p.a.delete_ike_sa(p.now, a).unwrap();
    p.drive();
    assert_eq!(ike_deleted(&p.a_events), vec![(a, false, None)]);
    assert_eq!(ike_deleted(&p.b_events).len(), 1);
    let (sa, sb) = (p.a.ike_sas(), p.b.ike_sas());
    assert_eq!((sa.len(), sb.len()), (1, 1));
    assert_eq!(sa[0].id, a2);
}

#[test]
fn uniqueids_never_ignores_initial_contact_and_no_honours_it() {
    for (mode, b_keeps) in [(UniqueIds::Never, 2), (UniqueIds::No, 1)] {
        let (mut p, _, b, _, _) = up();
        p.b.set_config(EndpointConfig {
            unique_ids: mode,
            ..EndpointConfig::default()
        });
        // a restarts: a fresh endpoint with the same conn, which sends INITIAL_CONTACT.
        let conns = p.a.conns.iter().map(|c| (**c).clone()).collect::<Vec<_>>();
        p.a = Endpoint::new(
            EndpointConfig::default(),
            ChaCha20Rng::seed_from_u64(9),
            Box::new(SeqSpis(0xa100_0000)),
        );
        p.a.set_conns(conns);
        p.connect();
        assert_eq!(p.b.ike_sas().len(), b_keeps, "{mode:?}");
        let forgot = ike_deleted(&p.b_events);
        if b_keeps == 1 {
            assert_eq!(forgot, vec![(b, true, None)], "{mode:?}");
        } else {
            assert!(forgot.is_empty(), "{mode:?}: {forgot:?}");
        }
    }
}
