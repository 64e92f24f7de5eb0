//! Successful handshakes: every suite, transport mode, narrowing, INVALID_KE retry, NAT.

use super::*;

const IKE_SUITES: [&str; 4] = [
    "aes128gcm16-prfsha256-x25519",
    "aes256gcm16-prfsha384-ecp256",
    "aes128-sha256-x25519",
    "aes256-sha256-modp2048",
];
const ESP_SUITES: [&str; 5] = [
    "aes128gcm16",
    "aes256gcm16",
    "aes128-sha256",
    "aes256-sha256",
    "aes128-sha1",
];

/// (encr key incl. salt, integ key) lengths per ESP suite.
fn esp_key_lens(esp: &str) -> (usize, usize) {
    match esp {
        "aes128gcm16" => (20, 0),
        "aes256gcm16" => (36, 0),
        "aes128-sha256" => (16, 32),
        "aes256-sha256" => (32, 32),
        "aes128-sha1" => (16, 20),
        _ => unreachable!(),
    }
}

fn handshake(ike: &str, esp: &str) {
    let mut p = Pair::new(
        conn(A_IP, Some(B_IP), ike, esp),
        conn(B_IP, Some(A_IP), ike, esp),
    );
    let id = p.connect();
    let (ca, cb) = assert_up(&p);
    let (el, il) = esp_key_lens(esp);
    assert_eq!(
        (ca.keys_in.encr.len(), ca.keys_in.integ.len()),
        (el, il),
        "{esp}"
    );
    assert_eq!(ca.mode, Mode::Tunnel);
    assert_eq!(ca.local_ts, vec![super::super::ts::host(ip(A_IP))]);
    assert_eq!(cb.ike_sa, p.b.ike_sas()[0].id);
    assert_eq!(ca.ike_sa, id);
    let Event::IkeSaEstablished {
        proposal,
        nat_detected,
        role,
        remote_id,
        ..
    } = established(&p.a_events)[0]
    else {
        unreachable!()
    };
    assert_eq!(*role, Role::Initiator);
    assert!(!nat_detected);
    assert_eq!(*remote_id, Identification::fqdn("sun.example"));
    let s = ike_prop(ike);
    let mut want = vec![s.encr[0].name().to_string()];
    if !s.encr[0].is_aead() {
        want.push(s.integ[0].name().to_string());
    }
    want.push(s.prf[0].name().to_string());
    want.push(s.dh[0].name().to_string());
    assert_eq!(*proposal, want.join("/"));
    // Exactly one exchange each of IKE_SA_INIT and IKE_AUTH; no retransmission.
    assert_eq!((p.count(Dir::AtoB), p.count(Dir::BtoA)), (2, 2));
    let st = p.a.ike_sas();
    assert_eq!(st.len(), 1);
    assert_eq!(st[0].state, IkeSaState::Established);
    assert_eq!(st[0].children.len(), 1);
    assert_eq!(p.b.ike_sas()[0].state, IkeSaState::Established);
    assert_eq!(p.a.poll_timeout(), None);
    assert_eq!(p.b.poll_timeout(), None);
}

#[test]
fn every_ike_suite() {
    for (i, ike) in IKE_SUITES.iter().enumerate() {
        handshake(ike, ESP_SUITES[i % ESP_SUITES.len()]);
    }
}

#[test]
fn every_esp_suite() {
    for esp in ESP_SUITES {
        handshake(IKE_SUITES[0], esp);
    }
}

#[test]
fn responder_picks_initiators_first_acceptable_proposal() {
    let mut p = Pair::new(
        conn(
            A_IP,
            Some(B_IP),
            "aes256gcm16-prfsha384-ecp256,aes128-sha256-x25519",
            "aes256gcm16,aes128-sha256",
        ),
        conn(
            B_IP,
            Some(A_IP),
            "aes128-sha256-x25519,aes256gcm16-prfsha384-ecp256",
            "aes128-sha256,aes256gcm16",
        ),
    );
    p.connect();
    let (ca, _) = assert_up(&p);
    assert_eq!(ca.encr, Some(Encr::AesGcm16 { key_bits: 256 }));
    let prop = p.b.ike_sas()[0].proposal.clone().unwrap();
    assert!(prop.contains(DhGroup::Ecp256.name()) && prop.contains(Prf::HmacSha384.name()));
}

#[test]
fn transport_mode() {
    let mut a = conn(A_IP, Some(B_IP), IKE_SUITES[0], "aes128gcm16");
    let mut b = conn(B_IP, Some(A_IP), IKE_SUITES[0], "aes128gcm16");
    a.mode = Mode::Transport;
    b.mode = Mode::Transport;
    let mut p = Pair::new(a, b);
    p.connect();
    let (ca, cb) = assert_up(&p);
    assert_eq!((ca.mode, cb.mode), (Mode::Transport, Mode::Transport));
    assert_eq!(ca.remote_ts, vec![super::super::ts::host(ip(B_IP))]);
}

#[test]
fn invalid_ke_retry_with_requested_group() {
    let mut p = Pair::new(
        conn(
            A_IP,
            Some(B_IP),
            "aes128-sha256-x25519-ecp256",
            "aes128-sha256",
        ),
        conn(B_IP, Some(A_IP), "aes128-sha256-ecp256", "aes128-sha256"),
    );
    p.connect();
    assert_up(&p);
    // IKE_SA_INIT twice (x25519 refused, then ecp256), IKE_AUTH once.
    assert_eq!((p.count(Dir::AtoB), p.count(Dir::BtoA)), (3, 3));
    assert!(
        p.a.ike_sas()[0]
            .proposal
            .as_ref()
            .unwrap()
            .ends_with(DhGroup::Ecp256.name())
    );
    // Same SPIi kept across the retry.
    let spi_i = |t: &Transmit| t.data[..8].to_vec();
    assert_eq!(spi_i(&p.log[0].1), spi_i(&p.log[2].1));
    assert!(failures(&p.a_events).is_empty());
}

#[test]
fn ts_narrowing() {
    let mut a = conn(A_IP, Some(B_IP), IKE_SUITES[0], "aes128gcm16");
    let mut b = conn(B_IP, Some(A_IP), IKE_SUITES[0], "aes128gcm16");
    a.local_ts = vec![subnet("10.1.0.0", "10.1.255.255")];
    a.remote_ts = vec![subnet("10.0.0.0", "10.255.255.255")];
    b.local_ts = vec![subnet("10.2.0.0", "10.2.255.255")];
    b.remote_ts = vec![subnet("10.1.0.0", "10.1.0.255")];
    let mut p = Pair::new(a, b);
    p.connect();
    let (ca, _) = assert_up(&p);
    assert_eq!(ca.local_ts, vec![subnet("10.1.0.0", "10.1.0.255")]);
    assert_eq!(ca.remote_ts, vec![subnet("10.2.0.0", "10.2.255.255")]);
}

#[test]
fn nat_detected_on_both_sides() {
    let a = conn(A_IP, Some(B_IP), IKE_SUITES[0], "aes128gcm16");
    let b = conn(B_IP, None, IKE_SUITES[0], "aes128gcm16");
    let mut p = Pair::new(a, b);
    let real: SocketAddr = format!("{A_IP}:500").parse().unwrap();
    let public: SocketAddr = "198.51.100.9:1024".parse().unwrap();
    p.nat = Some((real, public));
    p.connect();
    let (ca, cb) = assert_up(&p);
    // b installs towards the translated address; a towards b.
    assert_eq!((ca.local, ca.remote), (ip(A_IP), ip(B_IP)));
    assert_eq!((cb.local, cb.remote), (ip(B_IP), public.ip()));
    for ev in [&p.a_events, &p.b_events] {
        let Event::IkeSaEstablished { nat_detected, .. } = established(ev)[0] else {
            unreachable!()
        };
        assert!(nat_detected);
    }
    // a floated to 4500, which the NAT maps to public + 4000.
    assert_eq!(p.b.ike_sas()[0].remote, SocketAddr::new(public.ip(), 5024));
}

#[test]
fn responder_follows_peer_to_port_4500() {
    let mut p = Pair::new(
        conn(A_IP, Some(B_IP), IKE_SUITES[0], "aes128gcm16"),
        conn(B_IP, Some(A_IP), IKE_SUITES[0], "aes128gcm16"),
    );
    let a500: SocketAddr = format!("{A_IP}:500").parse().unwrap();
    let a4500: SocketAddr = format!("{A_IP}:4500").parse().unwrap();
    let b4500: SocketAddr = format!("{B_IP}:4500").parse().unwrap();
    let id = p.a.initiate(p.now, "net").unwrap();
    p.drive();
    assert_up(&p);
    // Move the IKE SA of `a` to 4500 by hand (NAT-T floating is the daemon's later job) and
    // check `b` answers a liveness check on 4500 and then uses 4500 for its own requests.
    let sa = p.a.sas.get_mut(&id).unwrap();
    sa.local = a4500;
    sa.remote = b4500;
    p.a.check_liveness(p.now, id).unwrap();
    p.drive();
    let last = &p.log.last().unwrap();
    assert_eq!(last.0, Dir::BtoA);
    assert_eq!((last.1.local, last.1.remote), (b4500, a4500));
    let st = &p.b.ike_sas()[0];
    assert_eq!((st.local, st.remote), (b4500, a4500));
    assert_ne!(a500, a4500);
}

#[test]
fn responder_with_any_remote_and_no_idr() {
    let mut a = conn(A_IP, Some(B_IP), IKE_SUITES[2], "aes128-sha256");
    a.remote_id = None;
    let mut b = conn(B_IP, None, IKE_SUITES[2], "aes128-sha256");
    b.remote_id = None;
    let mut p = Pair::new(a, b);
    p.connect();
    assert_up(&p);
    assert_eq!(
        p.a.ike_sas()[0].remote_id,
        Some(Identification::fqdn("sun.example"))
    );
}

#[test]
fn invalid_ke_retry_survives_duplicates() {
    let mut p = Pair::new(
        conn(
            A_IP,
            Some(B_IP),
            "aes128-sha256-x25519-ecp256",
            "aes128-sha256",
        ),
        conn(B_IP, Some(A_IP), "aes128-sha256-ecp256", "aes128-sha256"),
    );
    p.fault = Box::new(|_, _, _| Fault::Duplicate);
    p.connect();
    assert_up(&p);
    assert_eq!(p.elapsed(), 0.0);
}

#[test]
fn invalid_ke_for_a_group_never_offered_fails() {
    use crate::wire::{Header, Message, NotifyType};
    let mut p = Pair::new(
        conn(A_IP, Some(B_IP), "aes128-sha256-x25519", "aes128-sha256"),
        conn(B_IP, Some(A_IP), "aes128-sha256-x25519", "aes128-sha256"),
    );
    p.a.initiate(p.now, "net").unwrap();
    let t = p.a.poll_transmit().unwrap();
    let mut header = Message::parse(&t.data).unwrap().header;
    header.flags = Header::FLAG_RESPONSE;
    let modp2048 = DhGroup::Modp2048.id().to_be_bytes().to_vec();
    let refusal = Message {
        header,
        payloads: vec![super::super::payloads::notify(
            NotifyType::INVALID_KE_PAYLOAD,
            modp2048,
        )],
    }
    .encode();
    p.a.handle_datagram(p.now, t.local, t.remote, &refusal);
    p.collect();
    assert_eq!(
        failures(&p.a_events),
        vec![IkeError::InvalidKePayload {
            group: DhGroup::Modp2048.id()
        }]
    );
    assert!(p.a.ike_sas().is_empty());
}

#[test]
fn ipv6_handshake() {
    let (a6, b6) = ("2001:db8::1", "2001:db8::2");
    let v6 = |c: &mut ConnSpec, l: &str, r: &str| {
        c.local_addr = Some(ip(l));
        c.remote_addr = Some(ip(r));
    };
    let mut a = conn(A_IP, Some(B_IP), IKE_SUITES[1], "aes256gcm16");
    let mut b = conn(B_IP, Some(A_IP), IKE_SUITES[1], "aes256gcm16");
    v6(&mut a, a6, b6);
    v6(&mut b, b6, a6);
    let mut p = Pair::new(a, b);
    p.connect();
    let (ca, _) = assert_up(&p);
    assert_eq!(ca.local_ts, vec![super::super::ts::host(ip(a6))]);
    assert_eq!(ca.remote, ip(b6));
}

/// The SK keys of an established IKE SA, as its `IkeSaEstablished` event carries them.
fn exported(events: &[Event]) -> Option<IkeSaExportedKeys> {
    match established(events).first() {
        Some(Event::IkeSaEstablished { exported_keys, .. }) => exported_keys.as_deref().cloned(),
        _ => unreachable!("no IkeSaEstablished event"),
    }
}

#[test]
fn keys_are_exported_only_when_configured() {
    let (ike, esp) = ("aes128-sha256-x25519", "aes128-sha256");
    let mut p = Pair::new(
        conn(A_IP, Some(B_IP), ike, esp),
        conn(B_IP, Some(A_IP), ike, esp),
    );
    p.connect();
    assert_up(&p);
    assert_eq!(exported(&p.a_events), None);
    assert_eq!(exported(&p.b_events), None);

    let cfg = EndpointConfig {
        export_keys: true,
        ..EndpointConfig::default()
    };
    for (ike, esp, e_len, a_len) in [
        ("aes128-sha256-x25519", "aes128-sha256", 16, 32),
        ("aes256gcm16-prfsha384-ecp256", "aes256gcm16", 36, 0),
    ] {
        let mut p = Pair::with_config(
            conn(A_IP, Some(B_IP), ike, esp),
            conn(B_IP, Some(A_IP), ike, esp),
            cfg.clone(),
        );
        p.connect();
        assert_up(&p);
        let a = exported(&p.a_events).expect("initiator exports its keys");
        let b = exported(&p.b_events).expect("responder exports its keys");
        // Both ends derived the same keys (SK_ei/SK_ai are the initiator's on both sides).
        assert!(a == b, "{ike}");
        assert_eq!((a.sk_ei.len(), a.sk_ar.len()), (e_len, a_len), "{ike}");
        assert_ne!(a.sk_ei, a.sk_er);
        assert_eq!(a.encr, ike_prop(ike).encr[0]);
    }
}

/// A responder with several conns to one peer answers each request with the conn that can
/// give the CHILD_SA asked for, not simply the first that authenticates the peer.
#[test]
fn responder_picks_the_conn_that_fits_the_child_request() {
    let named = |name: &str, esp: &str| {
        let mut c = conn(B_IP, Some(A_IP), IKE_SUITES[0], esp);
        c.name = name.into();
        c
    };
    // Selectors decide: host-to-host transport first, then net-to-net.
    let mut host = named("host", "aes128gcm16");
    host.mode = Mode::Transport;
    let mut net = named("net", "aes128gcm16");
    net.local_ts = vec![subnet("10.2.0.0", "10.2.0.255")];
    net.remote_ts = vec![subnet("10.1.0.0", "10.1.0.255")];
    let mut a = conn(A_IP, Some(B_IP), IKE_SUITES[0], "aes128gcm16");
    a.local_ts = vec![subnet("10.1.0.0", "10.1.0.255")];
    a.remote_ts = vec![subnet("10.2.0.0", "10.2.0.255")];
    let mut p = Pair::new(a, host.clone());
    p.b.set_conns(vec![host, net]);
    p.connect();
    let (_, cb) = assert_up(&p);
    assert_eq!(cb.conn, "net");
    assert_eq!(cb.local_ts, vec![subnet("10.2.0.0", "10.2.0.255")]);

    // ESP proposals decide: the same selectors, AES-CBC first, then AES-GCM.
    let cbc = named("cbc", "aes128-sha1");
    let gcm = named("gcm", "aes128gcm16");
    let mut p = Pair::new(
        conn(A_IP, Some(B_IP), IKE_SUITES[0], "aes128gcm16"),
        cbc.clone(),
    );
    p.b.set_conns(vec![cbc, gcm]);
    p.connect();
    let (_, cb) = assert_up(&p);
    assert_eq!(cb.conn, "gcm");

    // No conn fits: the first that authenticates the peer answers, with the error.
    let mut p = Pair::new(
        conn(A_IP, Some(B_IP), IKE_SUITES[0], "aes256gcm16"),
        named("cbc", "aes128-sha1"),
    );
    p.connect();
    assert_eq!(established(&p.b_events).len(), 1);
    assert!(children(&p.b_events).is_empty());
    assert_eq!(
        child_failures(&p.b_events),
        vec![IkeError::NoProposalChosen]
    );
}

/// A [`DhOffload`] that computes each shared secret only when the engine collects it (or
/// refuses every peer value), counting the collections.
struct Deferred {
    collected: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    refuse: bool,
}

struct Later(DhPrivate, Vec<u8>, Deferred);

impl Agreement for Later {
    fn wait(self: Box<Self>) -> Result<zeroize::Zeroizing<Vec<u8>>, crate::crypto::CryptoError> {
        let Later(dh, peer, d) = *self;
        d.collected
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if d.refuse {
            return dh.agree(&[0; 32]);
        }
        dh.agree(&peer)
    }
}

impl DhOffload for Deferred {
    fn key_pair(&mut self, _: DhGroup) -> Option<DhPrivate> {
        None
    }

    fn agree_later(&mut self, dh: DhPrivate, peer: Vec<u8>) -> Box<dyn Agreement> {
        let d = Deferred {
            collected: self.collected.clone(),
            refuse: self.refuse,
        };
        Box::new(Later(dh, peer, d))
    }
}

fn deferred_pair(
    ike: &str,
    refuse: bool,
) -> (Pair, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let mut p = Pair::new(
        conn(A_IP, Some(B_IP), ike, "aes128gcm16"),
        conn(B_IP, Some(A_IP), ike, "aes128gcm16"),
    );
    let collected = std::sync::Arc::default();
    p.b.set_dh_offload(Box::new(Deferred {
        collected: std::sync::Arc::clone(&collected),
        refuse,
    }));
    p.a.initiate(p.now, "net").unwrap();
    assert!(p.step(), "IKE_SA_INIT request");
    assert!(p.step(), "IKE_SA_INIT response");
    (p, collected)
}

#[test]
fn an_offloaded_shared_secret_is_collected_when_ike_auth_arrives() {
    use std::sync::atomic::Ordering::SeqCst;
    for ike in IKE_SUITES {
        let (mut p, collected) = deferred_pair(ike, false);
        // Answered without the shared secret; the half-open SA shows its proposal.
        assert_eq!(collected.load(SeqCst), 0, "{ike}");
        assert!(p.b.ike_sas()[0].proposal.is_some(), "{ike}");
        p.drive();
        assert_eq!(collected.load(SeqCst), 1, "{ike}");
        assert_up(&p);
    }
}

#[test]
fn a_peer_value_refused_by_the_offload_fails_the_half_open_sa_at_ike_auth() {
    let (mut p, collected) = deferred_pair(IKE_SUITES[0], true);
    p.drive();
    assert_eq!(collected.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(
        matches!(
            failures(&p.b_events)[..],
            [IkeError::Crypto(
                crate::crypto::CryptoError::InvalidPeerPublicValue { .. }
            )]
        ),
        "{:?}",
        failures(&p.b_events)
    );
    assert!(p.b.ike_sas().is_empty());
    assert!(established(&p.a_events).is_empty());
}

#[test]
fn a_half_open_sa_timing_out_drops_its_offloaded_shared_secret_uncollected() {
    let (mut p, collected) = deferred_pair(IKE_SUITES[0], false);
    p.fault = Box::new(|dir, _, _| match dir {
        Dir::AtoB => Fault::Drop,
        Dir::BtoA => Fault::Deliver,
    });
    p.drive();
    assert_eq!(collected.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(failures(&p.b_events), vec![IkeError::HalfOpenTimeout]);
    assert!(p.b.ike_sas().is_empty());
}
