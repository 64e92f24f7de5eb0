//! INFORMATIONAL (Delete, liveness) and CREATE_CHILD_SA on established SAs.

use super::*;
use crate::wire::{ExchangeType, Message, NotifyType, Payload};

const IKE: &str = "aes128-sha256-x25519";
const ESP: &str = "aes128-sha256";

fn up() -> (Pair, IkeSaId, IkeSaId) {
    let mut p = Pair::new(
        conn(A_IP, Some(B_IP), IKE, ESP),
        conn(B_IP, Some(A_IP), IKE, ESP),
    );
    let a = p.connect();
    assert_up(&p);
    let b = p.b.ike_sas()[0].id;
    p.a_events.clear();
    p.b_events.clear();
    (p, a, b)
}

fn deleted_events(ev: &[Event]) -> (usize, Vec<bool>) {
    let children = ev
        .iter()
        .filter(|e| matches!(e, Event::ChildSaDeleted { .. }))
        .count();
    let ike = ev
        .iter()
        .filter_map(|e| match e {
            Event::IkeSaDeleted { by_peer, .. } => Some(*by_peer),
            _ => None,
        })
        .collect();
    (children, ike)
}

#[test]
fn initiator_deletes_ike_sa() {
    let (mut p, a, _) = up();
    p.a.delete_ike_sa(p.now, a).unwrap();
    assert_eq!(p.a.ike_sas()[0].state, IkeSaState::Deleting);
    p.drive();
    assert_eq!(deleted_events(&p.a_events), (1, vec![false]));
    assert_eq!(deleted_events(&p.b_events), (1, vec![true]));
    // ChildSaDeleted comes before IkeSaDeleted.
    assert!(matches!(p.b_events[0], Event::ChildSaDeleted { .. }));
    assert!(p.a.ike_sas().is_empty() && p.b.ike_sas().is_empty());
}

#[test]
fn responder_deletes_by_conn() {
    let (mut p, _, _) = up();
    assert_eq!(p.b.delete_conn(p.now, "net"), 1);
    assert_eq!(p.b.delete_conn(p.now, "other"), 0);
    p.drive();
    assert_eq!(deleted_events(&p.b_events), (1, vec![false]));
    assert_eq!(deleted_events(&p.a_events), (1, vec![true]));
    assert!(p.a.ike_sas().is_empty() && p.b.ike_sas().is_empty());
}

#[test]
fn delete_unanswered_still_reports() {
    let (mut p, a, _) = up();
    p.fault = Box::new(|_, _, _| Fault::Drop);
    p.a.delete_ike_sa(p.now, a).unwrap();
    p.drive();
    assert_eq!(deleted_events(&p.a_events), (1, vec![false]));
    assert_eq!(p.b.ike_sas().len(), 1);
}

#[test]
fn delete_while_connecting() {
    let mut p = Pair::new(
        conn(A_IP, Some(B_IP), IKE, ESP),
        conn(B_IP, Some(A_IP), IKE, ESP),
    );
    p.fault = Box::new(|_, _, _| Fault::Drop);
    let id = p.a.initiate(p.now, "net").unwrap();
    p.a.delete_ike_sa(p.now, id).unwrap();
    p.drive();
    assert_eq!(failures(&p.a_events), vec![IkeError::DeletedLocally]);
    assert!(p.a.ike_sas().is_empty());
    assert_eq!(p.a.poll_timeout(), None);
}

#[test]
fn liveness_check_answered_and_unanswered() {
    let (mut p, a, b) = up();
    p.a.check_liveness(p.now, a).unwrap();
    p.b.check_liveness(p.now, b).unwrap();
    p.drive();
    assert!(p.a_events.is_empty() && p.b_events.is_empty());
    assert_eq!(p.a.ike_sas()[0].state, IkeSaState::Established);
    // Peer gone: the liveness check gives up and the SA is reported deleted.
    p.fault = Box::new(|_, _, _| Fault::Drop);
    p.a.check_liveness(p.now, a).unwrap();
    p.drive();
    assert_eq!(deleted_events(&p.a_events), (1, vec![false]));
    assert_eq!(p.a.check_liveness(p.now, a), Err(IkeError::UnknownSa(a.0)));
}

#[test]
fn create_child_sa_without_nonce_is_invalid_syntax() {
    let (mut p, a, _) = up();
    // Send a CREATE_CHILD_SA request through a's SA machinery.
    p.a.with_sa(p.now, a, |sa, ctx| {
        sa.send_request(ctx, ExchangeType::CREATE_CHILD_SA, &[])
            .unwrap();
    });
    assert!(p.step());
    // b's answer: open it with a's keys before a consumes it.
    p.collect();
    let (dir, t) = p.queue.front().cloned().unwrap();
    assert_eq!(dir, Dir::BtoA);
    let msg = Message::parse(&t.data).unwrap();
    assert_eq!(msg.header.exchange, ExchangeType::CREATE_CHILD_SA);
    let inner = p.a.sas[&a].open(&t.data, &msg).unwrap();
    assert!(matches!(
        inner.as_slice(),
        [Payload::Notify(n)] if n.notify_type == NotifyType::INVALID_SYNTAX
    ));
    p.drive();
    assert!(p.a_events.is_empty() && p.b_events.is_empty());
    assert_eq!(p.a.ike_sas()[0].children.len(), 1);
    assert_eq!(p.b.ike_sas()[0].children.len(), 1);
}

#[test]
fn peer_deletes_child() {
    let (mut p, a, _) = up();
    let spi_in = p.a.ike_sas()[0].children[0].spi_in;
    p.a.with_sa(p.now, a, |sa, _| {
        sa.queue.push_back(sa::Queued::DeleteChild(spi_in))
    });
    p.drive();
    // b removed its child (its spi_out == our spi_in) and answered with its inbound SPI.
    assert_eq!(deleted_events(&p.b_events), (1, vec![]));
    assert_eq!(deleted_events(&p.a_events), (1, vec![]));
    assert!(p.b.ike_sas()[0].children.is_empty());
    assert!(p.a.ike_sas()[0].children.is_empty());
}

#[test]
fn status_snapshot() {
    let (p, a, _) = up();
    let st = &p.a.ike_sas()[0];
    assert_eq!(st.id, a);
    assert_eq!(st.conn, "net");
    assert_eq!(st.role, Role::Initiator);
    assert_ne!(st.spi_r, [0; 8]);
    assert_eq!(st.local_id, Identification::fqdn("moon.example"));
    assert_eq!(st.remote_id, Some(Identification::fqdn("sun.example")));
    assert_eq!(st.established_at, Some(p.t0));
    let c = &st.children[0];
    assert_eq!(c.mode, Mode::Tunnel);
    assert!(c.algorithms.contains('/'));
    let b = &p.b.ike_sas()[0];
    assert_eq!((b.spi_i, b.spi_r), (st.spi_i, st.spi_r));
    assert_eq!(b.role, Role::Responder);
}

#[test]
fn initial_contact_replaces_stale_sas_of_a_restarted_peer() {
    let (mut p, _, old_b) = up();
    // A second SA from the same (running) initiator does not claim initial contact.
    p.a.initiate(p.now, "net").unwrap();
    p.drive();
    assert_eq!(p.b.ike_sas().len(), 2);
    assert_eq!(established(&p.b_events).len(), 1);
    p.b_events.clear();
    // The initiator restarts (all state lost) and connects again.
    p.a = Endpoint::new(
        EndpointConfig::default(),
        rand::rngs::ChaCha20Rng::seed_from_u64(99),
        Box::new(SeqSpis(0xa100_0000)),
    );
    p.a.set_conns(vec![conn(A_IP, Some(B_IP), IKE, ESP)]);
    p.connect();
    let sas = p.b.ike_sas();
    assert_eq!(sas.len(), 1);
    assert_ne!(sas[0].id, old_b);
    // Both stale SAs are reported deleted (children first), before the new one is up.
    assert_eq!(deleted_events(&p.b_events), (2, vec![true, true]));
    let first_up = p
        .b_events
        .iter()
        .position(|e| matches!(e, Event::IkeSaEstablished { .. }))
        .unwrap();
    assert_eq!(first_up, 4);
}

#[test]
fn endpoint_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Endpoint<rand::rngs::ChaCha20Rng>>();
    assert_send::<Event>();
}
