//! Virtual IPs: a gateway with a `rightsourceip` pool leases each client identity an address
//! through the configuration payload (RFC 7296 §3.15) and narrows its selector to it.

use std::net::Ipv4Addr;

use super::road_warrior::{C_IP, pump_third};
use super::*;

const IKE: &str = "aes128gcm16-prfsha256-x25519";
const ESP: &str = "aes128gcm16";

/// The gateway: `right=%any`, `rightsourceip=pool`, one key for everyone.
fn gateway(pool: &str) -> ConnSpec {
    let mut c = conn(B_IP, None, IKE, ESP);
    c.name = "rw".into();
    c.local_id = None;
    c.remote_id = None;
    c.pools = vec![pool.parse().unwrap()];
    c
}

/// A client at `addr` with identity `id` asking for an IPv4 address (`leftsourceip=%config`).
fn client(addr: &str, id: &str) -> ConnSpec {
    let mut c = conn(addr, Some(B_IP), IKE, ESP);
    c.local_id = Some(Identification::fqdn(id));
    c.remote_id = None;
    c.request_vips = vec![IpAddr::from(Ipv4Addr::UNSPECIFIED)];
    c
}

/// (our virtual IPs, the peer's) of the IKE SA established in `ev`.
fn vips(ev: &[Event]) -> (Vec<IpAddr>, Vec<IpAddr>) {
    match established(ev).as_slice() {
        [
            Event::IkeSaEstablished {
                virtual_ips,
                peer_virtual_ips,
                ..
            },
        ] => (virtual_ips.clone(), peer_virtual_ips.clone()),
        other => panic!("not one IkeSaEstablished: {other:?}"),
    }
}

/// (address, identity, online) of every lease of `e`.
fn leases(e: &Endpoint<ChaCha20Rng>) -> Vec<(IpAddr, String, u32)> {
    e.leases()
        .into_iter()
        .map(|l| (l.address, l.identity.to_string(), l.online))
        .collect()
}

fn third(seed: u64, conn: ConnSpec) -> Endpoint<ChaCha20Rng> {
    let mut c = Endpoint::new(
        EndpointConfig::default(),
        ChaCha20Rng::seed_from_u64(seed),
        Box::new(SeqSpis(0xc100_0000 + u32::try_from(seed).unwrap() * 0x100)),
    );
    c.set_conns(vec![conn]);
    c
}

#[test]
fn client_gets_an_address_and_its_selector_is_narrowed_to_it() {
    let mut p = Pair::new(client(A_IP, "carol.example"), gateway("10.3.0.0/24"));
    p.connect();
    let (ca, cb) = assert_up(&p);
    let vip = ip("10.3.0.1");
    assert_eq!(vips(&p.a_events), (vec![vip], vec![]));
    assert_eq!(vips(&p.b_events), (vec![], vec![vip]));
    // The client proposed 0.0.0.0/0 and the gateway narrowed it to the lease.
    assert_eq!(ca.local_ts, vec![super::super::ts::host(vip)]);
    assert_eq!(cb.remote_ts, vec![super::super::ts::host(vip)]);
    assert_eq!(ca.remote_ts, vec![super::super::ts::host(ip(B_IP))]);
    assert_eq!(ca.mode, Mode::Tunnel);
    assert_eq!(leases(&p.b), vec![(vip, "@carol.example".to_string(), 1)]);
    let status = &p.a.ike_sas()[0];
    assert_eq!(status.virtual_ips, vec![vip]);
    assert_eq!(p.b.ike_sas()[0].peer_virtual_ips, vec![vip]);
    // The request went out as CP(CFG_REQUEST) and is answered with CFG_REPLY: without a
    // pool the gateway sends no CP and the client keeps its own address as selector.
    let mut p = Pair::new(client(A_IP, "carol.example"), conn(B_IP, None, IKE, ESP));
    p.b.set_conns(vec![{
        let mut g = gateway("10.3.0.0/24");
        g.pools.clear();
        g
    }]);
    p.connect();
    let (ca, _) = assert_up(&p);
    assert_eq!(vips(&p.a_events), (vec![], vec![]));
    assert_eq!(ca.local_ts, vec![super::super::ts::host(ip(A_IP))]);
}

#[test]
fn lease_released_on_delete_and_given_back_to_the_same_identity() {
    let mut p = Pair::new(client(A_IP, "carol.example"), gateway("10.3.0.0/24"));
    let id = p.connect();
    assert_up(&p);
    let carol = ip("10.3.0.1");
    // Dave, a second client, gets the next address while carol is up.
    let mut dave = third(5, client(C_IP, "dave.example"));
    dave.initiate(p.now, "net").unwrap();
    let ev = pump_third(&mut p, &mut dave);
    assert_eq!(vips(&ev).0, vec![ip("10.3.0.2")]);
    // Carol deletes her IKE SA: her lease goes offline, still hers.
    p.a.delete_ike_sa(p.now, id).unwrap();
    p.drive();
    assert!(
        p.b.ike_sas()
            .iter()
            .all(|s| s.remote_id != Some(Identification::fqdn("carol.example")))
    );
    assert_eq!(
        leases(&p.b),
        vec![
            (carol, "@carol.example".to_string(), 0),
            (ip("10.3.0.2"), "@dave.example".to_string(), 1)
        ]
    );
    // She comes back and gets the same address.
    p.a_events.clear();
    p.b_events.clear();
    p.connect();
    assert_up(&p);
    assert_eq!(vips(&p.a_events).0, vec![carol]);
    assert_eq!(leases(&p.b)[0], (carol, "@carol.example".to_string(), 1));
}

#[test]
fn exhausted_pool_refuses_the_child_with_internal_address_failure_ike_sa_stays() {
    // A pool of one address, held by carol.
    let mut p = Pair::new(client(A_IP, "carol.example"), gateway("10.3.0.7/32"));
    p.connect();
    assert_up(&p);
    assert_eq!(vips(&p.a_events).0, vec![ip("10.3.0.7")]);
    p.b_events.clear();
    let mut dave = third(6, client(C_IP, "dave.example"));
    dave.initiate(p.now, "net").unwrap();
    let ev = pump_third(&mut p, &mut dave);
    // Dave's IKE SA is up without an address or a CHILD_SA.
    assert_eq!(vips(&ev), (vec![], vec![]));
    assert!(children(&ev).is_empty());
    assert_eq!(
        child_failures(&ev),
        vec![IkeError::PeerError(
            crate::wire::NotifyType::INTERNAL_ADDRESS_FAILURE
        )]
    );
    assert_eq!(
        child_failures(&p.b_events),
        vec![IkeError::PoolExhausted {
            pool: "10.3.0.7/32".into(),
            peer: "@dave.example".into()
        }]
    );
    assert_eq!(
        p.b_events
            .iter()
            .find_map(|e| match e {
                Event::ChildSaFailed { error, .. } => Some(error.to_string()),
                _ => None,
            })
            .unwrap(),
        "INTERNAL_ADDRESS_FAILURE (no free address in pool 10.3.0.7/32 for @dave.example)"
    );
    assert_eq!(
        leases(&p.b),
        vec![(ip("10.3.0.7"), "@carol.example".to_string(), 1)]
    );
    assert_eq!(
        dave.ike_sas()[0].state,
        IkeSaState::Established,
        "the IKE SA survives"
    );
}

#[test]
fn dns_servers_go_to_a_client_that_asks_for_them() {
    let mut gw = gateway("10.3.0.0/24");
    gw.peer_dns = vec![ip("10.1.2.53"), ip("2001:db8::53")];
    let mut carol = client(A_IP, "carol.example");
    carol.request_dns = vec![IpAddr::from(Ipv4Addr::UNSPECIFIED)];
    let mut p = Pair::new(carol.clone(), gw.clone());
    p.connect();
    assert_up(&p);
    // Only the family asked for is taken.
    assert_eq!(p.a.ike_sas()[0].dns_servers, vec![ip("10.1.2.53")]);
    let dns = |ev: &[Event]| match established(ev).as_slice() {
        [Event::IkeSaEstablished { dns_servers, .. }] => dns_servers.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(dns(&p.a_events), vec![ip("10.1.2.53")]);
    // A client that did not ask keeps none.
    carol.request_dns.clear();
    let mut p = Pair::new(carol, gw);
    p.connect();
    assert_up(&p);
    assert!(p.a.ike_sas()[0].dns_servers.is_empty());
    assert_eq!(vips(&p.a_events).0, vec![ip("10.3.0.1")]);
}

#[test]
fn ike_sa_rekey_keeps_the_lease_on_both_sides() {
    let mut p = Pair::new(client(A_IP, "carol.example"), gateway("10.3.0.0/24"));
    let id = p.connect();
    assert_up(&p);
    p.a.rekey_ike(p.now, id).unwrap();
    p.drive();
    let vip = ip("10.3.0.1");
    let a = p.a.ike_sas();
    let b = p.b.ike_sas();
    assert_eq!((a.len(), b.len()), (1, 1), "the old IKE SA is gone");
    assert_ne!(a[0].id, id);
    assert_eq!(a[0].virtual_ips, vec![vip]);
    assert_eq!(b[0].peer_virtual_ips, vec![vip]);
    assert_eq!(leases(&p.b), vec![(vip, "@carol.example".to_string(), 1)]);
    // The address is released when the rekeyed SA goes.
    p.a.delete_ike_sa(p.now, a[0].id).unwrap();
    p.drive();
    assert_eq!(leases(&p.b), vec![(vip, "@carol.example".to_string(), 0)]);
}
