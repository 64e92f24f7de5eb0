//! ikev2d-bench: a load generator built on ikev2d's own sans-IO engine. Sets up N IKE_SA +
//! CHILD_SA pairs (PSK) against a responder, C at a time, each with its own identity
//! (`@client-<i>.bench`), from C workers that each own one UDP socket (own source address and
//! port) and one engine `Endpoint`; then reports established/s, set-up latency p50/p99/max,
//! failures and retransmissions, and optionally deletes them all (C at a time).
//!
//! The last line of the output is `key=value` pairs for scripts (see `stats::Summary`).
//!
//! `--flood-secs S` instead floods a responder with IKE_SA_INIT requests, in the lab only (see
//! `flood`).

mod flood;
mod stats;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use clap::Parser;
use ikev2d::config::conn::NoDns;
use ikev2d::config::load::load_str;
use ikev2d::config::source::{MemResolver, SourceFile};
use ikev2d::crypto::{DhGroup, DhPrivate};
use ikev2d::daemon::conns::{Reqids, build_conns};
use ikev2d::ike::{
    ConnSpec, DhOffload, Endpoint, EndpointConfig, Event, IkeSaId, RandomSpis, Transmit,
};
use ikev2d::wire::{Identification, TrafficSelector};
use ipnet::IpNet;
use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;
use tokio::net::UdpSocket;
use tokio::sync::Barrier;

use stats::Recorder;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "IKEv2 load generator: N IKE_SA + CHILD_SA set-ups against a responder"
)]
struct Cli {
    /// Responder address and IKE port.
    #[arg(long, default_value = "127.0.0.1:500")]
    remote: SocketAddr,
    /// Number of IKE_SA + CHILD_SA set-ups.
    #[arg(short = 'n', long, default_value_t = 100)]
    count: u64,
    /// Set-ups in flight at once (one worker, socket and engine each).
    #[arg(short = 'c', long, default_value_t = 16)]
    concurrency: usize,
    /// First source address; worker k sends from this address + (k mod --local-count).
    #[arg(long, default_value = "127.0.1.1")]
    local: IpAddr,
    /// How many consecutive source addresses (default: one per worker).
    #[arg(long)]
    local_count: Option<u32>,
    /// Pre-shared key (not needed by a flood, which never authenticates).
    #[arg(long, required_unless_present = "flood_secs")]
    psk: Option<String>,
    /// IKE proposal, strongSwan syntax (e.g. aes128gcm16-prfsha256-x25519!,
    /// aes128-sha256-modp2048!).
    #[arg(long, default_value = "aes128gcm16-prfsha256-x25519!")]
    ike: String,
    /// ESP proposal, strongSwan syntax (e.g. aes128gcm16!, aes128-sha256!).
    #[arg(long, default_value = "aes128gcm16!")]
    esp: String,
    /// Identity i is @<id-prefix><i><id-suffix>.
    #[arg(long, default_value = "client-")]
    id_prefix: String,
    /// See --id-prefix.
    #[arg(long, default_value = ".bench")]
    id_suffix: String,
    /// Inner address of set-up 0: set-up i proposes <this address + i>/32 as its own
    /// selector (like a virtual IP) instead of its source address. Needed by responders that
    /// refuse selectors covering their IKE traffic (charon with kernel-libipsec).
    #[arg(long)]
    local_ts: Option<IpAddr>,
    /// The responder's selector (ipsec.conf rightsubnet syntax, e.g. 10.0.0.0/24); default:
    /// its address.
    #[arg(long)]
    remote_ts: Option<String>,
    /// Delete every established IKE SA at the end (C at a time) and wait for the answers.
    #[arg(long)]
    delete: bool,
    /// After the set-ups, print `holding` and keep answering until the responder has
    /// deleted every established IKE SA (e.g. by `ikectl down`); those count as deleted,
    /// not lost.
    #[arg(long, conflicts_with = "delete")]
    hold: bool,
    /// Instead of a run: time one key pair + one agreement of the --ike proposal's first DH
    /// group this many times and print the mean (the crypto floor of a responder handshake).
    #[arg(long, value_name = "ITERATIONS")]
    crypto_floor: Option<u32>,
    /// A fresh DH key pair for every set-up, as a real initiator makes. By default each
    /// worker uses one key pair per group for all its set-ups (a load generator needs no
    /// forward secrecy), so that it spends less CPU per handshake than the responder.
    #[arg(long)]
    fresh_keys: bool,
    #[command(flatten)]
    flood: flood::FloodArgs,
}

/// One key pair per group, handed out again and again (see `--fresh-keys`).
#[derive(Default)]
struct OneKeyPair(std::collections::HashMap<DhGroup, DhPrivate>);

impl DhOffload for OneKeyPair {
    fn key_pair(&mut self, group: DhGroup) -> Option<DhPrivate> {
        let dh = self
            .0
            .entry(group)
            .or_insert_with(|| group.generate(&mut rand::rng()));
        Some(dh.clone())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let template = match template_conn(&cli) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("ikev2d-bench: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(iterations) = cli.crypto_floor {
        return crypto_floor(&template, iterations);
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ikev2d-bench: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(secs) = cli.flood.flood_secs {
        return match rt.block_on(flood::run(
            &cli.flood, secs, cli.remote, cli.local, &template,
        )) {
            Ok(report) => {
                println!("{report}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ikev2d-bench: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match rt.block_on(run(cli, template)) {
        Ok(summary) => {
            println!("{summary}");
            if summary.failed == 0 && summary.lost == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("ikev2d-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The initiator conn every set-up is cloned from, built by the daemon's own configuration
/// code from a one-conn ipsec.conf, so --ike/--esp mean what they mean in ipsec.conf.
fn template_conn(cli: &Cli) -> Result<ConnSpec, String> {
    let local = cli.local;
    let conf = format!(
        "conn bench\n\tleft={local}\n\tright={}\n\trightikeport={}\n\tleftid=@{}0{}\n\
         \trightid=%any\n\tauthby=secret\n\tkeyexchange=ikev2\n\ttype=tunnel\n\
         \tike={}\n\tesp={}\n\tauto=add\n{}",
        cli.remote.ip(),
        cli.remote.port(),
        cli.id_prefix,
        cli.id_suffix,
        cli.ike,
        cli.esp,
        cli.remote_ts
            .as_ref()
            .map(|ts| format!("\trightsubnet={ts}\n"))
            .unwrap_or_default()
    );
    // A flood never gets to IKE_AUTH: any key does for building its conn.
    let psk = cli.psk.as_deref().unwrap_or("flood");
    let hex: String = psk.bytes().map(|b| format!("{b:02x}")).collect();
    let secrets = zeroize::Zeroizing::new(format!(": PSK 0x{hex}\n"));
    let file = |name: &str, text: &str| SourceFile {
        name: name.into(),
        text: text.into(),
        mode: Some(0o600),
    };
    let loaded = load_str(
        &file("bench.conf", &conf),
        &file("bench.secrets", &secrets),
        &MemResolver::default(),
        &NoDns,
    );
    if loaded.diagnostics.has_errors() {
        return Err(format!(
            "bad --ike/--esp/--remote: {:?}",
            loaded.diagnostics
        ));
    }
    let is_local = |a: IpAddr| a == local;
    let mut conns = build_conns(
        &loaded.config,
        &loaded.secrets,
        &is_local,
        &|_| None,
        &mut Reqids::default(),
    )
    .map_err(|e| format!("bad --ike/--esp: {e:?}"))?;
    conns
        .pop()
        .map(|c| c.spec)
        .ok_or_else(|| "no conn built".to_string())
}

fn crypto_floor(template: &ConnSpec, iterations: u32) -> ExitCode {
    let Some(group) = template.ike_proposals.first().and_then(|p| p.dh.first()) else {
        eprintln!("ikev2d-bench: --ike has no DH group");
        return ExitCode::from(2);
    };
    let mut rng = ChaCha20Rng::from_rng(&mut rand::rng());
    let peer = group.generate(&mut rng).public_value();
    let (start, cpu0) = (Instant::now(), thread_cpu_ns());
    for _ in 0..iterations {
        let own = group.generate(&mut rng);
        let public = own.public_value();
        if own.agree(&peer).is_err() || public.is_empty() {
            eprintln!("ikev2d-bench: agreement failed");
            return ExitCode::FAILURE;
        }
    }
    let wall = start.elapsed().as_secs_f64();
    let n = f64::from(iterations.max(1));
    // On-CPU time (not wall time, which a loaded machine inflates), when the kernel tells it.
    let cpu = match (cpu0, thread_cpu_ns()) {
        (Some(a), Some(b)) => format!("{:.1}", b.saturating_sub(a) as f64 / 1e3 / n),
        _ => "-".into(),
    };
    println!(
        "group={} iterations={iterations} dh_us={cpu} wall_us={:.1}",
        group.name(),
        wall * 1e6 / n
    );
    ExitCode::SUCCESS
}

/// Nanoseconds this thread has run on a CPU (first field of /proc/thread-self/schedstat).
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The non-ESP marker in front of IKE datagrams on the NAT-T port (RFC 3948).
const MARKER: [u8; 4] = [0; 4];

/// Failure messages printed so far: only the first few are, the counts say the rest.
static REPORTED: AtomicU64 = AtomicU64::new(0);

fn report(what: std::fmt::Arguments) {
    if REPORTED.fetch_add(1, Ordering::Relaxed) < 10 {
        eprintln!("ikev2d-bench: {what}");
    }
}

/// Address number `k` counted from `base`.
fn local_addr(base: IpAddr, k: u32) -> IpAddr {
    match base {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a).wrapping_add(k))),
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a).wrapping_add(u128::from(k)))),
    }
}

async fn run(cli: Cli, template: ConnSpec) -> Result<stats::Summary, String> {
    let workers = cli.concurrency.max(1);
    let addrs = cli
        .local_count
        .unwrap_or(u32::try_from(workers).unwrap_or(u32::MAX))
        .max(1);
    let next = Arc::new(AtomicU64::new(0));
    // Everyone waits for all set-ups to end before the clock stops and deletes begin.
    let barrier = Arc::new(Barrier::new(workers + 1));
    let cli = Arc::new(cli);
    let template = Arc::new(template);
    let mut handles = Vec::with_capacity(workers);
    for k in 0..workers {
        let ip = local_addr(cli.local, u32::try_from(k).unwrap_or(0) % addrs);
        let bind = || UdpSocket::bind(SocketAddr::new(ip, 0));
        let sock = bind().await.map_err(|e| format!("bind {ip}: {e}"))?;
        let natt = bind().await.map_err(|e| format!("bind {ip}: {e}"))?;
        let worker = Worker::new(sock, natt, &template, cli.fresh_keys)?;
        handles.push(tokio::spawn(worker.run(
            cli.clone(),
            template.clone(),
            next.clone(),
            barrier.clone(),
        )));
    }
    let start = Instant::now();
    barrier.wait().await;
    let elapsed = start.elapsed();
    if cli.hold {
        println!("holding");
    }
    let mut all = Recorder::default();
    for h in handles {
        all.merge(h.await.map_err(|e| format!("worker: {e}"))?);
    }
    Ok(all.summary(elapsed))
}

/// The set-up in progress of one worker.
struct Pending {
    id: IkeSaId,
    started: Instant,
    ike_up: bool,
    child_up: bool,
}

/// One socket, one engine, one set-up (or delete) at a time.
struct Worker {
    sock: UdpSocket,
    local: SocketAddr,
    /// The NAT-T socket an IKE SA floats to when the responder reports a NAT (charon with
    /// kernel-libipsec fakes one): IKE datagrams on it carry the 4-byte non-ESP marker.
    natt: UdpSocket,
    natt_local: SocketAddr,
    ep: Endpoint<ChaCha20Rng>,
    rec: Recorder,
    pending: Option<Pending>,
    established: Vec<IkeSaId>,
    /// The SA whose Delete is in flight.
    deleting: Option<IkeSaId>,
    /// `--hold` after the set-ups: the responder's Deletes are expected.
    holding: bool,
    buf: Vec<u8>,
    natt_buf: Vec<u8>,
}

impl Worker {
    fn new(
        sock: UdpSocket,
        natt: UdpSocket,
        template: &ConnSpec,
        fresh_keys: bool,
    ) -> Result<Self, String> {
        let local = sock.local_addr().map_err(|e| format!("local_addr: {e}"))?;
        let natt_local = natt.local_addr().map_err(|e| format!("local_addr: {e}"))?;
        let spis = RandomSpis::new(ChaCha20Rng::from_rng(&mut rand::rng()), 0x100..=0x0fff_ffff);
        let mut ep = Endpoint::new(
            EndpointConfig {
                natt_port: natt_local.port(),
                ..EndpointConfig::default()
            },
            ChaCha20Rng::from_rng(&mut rand::rng()),
            Box::new(spis),
        );
        ep.set_conns(vec![template.clone()]);
        if !fresh_keys {
            ep.set_dh_offload(Box::<OneKeyPair>::default());
        }
        Ok(Self {
            sock,
            local,
            natt,
            natt_local,
            ep,
            rec: Recorder::default(),
            pending: None,
            established: Vec::new(),
            deleting: None,
            holding: false,
            buf: vec![0; 65536],
            natt_buf: vec![0; 65536],
        })
    }

    async fn run(
        mut self,
        cli: Arc<Cli>,
        template: Arc<ConnSpec>,
        next: Arc<AtomicU64>,
        barrier: Arc<Barrier>,
    ) -> Recorder {
        loop {
            if self.pending.is_none() {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= cli.count {
                    break;
                }
                self.start(i, &cli, &template).await;
                continue;
            }
            self.step().await;
        }
        barrier.wait().await;
        if cli.hold {
            self.holding = true;
            while !self.established.is_empty() {
                self.step().await;
            }
        }
        if cli.delete {
            while let Some(id) = self.established.pop() {
                let now = Instant::now();
                if self.ep.delete_ike_sa(now, id).is_err() {
                    continue;
                }
                self.deleting = Some(id);
                self.flush().await;
                while self.deleting.is_some() {
                    self.step().await;
                }
            }
        }
        self.rec
    }

    async fn start(&mut self, i: u64, cli: &Cli, template: &ConnSpec) {
        let name = format!("bench-{i}");
        let mut conn = template.clone();
        conn.name.clone_from(&name);
        conn.local_id = Some(Identification::fqdn(&format!(
            "{}{i}{}",
            cli.id_prefix, cli.id_suffix
        )));
        conn.local_addr = Some(self.local.ip());
        conn.local_port = self.local.port();
        // Host selector of this set-up's inner address, or of this worker's own address (the
        // template's is the base address's).
        conn.local_ts = match cli.local_ts {
            Some(base) => {
                let ip = local_addr(base, u32::try_from(i).unwrap_or(u32::MAX));
                vec![TrafficSelector::from_subnet(
                    IpNet::from(ip),
                    0,
                    0..=u16::MAX,
                )]
            }
            None => Vec::new(),
        };
        // Existing SAs keep their copy of their conn: only the new one needs to be known.
        self.ep.set_conns(vec![conn]);
        let now = Instant::now();
        match self.ep.initiate(now, &name) {
            Ok(id) => {
                self.pending = Some(Pending {
                    id,
                    started: now,
                    ike_up: false,
                    child_up: false,
                });
                self.flush().await;
            }
            Err(e) => {
                report(format_args!("initiate {name}: {e}"));
                self.rec.failed += 1;
            }
        }
    }

    /// Waits for one datagram or the engine's next deadline, feeds it, sends and reads out.
    async fn step(&mut self) {
        let deadline = self.ep.poll_timeout();
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = self.sock.recv_from(&mut self.buf) => {
                if let Ok((len, from)) = r {
                    let data = self.buf.get(..len).unwrap_or_default();
                    self.ep.handle_datagram(Instant::now(), self.local, from, data);
                }
                self.flush().await;
            }
            r = self.natt.recv_from(&mut self.natt_buf) => {
                // IKE behind the non-ESP marker; anything else (ESP, keepalives) is not ours.
                if let Ok((len, from)) = r
                    && let Some(ike) = self.natt_buf.get(..len).and_then(|d| d.strip_prefix(&MARKER))
                {
                    self.ep.handle_datagram(Instant::now(), self.natt_local, from, ike);
                }
                self.flush().await;
            }
            () = sleep => {
                self.ep.handle_timeout(Instant::now());
                self.flush().await;
            }
        }
    }

    /// Sends what the engine has to send and handles its events.
    async fn flush(&mut self) {
        while let Some(Transmit {
            local,
            remote,
            mut data,
        }) = self.ep.poll_transmit()
        {
            let sent = if local == self.natt_local {
                data.splice(0..0, MARKER);
                self.natt.send_to(&data, remote).await
            } else {
                self.sock.send_to(&data, remote).await
            };
            if sent.is_err() {
                self.rec.send_errors += 1;
            }
        }
        while let Some(ev) = self.ep.poll_event() {
            self.event(ev);
        }
    }

    fn event(&mut self, ev: Event) {
        let now = Instant::now();
        match ev {
            Event::IkeSaEstablished { id, .. } => self.progress(id, now, true, false),
            Event::ChildSaReady(c) => self.progress(c.ike_sa, now, false, true),
            Event::IkeSaFailed { id, error, .. } => {
                if self.pending.as_ref().is_some_and(|p| p.id == id) {
                    report(format_args!("set-up failed: {error}"));
                    self.rec.failed += 1;
                    self.pending = None;
                }
            }
            Event::ChildSaFailed { id, error, .. } => {
                if let Some(p) = self.pending.take_if(|p| p.id == id) {
                    report(format_args!("CHILD_SA failed: {error}"));
                    self.rec.failed += 1;
                    // The IKE SA is up: it is deleted at the end like the others.
                    if p.ike_up {
                        self.established.push(id);
                    }
                }
            }
            Event::IkeSaDeleted { id, .. } => {
                if self.deleting == Some(id) {
                    self.deleting = None;
                    self.rec.deleted += 1;
                } else if self.holding {
                    self.established.retain(|e| *e != id);
                    self.rec.deleted += 1;
                } else {
                    self.established.retain(|e| *e != id);
                    self.rec.lost += 1;
                }
            }
            Event::Retransmit { .. } => self.rec.retransmits += 1,
            Event::ChildSaDeleted { .. }
            | Event::IkeSaRekeyed { .. }
            | Event::IkeSaRekeyFailed { .. }
            | Event::DuplicateIkeSa { .. }
            | Event::InitRefused { .. }
            | Event::PeerMoved { .. } => {}
        }
    }

    fn progress(&mut self, id: IkeSaId, now: Instant, ike: bool, child: bool) {
        let Some(p) = self.pending.as_mut().filter(|p| p.id == id) else {
            return;
        };
        p.ike_up |= ike;
        p.child_up |= child;
        if p.ike_up && p.child_up {
            self.rec.established(now.duration_since(p.started));
            self.established.push(id);
            self.pending = None;
        }
    }
}
