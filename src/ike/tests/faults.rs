//! Lost, duplicated, reordered datagrams; retransmission and give-up; failures.

use super::*;
use crate::wire::{NotifyType, Payload};

const IKE: &str = "aes128gcm16-prfsha256-x25519";
const ESP: &str = "aes128gcm16";

fn pair() -> Pair {
    Pair::new(
        conn(A_IP, Some(B_IP), IKE, ESP),
        conn(B_IP, Some(A_IP), IKE, ESP),
    )
}

#[test]
fn lost_first_request_and_first_auth_response() {
    let mut p = pair();
    // Drop a's first IKE_SA_INIT and b's IKE_AUTH response (b's second datagram).
    p.fault = Box::new(|dir, n, _| match (dir, n) {
        (Dir::AtoB, 0) | (Dir::BtoA, 1) => Fault::Drop,
        _ => Fault::Deliver,
    });
    p.connect();
    assert_up(&p);
    // IKE_SA_INIT ×2, IKE_AUTH ×2 (the second answered from b's cache).
    assert_eq!((p.count(Dir::AtoB), p.count(Dir::BtoA)), (4, 3));
    let from_a: Vec<&Transmit> = p
        .log
        .iter()
        .filter(|(d, _)| *d == Dir::AtoB)
        .map(|(_, t)| t)
        .collect();
    assert_eq!(
        from_a[2].data, from_a[3].data,
        "retransmitted IKE_AUTH is the same datagram"
    );
    // First retransmit after 4 s, the second exchange's after another 4 s.
    assert!((p.elapsed() - 8.0).abs() < 1e-6, "{}", p.elapsed());
}

#[test]
fn duplicated_datagrams() {
    let mut p = pair();
    p.fault = Box::new(|_, _, _| Fault::Duplicate);
    p.connect();
    assert_up(&p);
    assert!(failures(&p.a_events).is_empty() && failures(&p.b_events).is_empty());
    // The duplicate IKE_SA_INIT got the cached answer, byte for byte: still one SA on b.
    assert_eq!(p.b.ike_sas().len(), 1);
    let from_b: Vec<&Transmit> = p
        .log
        .iter()
        .filter(|(d, _)| *d == Dir::BtoA)
        .map(|(_, t)| t)
        .collect();
    assert_eq!(from_b.len(), 4);
    assert_eq!(from_b[0], from_b[1]);
    assert_eq!(from_b[2], from_b[3]);
    assert_eq!(p.elapsed(), 0.0);
}

#[test]
fn reordered_datagrams() {
    let mut p = pair();
    // The first datagram in each direction arrives after the next one: a's IKE_SA_INIT
    // behind its own retransmission, b's answer behind the answer to that retransmission.
    p.fault = Box::new(|_, n, _| if n == 0 { Fault::Hold } else { Fault::Deliver });
    p.connect();
    assert_up(&p);
    assert_eq!(p.b.ike_sas().len(), 1);
}

#[test]
fn retransmit_then_give_up() {
    let mut p = pair();
    p.fault = Box::new(|_, _, _| Fault::Drop);
    let id = p.a.initiate(p.now, "net").unwrap();
    assert_eq!(p.a.ike_sas()[0].state, IkeSaState::Connecting);
    p.drive();
    assert_eq!(p.count(Dir::AtoB), 6, "1 + 5 retransmits");
    assert_eq!(
        failures(&p.a_events),
        vec![IkeError::PeerNotResponding { tries: 5 }]
    );
    assert!((p.elapsed() - 165.06).abs() < 0.05, "{}", p.elapsed());
    assert!(p.a.ike_sas().is_empty());
    assert_eq!(p.a.delete_ike_sa(p.now, id), Err(IkeError::UnknownSa(id.0)));
    let error = &failures(&p.a_events)[0];
    assert_eq!(error.to_string(), "peer not responding after 5 retransmits");
}

#[test]
fn custom_retransmit_policy() {
    let cfg = EndpointConfig {
        retransmit: RetransmitPolicy {
            timeout: Duration::from_millis(500),
            base: 2.0,
            tries: 2,
        },
        ..EndpointConfig::default()
    };
    let mut p = Pair::with_config(
        conn(A_IP, Some(B_IP), IKE, ESP),
        conn(B_IP, Some(A_IP), IKE, ESP),
        cfg,
    );
    p.fault = Box::new(|_, _, _| Fault::Drop);
    p.connect();
    assert_eq!(p.count(Dir::AtoB), 3);
    assert!((p.elapsed() - 3.5).abs() < 1e-6, "{}", p.elapsed());
}

#[test]
fn wrong_psk() {
    let a = conn(A_IP, Some(B_IP), IKE, ESP);
    let mut b = conn(B_IP, Some(A_IP), IKE, ESP);
    b.psk = Psks::fixed(b"another password");
    let mut p = Pair::new(a, b);
    p.connect();
    assert_eq!(
        failures(&p.b_events),
        vec![IkeError::PeerNotAuthenticated {
            peer: "@moon.example".into()
        }]
    );
    assert_eq!(
        failures(&p.a_events),
        vec![IkeError::AuthenticationFailed { local_side: false }]
    );
    assert!(established(&p.a_events).is_empty() && established(&p.b_events).is_empty());
    assert!(p.a.ike_sas().is_empty() && p.b.ike_sas().is_empty());
    assert_eq!(
        IkeError::AuthenticationFailed { local_side: false }.notify(),
        Some(crate::wire::NotifyType::AUTHENTICATION_FAILED)
    );
}

#[test]
fn wrong_psk_on_initiator() {
    let mut a = conn(A_IP, Some(B_IP), IKE, ESP);
    a.psk = Psks::fixed(b"typo");
    let mut p = Pair::new(a, conn(B_IP, Some(A_IP), IKE, ESP));
    p.connect();
    assert_eq!(
        failures(&p.a_events),
        vec![IkeError::AuthenticationFailed { local_side: false }]
    );
    assert!(p.b.ike_sas().is_empty());
}

#[test]
fn idr_not_owned_by_responder() {
    let mut a = conn(A_IP, Some(B_IP), IKE, ESP);
    a.remote_id = Some(Identification::fqdn("other.example"));
    let mut p = Pair::new(a, conn(B_IP, Some(A_IP), IKE, ESP));
    p.connect();
    assert_eq!(
        failures(&p.b_events),
        vec![IkeError::PeerNotAuthenticated {
            peer: "@moon.example".into()
        }]
    );
    assert_eq!(
        failures(&p.a_events),
        vec![IkeError::AuthenticationFailed { local_side: false }]
    );
}

#[test]
fn initiator_rejects_responder_auth() {
    let mut p = pair();
    let id = p.a.initiate(p.now, "net").unwrap();
    // IKE_SA_INIT both ways and a's IKE_AUTH; then a changes its expectation of b's identity
    // (as if b had authenticated as someone else).
    for _ in 0..3 {
        assert!(p.step());
    }
    std::sync::Arc::make_mut(&mut p.a.sas.get_mut(&id).unwrap().conn).remote_id =
        Some(Identification::fqdn("evil.example"));
    p.drive();
    assert_eq!(
        failures(&p.a_events),
        vec![IkeError::AuthenticationFailed { local_side: true }]
    );
    // b had established and learns from the best-effort Delete.
    assert_eq!(established(&p.b_events).len(), 1);
    assert!(
        p.b_events
            .iter()
            .any(|e| matches!(e, Event::IkeSaDeleted { by_peer: true, .. }))
    );
    assert!(p.b.ike_sas().is_empty() && p.a.ike_sas().is_empty());
}

#[test]
fn no_common_ike_proposal() {
    let mut p = Pair::new(
        conn(A_IP, Some(B_IP), "aes128-sha256-x25519", ESP),
        conn(B_IP, Some(A_IP), "aes256gcm16-prfsha384-ecp256", ESP),
    );
    p.connect();
    assert_eq!(failures(&p.a_events), vec![IkeError::NoProposalChosen]);
    // b keeps no state: a refusal naming the peer and the conn, no IKE SA failure.
    assert!(failures(&p.b_events).is_empty());
    let [Event::InitRefused { peer, conn, reason }] = p.b_events.as_slice() else {
        panic!("{:?}", p.b_events)
    };
    assert_eq!(peer.ip(), ip(A_IP));
    assert_eq!(conn.as_deref(), Some("net"));
    assert_eq!(*reason, InitRefusal::NoProposal);
    assert!(p.a.ike_sas().is_empty() && p.b.ike_sas().is_empty());
}

#[test]
fn no_common_esp_proposal_keeps_ike_sa() {
    let mut p = Pair::new(
        conn(A_IP, Some(B_IP), IKE, "aes128-sha1"),
        conn(B_IP, Some(A_IP), IKE, "aes256gcm16"),
    );
    p.connect();
    assert_eq!(established(&p.a_events).len(), 1);
    assert_eq!(established(&p.b_events).len(), 1);
    assert_eq!(
        child_failures(&p.a_events),
        vec![IkeError::NoProposalChosen]
    );
    assert_eq!(
        child_failures(&p.b_events),
        vec![IkeError::NoProposalChosen]
    );
    assert!(children(&p.a_events).is_empty());
    assert_eq!(p.a.ike_sas()[0].state, IkeSaState::Established);
    assert!(p.a.ike_sas()[0].children.is_empty());
}

#[test]
fn ts_unacceptable_keeps_ike_sa() {
    let mut a = conn(A_IP, Some(B_IP), IKE, ESP);
    let mut b = conn(B_IP, Some(A_IP), IKE, ESP);
    a.remote_ts = vec![subnet("10.2.0.0", "10.2.255.255")];
    b.local_ts = vec![subnet("10.3.0.0", "10.3.255.255")];
    let mut p = Pair::new(a, b);
    p.connect();
    assert_eq!(child_failures(&p.a_events), vec![IkeError::TsUnacceptable]);
    assert_eq!(child_failures(&p.b_events), vec![IkeError::TsUnacceptable]);
    assert_eq!(p.b.ike_sas()[0].state, IkeSaState::Established);
}

#[test]
fn mode_mismatch_deletes_peer_child() {
    let mut a = conn(A_IP, Some(B_IP), IKE, ESP);
    a.mode = Mode::Transport;
    let mut p = Pair::new(a, conn(B_IP, Some(A_IP), IKE, ESP));
    p.connect();
    assert_eq!(child_failures(&p.a_events), vec![IkeError::ModeMismatch]);
    let b_child = children(&p.b_events);
    assert_eq!(b_child.len(), 1);
    assert_eq!(b_child[0].mode, Mode::Tunnel);
    assert!(p.b_events.iter().any(|e| matches!(
        e,
        Event::ChildSaDeleted { spi_in, .. } if *spi_in == b_child[0].spi_in
    )));
    assert!(p.b.ike_sas()[0].children.is_empty());
}

#[test]
fn spi_allocation_failure_on_responder() {
    let mut p = pair();
    p.b = Endpoint::new(
        EndpointConfig::default(),
        rand::rngs::ChaCha20Rng::seed_from_u64(3),
        Box::new(NoSpis),
    );
    p.b.set_conns(vec![conn(B_IP, Some(A_IP), IKE, ESP)]);
    p.connect();
    assert_eq!(established(&p.a_events).len(), 1);
    assert_eq!(child_failures(&p.b_events).len(), 1);
    assert_eq!(child_failures(&p.a_events).len(), 1);
}

#[test]
fn half_open_timeout_and_limit() {
    let cfg = EndpointConfig {
        max_half_open: 1,
        ..EndpointConfig::default()
    };
    let mut p = Pair::with_config(
        conn(A_IP, Some(B_IP), IKE, ESP),
        conn(B_IP, Some(A_IP), IKE, ESP),
        cfg,
    );
    // Only IKE_SA_INIT requests reach b; nothing comes back.
    p.fault = Box::new(|dir, n, _| {
        if dir == Dir::AtoB && n == 0 {
            Fault::Deliver
        } else {
            Fault::Drop
        }
    });
    p.connect();
    assert_eq!(failures(&p.b_events), vec![IkeError::HalfOpenTimeout]);
    assert_eq!(
        failures(&p.a_events),
        vec![IkeError::PeerNotResponding { tries: 5 }]
    );
    // Limit: a second initiator's IKE_SA_INIT is ignored while one SA is half-open.
    let mut p = Pair::with_config(
        conn(A_IP, Some(B_IP), IKE, ESP),
        conn(B_IP, Some(A_IP), IKE, ESP),
        EndpointConfig {
            max_half_open: 1,
            ..EndpointConfig::default()
        },
    );
    p.fault = Box::new(|dir, _, _| {
        if dir == Dir::AtoB {
            Fault::Deliver
        } else {
            Fault::Drop
        }
    });
    p.a.initiate(p.now, "net").unwrap();
    p.a.initiate(p.now, "net").unwrap();
    p.drive_for(1.0);
    assert_eq!(p.b.ike_sas().len(), 1);
    assert_eq!(p.count(Dir::BtoA), 1);
}

/// A pair whose network drops everything, and a's first IKE_SA_INIT request with the
/// (local, remote) addresses b would receive it on.
fn first_init_request() -> (Pair, Vec<u8>, SocketAddr, SocketAddr) {
    let mut p = pair();
    p.fault = Box::new(|_, _, _| Fault::Drop);
    p.a.initiate(p.now, "net").unwrap();
    p.drive_for(0.0);
    let init = p.log[0].1.data.clone();
    let (l, r) = (p.log[0].1.remote, p.log[0].1.local);
    (p, init, l, r)
}

#[test]
fn garbage_is_ignored() {
    let (mut p, init, l, r) = first_init_request();
    for len in 0..init.len() {
        p.b.handle_datagram(p.now, l, r, &init[..len]);
    }
    for i in 0..init.len() {
        let mut m = init.clone();
        m[i] ^= 0xff;
        p.b.handle_datagram(p.now, l, r, &m);
    }
    p.b.handle_datagram(p.now, l, r, &[0u8; 28]);
    p.b.handle_datagram(p.now, l, r, &[0xffu8; 2000]);
    // Whatever was created is half-open and expires.
    p.now += Duration::from_secs(60);
    p.b.handle_timeout(p.now);
    assert!(p.b.ike_sas().is_empty());
}

#[test]
fn higher_major_version_and_zero_spi() {
    let (mut p, init, l, r) = first_init_request();
    // Version 3.0: dropped without state, answered with INVALID_MAJOR_VERSION in a 2.0 header.
    let mut v3 = init.clone();
    v3[17] = 0x30;
    p.b.handle_datagram(p.now, l, r, &v3);
    let answer = p.b.poll_transmit().expect("INVALID_MAJOR_VERSION");
    assert!(p.b.poll_transmit().is_none());
    let msg = Message::parse(&answer.data).unwrap();
    assert_eq!((msg.header.major, msg.header.minor), (2, 0));
    assert!(msg.header.is_response());
    assert_eq!(msg.header.spi_i, Header::parse(&init).unwrap().spi_i);
    assert!(matches!(
        msg.payloads.as_slice(),
        [Payload::Notify(n)] if n.notify_type == NotifyType::INVALID_MAJOR_VERSION
    ));
    // A response of version 3, or another exchange, gets nothing.
    let mut v3_response = v3.clone();
    v3_response[19] |= Header::FLAG_RESPONSE;
    p.b.handle_datagram(p.now, l, r, &v3_response);
    assert!(p.b.poll_transmit().is_none());
    // SPIi 0 creates no half-open SA and gets no answer.
    let mut zero = init.clone();
    zero[..8].fill(0);
    p.b.handle_datagram(p.now, l, r, &zero);
    assert!(p.b.poll_transmit().is_none());
    assert!(p.b.ike_sas().is_empty());
    // The unchanged request still works.
    p.b.handle_datagram(p.now, l, r, &init);
    assert!(p.b.poll_transmit().is_some());
    assert_eq!(p.b.ike_sas().len(), 1);
}

#[test]
fn initiate_errors() {
    let mut p = pair();
    assert_eq!(
        p.a.initiate(p.now, "nope"),
        Err(IkeError::UnknownConn("nope".into()))
    );
    let mut c = conn(B_IP, None, IKE, ESP);
    c.name = "rw".into();
    p.b.set_conns(vec![c]);
    assert_eq!(
        p.b.initiate(p.now, "rw"),
        Err(IkeError::CannotInitiate("rw".into()))
    );
    let mut c = conn(A_IP, Some(B_IP), IKE, ESP);
    c.esp_proposals.clear();
    p.a.set_conns(vec![c]);
    assert_eq!(
        p.a.initiate(p.now, "net"),
        Err(IkeError::NoProposalsConfigured("net".into()))
    );
}

#[test]
fn responder_cookie_challenge() {
    let cfg = EndpointConfig {
        cookie_threshold: 0,
        ..EndpointConfig::default()
    };
    let mut p = Pair::with_config(
        conn(A_IP, Some(B_IP), IKE, ESP),
        conn(B_IP, None, IKE, ESP),
        cfg,
    );
    p.connect();
    assert_up(&p);
    assert_eq!((p.count(Dir::AtoB), p.count(Dir::BtoA)), (3, 3));
    let challenge = crate::wire::Message::parse(&p.log[1].1.data).unwrap();
    assert_eq!(challenge.header.spi_r, [0; 8]);
    let [crate::wire::Payload::Notify(n)] = challenge.payloads.as_slice() else {
        panic!("{challenge:?}")
    };
    assert_eq!(n.notify_type, crate::wire::NotifyType::COOKIE);
    // The cookie is bound to the initiator's address: the same request from elsewhere is
    // challenged again instead of creating state.
    let with_cookie = p.log[2].1.clone();
    assert_eq!(p.log[2].0, Dir::AtoB);
    let elsewhere: SocketAddr = "198.51.100.3:500".parse().unwrap();
    p.b.handle_datagram(p.now, with_cookie.remote, elsewhere, &with_cookie.data);
    let again = p.b.poll_transmit().unwrap();
    let m = crate::wire::Message::parse(&again.data).unwrap();
    assert_eq!(m.header.spi_r, [0; 8]);
    assert_eq!(p.b.ike_sas().len(), 1);
}

#[test]
fn random_faults_keep_both_sides_consistent() {
    use rand::Rng;
    let (mut up, mut failed) = (0, 0);
    for seed in 0..150 {
        let mut p = pair();
        let mut rng = rand::rngs::ChaCha20Rng::seed_from_u64(seed);
        p.fault = Box::new(move |_, _, _| match rng.next_u32() % 10 {
            0..=2 => Fault::Drop,
            3 => Fault::Duplicate,
            4 => Fault::Hold,
            _ => Fault::Deliver,
        });
        p.connect();
        let (ea, eb) = (
            established(&p.a_events).len(),
            established(&p.b_events).len(),
        );
        assert!(ea <= 1 && eb <= 1, "seed {seed}");
        // b never has a half-open SA left over, a never an unfinished one.
        assert!(
            p.b.ike_sas()
                .iter()
                .all(|s| s.state == IkeSaState::Established)
        );
        if ea == 1 {
            assert_eq!(eb, 1, "seed {seed}: a is up only after b");
            assert_up(&p);
            up += 1;
        } else {
            assert_eq!(
                failures(&p.a_events),
                vec![IkeError::PeerNotResponding { tries: 5 }],
                "seed {seed}"
            );
            assert!(p.a.ike_sas().is_empty());
            failed += 1;
        }
    }
    assert!(up > 100, "{up} up, {failed} failed");
}

/// The exchange type octet of a datagram.
fn exchange_of(t: &Transmit) -> Option<u8> {
    t.data.get(18).copied()
}

#[test]
fn one_address_answering_cookies_cannot_lock_out_another() {
    let cfg = EndpointConfig {
        cookie_threshold: 2,
        max_half_open: 8,
        ..EndpointConfig::default()
    };
    // b answers anyone (right=%any).
    let mut p = Pair::with_config(
        conn(A_IP, Some(B_IP), IKE, ESP),
        conn(B_IP, None, IKE, ESP),
        cfg.clone(),
    );
    // a floods IKE_SA_INIT and answers every COOKIE, but never sends IKE_AUTH: its SAs on b
    // stay half-open.
    let ike_auth = ExchangeType::IKE_AUTH.0;
    p.fault = Box::new(move |dir, _, t| {
        if dir == Dir::AtoB && exchange_of(t) == Some(ike_auth) {
            Fault::Drop
        } else {
            Fault::Deliver
        }
    });
    for _ in 0..40 {
        p.a.initiate(p.now, "net").unwrap();
    }
    p.drive_for(1.0);
    let stats = p.b.responder_stats();
    assert_eq!(stats.half_open, 5, "{stats:?}");
    assert!(stats.cookies_sent >= 35, "{stats:?}");
    assert_eq!(stats.dropped_per_ip, 35, "{stats:?}");
    assert_eq!(stats.dropped_total, 0, "{stats:?}");

    // Another peer still gets in, after its own COOKIE round.
    let c_ip = "192.0.2.3";
    let mut c = Endpoint::new(
        cfg,
        ChaCha20Rng::seed_from_u64(3),
        Box::new(SeqSpis(0xc000_0000)),
    );
    c.set_conns(vec![conn(c_ip, Some(B_IP), IKE, ESP)]);
    c.initiate(p.now, "net").unwrap();
    let c_addr = SocketAddr::new(ip(c_ip), 500);
    let mut established = false;
    for _ in 0..10 {
        while let Some(t) = c.poll_transmit() {
            p.b.handle_datagram(p.now, t.remote, t.local, &t.data);
        }
        while let Some(t) = p.b.poll_transmit() {
            if t.remote == c_addr {
                c.handle_datagram(p.now, t.remote, t.local, &t.data);
            }
        }
        while let Some(e) = c.poll_event() {
            established |= matches!(e, Event::IkeSaEstablished { .. });
        }
    }
    assert!(established, "{:?}", p.b.responder_stats());
}

#[test]
fn cached_response_only_for_a_true_retransmission() {
    let mut p = pair();
    p.connect();
    let (_, auth) = p
        .log
        .iter()
        .find(|(d, t)| *d == Dir::AtoB && exchange_of(t) == Some(ExchangeType::IKE_AUTH.0))
        .cloned()
        .unwrap();
    let (local, remote) = (auth.remote, auth.local);
    // The same bytes from the same source: answered again from the cache.
    p.b.handle_datagram(p.now, local, remote, &auth.data);
    assert!(p.b.poll_transmit().is_some());
    // The same bytes from elsewhere: not reflected there.
    let elsewhere = SocketAddr::new(ip("203.0.113.9"), 500);
    p.b.handle_datagram(p.now, local, elsewhere, &auth.data);
    assert!(p.b.poll_transmit().is_none());
    // Or from the peer's address but another port (the digest covers address and port).
    let other_port = SocketAddr::new(remote.ip(), remote.port().wrapping_add(1));
    p.b.handle_datagram(p.now, local, other_port, &auth.data);
    assert!(p.b.poll_transmit().is_none());
    // A bare 28-byte header with the SA's SPIs and message ID, from the peer's own address.
    let mut forged = auth.data[..Header::LEN].to_vec();
    forged[16] = 0;
    forged[24..28].copy_from_slice(&28u32.to_be_bytes());
    p.b.handle_datagram(p.now, local, remote, &forged);
    assert!(p.b.poll_transmit().is_none());
    assert_eq!(p.b.responder_stats().replays_refused, 3);
    assert_eq!(p.b.ike_sas().len(), 1);
    // Still answered from the cache after all that (the print is kept, not the request).
    p.b.handle_datagram(p.now, local, remote, &auth.data);
    assert!(p.b.poll_transmit().is_some());
}
