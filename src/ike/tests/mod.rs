//! Two-endpoint in-memory harness on a virtual clock (quinn-proto `Pair` style), with knobs
//! to drop, duplicate, reorder and address-translate datagrams.

mod ah;
mod children;
mod exchanges;
mod faults;
mod handshake;
mod ike_rekey;
mod ike_rekey_initiator;
mod interop;
mod nat;
mod rekey;
mod road_warrior;
mod virtual_ip;

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;

use super::*;
use crate::crypto::{DhGroup, DhPrivate, Encr, Integ, Prf};
use crate::wire::{Identification, TrafficSelector};

/// Deterministic SPI allocator: base, base+1, ...
pub(super) struct SeqSpis(pub(super) u32);

impl SpiAllocator for SeqSpis {
    fn allocate_esp_spi(&mut self, _: IpAddr, _: IpAddr) -> Result<u32, SpiError> {
        self.0 += 1;
        Ok(self.0)
    }
}

/// Always fails (kernel refused).
pub(super) struct NoSpis;

impl SpiAllocator for NoSpis {
    fn allocate_esp_spi(&mut self, _: IpAddr, _: IpAddr) -> Result<u32, SpiError> {
        Err(SpiError("no SPI for you".into()))
    }
}

/// Parse a strongSwan-style IKE proposal such as `aes128gcm16-prfsha256-x25519`.
pub(super) fn ike_prop(s: &str) -> IkeProposal {
    let mut p = IkeProposal {
        encr: vec![],
        integ: vec![],
        prf: vec![],
        dh: vec![],
    };
    for t in s.split('-') {
        match t {
            "sha256" => {
                p.integ.push(Integ::HmacSha256_128);
                p.prf.push(Prf::HmacSha256);
            }
            "sha1" => {
                p.integ.push(Integ::HmacSha1_96);
                p.prf.push(Prf::HmacSha1);
            }
            "prfsha256" => p.prf.push(Prf::HmacSha256),
            "prfsha384" => p.prf.push(Prf::HmacSha384),
            "x25519" => p.dh.push(DhGroup::Curve25519),
            "ecp256" => p.dh.push(DhGroup::Ecp256),
            "modp2048" => p.dh.push(DhGroup::Modp2048),
            e => p.encr.push(encr(e)),
        }
    }
    p
}

fn encr(s: &str) -> Encr {
    match s {
        "aes128gcm16" => Encr::AesGcm16 { key_bits: 128 },
        "aes256gcm16" => Encr::AesGcm16 { key_bits: 256 },
        "aes128" => Encr::AesCbc { key_bits: 128 },
        "aes256" => Encr::AesCbc { key_bits: 256 },
        other => panic!("unknown algorithm {other}"),
    }
}

/// Parse a strongSwan-style ESP proposal such as `aes128-sha256`, or an AH one written
/// `ah-sha1`.
pub(super) fn esp_prop(s: &str) -> EspProposal {
    let mut p = EspProposal {
        protocol: crate::kernel::IpsecProto::Esp,
        encr: vec![],
        integ: vec![],
        esn: false,
        dh: vec![],
    };
    for t in s.split('-') {
        match t {
            "x25519" => p.dh.push(DhGroup::Curve25519),
            "ecp256" => p.dh.push(DhGroup::Ecp256),
            "modp2048" => p.dh.push(DhGroup::Modp2048),
            "sha256" => p.integ.push(Integ::HmacSha256_128),
            "sha1" => p.integ.push(Integ::HmacSha1_96),
            "esn" => p.esn = true,
            "ah" => p.protocol = crate::kernel::IpsecProto::Ah,
            e => p.encr.push(encr(e)),
        }
    }
    p
}

pub(super) const A_IP: &str = "192.0.2.1";
pub(super) const B_IP: &str = "192.0.2.2";

pub(super) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub(super) fn subnet(first: &str, last: &str) -> TrafficSelector {
    let mut t = super::ts::host(ip(first));
    t.end_addr = ip(last);
    t
}

/// A conn from `local` to `remote` (`remote` None = %any) with these proposals.
pub(super) fn conn(local: &str, remote: Option<&str>, ike: &str, esp: &str) -> ConnSpec {
    let id = |s: &str| {
        Identification::fqdn(if s == A_IP {
            "moon.example"
        } else {
            "sun.example"
        })
    };
    ConnSpec {
        name: "net".into(),
        local_addr: Some(ip(local)),
        remote_addr: remote.map(ip),
        local_port: 500,
        remote_port: 500,
        local_id: Some(id(local)),
        remote_id: remote.map(id),
        psk: Psks::fixed(b"this is a strong password"),
        ike_proposals: ike.split(',').map(ike_prop).collect(),
        esp_proposals: esp.split(',').map(esp_prop).collect(),
        mode: Mode::Tunnel,
        local_ts: vec![],
        remote_ts: vec![],
        lifetime: Duration::from_secs(3600),
        reqid: 1,
        rekey_margin: Duration::from_secs(540),
        rekey_fuzz_percent: 100,
        ike_lifetime: Duration::from_secs(10800),
        force_encaps: false,
        request_vips: vec![],
        pools: vec![],
        request_dns: vec![],
        peer_dns: vec![],
    }
}

/// Direction of a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dir {
    AtoB,
    BtoA,
}

/// What the network does with one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fault {
    Deliver,
    Drop,
    Duplicate,
    /// Deliver after the next datagram (reordering).
    Hold,
}

type FaultFn = Box<dyn FnMut(Dir, usize, &Transmit) -> Fault>;

/// Initiator `a`, responder `b`, the wire between them, and a virtual clock.
pub(super) struct Pair {
    pub(super) t0: Instant,
    pub(super) now: Instant,
    pub(super) a: Endpoint<ChaCha20Rng>,
    pub(super) b: Endpoint<ChaCha20Rng>,
    pub(super) a_events: Vec<Event>,
    pub(super) b_events: Vec<Event>,
    /// Every datagram offered to the network: (direction, transmit).
    pub(super) log: Vec<(Dir, Transmit)>,
    queue: VecDeque<(Dir, Transmit)>,
    held: Vec<(Dir, Transmit)>,
    pub(super) fault: FaultFn,
    /// Address translation of a's datagrams: a's real address → public address seen by b;
    /// a's other ports of that address keep their distance to it (500 → public, 4500 →
    /// public + 4000), as a NAT mapping each source port to its own public port.
    pub(super) nat: Option<(SocketAddr, SocketAddr)>,
    sent: [usize; 2],
}

impl Pair {
    pub(super) fn new(a_conn: ConnSpec, b_conn: ConnSpec) -> Self {
        Self::with_config(a_conn, b_conn, EndpointConfig::default())
    }

    pub(super) fn with_config(a_conn: ConnSpec, b_conn: ConnSpec, cfg: EndpointConfig) -> Self {
        let t0 = Instant::now();
        let mut a = Endpoint::new(
            cfg.clone(),
            ChaCha20Rng::seed_from_u64(1),
            Box::new(SeqSpis(0xa000_0000)),
        );
        a.set_conns(vec![a_conn]);
        let mut b = Endpoint::new(
            cfg,
            ChaCha20Rng::seed_from_u64(2),
            Box::new(SeqSpis(0xb000_0000)),
        );
        b.set_conns(vec![b_conn]);
        Self {
            t0,
            now: t0,
            a,
            b,
            a_events: vec![],
            b_events: vec![],
            log: vec![],
            queue: VecDeque::new(),
            held: vec![],
            fault: Box::new(|_, _, _| Fault::Deliver),
            nat: None,
            sent: [0, 0],
        }
    }

    /// Seconds since the start.
    pub(super) fn elapsed(&self) -> f64 {
        (self.now - self.t0).as_secs_f64()
    }

    fn collect(&mut self) {
        while let Some(t) = self.a.poll_transmit() {
            self.queue.push_back((Dir::AtoB, t));
        }
        while let Some(t) = self.b.poll_transmit() {
            self.queue.push_back((Dir::BtoA, t));
        }
        while let Some(e) = self.a.poll_event() {
            self.a_events.push(e);
        }
        while let Some(e) = self.b.poll_event() {
            self.b_events.push(e);
        }
    }

    fn deliver(&mut self, dir: Dir, mut t: Transmit) {
        let now = self.now;
        match dir {
            Dir::AtoB => {
                if let Some((real, public)) = self.nat
                    && t.local.ip() == real.ip()
                {
                    t.local = SocketAddr::new(
                        public.ip(),
                        t.local
                            .port()
                            .wrapping_sub(real.port())
                            .wrapping_add(public.port()),
                    );
                }
                self.b.handle_datagram(now, t.remote, t.local, &t.data);
            }
            Dir::BtoA => {
                if let Some((real, public)) = self.nat
                    && t.remote.ip() == public.ip()
                {
                    t.remote = SocketAddr::new(
                        real.ip(),
                        t.remote
                            .port()
                            .wrapping_sub(public.port())
                            .wrapping_add(real.port()),
                    );
                }
                self.a.handle_datagram(now, t.remote, t.local, &t.data);
            }
        }
    }

    /// Deliver one queued datagram as is; false if none was queued.
    pub(super) fn step(&mut self) -> bool {
        self.collect();
        let Some((dir, t)) = self.queue.pop_front() else {
            return false;
        };
        self.log.push((dir, t.clone()));
        self.deliver(dir, t);
        self.collect();
        true
    }

    /// Deliver datagrams and fire timers until nothing is left or `limit` seconds passed.
    pub(super) fn drive_for(&mut self, limit: f64) {
        for _ in 0..10_000 {
            self.collect();
            if let Some((dir, t)) = self.queue.pop_front() {
                self.log.push((dir, t.clone()));
                let idx = &mut self.sent[usize::from(dir == Dir::BtoA)];
                let n = *idx;
                *idx += 1;
                match (self.fault)(dir, n, &t) {
                    Fault::Deliver => self.deliver(dir, t),
                    Fault::Drop => {}
                    Fault::Duplicate => {
                        self.deliver(dir, t.clone());
                        self.deliver(dir, t);
                    }
                    Fault::Hold => {
                        self.held.push((dir, t));
                        continue;
                    }
                }
                for (d, h) in std::mem::take(&mut self.held) {
                    self.deliver(d, h);
                }
                continue;
            }
            let next = [self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if (t - self.t0).as_secs_f64() <= limit => {
                    self.now = self.now.max(t);
                    self.a.handle_timeout(self.now);
                    self.b.handle_timeout(self.now);
                }
                _ => match self.held.pop() {
                    Some((d, h)) => self.deliver(d, h),
                    None => return,
                },
            }
        }
        panic!("harness did not settle");
    }

    /// Drive until idle (timers up to one hour).
    pub(super) fn drive(&mut self) {
        self.drive_for(3600.0);
    }

    /// Initiate the conn on `a` and drive.
    pub(super) fn connect(&mut self) -> IkeSaId {
        let id = self.a.initiate(self.now, "net").unwrap();
        self.drive();
        id
    }

    pub(super) fn count(&self, dir: Dir) -> usize {
        self.log.iter().filter(|(d, _)| *d == dir).count()
    }
}

/// The events of one kind.
pub(super) fn established(ev: &[Event]) -> Vec<&Event> {
    ev.iter()
        .filter(|e| matches!(e, Event::IkeSaEstablished { .. }))
        .collect()
}

pub(super) fn children(ev: &[Event]) -> Vec<&ChildSaReady> {
    ev.iter()
        .filter_map(|e| match e {
            Event::ChildSaReady(c) => Some(c),
            _ => None,
        })
        .collect()
}

pub(super) fn failures(ev: &[Event]) -> Vec<IkeError> {
    ev.iter()
        .filter_map(|e| match e {
            Event::IkeSaFailed { error, .. } => Some(error.clone()),
            _ => None,
        })
        .collect()
}

pub(super) fn child_failures(ev: &[Event]) -> Vec<IkeError> {
    ev.iter()
        .filter_map(|e| match e {
            Event::ChildSaFailed { error, .. } => Some(error.clone()),
            _ => None,
        })
        .collect()
}

/// Each side reported exactly one CHILD_SA; returns (a's, b's).
pub(super) fn one_child_each(p: &Pair) -> (ChildSaReady, ChildSaReady) {
    let (ca, cb) = (children(&p.a_events), children(&p.b_events));
    assert_eq!(
        (ca.len(), cb.len()),
        (1, 1),
        "{:?} / {:?}",
        p.a_events,
        p.b_events
    );
    (ca[0].clone(), cb[0].clone())
}

/// Both sides established exactly once with one matching CHILD_SA; returns (a's, b's) child.
pub(super) fn assert_up(p: &Pair) -> (ChildSaReady, ChildSaReady) {
    assert_eq!(established(&p.a_events).len(), 1, "a: {:?}", p.a_events);
    assert_eq!(established(&p.b_events).len(), 1, "b: {:?}", p.b_events);
    let (ca, cb) = one_child_each(p);
    assert_eq!(ca.spi_in, cb.spi_out);
    assert_eq!(ca.spi_out, cb.spi_in);
    assert_eq!(ca.keys_out, cb.keys_in);
    assert_eq!(ca.keys_in, cb.keys_out);
    assert_ne!(ca.keys_in, ca.keys_out);
    assert_eq!(ca.local_ts, cb.remote_ts);
    assert_eq!(ca.remote_ts, cb.local_ts);
    assert_eq!((ca.encr, ca.integ, ca.mode), (cb.encr, cb.integ, cb.mode));
    if p.nat.is_none() {
        assert_eq!((ca.local, ca.remote), (cb.remote, cb.local));
    }
    (ca, cb)
}
