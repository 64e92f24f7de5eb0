//! Two daemons without sockets: two [`Supervisor`]s with their engines and in-memory kernels,
//! wired on a virtual clock (quinn-proto's `Pair`, one layer up). Kernel operations are
//! applied in the order emitted, datagrams are delivered in order (or dropped on request),
//! ikectl replies and Wireshark key records are collected per node.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;

use super::*;
use crate::config::conn::NoDns;
use crate::config::load::load_str;
use crate::config::source::{MemResolver, SourceFile};
use crate::daemon::conns::{Reqids, ShuntEntry, build_conns, build_shunts};
use crate::ike::{EndpointConfig, RandomSpis};
use crate::kernel::{Counters, MemKernel, MemOp, SPI_RANGE, SaId, Target, XfrmBackend};

mod ike_life;

const A: &str = "10.9.0.1";
const B: &str = "10.9.0.2";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// `hh` between A and B (transport, 60 s CHILD_SA lifetime), plus `extra` conns.
fn conf(extra: &str) -> String {
    format!(
        "conn hh\n\tleft={A}\n\tright={B}\n\tauthby=secret\n\ttype=transport\n\
         \tike=aes128-sha256-x25519!\n\tesp=aes128gcm16!\n\tlifetime=60s\n\
         \trekeymargin=20s\n\trekeyfuzz=50%\n\tauto=add\n{extra}"
    )
}

/// A conn with traps (auto=route) for 10.9.1.0/24 behind A.
const ROUTE: &str = "conn rt\n\tleft=10.9.0.1\n\tright=10.9.0.2\n\tauthby=secret\n\
    \tleftsubnet=10.9.1.0/24\n\tike=aes128-sha256-x25519!\n\tesp=aes128gcm16!\n\tauto=route\n";

fn conns(conf: &str, local: &str, reqids: &mut Reqids) -> Vec<ConnEntry> {
    let (config, secrets) = load_conf(conf);
    let local = ip(local);
    build_conns(&config, &secrets, &|a| a == local, &|_| None, reqids).unwrap()
}

fn shunts(conf: &str, local: &str, reqids: &mut Reqids) -> Vec<ShuntEntry> {
    let local = ip(local);
    build_shunts(&load_conf(conf).0, &|a| a == local, reqids).unwrap()
}

fn load_conf(conf: &str) -> (crate::config::conn::Config, crate::config::secrets::Secrets) {
    let src = |name: &str, text: &str| SourceFile {
        name: name.into(),
        text: text.into(),
        mode: Some(0o600),
    };
    let secrets = format!("{A} {B} : PSK \"a strong test key\"\n");
    let l = load_str(
        &src("ipsec.conf", conf),
        &src("ipsec.secrets", &secrets),
        &MemResolver::default(),
        &NoDns,
    );
    assert!(!l.diagnostics.has_errors(), "{:?}", l.diagnostics);
    (l.config, l.secrets)
}

struct Node {
    sup: Supervisor<ChaCha20Rng>,
    kernel: MemKernel,
    addr: IpAddr,
    reqids: Reqids,
    /// What the next [`Effect::LoadConfig`] reads.
    next_conf: Option<String>,
    /// The settings file the next [`Effect::LoadConfig`] reads.
    next_settings: DaemonSettings,
    replies: Vec<(CtlId, Reply)>,
    key_records: usize,
    /// Updown calls: verb, conn, inbound SPI.
    updowns: Vec<(crate::daemon::updown::Verb, String, u32)>,
    /// NAT keepalives sent: (when, from, to).
    keepalives: Vec<(Instant, SocketAddr, SocketAddr)>,
    next_ctl: u64,
    /// Keep kernel operations in `held` (a slow kernel) instead of applying them.
    hold: bool,
    held: VecDeque<(OpId, KernelOp)>,
    /// CHILD_SA installs (`+`), deferred outbound SAs put in (`>`) and removals (`-`) by
    /// inbound SPI, in the order applied.
    child_ops: Vec<(char, u32)>,
}

impl Node {
    fn new(local: &str, conf: &str, seed: u64) -> Self {
        let mut reqids = Reqids::default();
        let entries = conns(conf, local, &mut reqids);
        let shunt_entries = shunts(conf, local, &mut reqids);
        let spis = Box::new(RandomSpis::new(ChaCha20Rng::seed_from_u64(seed), SPI_RANGE));
        let config = EndpointConfig {
            export_keys: true,
            ..EndpointConfig::default()
        };
        let endpoint = Endpoint::new(config, ChaCha20Rng::seed_from_u64(seed + 1), spis);
        let settings = Settings {
            kernel_name: "mem",
            kernel_installs: true,
            natt_port: 4500,
            key_log: true,
            nat_keepalive: DaemonSettings::default().nat.interval(),
        };
        let mut sup = Supervisor::new(
            endpoint,
            settings,
            entries,
            ChaCha20Rng::seed_from_u64(seed + 2),
        );
        sup.set_shunts(shunt_entries);
        Self {
            sup,
            kernel: MemKernel::new(),
            addr: ip(local),
            reqids,
            next_conf: None,
            next_settings: DaemonSettings::default(),
            replies: Vec::new(),
            key_records: 0,
            updowns: Vec::new(),
            keepalives: Vec::new(),
            next_ctl: 0,
            hold: false,
            held: VecDeque::new(),
            child_ops: Vec::new(),
        }
    }

    fn sas(&self) -> usize {
        self.kernel.backend().sas().len()
    }

    fn policies(&self) -> usize {
        self.kernel.backend().policies().len()
    }

    fn inbound_spis(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .kernel
            .backend()
            .sas()
            .keys()
            .filter(|id| id.dst == self.addr)
            .map(|id| id.spi)
            .collect();
        v.sort_unstable();
        v
    }

    fn ike_sas(&self) -> usize {
        self.sup.endpoint.ike_sas().len()
    }

    /// When the keepalives were sent, in whole seconds after `start`.
    fn keepalives_since(&self, start: Instant) -> Vec<u64> {
        self.keepalives
            .iter()
            .map(|(t, _, _)| (*t - start).as_secs())
            .collect()
    }

    /// The replies to `ctl`, and whether the last one is a successful Done.
    fn outcome(&self, ctl: CtlId) -> (Vec<&Reply>, Option<bool>) {
        let rs: Vec<&Reply> = self
            .replies
            .iter()
            .filter(|(c, _)| *c == ctl)
            .map(|(_, r)| r)
            .collect();
        let done = match rs.last() {
            Some(Reply::Done(d)) => Some(d.ok),
            _ => None,
        };
        (rs, done)
    }
}

struct Pair {
    a: Node,
    b: Node,
    now: Instant,
    /// Datagrams in flight, in order.
    wire: VecDeque<Transmit>,
    /// Drop every datagram (a peer that went away).
    blackhole: bool,
    /// A port-translating NAT in front of a: a's source ports appear to b shifted by this
    /// much (its address stays, so b's conn still matches).
    nat_shift: Option<u16>,
}

impl Pair {
    fn new(conf_a: &str, conf_b: &str) -> Self {
        let now = Instant::now();
        let mut p = Self {
            a: Node::new(A, conf_a, 10),
            b: Node::new(B, conf_b, 20),
            now,
            wire: VecDeque::new(),
            blackhole: false,
            nat_shift: None,
        };
        p.a.sup.start(now);
        p.b.sup.start(now);
        p.drive();
        p
    }

    fn node(&mut self, addr: IpAddr) -> &mut Node {
        if addr == self.a.addr {
            &mut self.a
        } else {
            &mut self.b
        }
    }

    /// Executes every effect of `node` like the driver does (kernel operations at once and
    /// in order); returns whether there were any.
    fn effects(&mut self, addr: IpAddr) -> bool {
        let now = self.now;
        let mut any = false;
        loop {
            let node = self.node(addr);
            let Some(effect) = node.sup.poll_effect() else {
                return any;
            };
            any = true;
            match effect {
                Effect::Transmit(t) => self.wire.push_back(t),
                Effect::Kernel(id, op) if node.hold => node.held.push_back((id, op)),
                Effect::Kernel(id, op) => {
                    match &op {
                        KernelOp::InstallChild(c) => node.child_ops.push(('+', c.spi_in)),
                        KernelOp::RemoveChild(c) => node.child_ops.push(('-', c.spi_in)),
                        KernelOp::ActivateOutbound(c) => node.child_ops.push(('>', c.spi_in)),
                        _ => {}
                    }
                    let r = op.apply(&mut node.kernel);
                    node.sup.handle_kernel_done(now, id, r);
                }
                Effect::Reply(ctl, r) => node.replies.push((ctl, r)),
                Effect::LoadConfig(from) => {
                    let loaded = match node.next_conf.take() {
                        Some(c) => Ok(Reloaded {
                            conns: conns(&c, &addr.to_string(), &mut node.reqids),
                            shunts: shunts(&c, &addr.to_string(), &mut node.reqids),
                            settings: node.next_settings.clone(),
                            unique_ids: crate::ike::UniqueIds::Yes,
                        }),
                        None => Err("ipsec.conf:1:1: error: broken".to_string()),
                    };
                    node.sup.config_loaded(now, from, loaded);
                }
                Effect::KeyLog(_) => node.key_records += 1,
                Effect::Updown(c) => node.updowns.push((c.verb, c.info.conn, c.info.spi_in)),
                Effect::Keepalive { local, remote } => node.keepalives.push((now, local, remote)),
            }
        }
    }

    /// Applies the held kernel operations of a node.
    fn release(&mut self, on_a: bool) {
        let now = self.now;
        let n = if on_a { &mut self.a } else { &mut self.b };
        while let Some((id, op)) = n.held.pop_front() {
            let r = op.apply(&mut n.kernel);
            n.sup.handle_kernel_done(now, id, r);
        }
        self.drive();
    }

    /// Runs both nodes until nothing moves (without advancing the clock).
    fn drive(&mut self) {
        loop {
            let mut busy = self.effects(self.a.addr);
            busy |= self.effects(self.b.addr);
            // One datagram at a time, each followed by its receiver's effects (as the driver).
            if let Some(t) = self.wire.pop_front() {
                busy = true;
                if !self.blackhole {
                    let (mut from, mut to) = (t.local, t.remote);
                    if let Some(shift) = self.nat_shift {
                        if from.ip() == self.a.addr {
                            from.set_port(from.port().wrapping_add(shift));
                        } else {
                            to.set_port(to.port().wrapping_sub(shift));
                        }
                    }
                    let now = self.now;
                    self.node(to.ip())
                        .sup
                        .handle_datagram(now, to, from, &t.data);
                }
            }
            if !busy {
                return;
            }
        }
    }

    /// Advances the clock by `d`, firing timers on the way.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            let next = [self.a.sup.poll_timeout(), self.b.sup.poll_timeout()]
                .into_iter()
                .flatten()
                .filter(|t| *t <= end)
                .min();
            let Some(t) = next else {
                break;
            };
            self.now = self.now.max(t);
            let now = self.now;
            for n in [&mut self.a, &mut self.b] {
                if n.sup.poll_timeout().is_some_and(|t| t <= now) {
                    n.sup.handle_timeout(now);
                }
            }
            self.drive();
        }
        self.now = end;
        self.drive();
    }

    fn request(&mut self, on_a: bool, request: Request) -> CtlId {
        let now = self.now;
        let n = if on_a { &mut self.a } else { &mut self.b };
        let ctl = CtlId(n.next_ctl);
        n.next_ctl += 1;
        n.sup.handle_request(now, ctl, request);
        self.drive();
        ctl
    }

    fn up(&mut self) -> CtlId {
        let ctl = self.request(true, Request::Up { name: "hh".into() });
        assert_eq!(
            self.a.outcome(ctl).1,
            Some(true),
            "{:?}",
            self.a.outcome(ctl)
        );
        ctl
    }

    fn status(&mut self, on_a: bool) -> StatusReport {
        self.status_page(on_a, None)
    }

    fn status_page(&mut self, on_a: bool, page: Option<crate::control::Page>) -> StatusReport {
        let ctl = self.request(on_a, Request::Status { page });
        let n = if on_a { &self.a } else { &self.b };
        let (rs, done) = n.outcome(ctl);
        assert_eq!(done, Some(true));
        rs.into_iter()
            .find_map(|r| match r {
                Reply::Status(s) => Some(s.clone()),
                _ => None,
            })
            .unwrap()
    }

    fn expire(&mut self, on_a: bool, spi_in: u32, hard: bool) {
        let now = self.now;
        let n = if on_a { &mut self.a } else { &mut self.b };
        let reqid = n.sup.conns[0].spec.reqid;
        let sa = SaId {
            dst: n.addr,
            spi: spi_in,
        };
        if hard {
            // The kernel deletes the SA itself at its hard lifetime.
            n.kernel
                .backend_mut()
                .del_sa(sa, crate::kernel::IpsecProto::Esp, None)
                .unwrap();
        }
        n.sup
            .handle_kernel_event(now, KernelEvent::Expire { reqid, sa, hard });
        self.drive();
    }
}

#[test]
fn up_installs_both_sides_and_answers_ikectl_in_order() {
    let mut p = Pair::new(&conf(""), &conf(""));
    let ctl = p.up();
    let (replies, _) = p.a.outcome(ctl);
    let texts: Vec<String> = replies
        .iter()
        .filter_map(|r| match r {
            Reply::Progress(t) => Some(t.clone()),
            _ => None,
        })
        .collect();
    assert!(
        texts[0].starts_with("initiating IKE_SA hh[1] to 10.9.0.2"),
        "{texts:?}"
    );
    assert!(
        texts.iter().any(|t| t.contains("IKE_SA hh[1] established")),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("CHILD_SA hh{1} established")),
        "{texts:?}"
    );
    assert_eq!(
        texts.last().map(String::as_str),
        Some("connection 'hh' established successfully")
    );
    // Two SAs and two policies (transport: out + in) per side; the inbound SPIs match.
    for n in [&p.a, &p.b] {
        assert_eq!((n.sas(), n.policies()), (2, 2));
        assert_eq!(n.ike_sas(), 1);
        // The IKE SA and the two ESP SAs of the CHILD_SA.
        assert_eq!(n.key_records, 2);
    }
    let spis_a = p.a.inbound_spis();
    assert!(p.b.kernel.backend().sas().contains_key(&SaId {
        dst: ip(A),
        spi: spis_a[0]
    }));
    assert!(SPI_RANGE.contains(&spis_a[0]));
}

#[test]
fn status_reports_the_child_with_kernel_counters_and_lifetimes() {
    let mut p = Pair::new(&conf(""), &conf(""));
    p.up();
    let spi = p.a.inbound_spis()[0];
    let counters = Counters {
        bytes: 840,
        packets: 10,
    };
    p.a.kernel
        .backend_mut()
        .set_counters(SaId { dst: ip(A), spi }, counters)
        .unwrap();
    p.advance(Duration::from_secs(5));
    let s = p.status(true);
    assert_eq!(s.kernel, "mem");
    let sa = &s.conns[0].ike_sas[0];
    assert_eq!(sa.state, "ESTABLISHED");
    let child = &sa.children[0];
    assert_eq!(child.spi_in, format!("{spi:08x}"));
    assert!(child.installed);
    assert_eq!((child.bytes_in, child.packets_in), (840, 10));
    assert_eq!(child.installed_secs, 5);
    assert_eq!(child.expires_in_secs, Some(55));
    // Soft lifetime: 60 s - 20 s margin - up to 50 % of it, but not before half the lifetime.
    let rekey = child.rekey_in_secs.unwrap();
    assert!((25..=35).contains(&rekey), "{rekey}");
}

#[test]
fn rekey_jitter_comes_from_the_injected_rng() {
    let soft = |seed_a: u64| {
        let mut p = Pair::new(&conf(""), &conf(""));
        p.a = Node::new(A, &conf(""), seed_a);
        p.a.sup.start(p.now);
        p.up();
        p.a.kernel
            .backend()
            .sas()
            .values()
            .next()
            .unwrap()
            .lifetime
            .soft_secs
    };
    assert_eq!(soft(10), soft(10), "same seed, same schedule");
    let spread: std::collections::HashSet<u64> = (0..12).map(|s| soft(100 + s * 3)).collect();
    assert!(spread.len() > 1, "{spread:?}");
    assert!(spread.iter().all(|s| (30..=40).contains(s)), "{spread:?}");
}

#[test]
fn soft_expire_rekeys_and_the_old_child_goes() {
    let mut p = Pair::new(&conf(""), &conf(""));
    p.up();
    let old_a = p.a.inbound_spis();
    let old_b = p.b.inbound_spis();
    p.advance(Duration::from_secs(35));
    p.expire(true, old_a[0], false);
    for (n, old) in [(&p.a, &old_a), (&p.b, &old_b)] {
        let new = n.inbound_spis();
        assert_eq!(new.len(), 1, "old child removed, new one installed");
        assert_ne!(&new, old);
        assert_eq!((n.sas(), n.policies()), (2, 2));
        assert_eq!(n.ike_sas(), 1);
    }
    let s = p.status(true);
    assert_eq!(s.conns[0].ike_sas[0].children.len(), 1);
    assert_eq!(s.conns[0].ike_sas[0].children[0].installed_secs, 0);
    // A second soft expire of the new child rekeys again.
    let cur = p.a.inbound_spis();
    p.expire(true, cur[0], false);
    assert_ne!(p.a.inbound_spis(), cur);
    assert_eq!(p.b.sas(), 2);
}

#[test]
fn the_rekey_responder_sends_on_the_new_child_only_once_the_old_one_is_deleted() {
    let mut p = Pair::new(&conf(""), &conf(""));
    p.up();
    let (old_a, old_b) = (p.a.inbound_spis()[0], p.b.inbound_spis()[0]);
    p.a.child_ops.clear();
    p.b.child_ops.clear();
    p.advance(Duration::from_secs(35));
    p.expire(true, old_a, false);
    let (new_a, new_b) = (p.a.inbound_spis()[0], p.b.inbound_spis()[0]);
    // a initiated the rekey: both of its new SAs at once, then its Delete of the old child.
    assert_eq!(p.a.child_ops, vec![('+', new_a), ('-', old_a)]);
    // b answered: the new inbound SA first, the outbound one when a's Delete of the old
    // child arrives, before that child goes.
    assert_eq!(
        p.b.child_ops,
        vec![('+', new_b), ('>', new_b), ('-', old_b)]
    );
    assert_eq!((p.b.sas(), p.b.policies()), (2, 2));
}

#[test]
fn updown_is_called_once_up_and_once_down_across_rekeys() {
    use crate::daemon::updown::Verb;
    let mut p = Pair::new(
        &conf("\tleftupdown=/etc/updown.sh\n"),
        &conf("\tleftfirewall=yes\n\trightfirewall=yes\n"),
    );
    p.up();
    let first = p.a.inbound_spis()[0];
    assert_eq!(p.a.updowns, [(Verb::Up, "hh".to_owned(), first)]);
    assert_eq!(
        p.b.updowns.len(),
        1,
        "leftfirewall alone makes the calls too"
    );
    for _ in 0..2 {
        p.advance(Duration::from_secs(35));
        let cur = p.a.inbound_spis()[0];
        p.expire(true, cur, false);
        assert_ne!(p.a.inbound_spis()[0], cur);
    }
    assert_eq!(p.a.updowns.len(), 1, "no call for a rekey");
    assert_eq!(p.b.updowns.len(), 1);
    let ctl = p.request(true, Request::Down { name: "hh".into() });
    assert_eq!(p.a.outcome(ctl).1, Some(true));
    assert_eq!(
        p.a.updowns,
        [
            (Verb::Up, "hh".to_owned(), first),
            (Verb::Down, "hh".to_owned(), first)
        ],
        "down carries what up announced"
    );
    assert_eq!(p.b.updowns.len(), 2);
    assert_eq!(p.b.updowns[1].0, Verb::Down);
    // Without leftupdown/leftfirewall: no calls.
    let mut q = Pair::new(&conf(""), &conf(""));
    q.up();
    assert!(q.a.updowns.is_empty() && q.b.updowns.is_empty());
}

#[test]
fn hard_expire_of_the_current_child_deletes_the_ike_sa() {
    let mut p = Pair::new(&conf(""), &conf(""));
    p.up();
    let spi = p.b.inbound_spis()[0];
    p.expire(false, spi, true);
    for n in [&p.a, &p.b] {
        assert_eq!((n.ike_sas(), n.sas(), n.policies()), (0, 0, 0));
    }
}

#[test]
fn down_answers_once_the_peer_confirmed_and_removes_everything() {
    let mut p = Pair::new(&conf(""), &conf(""));
    p.up();
    let ctl = p.request(false, Request::Down { name: "hh".into() });
    let (replies, done) = p.b.outcome(ctl);
    assert_eq!(done, Some(true));
    assert!(matches!(replies[0], Reply::Progress(t) if t == "deleting 1 IKE_SA(s) of hh"));
    assert!(matches!(replies[1], Reply::Progress(t) if t == "IKE_SA [1] deleted"));
    for n in [&p.a, &p.b] {
        assert_eq!((n.ike_sas(), n.sas(), n.policies()), (0, 0, 0));
    }
    let ctl = p.request(
        false,
        Request::Down {
            name: "nope".into(),
        },
    );
    assert_eq!(p.b.outcome(ctl).1, Some(false));
}

#[test]
fn down_waits_for_the_answer_to_the_delete() {
    let mut p = Pair::new(&conf(""), &conf(""));
    p.up();
    p.blackhole = true;
    let ctl = p.request(true, Request::Down { name: "hh".into() });
    assert_eq!(p.a.outcome(ctl).1, None, "no answer yet");
    // The engine gives up after its retransmissions; then the SA is gone.
    p.advance(Duration::from_secs(300));
    assert_eq!(p.a.outcome(ctl).1, Some(true));
    assert_eq!((p.a.ike_sas(), p.a.sas()), (0, 0));
}

#[test]
fn reload_installs_new_traps_and_a_broken_file_changes_nothing() {
    let mut p = Pair::new(&conf(""), &conf(""));
    assert_eq!(p.a.policies(), 0);
    p.a.next_conf = Some(conf(ROUTE));
    let ctl = p.request(true, Request::Reload);
    let (replies, done) = p.a.outcome(ctl);
    assert_eq!(done, Some(true));
    assert!(matches!(replies[0], Reply::Progress(t) if t == "loaded 2 conn(s)"));
    // Tunnel-mode traps: out, in, fwd.
    assert_eq!(p.a.policies(), 3);

    // Nothing to load: refused, the running configuration and its traps stay.
    let ctl = p.request(true, Request::Reload);
    let (replies, done) = p.a.outcome(ctl);
    assert_eq!(done, Some(false));
    assert!(matches!(replies[0], Reply::Done(d) if d.error.as_deref().unwrap().contains("broken")));
    assert_eq!(p.a.policies(), 3);
    assert_eq!(p.status(true).conns.len(), 2);

    // SIGHUP reloads too: back to one conn, the traps go.
    p.a.next_conf = Some(conf(""));
    let now = p.now;
    p.a.sup.handle_signal(now, Signal::Hup);
    p.drive();
    assert_eq!(p.a.policies(), 0);
    assert_eq!(p.status(true).conns.len(), 1);
}

/// SSH to and from A in clear, whatever tunnel covers it.
const SSH_SHUNT: &str = "conn ssh\n\tleftsubnet=0.0.0.0/0[tcp/22]\n\trightsubnet=0.0.0.0/0\n\
    \ttype=pass\n\tauthby=never\n\tauto=route\n";

#[test]
fn shunts_go_in_at_start_and_out_with_down_reload_and_sigterm() {
    use crate::kernel::{PolicyAction, ShuntAction};
    let mut p = Pair::new(&conf(SSH_SHUNT), &conf(""));
    // out, in, and fwd both ways; hh (auto=add) has none yet.
    assert_eq!(p.a.policies(), 4);
    let shunt_policies = |n: &Node| {
        n.kernel
            .backend()
            .policies()
            .values()
            .filter(|s| s.action == PolicyAction::Shunt(ShuntAction::Pass))
            .count()
    };
    assert_eq!(shunt_policies(&p.a), 4);
    p.up();
    assert_eq!((p.a.policies(), shunt_policies(&p.a)), (6, 4));
    let ctl = p.request(true, Request::Down { name: "ssh".into() });
    assert_eq!(p.a.outcome(ctl).1, Some(true));
    assert_eq!((p.a.policies(), shunt_policies(&p.a)), (2, 0));
    assert_eq!(
        p.a.ike_sas(),
        1,
        "down of the shunt leaves the tunnel alone"
    );
    let ctl = p.request(true, Request::Up { name: "ssh".into() });
    assert_eq!(p.a.outcome(ctl).1, Some(true));
    assert_eq!(shunt_policies(&p.a), 4);
    // A reload without the shunt removes it; one with it puts it back.
    p.a.next_conf = Some(conf(""));
    let ctl = p.request(true, Request::Reload);
    assert_eq!(p.a.outcome(ctl).1, Some(true));
    assert_eq!((p.a.policies(), shunt_policies(&p.a)), (2, 0));
    p.a.next_conf = Some(conf(SSH_SHUNT));
    let ctl = p.request(true, Request::Reload);
    assert_eq!(p.a.outcome(ctl).1, Some(true));
    assert_eq!(shunt_policies(&p.a), 4);
    let now = p.now;
    p.a.sup.handle_signal(now, Signal::Term);
    p.drive();
    assert!(p.a.sup.is_stopped());
    assert_eq!((p.a.sas(), p.a.policies()), (0, 0));
}

#[test]
fn marks_reach_the_kernel_sas_and_policies() {
    let marked = "\tmark_in=0x10/0xff\n\tmark_out=32\n";
    let mut p = Pair::new(&conf(marked), &conf("\tmark=7\n"));
    p.up();
    let marks = |n: &Node| {
        let b = n.kernel.backend();
        let mut sas: Vec<_> = b.sas().values().map(|sa| sa.mark).collect();
        let mut pols: Vec<_> = b.policies().keys().map(|k| (k.dir, k.mark)).collect();
        sas.sort();
        pols.sort();
        (sas, pols)
    };
    let m = |value, mask| Some(crate::kernel::Mark { value, mask });
    use crate::kernel::Dir;
    assert_eq!(
        marks(&p.a),
        (
            vec![m(0x10, 0xff), m(32, u32::MAX)],
            vec![(Dir::In, m(0x10, 0xff)), (Dir::Out, m(32, u32::MAX))]
        )
    );
    let seven = m(7, u32::MAX);
    assert_eq!(
        marks(&p.b),
        (
            vec![seven, seven],
            vec![(Dir::In, seven), (Dir::Out, seven)]
        )
    );
    let ctl = p.request(true, Request::Down { name: "hh".into() });
    assert_eq!(p.a.outcome(ctl).1, Some(true));
    assert_eq!((p.a.sas(), p.a.policies()), (0, 0));
}

#[test]
fn acquire_on_a_trap_initiates_once() {
    // B knows only `rt` (a responder picks its conn by addresses and IDs).
    let mut p = Pair::new(&conf(ROUTE), &ROUTE.replace("auto=route", "auto=add"));
    assert_eq!(p.a.policies(), 3);
    let reqid = p.a.sup.conns[1].spec.reqid;
    let acquire = KernelEvent::Acquire {
        reqid,
        local: ip(A),
        remote: ip(B),
        flow: crate::kernel::Flow {
            src: ip("10.9.1.5"),
            dst: ip(B),
            proto: 1,
            sport: 8,
            dport: 0,
        },
        policy_index: 1,
    };
    let now = p.now;
    p.a.sup.handle_kernel_event(now, acquire);
    p.a.sup.handle_kernel_event(now, acquire);
    p.drive();
    assert_eq!(p.a.ike_sas(), 1, "one negotiation for two ACQUIREs");
    // The CHILD_SA's policies share the trap's (reference counted): still three, plus two SAs.
    assert_eq!((p.a.sas(), p.a.policies()), (2, 3));
    assert_eq!(p.b.sas(), 2);
    let s = p.status(true);
    let rt = s.conns.iter().find(|c| c.name == "rt").unwrap();
    assert_eq!(rt.ike_sas[0].children[0].local_ts, vec!["10.9.1.0/24"]);
}

#[test]
fn a_trap_without_a_fixed_peer_initiates_to_the_acquire_destination() {
    // A: right=%any, auto=route (transport): the trap covers every peer.
    let any = "conn oe\n\tleft=10.9.0.1\n\tright=%any\n\trightid=10.9.0.2\n\tauthby=secret\n\
        \ttype=transport\n\tike=aes128-sha256-x25519!\n\tesp=aes128gcm16!\n\tauto=route\n";
    let mut p = Pair::new(any, &conf(""));
    assert_eq!(
        p.a.policies(),
        2,
        "out and in traps for 10.9.0.1 <-> 0.0.0.0/0"
    );
    let reqid = p.a.sup.conns[0].spec.reqid;
    let acquire = |dst: &str| KernelEvent::Acquire {
        reqid,
        local: ip(A),
        remote: ip(dst),
        flow: crate::kernel::Flow {
            src: ip(A),
            dst: ip(dst),
            proto: 1,
            sport: 8,
            dport: 0,
        },
        policy_index: 1,
    };
    let now = p.now;
    p.a.sup.handle_kernel_event(now, acquire(B));
    p.a.sup.handle_kernel_event(now, acquire(B));
    p.drive();
    assert_eq!(p.a.ike_sas(), 1, "one negotiation for two ACQUIREs");
    assert_eq!((p.a.sas(), p.b.sas()), (2, 2));
    let s = p.status(true);
    let sa = &s.conns[0].ike_sas[0];
    assert_eq!(sa.children[0].remote_ts, vec![format!("{B}/32")]);
    // Another destination: a second negotiation, to that address (nobody answers there).
    p.a.sup.handle_kernel_event(now, acquire("10.9.0.7"));
    p.effects(ip(A));
    let to: Vec<IpAddr> = p.wire.iter().map(|t| t.remote.ip()).collect();
    assert_eq!(to, vec![ip("10.9.0.7")]);
    assert_eq!(p.a.sup.acquired.len(), 2);
    // The IKE SAs go (`down`): so do their ACQUIRE records (looked up by IKE SA, no scan).
    p.wire.clear();
    let ctl = p.request(true, Request::Down { name: "oe".into() });
    assert!(p.a.outcome(ctl).1.is_some(), "{:?}", p.a.outcome(ctl));
    assert_eq!(p.a.ike_sas(), 0);
    assert!(p.a.sup.acquired.is_empty() && p.a.sup.acquired_by.is_empty());
}

#[test]
fn a_failed_responder_install_tears_the_ike_sa_down() {
    let mut p = Pair::new(&conf(""), &conf(""));
    // As when the peer's chosen SPI collides with one the kernel has.
    p.b.kernel.backend_mut().inject(
        MemOp::AddSa,
        0,
        KernelError::Exists {
            target: Target::Sa { dst: ip(B), spi: 1 },
        },
    );
    let ctl = p.request(true, Request::Up { name: "hh".into() });
    // The initiator saw its CHILD_SA come up before the responder's DELETE arrived.
    assert_eq!(p.a.outcome(ctl).1, Some(true), "{:?}", p.a.outcome(ctl));
    for n in [&p.a, &p.b] {
        assert_eq!((n.ike_sas(), n.sas(), n.policies()), (0, 0, 0));
    }
}

#[test]
fn a_failed_initiator_install_fails_up() {
    let mut p = Pair::new(&conf(""), &conf(""));
    p.a.kernel.backend_mut().inject(
        MemOp::PutPolicy,
        0,
        KernelError::Exists {
            target: Target::Trap(1),
        },
    );
    let ctl = p.request(true, Request::Up { name: "hh".into() });
    let (replies, done) = p.a.outcome(ctl);
    assert_eq!(done, Some(false));
    assert!(
        matches!(replies.last(), Some(Reply::Done(d)) if d.error.as_deref().unwrap().starts_with("installing the CHILD_SA failed")),
        "{replies:?}"
    );
    for n in [&p.a, &p.b] {
        assert_eq!((n.ike_sas(), n.sas(), n.policies()), (0, 0, 0));
    }
}

#[test]
fn sigterm_deletes_sas_removes_everything_and_stops() {
    let mut p = Pair::new(&conf(ROUTE), &conf(""));
    p.up();
    let now = p.now;
    p.a.sup.handle_signal(now, Signal::Term);
    p.drive();
    assert!(
        p.a.sup.is_stopped(),
        "the peer answered the DELETE: no waiting"
    );
    assert_eq!((p.a.sas(), p.a.policies()), (0, 0));
    assert_eq!((p.b.ike_sas(), p.b.sas()), (0, 0));
    let ctl = p.request(true, Request::Up { name: "hh".into() });
    assert_eq!(p.a.outcome(ctl).1, Some(false), "no new SAs while stopping");
}

#[test]
fn sigterm_gives_a_silent_peer_the_grace_time_only() {
    let mut p = Pair::new(&conf(""), &conf(""));
    p.up();
    p.blackhole = true;
    // An `up` that cannot finish: the peer no longer answers.
    let pending_up = p.request(true, Request::Up { name: "hh".into() });
    let now = p.now;
    p.a.sup.handle_signal(now, Signal::Term);
    p.drive();
    assert!(!p.a.sup.is_stopped());
    assert_eq!(p.a.sas(), 2);
    p.advance(SHUTDOWN_GRACE - Duration::from_millis(1));
    assert!(!p.a.sup.is_stopped());
    p.advance(Duration::from_millis(1));
    assert!(p.a.sup.is_stopped());
    assert_eq!((p.a.sas(), p.a.policies()), (0, 0));
    assert_eq!(p.a.outcome(pending_up).1, Some(false));
}

#[test]
fn a_child_deleted_while_its_install_runs_is_removed_afterwards() {
    let mut p = Pair::new(&conf(""), &conf(""));
    p.b.hold = true;
    p.up();
    assert_eq!(p.b.held.len(), 1, "B's install is still running");
    p.request(true, Request::Down { name: "hh".into() });
    assert_eq!((p.a.ike_sas(), p.b.ike_sas()), (0, 0));
    p.b.hold = false;
    p.release(false);
    assert_eq!((p.b.sas(), p.b.policies()), (0, 0));
}

/// `hh` with more options (lines of `hh`).
fn hh_with(options: &[&str]) -> String {
    let lines: String = options.iter().map(|o| format!("\t{o}\n")).collect();
    conf(&lines)
}

/// The engine's default schedule gives up ≈165.06 s after the first transmission.
const GIVE_UP: Duration = Duration::from_millis(165_100);

#[test]
fn dpd_checks_a_silent_peer_and_an_answering_one_stays() {
    let mut p = Pair::new(&hh_with(&["dpdaction=clear", "dpddelay=10s"]), &conf(""));
    p.up();
    let established = p.a.sup.endpoint.ike_sas()[0].established_at.unwrap();
    assert_eq!(
        p.a.sup.endpoint.ike_sas()[0].last_received,
        Some(established)
    );
    p.advance(Duration::from_secs(9));
    assert_eq!(
        p.a.sup.endpoint.ike_sas()[0].last_received,
        Some(established),
        "no check before dpddelay"
    );
    p.advance(Duration::from_secs(1));
    // The empty INFORMATIONAL went out at 10 s and was answered.
    let heard = p.a.sup.endpoint.ike_sas()[0].last_received.unwrap();
    assert_eq!(heard - established, Duration::from_secs(10));
    p.advance(Duration::from_secs(100));
    let heard = p.a.sup.endpoint.ike_sas()[0].last_received.unwrap();
    assert_eq!(heard - established, Duration::from_secs(110));
    for n in [&p.a, &p.b] {
        assert_eq!((n.ike_sas(), n.sas()), (1, 2));
    }
}

#[test]
fn dpdaction_clear_removes_every_sa_once_the_checks_give_up() {
    let mut p = Pair::new(&hh_with(&["dpdaction=clear", "dpddelay=10s"]), &conf(""));
    p.up();
    p.blackhole = true;
    p.advance(Duration::from_secs(10) + GIVE_UP - Duration::from_secs(1));
    assert_eq!((p.a.ike_sas(), p.a.sas()), (1, 2), "still retransmitting");
    p.advance(Duration::from_secs(1));
    assert_eq!((p.a.ike_sas(), p.a.sas(), p.a.policies()), (0, 0, 0));
    // Nothing comes back: no traps, no new initiation.
    p.advance(Duration::from_secs(600));
    assert_eq!((p.a.ike_sas(), p.a.policies()), (0, 0));
}

#[test]
fn without_dpdaction_no_liveness_checks_are_sent() {
    let mut p = Pair::new(&hh_with(&["dpddelay=10s"]), &conf(""));
    p.up();
    p.blackhole = true;
    p.advance(Duration::from_secs(600));
    assert_eq!((p.a.ike_sas(), p.a.sas()), (1, 2));
}

#[test]
fn dpdaction_hold_installs_traps_and_traffic_brings_the_tunnel_back() {
    let mut p = Pair::new(&hh_with(&["dpdaction=hold", "dpddelay=10s"]), &conf(""));
    p.up();
    p.blackhole = true;
    p.advance(Duration::from_secs(10) + GIVE_UP);
    assert_eq!((p.a.ike_sas(), p.a.sas()), (0, 0));
    assert_eq!(p.a.policies(), 2, "transport-mode traps: out and in");
    p.blackhole = false;
    let reqid = p.a.sup.conns[0].spec.reqid;
    let now = p.now;
    p.a.sup.handle_kernel_event(
        now,
        KernelEvent::Acquire {
            reqid,
            local: ip(A),
            remote: ip(B),
            flow: crate::kernel::Flow {
                src: ip(A),
                dst: ip(B),
                proto: 1,
                sport: 8,
                dport: 0,
            },
            policy_index: 1,
        },
    );
    p.drive();
    assert_eq!((p.a.ike_sas(), p.a.sas()), (1, 2));
    // INITIAL_CONTACT made B drop its stale SAs: one IKE SA and one pair.
    assert_eq!((p.b.ike_sas(), p.b.sas()), (1, 2));
}

#[test]
fn dpdaction_restart_with_keyingtries_forever_waits_for_the_peer() {
    let mut p = Pair::new(
        &hh_with(&["dpdaction=restart", "dpddelay=10s", "keyingtries=%forever"]),
        &conf(""),
    );
    p.up();
    p.blackhole = true;
    p.advance(Duration::from_secs(10) + GIVE_UP);
    assert_eq!((p.a.ike_sas(), p.a.sas()), (1, 0), "restarted at once");
    // Several failed tries later the peer is back.
    p.advance(Duration::from_secs(1000));
    assert_eq!(p.a.ike_sas(), 1, "still trying");
    p.blackhole = false;
    p.advance(Duration::from_secs(200));
    assert_eq!((p.a.ike_sas(), p.a.sas()), (1, 2));
    assert_eq!(
        p.a.sup.endpoint.ike_sas()[0].state,
        crate::ike::IkeSaState::Established
    );
    assert_eq!((p.b.ike_sas(), p.b.sas()), (1, 2));
}

#[test]
fn keyingtries_retries_with_backoff_then_fails_up() {
    let mut p = Pair::new(&hh_with(&["keyingtries=2"]), &conf(""));
    p.blackhole = true;
    let ctl = p.request(true, Request::Up { name: "hh".into() });
    p.advance(GIVE_UP);
    assert_eq!(p.a.outcome(ctl).1, None, "waiting for the second try");
    assert_eq!(p.a.ike_sas(), 0, "back-off before the next try");
    p.advance(Duration::from_secs(1));
    assert_eq!(p.a.ike_sas(), 1, "second try after 1 s");
    p.advance(GIVE_UP);
    let (replies, done) = p.a.outcome(ctl);
    assert_eq!(done, Some(false));
    let texts: Vec<String> = replies.iter().map(|r| format!("{r:?}")).collect();
    assert!(
        texts
            .iter()
            .any(|t| t.contains("trying again in 1 s (try 2 of 2)")),
        "{texts:?}"
    );
    p.advance(Duration::from_secs(600));
    assert_eq!(p.a.ike_sas(), 0, "no third try");
}

#[test]
fn keyingtries_succeeds_when_the_peer_returns_between_tries() {
    let mut p = Pair::new(&conf(""), &conf(""));
    p.blackhole = true;
    let ctl = p.request(true, Request::Up { name: "hh".into() });
    p.advance(GIVE_UP);
    p.blackhole = false;
    p.advance(Duration::from_secs(1));
    assert_eq!(p.a.outcome(ctl).1, Some(true), "{:?}", p.a.outcome(ctl));
    for n in [&p.a, &p.b] {
        assert_eq!((n.ike_sas(), n.sas()), (1, 2));
    }
}

#[test]
fn down_cancels_pending_tries() {
    let mut p = Pair::new(&conf(""), &conf(""));
    p.blackhole = true;
    let up = p.request(true, Request::Up { name: "hh".into() });
    p.advance(GIVE_UP);
    p.request(true, Request::Down { name: "hh".into() });
    assert_eq!(p.a.outcome(up).1, Some(false));
    p.advance(Duration::from_secs(600));
    assert_eq!(p.a.ike_sas(), 0);
}

#[test]
fn closeaction_restart_initiates_again_after_the_peers_delete() {
    let mut p = Pair::new(&hh_with(&["closeaction=restart"]), &conf(""));
    p.up();
    let old = p.a.inbound_spis();
    p.request(false, Request::Down { name: "hh".into() });
    for n in [&p.a, &p.b] {
        assert_eq!((n.ike_sas(), n.sas()), (1, 2));
    }
    assert_ne!(p.a.inbound_spis(), old);
    // Our own `down` does not restart.
    p.request(true, Request::Down { name: "hh".into() });
    assert_eq!((p.a.ike_sas(), p.a.sas(), p.b.ike_sas()), (0, 0, 0));
}

#[test]
fn closeaction_hold_installs_traps_after_the_peers_delete() {
    let mut p = Pair::new(&hh_with(&["closeaction=hold"]), &conf(""));
    p.up();
    p.request(false, Request::Down { name: "hh".into() });
    assert_eq!((p.a.ike_sas(), p.a.sas(), p.a.policies()), (0, 0, 2));
}

#[test]
fn a_restarted_initiator_leaves_the_responder_one_ike_sa_and_one_pair() {
    // B would restart on the peer's delete: INITIAL_CONTACT's replacement must not trigger it.
    let mut p = Pair::new(&conf(""), &hh_with(&["closeaction=restart"]));
    p.up();
    // A loses its state (SIGKILL) and comes back.
    p.a = Node::new(A, &conf(""), 30);
    p.a.sup.start(p.now);
    p.up();
    for n in [&p.a, &p.b] {
        assert_eq!((n.ike_sas(), n.sas()), (1, 2));
    }
    let a_in = p.a.inbound_spis();
    assert!(p.b.kernel.backend().sas().contains_key(&SaId {
        dst: ip(A),
        spi: a_in[0]
    }));
}

#[test]
fn reload_applies_the_retransmission_settings() {
    let mut p = Pair::new(&conf(""), &conf(""));
    p.up();
    p.a.next_conf = Some(conf(""));
    p.a.next_settings = crate::config::settings::parse_settings(
        "ikev2d.toml",
        "[retransmit]\ntimeout = 1.0\nbase = 2.0\ntries = 2\n",
    )
    .unwrap();
    let ctl = p.request(true, Request::Reload);
    assert_eq!(p.a.outcome(ctl).1, Some(true));
    p.blackhole = true;
    p.request(true, Request::Down { name: "hh".into() });
    // Sent at 0, retransmitted at 1 s and 3 s, given up at 7 s (1 + 2 + 4).
    p.advance(Duration::from_millis(6_999));
    assert_eq!(p.a.ike_sas(), 1);
    p.advance(Duration::from_millis(1));
    assert_eq!((p.a.ike_sas(), p.a.sas()), (0, 0));
}

#[test]
fn lifebytes_and_lifepackets_become_kernel_limits() {
    let c = hh_with(&[
        "lifebytes=1000000",
        "marginbytes=100000",
        "lifepackets=2000",
        "marginpackets=200",
    ]);
    let mut p = Pair::new(&c, &conf(""));
    p.up();
    let sas = p.a.kernel.backend().sas();
    assert_eq!(sas.len(), 2);
    for sa in sas.values() {
        let l = sa.lifetime;
        assert_eq!((l.hard_bytes, l.hard_packets), (1_000_000, 2000));
        // Margin plus up to rekeyfuzz=50 % of it.
        assert!((850_000..=900_000).contains(&l.soft_bytes), "{l:?}");
        assert!((1700..=1800).contains(&l.soft_packets), "{l:?}");
    }
    // B has no volume limits.
    for sa in p.b.kernel.backend().sas().values() {
        assert_eq!((sa.lifetime.hard_bytes, sa.lifetime.soft_packets), (0, 0));
    }
}

#[test]
fn inactivity_closes_an_idle_child_and_spares_a_busy_one() {
    let mut p = Pair::new(&hh_with(&["inactivity=30s"]), &conf(""));
    p.up();
    let spi = p.a.inbound_spis()[0];
    let sa = SaId { dst: ip(A), spi };
    // Traffic in every interval: the CHILD_SA stays.
    for n in 1..=4u64 {
        p.a.kernel
            .backend_mut()
            .set_counters(
                sa,
                Counters {
                    bytes: 100 * n,
                    packets: n,
                },
            )
            .unwrap();
        p.advance(Duration::from_secs(30));
        assert_eq!((p.a.ike_sas(), p.a.sas()), (1, 2), "busy in interval {n}");
    }
    // Then silence: gone at the next reading (its only CHILD_SA, so the IKE SA goes too).
    p.advance(Duration::from_secs(29));
    assert_eq!(p.a.ike_sas(), 1);
    p.advance(Duration::from_secs(1));
    for n in [&p.a, &p.b] {
        assert_eq!((n.ike_sas(), n.sas()), (0, 0));
    }
}

#[test]
fn without_inactivity_an_idle_child_stays() {
    let mut p = Pair::new(&conf(""), &conf(""));
    p.up();
    p.advance(Duration::from_secs(39));
    assert_eq!((p.a.ike_sas(), p.a.sas()), (1, 2));
}

#[test]
fn a_refusal_is_not_retried() {
    let b = conf("").replace("aes128-sha256-x25519!", "aes256-sha384-ecp256!");
    let mut p = Pair::new(&hh_with(&["keyingtries=%forever"]), &b);
    let ctl = p.request(true, Request::Up { name: "hh".into() });
    let (replies, done) = p.a.outcome(ctl);
    assert_eq!(done, Some(false), "{replies:?}");
    assert!(
        !replies
            .iter()
            .any(|r| format!("{r:?}").contains("trying again")),
        "{replies:?}"
    );
    p.advance(Duration::from_secs(600));
    assert_eq!(p.a.ike_sas(), 0);
}

#[test]
fn forceencaps_installs_udp_encapsulation_and_sends_keepalives() {
    let conf_a = conf("").replace("\tauto=add\n", "\tauto=add\n\tforceencaps=yes\n");
    let mut p = Pair::new(&conf_a, &conf(""));
    p.up();
    let encaps = |n: &Node| -> Vec<Option<(u16, u16)>> {
        n.kernel
            .backend()
            .sas()
            .values()
            .map(|sa| sa.encap)
            .collect()
    };
    assert_eq!(encaps(&p.a), [Some((4500, 4500)); 2]);
    assert_eq!(encaps(&p.b), [Some((4500, 4500)); 2]);
    let start = p.now;
    p.advance(Duration::from_secs(61));
    // Only a (which forces encapsulation, like a host behind a NAT) sends them, every 20 s.
    assert_eq!(p.a.keepalives_since(start), [20, 40, 60]);
    let (_, from, to) = p.a.keepalives[0];
    assert_eq!(
        (from, to),
        (SocketAddr::new(ip(A), 4500), SocketAddr::new(ip(B), 4500))
    );
    assert!(p.b.keepalives.is_empty());
    // Down: no more keepalives.
    p.request(true, Request::Down { name: "hh".into() });
    p.advance(Duration::from_secs(60));
    assert_eq!(p.a.keepalives.len(), 3);
}

#[test]
fn no_nat_no_keepalives_and_no_encapsulation() {
    let mut p = Pair::new(&conf(""), &conf(""));
    p.up();
    assert!(
        p.a.kernel
            .backend()
            .sas()
            .values()
            .all(|sa| sa.encap.is_none())
    );
    p.advance(Duration::from_secs(61));
    assert!(p.a.keepalives.is_empty() && p.b.keepalives.is_empty());
}

#[test]
fn up_streams_each_retransmission() {
    let mut p = Pair::new(&conf(""), &conf(""));
    p.blackhole = true;
    let ctl = p.request(true, Request::Up { name: "hh".into() });
    // Retransmits at 4 and 11.2 s, the third at 24.2 s.
    p.advance(Duration::from_secs(20));
    let texts: Vec<String> =
        p.a.outcome(ctl)
            .0
            .into_iter()
            .filter_map(|r| match r {
                Reply::Progress(t) if t.starts_with("retransmit") => Some(t.clone()),
                _ => None,
            })
            .collect();
    assert_eq!(
        texts,
        [
            "retransmit 1 of 5 to 10.9.0.2:500, next in 7 s",
            "retransmit 2 of 5 to 10.9.0.2:500, next in 13 s",
        ]
    );
    assert_eq!(p.a.outcome(ctl).1, None, "still waiting");
}

#[test]
fn status_shows_the_responder_counters() {
    let mut p = Pair::new(&conf(""), &conf(""));
    // a's IKE_SA_INIT, captured before the wire delivers it.
    let now = p.now;
    p.a.sup
        .handle_request(now, CtlId(99), Request::Up { name: "hh".into() });
    let init = std::iter::from_fn(|| p.a.sup.poll_effect())
        .find_map(|e| match e {
            Effect::Transmit(t) => Some(t),
            _ => None,
        })
        .unwrap();
    // The same request from four ports of a's address: three half-open SAs, then a COOKIE
    // (b's answers go nowhere).
    p.blackhole = true;
    for port in 1000..1004 {
        p.b.sup
            .handle_datagram(now, init.remote, SocketAddr::new(ip(A), port), &init.data);
    }
    let r = p.status(false).responder;
    assert_eq!(
        (
            r.half_open,
            r.cookies_sent,
            r.dropped_per_ip,
            r.dropped_total
        ),
        (3, 1, 0, 0)
    );
    let text = p.status(false).to_string();
    assert!(
        text.contains("Responder: 3 half-open, 1 cookies sent"),
        "{text}"
    );
}

#[test]
fn behind_a_nat_keepalives_and_a_changed_mapping_rekeys_on_the_responder() {
    let mut p = Pair::new(&conf(""), &conf(""));
    p.nat_shift = Some(1000);
    p.up();
    // (source, destination) port of the ESP packets of each SA, in and out.
    let encaps = |n: &Node| -> Vec<Option<(u16, u16)>> {
        let mut v: Vec<_> = n
            .kernel
            .backend()
            .sas()
            .values()
            .map(|sa| sa.encap)
            .collect();
        v.sort_unstable();
        v
    };
    assert_eq!(encaps(&p.a), [Some((4500, 4500)); 2]);
    assert_eq!(encaps(&p.b), [Some((4500, 5500)), Some((5500, 4500))]);
    p.advance(Duration::from_secs(21));
    assert_eq!(p.a.keepalives.len(), 1);
    assert!(p.b.keepalives.is_empty());
    // The NAT restarts with other ports; a's next request (a liveness check) shows it.
    p.nat_shift = Some(2000);
    let id = p.a.sup.endpoint.ike_sas()[0].id;
    let now = p.now;
    p.a.sup.endpoint.check_liveness(now, id).unwrap();
    p.a.sup.drain_engine(now);
    p.drive();
    // b rekeyed its CHILD_SA: only the new one is left, with the new port; a has the same.
    assert_eq!(encaps(&p.b), [Some((4500, 6500)), Some((6500, 4500))]);
    assert_eq!(p.a.inbound_spis().len(), 1);
    assert_eq!(p.a.inbound_spis(), {
        let b = p.b.sup.endpoint.ike_sas();
        vec![b[0].children[0].spi_out]
    });
    assert_eq!(p.status(false).conns[0].ike_sas[0].remote, "10.9.0.1:6500");
}

#[test]
fn the_settings_file_sets_the_keepalive_interval_and_zero_turns_them_off() {
    let conf_a = conf("").replace("\tauto=add\n", "\tauto=add\n\tforceencaps=yes\n");
    let mut p = Pair::new(&conf_a, &conf(""));
    let reload = |p: &mut Pair, text: &str| {
        p.a.next_conf = Some(conf_a.clone());
        p.a.next_settings = crate::config::settings::parse_settings("ikev2d.toml", text).unwrap();
        let ctl = p.request(true, Request::Reload);
        assert_eq!(p.a.outcome(ctl).1, Some(true));
    };
    reload(&mut p, "[nat]\nkeepalive = 5\n");
    p.up();
    let start = p.now;
    p.advance(Duration::from_secs(16));
    assert_eq!(p.a.keepalives_since(start), [5, 10, 15]);
    reload(&mut p, "[nat]\nkeepalive = 0\n");
    p.advance(Duration::from_secs(60));
    assert_eq!(p.a.keepalives.len(), 3, "none after keepalive = 0");
}

/// A road warrior (`leftsourceip=%config`) and a gateway leasing from `rightsourceip`.
fn vip_confs() -> (String, String) {
    let common = "\tauthby=secret\n\tike=aes128-sha256-x25519!\n\tesp=aes128gcm16!\n\tauto=add\n";
    (
        format!(
            "conn vip\n\tleft={A}\n\tright={B}\n\tleftsourceip=%config\n\trightsubnet=10.9.2.0/24\n{common}"
        ),
        format!(
            "conn vip\n\tleft={B}\n\tright={A}\n\trightsourceip=10.3.0.0/24\n\tleftsubnet=10.9.2.0/24\n{common}"
        ),
    )
}

#[test]
fn virtual_ip_is_added_to_lo_shown_in_status_and_removed_on_down() {
    let (a, b) = vip_confs();
    let mut p = Pair::new(&a, &b);
    let ctl = p.request(true, Request::Up { name: "vip".into() });
    let (replies, done) = p.a.outcome(ctl);
    assert_eq!(done, Some(true), "{replies:?}");
    assert!(
        replies.iter().any(
            |r| matches!(r, Reply::Progress(t) if t == &format!("virtual IP 10.3.0.1 assigned by {B}"))
        ),
        "{replies:?}"
    );
    let vip = ip("10.3.0.1");
    assert_eq!(
        p.a.kernel.backend().addresses().iter().collect::<Vec<_>>(),
        [&vip]
    );
    assert!(p.b.kernel.backend().addresses().is_empty());
    let sa = &p.status(true).conns[0].ike_sas[0];
    assert_eq!(sa.virtual_ips, ["10.3.0.1"]);
    assert_eq!(sa.children[0].local_ts, ["10.3.0.1/32"]);
    assert_eq!(sa.children[0].remote_ts, ["10.9.2.0/24"]);
    let gw = p.status(false);
    assert_eq!(gw.conns[0].ike_sas[0].peer_virtual_ips, ["10.3.0.1"]);
    assert_eq!(
        gw.leases,
        [crate::control::LeaseReport {
            pool: "10.3.0.0/24".into(),
            address: "10.3.0.1".into(),
            identity: A.into(),
            online: 1,
        }]
    );
    let ctl = p.request(true, Request::Down { name: "vip".into() });
    assert_eq!(p.a.outcome(ctl).1, Some(true));
    assert!(p.a.kernel.backend().addresses().is_empty());
    assert_eq!(p.status(false).leases[0].online, 0, "offline, kept for A");
}

impl Pair {
    /// `n` IKE SAs of `hh` from a to b (each `ikectl up` initiates another one).
    fn up_many(&mut self, n: usize) {
        for _ in 0..n {
            self.up();
        }
        assert_eq!((self.a.ike_sas(), self.b.ike_sas()), (n, n));
    }

    /// Delivers datagrams one at a time (each followed by both nodes' effects) until the
    /// wire is empty, without advancing the clock; returns the most datagrams that were on
    /// the wire at once.
    fn drive_counting(&mut self) -> usize {
        let mut most = 0;
        loop {
            self.effects(self.a.addr);
            self.effects(self.b.addr);
            most = most.max(self.wire.len());
            let Some(t) = self.wire.pop_front() else {
                return most;
            };
            let now = self.now;
            self.node(t.remote.ip())
                .sup
                .handle_datagram(now, t.remote, t.local, &t.data);
        }
    }
}

#[test]
fn down_of_many_ike_sas_keeps_a_window_of_deletes_outstanding() {
    let mut p = Pair::new(&conf(""), &conf(""));
    let n = pacing::DELETE_WINDOW + 20;
    p.up_many(n);
    let now = p.now;
    let ctl = CtlId(1000);
    p.b.sup
        .handle_request(now, ctl, Request::Down { name: "hh".into() });
    // Each outstanding Delete is on the wire, as the request or as its answer.
    assert_eq!(p.drive_counting(), pacing::DELETE_WINDOW);
    assert_eq!(p.b.outcome(ctl).1, Some(true));
    assert_eq!((p.a.ike_sas(), p.a.sas()), (0, 0));
    assert_eq!((p.b.ike_sas(), p.b.sas()), (0, 0));
    assert_eq!(p.now, now, "all deleted without waiting for a timer");
}

#[test]
fn sigterm_with_many_ike_sas_paces_the_deletes_and_stops_once_answered() {
    let mut p = Pair::new(&conf(""), &conf(""));
    let n = pacing::DELETE_WINDOW + 20;
    p.up_many(n);
    let now = p.now;
    p.b.sup.handle_signal(now, Signal::Term);
    assert_eq!(p.drive_counting(), pacing::DELETE_WINDOW);
    assert!(p.b.sup.is_stopped());
    assert_eq!((p.a.ike_sas(), p.a.sas()), (0, 0));
    assert_eq!((p.b.sas(), p.b.policies()), (0, 0));
}

#[test]
fn sigterm_sends_the_queued_deletes_when_the_grace_time_is_over() {
    let mut p = Pair::new(&conf(""), &conf(""));
    let n = pacing::DELETE_WINDOW + 20;
    p.up_many(n);
    let start = p.now;
    p.b.sup.handle_signal(start, Signal::Term);
    p.effects(p.b.addr);
    assert_eq!(p.wire.len(), pacing::DELETE_WINDOW, "one window at first");
    // The first window's Deletes are lost: no answer frees the window.
    p.wire.clear();
    while let Some(t) = p.b.sup.poll_timeout() {
        assert!(t <= start + SHUTDOWN_GRACE);
        p.now = t;
        p.b.sup.handle_timeout(t);
        p.effects(p.b.addr);
        if p.b.sup.is_stopped() {
            break;
        }
    }
    assert!(p.b.sup.is_stopped());
    // The rest went out when the grace time was over: a deletes those IKE SAs and keeps
    // the first window's.
    p.drive();
    assert_eq!(p.a.ike_sas(), pacing::DELETE_WINDOW);
}

#[test]
fn status_pages_through_the_ike_sas_in_id_order() {
    let mut p = Pair::new(&conf(""), &conf(""));
    p.up_many(5);
    let ids = |r: &StatusReport| -> Vec<u64> {
        r.conns
            .iter()
            .flat_map(|c| c.ike_sas.iter().map(|s| s.id))
            .collect()
    };
    let full = p.status(false);
    assert_eq!(full.page, None);
    let all = ids(&full);
    assert_eq!(all.len(), 5);
    let mut paged = Vec::new();
    for offset in [0, 2, 4, 6] {
        let page = crate::control::Page { offset, limit: 2 };
        let r = p.status_page(false, Some(page));
        assert_eq!(
            r.page,
            Some(crate::control::PageReport {
                offset,
                limit: 2,
                total: 5
            })
        );
        // Every IKE SA of the page comes with its CHILD_SA.
        assert!(
            r.conns
                .iter()
                .flat_map(|c| &c.ike_sas)
                .all(|s| s.children.len() == 1)
        );
        paged.extend(ids(&r));
    }
    assert_eq!(paged, all);
}
