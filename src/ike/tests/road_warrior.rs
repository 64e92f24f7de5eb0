//! A gateway many road warriors reach: keys looked up by the client's identity at IKE_AUTH,
//! the gateway's identity from its address, wildcard identities.

use std::sync::Arc;

use super::*;
use crate::config::secrets::parse_secrets_str;
use crate::config::source::MemResolver;

const IKE: &str = "aes128gcm16-prfsha256-x25519";
const ESP: &str = "aes128gcm16";
pub(super) const C_IP: &str = "192.0.2.3";

fn secrets(text: &str) -> Psks {
    let (s, d) = parse_secrets_str("ipsec.secrets", text, None, &MemResolver::default());
    assert!(!d.has_errors(), "{d:?}");
    Psks::new(Arc::new(s))
}

/// The gateway: `left=%any` without leftid (its ID is where the request arrived),
/// `right=%any`, keys from `table`.
fn gateway(table: &str) -> ConnSpec {
    let mut c = conn(B_IP, None, IKE, ESP);
    c.name = "rw".into();
    c.local_addr = None;
    c.local_id = None;
    c.remote_id = None;
    c.psk = secrets(table);
    c
}

/// A client at `addr` with identity `id` and one key, expecting the gateway's address as ID.
fn client(addr: &str, id: Identification, key: &[u8]) -> ConnSpec {
    let mut c = conn(addr, Some(B_IP), IKE, ESP);
    c.local_id = Some(id);
    c.remote_id = Some(Identification::from_ip(ip(B_IP)));
    c.psk = Psks::fixed(key);
    c
}

fn moon() -> Identification {
    Identification::fqdn("moon.example")
}

fn established_conns(ev: &[Event]) -> Vec<(String, Identification, Identification)> {
    ev.iter()
        .filter_map(|e| match e {
            Event::IkeSaEstablished {
                conn,
                local_id,
                remote_id,
                ..
            } => Some((conn.clone(), local_id.clone(), remote_id.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn gateway_ranks_keys_both_ids_then_peer_id_then_any() {
    let table = "%any : PSK \"fallback\"\n@moon.example : PSK \"moon-only\"\n192.0.2.2 @moon.example : PSK \"both-ids\"\n";
    // Each client connects with the key it should be given; any other ranking fails AUTH.
    for (table, key) in [
        (table, &b"both-ids"[..]),
        (
            "%any : PSK \"fallback\"\n@moon.example : PSK \"moon-only\"\n",
            b"moon-only",
        ),
        (
            "%any : PSK \"fallback\"\n@sun.example : PSK \"sun\"\n",
            b"fallback",
        ),
    ] {
        let mut p = Pair::new(client(A_IP, moon(), key), gateway(table));
        p.connect();
        assert_up(&p);
        let gw_id = Identification::from_ip(ip(B_IP));
        assert_eq!(
            established_conns(&p.b_events),
            vec![("rw".to_string(), gw_id.clone(), moon())],
            "{table}"
        );
        assert_eq!(established_conns(&p.a_events)[0].2, gw_id);
    }
}

#[test]
fn client_without_a_key_is_refused_by_name_not_given_another_key() {
    let table = "@carol.example : PSK \"carol\"\n@dave.example : PSK \"dave\"\n";
    let mut p = Pair::new(client(A_IP, moon(), b"carol"), gateway(table));
    p.connect();
    assert_eq!(
        failures(&p.b_events),
        vec![IkeError::NoPsk {
            local: "192.0.2.2".into(),
            peer: "@moon.example".into()
        }]
    );
    assert_eq!(
        failures(&p.a_events),
        vec![IkeError::AuthenticationFailed { local_side: false }]
    );
    assert!(p.b.ike_sas().is_empty());
}

/// Delivers datagrams between a third endpoint `c` and the pair's responder `b` (and b's
/// answers to `a`) until nothing is left.
pub(super) fn pump_third(p: &mut Pair, c: &mut Endpoint<ChaCha20Rng>) -> Vec<Event> {
    let c_addr = ip(C_IP);
    let mut c_events = vec![];
    for _ in 0..100 {
        let mut moved = false;
        while let Some(t) = c.poll_transmit() {
            p.b.handle_datagram(p.now, t.remote, t.local, &t.data);
            moved = true;
        }
        while let Some(t) = p.b.poll_transmit() {
            if t.remote.ip() == c_addr {
                c.handle_datagram(p.now, t.remote, t.local, &t.data);
            } else {
                p.a.handle_datagram(p.now, t.remote, t.local, &t.data);
            }
            moved = true;
        }
        while let Some(e) = p.b.poll_event() {
            p.b_events.push(e);
        }
        c_events.extend(std::iter::from_fn(|| c.poll_event()));
        if !moved {
            return c_events;
        }
    }
    panic!("third endpoint did not settle");
}

#[test]
fn two_clients_with_their_own_keys_and_a_wrong_key_refused_while_others_stay_up() {
    let table = "@moon.example : PSK \"moon\"\n@carol.example : PSK \"carol\"\n";
    let mut p = Pair::new(client(A_IP, moon(), b"moon"), gateway(table));
    p.connect();
    assert_up(&p);
    let carol = Identification::fqdn("carol.example");
    let mut c = Endpoint::new(
        EndpointConfig::default(),
        ChaCha20Rng::seed_from_u64(3),
        Box::new(SeqSpis(0xc000_0000)),
    );
    // Carol first with a wrong key: refused, moon's SA untouched.
    c.set_conns(vec![client(C_IP, carol.clone(), b"not carol's")]);
    c.initiate(p.now, "net").unwrap();
    let ev = pump_third(&mut p, &mut c);
    assert_eq!(
        failures(&ev),
        vec![IkeError::AuthenticationFailed { local_side: false }]
    );
    assert_eq!(
        failures(&p.b_events),
        vec![IkeError::PeerNotAuthenticated {
            peer: "@carol.example".into()
        }]
    );
    let up = |p: &Pair| {
        p.b.ike_sas()
            .into_iter()
            .filter(|s| s.state == IkeSaState::Established)
            .map(|s| s.remote_id)
            .collect::<Vec<_>>()
    };
    assert_eq!(up(&p), vec![Some(moon())]);
    // Then with her key: both clients up at once, each with its own IKE SA.
    c.set_conns(vec![client(C_IP, carol.clone(), b"carol")]);
    c.initiate(p.now, "net").unwrap();
    let ev = pump_third(&mut p, &mut c);
    assert_eq!(established(&ev).len(), 1, "{ev:?}");
    assert_eq!(children(&ev).len(), 1);
    let ids = up(&p);
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&Some(carol)) && ids.contains(&Some(moon())));
}

#[test]
fn wildcard_remote_id_is_not_sent_as_idr_and_matches_the_responder() {
    let mut a = conn(A_IP, Some(B_IP), IKE, ESP);
    a.remote_id = Some(Identification::fqdn("*.example"));
    // b owns sun.example: had a sent "*.example" as IDr, b would refuse it.
    let mut p = Pair::new(a.clone(), conn(B_IP, Some(A_IP), IKE, ESP));
    p.connect();
    assert_up(&p);
    assert_eq!(
        established_conns(&p.a_events)[0].2,
        Identification::fqdn("sun.example")
    );
    // A wildcard the responder's ID does not match: the initiator refuses it.
    a.remote_id = Some(Identification::fqdn("*.example.org"));
    let mut p = Pair::new(a, conn(B_IP, Some(A_IP), IKE, ESP));
    p.connect();
    assert_eq!(
        failures(&p.a_events),
        vec![IkeError::AuthenticationFailed { local_side: true }]
    );
}

#[test]
fn gateway_prefers_a_wildcard_conn_over_any_and_refuses_a_non_matching_id() {
    let mut wild = gateway("%any : PSK \"k\"\n");
    wild.name = "staff".into();
    wild.remote_id = Some(Identification::rfc822("*@example.org"));
    let mut exact = wild.clone();
    exact.name = "boss".into();
    exact.remote_id = Some(Identification::rfc822("boss@example.org"));
    let any = gateway("%any : PSK \"k\"\n");
    for (id, want) in [
        ("carol@example.org", "staff"),
        ("boss@example.org", "boss"),
        ("eve@example.com", "rw"),
    ] {
        let mut p = Pair::new(client(A_IP, Identification::rfc822(id), b"k"), any.clone());
        p.b.set_conns(vec![any.clone(), wild.clone(), exact.clone()]);
        p.connect();
        assert_up(&p);
        assert_eq!(established_conns(&p.b_events)[0].0, want, "{id}");
    }
    // Without the %any conn, a name outside the wildcard finds no conn.
    let mut p = Pair::new(
        client(A_IP, Identification::rfc822("eve@example.com"), b"k"),
        wild.clone(),
    );
    p.connect();
    assert_eq!(
        failures(&p.b_events),
        vec![IkeError::PeerNotAuthenticated {
            peer: "eve@example.com".into()
        }]
    );
}
