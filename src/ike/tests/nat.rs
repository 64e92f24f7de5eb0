//! NAT traversal: floating to the NAT-T port, forced encapsulation, a peer whose NAT mapping
//! changes, and the retransmission reports.

use std::net::SocketAddr;
use std::time::Duration;

use super::*;

const SUITE: &str = "aes128gcm16-prfsha256-x25519";

fn sock(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// (source port, destination port) of every datagram logged in `dir`.
fn ports(p: &Pair, dir: Dir) -> Vec<(u16, u16)> {
    p.log
        .iter()
        .filter(|(d, _)| *d == dir)
        .map(|(_, t)| (t.local.port(), t.remote.port()))
        .collect()
}

fn nat_pair() -> Pair {
    let a = conn(A_IP, Some(B_IP), SUITE, "aes128gcm16");
    let b = conn(B_IP, None, SUITE, "aes128gcm16");
    let mut p = Pair::new(a, b);
    p.nat = Some((sock("192.0.2.1:500"), sock("198.51.100.9:1024")));
    p
}

#[test]
fn initiator_behind_nat_floats_to_4500() {
    let mut p = nat_pair();
    p.connect();
    let (ca, cb) = assert_up(&p);
    // IKE_SA_INIT on 500, IKE_AUTH on 4500 both ways (b answers the NAT's public ports).
    assert_eq!(ports(&p, Dir::AtoB), [(500, 500), (4500, 4500)]);
    assert_eq!(ports(&p, Dir::BtoA), [(500, 1024), (4500, 5024)]);
    // ESP in UDP: a to b's 4500, b to a's public NAT-T port.
    assert_eq!(ca.natt_remote_port, Some(4500));
    assert_eq!(cb.natt_remote_port, Some(5024));
    let (sa, sb) = (&p.a.ike_sas()[0], &p.b.ike_sas()[0]);
    assert_eq!((sa.local.port(), sa.remote.port()), (4500, 4500));
    assert_eq!(sb.remote, sock("198.51.100.9:5024"));
    // Only a is behind the NAT: only a keeps the mapping alive.
    assert!(sa.behind_nat && !sb.behind_nat);
}

#[test]
fn no_nat_stays_on_500_without_encapsulation() {
    let mut p = Pair::new(
        conn(A_IP, Some(B_IP), SUITE, "aes128gcm16"),
        conn(B_IP, None, SUITE, "aes128gcm16"),
    );
    p.connect();
    let (ca, cb) = assert_up(&p);
    assert_eq!(ports(&p, Dir::AtoB), [(500, 500), (500, 500)]);
    assert_eq!((ca.natt_remote_port, cb.natt_remote_port), (None, None));
    assert!(!p.a.ike_sas()[0].behind_nat);
}

#[test]
fn forceencaps_floats_and_encapsulates_without_nat() {
    let mut a = conn(A_IP, Some(B_IP), SUITE, "aes128gcm16");
    a.force_encaps = true;
    let mut p = Pair::new(a, conn(B_IP, None, SUITE, "aes128gcm16"));
    p.connect();
    let (ca, cb) = assert_up(&p);
    assert_eq!(ports(&p, Dir::AtoB), [(500, 500), (4500, 4500)]);
    assert_eq!(
        (ca.natt_remote_port, cb.natt_remote_port),
        (Some(4500), Some(4500))
    );
    // The faked NAT_DETECTION_SOURCE_IP makes b see a NAT in front of a.
    let (sa, sb) = (&p.a.ike_sas()[0], &p.b.ike_sas()[0]);
    assert!(sa.nat_detected && sb.nat_detected);
    assert!(sa.behind_nat && !sb.behind_nat);
}

#[test]
fn responder_follows_a_changed_nat_mapping() {
    let mut p = nat_pair();
    let id = p.connect();
    assert_up(&p);
    // The NAT restarts and maps a to another public port.
    p.nat = Some((sock("192.0.2.1:500"), sock("198.51.100.9:2000")));
    p.a.check_liveness(p.now, id).unwrap();
    p.drive();
    let moved: Vec<&Event> = p
        .b_events
        .iter()
        .filter(|e| matches!(e, Event::PeerMoved { .. }))
        .collect();
    let [Event::PeerMoved { from, to, .. }] = moved.as_slice() else {
        panic!("{:?}", p.b_events)
    };
    assert_eq!(
        (*from, *to),
        (sock("198.51.100.9:5024"), sock("198.51.100.9:6000"))
    );
    assert_eq!(p.b.ike_sas()[0].remote, sock("198.51.100.9:6000"));
    // A rekey of the CHILD_SA now carries the new encapsulation port.
    let b_id = p.b.ike_sas()[0].id;
    let spi = p.b.ike_sas()[0].children[0].spi_in;
    p.b.rekey_child(p.now, b_id, spi).unwrap();
    p.drive();
    let rekeyed = children(&p.b_events);
    assert_eq!(rekeyed.len(), 2, "{:?}", p.b_events);
    assert_eq!(rekeyed[1].natt_remote_port, Some(6000));
    assert_eq!(rekeyed[1].rekeyed_from.map(|r| r.0), Some(spi));
}

#[test]
fn a_peer_without_nat_moving_is_not_reported() {
    let mut p = Pair::new(
        conn(A_IP, Some(B_IP), SUITE, "aes128gcm16"),
        conn(B_IP, None, SUITE, "aes128gcm16"),
    );
    let id = p.connect();
    p.a.check_liveness(p.now, id).unwrap();
    p.drive();
    assert!(
        !p.b_events
            .iter()
            .any(|e| matches!(e, Event::PeerMoved { .. }))
    );
}

#[test]
fn each_retransmission_is_reported_with_the_wait() {
    let a = conn(A_IP, Some(B_IP), SUITE, "aes128gcm16");
    let mut p = Pair::new(a, conn(B_IP, None, SUITE, "aes128gcm16"));
    p.fault = Box::new(|_, _, _| Fault::Drop);
    p.connect();
    let reports: Vec<(u32, u32, Duration, SocketAddr)> = p
        .a_events
        .iter()
        .filter_map(|e| match e {
            Event::Retransmit {
                attempt,
                of,
                next_in,
                remote,
                ..
            } => Some((*attempt, *of, *next_in, *remote)),
            _ => None,
        })
        .collect();
    let attempts: Vec<u32> = reports.iter().map(|r| r.0).collect();
    assert_eq!(attempts, [1, 2, 3, 4, 5]);
    assert!(
        reports
            .iter()
            .all(|r| r.1 == 5 && r.3 == sock("192.0.2.2:500"))
    );
    // 4 s × 1.8ⁿ: 7.2 s after the first retransmission, 13 s after the second.
    assert_eq!(reports[0].2, Duration::from_millis(7200));
    assert_eq!(reports[1].2.as_secs(), 12);
    assert!(matches!(
        failures(&p.a_events)[..],
        [IkeError::PeerNotResponding { tries: 5 }]
    ));
}
