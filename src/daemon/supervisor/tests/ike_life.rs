//! IKE SA lifetimes (rekey, make-before-break reauthentication, hard end, `rekey=no`) and
//! CHILD_SAs of a second conn over an existing IKE SA, on the virtual clock.

use super::*;

/// `hh` with `ikelifetime=100s` (margintime 20 s, rekeyfuzz 50 %: renewal at 70..=80 s).
fn life(extra: &str) -> String {
    conf(&format!("\tikelifetime=100s\n{extra}"))
}

/// The peer renews late (its own schedule must not get in the way).
fn late(extra: &str) -> String {
    conf(&format!("\tikelifetime=1000s\n{extra}"))
}

/// A tunnel between subnets behind A and B, to the same peer with the same IKE parameters
/// and IDs as `hh`.
const NET: &str = "conn net\n\tleft=10.9.0.1\n\tright=10.9.0.2\n\tauthby=secret\n\
    \tleftsubnet=10.9.1.0/24\n\trightsubnet=10.9.2.0/24\n\tike=aes128-sha256-x25519!\n\
    \tesp=aes128gcm16!\n\tauto=add\n";

fn ike_spis(n: &Node) -> Vec<([u8; 8], [u8; 8])> {
    let mut v: Vec<_> = n
        .sup
        .endpoint
        .ike_sas()
        .iter()
        .map(|s| (s.spi_i, s.spi_r))
        .collect();
    v.sort_unstable();
    v
}

fn renewal(p: &mut Pair) -> (Option<u64>, bool, Option<u64>) {
    let s = p.status(true);
    let sa = &s.conns[0].ike_sas[0];
    (sa.renew_in_secs, sa.reauth, sa.lifetime_left_secs)
}

#[test]
fn reauth_no_rekeys_the_ike_sa_at_the_scheduled_time() {
    let mut p = Pair::new(&life("\treauth=no\n"), &late("\treauth=no\n"));
    p.up();
    let (renew, reauth, hard) = renewal(&mut p);
    let renew = renew.unwrap();
    assert!((70..=80).contains(&renew), "{renew}");
    assert!(!reauth);
    assert_eq!(hard, Some(100));
    let text = p.status(true).to_string();
    assert!(
        text.contains(&format!("rekeying in {renew} seconds")),
        "{text}"
    );
    let (ike_a, ike_b) = (ike_spis(&p.a), ike_spis(&p.b));
    let (esp_a, esp_b) = (p.a.inbound_spis(), p.b.inbound_spis());
    p.advance(Duration::from_secs(renew - 1));
    assert_eq!(ike_spis(&p.a), ike_a, "not yet");
    p.advance(Duration::from_secs(2));
    for (n, ike, esp) in [(&p.a, &ike_a, &esp_a), (&p.b, &ike_b, &esp_b)] {
        assert_eq!(n.ike_sas(), 1, "the old IKE SA is gone");
        assert_ne!(&ike_spis(n), ike, "new IKE SPIs");
        assert_eq!(&n.inbound_spis(), esp, "the CHILD_SA moved over untouched");
        assert_eq!((n.sas(), n.policies()), (2, 2));
    }
    // The new SA has its own schedule, from its establishment.
    // (One second after the rekey.)
    let (renew2, _, hard2) = renewal(&mut p);
    assert!((69..=79).contains(&renew2.unwrap()), "{renew2:?}");
    assert_eq!(hard2, Some(99));
    // And it is rekeyed again at that time.
    let ike = ike_spis(&p.a);
    p.advance(Duration::from_secs(81));
    assert_ne!(ike_spis(&p.a), ike);
    assert_eq!((p.a.ike_sas(), p.b.ike_sas()), (1, 1));
}

#[test]
fn reauth_is_make_before_break() {
    let mut p = Pair::new(&life(""), &late(""));
    p.up();
    let (renew, reauth, _) = renewal(&mut p);
    assert!(reauth);
    let text = p.status(true).to_string();
    assert!(
        text.contains(&format!("reauth in {} seconds", renew.unwrap())),
        "{text}"
    );
    let (ike_a, ike_b) = (ike_spis(&p.a), ike_spis(&p.b));
    let (esp_a, esp_b) = (p.a.inbound_spis(), p.b.inbound_spis());
    p.a.child_ops.clear();
    p.b.child_ops.clear();
    p.advance(Duration::from_secs(81));
    for (n, ike, esp) in [(&p.a, &ike_a, &esp_a), (&p.b, &ike_b, &esp_b)] {
        assert_eq!(n.ike_sas(), 1, "the old IKE SA is gone");
        assert_ne!(&ike_spis(n), ike);
        let new = n.inbound_spis();
        assert_eq!(new.len(), 1);
        assert_ne!(&new, esp, "a new CHILD_SA");
        // The new SAs went in before the old ones came out; the policies stay.
        assert_eq!(n.child_ops, vec![('+', new[0]), ('-', esp[0])]);
        assert_eq!((n.sas(), n.policies()), (2, 2));
    }
    assert!(renewal(&mut p).1, "the new SA is reauthenticated too");
}

#[test]
fn a_uniqueids_responder_sends_on_the_reauthenticated_child_once_the_old_goes() {
    let mut p = Pair::new(&life(""), &late(""));
    p.b.sup.endpoint.set_config(EndpointConfig {
        export_keys: true,
        unique_ids: crate::ike::UniqueIds::Yes,
        ..EndpointConfig::default()
    });
    p.up();
    let (esp_a, esp_b) = (p.a.inbound_spis(), p.b.inbound_spis());
    p.a.child_ops.clear();
    p.b.child_ops.clear();
    p.advance(Duration::from_secs(81));
    let (new_a, new_b) = (p.a.inbound_spis(), p.b.inbound_spis());
    assert_eq!(p.a.child_ops, vec![('+', new_a[0]), ('-', esp_a[0])]);
    // b saw a second IKE SA of a from the same address (a reauthentication): the new
    // CHILD_SA's outbound SA went in only when a deleted the old IKE SA.
    assert_eq!(
        p.b.child_ops,
        vec![('+', new_b[0]), ('>', new_b[0]), ('-', esp_b[0])]
    );
    assert_eq!((p.b.ike_sas(), p.b.sas(), p.b.policies()), (1, 2, 2));
}

#[test]
fn reauth_brings_every_conn_of_the_ike_sa_over() {
    let mut p = Pair::new(&life(NET), &late(NET));
    p.up();
    let ctl = p.request(true, Request::Up { name: "net".into() });
    assert_eq!(p.a.outcome(ctl).1, Some(true), "{:?}", p.a.outcome(ctl));
    let esp_a = p.a.inbound_spis();
    assert_eq!(esp_a.len(), 2);
    p.advance(Duration::from_secs(81));
    for n in [&p.a, &p.b] {
        assert_eq!(n.ike_sas(), 1);
        // Transport: 2 policies; tunnel: 3.
        assert_eq!((n.sas(), n.policies()), (4, 5));
    }
    let new = p.a.inbound_spis();
    assert!(new.iter().all(|s| !esp_a.contains(s)), "{new:?} {esp_a:?}");
    let s = p.status(true);
    let carried: usize = s
        .conns
        .iter()
        .flat_map(|c| &c.ike_sas)
        .map(|sa| sa.children.len())
        .sum();
    assert_eq!(carried, 2);
}

#[test]
fn rekey_no_keeps_the_ike_sa_until_its_hard_lifetime() {
    let mut p = Pair::new(&life("\trekey=no\n"), &late("\trekey=no\n"));
    p.up();
    let (renew, _, hard) = renewal(&mut p);
    assert_eq!((renew, hard), (None, Some(100)));
    let ike = ike_spis(&p.a);
    p.advance(Duration::from_secs(99));
    assert_eq!(ike_spis(&p.a), ike, "no renewal");
    assert_eq!(p.b.sas(), 2);
    p.advance(Duration::from_secs(1));
    for n in [&p.a, &p.b] {
        assert_eq!((n.ike_sas(), n.sas(), n.policies()), (0, 0, 0));
    }
}

#[test]
fn a_failed_reauth_leaves_the_old_sa_until_its_hard_lifetime() {
    let mut p = Pair::new(&life(""), &late(""));
    p.up();
    let esp_b = p.b.inbound_spis();
    // The peer stops answering: the new IKE SA never comes up, the old one keeps its
    // CHILD_SA (the peer's side stays) and is deleted at ikelifetime.
    p.blackhole = true;
    p.advance(Duration::from_secs(99));
    assert_eq!(p.b.inbound_spis(), esp_b);
    assert_eq!(p.a.sas(), 2, "the old CHILD_SA still carries traffic");
    p.advance(Duration::from_secs(1));
    assert_eq!((p.a.sas(), p.a.policies()), (0, 0));
}

#[test]
fn a_failed_reauth_is_tried_again_while_the_lifetime_allows() {
    let long = |s: &str| conf(&format!("\tikelifetime={s}\n\tmargintime=300s\n"));
    let mut p = Pair::new(&long("1000s"), &long("5000s"));
    p.up();
    let ike = ike_spis(&p.a);
    let renew = renewal(&mut p).0.unwrap();
    assert!((550..=700).contains(&renew), "{renew}");
    // The peer is unreachable when the reauthentication starts and until the new IKE SA
    // gives up (about 165 s of retransmissions).
    p.blackhole = true;
    p.advance(Duration::from_secs(renew + 170));
    assert_eq!(ike_spis(&p.a), ike, "the old IKE SA stays");
    let (again, reauth, _) = renewal(&mut p);
    let again = again.expect("a second try is scheduled");
    assert!(again <= 30 && reauth, "{again}");
    // The peer is back: the second try replaces the IKE SA.
    p.blackhole = false;
    p.advance(Duration::from_secs(again + 1));
    assert_eq!(p.a.ike_sas(), 1);
    assert_ne!(ike_spis(&p.a), ike);
    assert_eq!((p.a.sas(), p.b.sas()), (2, 2));
}

#[test]
fn a_second_conn_rides_the_ike_sa_and_goes_alone() {
    let mut p = Pair::new(&conf(NET), &conf(NET));
    p.up();
    let hh_spis = p.a.inbound_spis();
    let ctl = p.request(true, Request::Up { name: "net".into() });
    let (replies, done) = p.a.outcome(ctl);
    assert_eq!(done, Some(true), "{replies:?}");
    assert!(
        matches!(replies[0], Reply::Progress(t) if t == "adding CHILD_SA of net to IKE_SA hh[1]"),
        "{replies:?}"
    );
    let net_reqid = p.a.sup.conns[1].spec.reqid;
    for n in [&p.a, &p.b] {
        assert_eq!(n.ike_sas(), 1, "one IKE SA");
        assert_eq!((n.sas(), n.policies()), (4, 5), "two CHILD_SAs");
    }
    let s = p.status(true);
    let children = &s.conns[0].ike_sas[0].children;
    assert_eq!(children.len(), 2);
    assert_eq!(children[1].reqid, net_reqid);
    assert_eq!(children[1].local_ts, vec!["10.9.1.0/24"]);

    let ctl = p.request(true, Request::Down { name: "net".into() });
    let (replies, done) = p.a.outcome(ctl);
    assert_eq!(done, Some(true), "{replies:?}");
    for n in [&p.a, &p.b] {
        assert_eq!(n.ike_sas(), 1, "hh's IKE SA stays");
        assert_eq!((n.sas(), n.policies()), (2, 2));
    }
    assert_eq!(p.a.inbound_spis(), hh_spis);
}

#[test]
fn a_conn_that_cannot_share_gets_its_own_ike_sa() {
    let other = NET.replace("aes128-sha256-x25519!", "aes256-sha384-x25519!");
    let mut p = Pair::new(&conf(&other), &conf(&other));
    p.up();
    let ctl = p.request(true, Request::Up { name: "net".into() });
    assert_eq!(p.a.outcome(ctl).1, Some(true), "{:?}", p.a.outcome(ctl));
    for n in [&p.a, &p.b] {
        assert_eq!(n.ike_sas(), 2);
        assert_eq!(n.sas(), 4);
    }
}
