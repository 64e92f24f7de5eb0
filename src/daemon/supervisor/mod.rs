//! The daemon's policy, sans-IO: the [`Supervisor`] owns the IKE engine and decides everything
//! the daemon does around it — which CHILD_SAs and trap policies go into the kernel and when
//! they come out, when a CHILD_SA is rekeyed (soft expire, with jitter from an injected RNG),
//! what `ikectl up|down|status|reload` answer and when, and how SIGTERM winds down.
//!
//! Inputs are method calls with `now` (datagrams, timer expiry, kernel events, kernel results,
//! control requests, loaded configurations, signals); outputs are [`Effect`]s, polled in order
//! with [`Supervisor::poll_effect`], and the next deadline ([`Supervisor::poll_timeout`]). It
//! never touches a socket, the clock, the kernel or a file: the driver (`driver.rs`) executes
//! effects, and `tests.rs` wires two supervisors with in-memory kernels on a virtual clock.
//!
//! Kernel operations are asynchronous: [`Effect::Kernel`] carries an [`OpId`], and the
//! executor applies operations in the order emitted and hands each result back with
//! [`Supervisor::handle_kernel_done`]. Effects after a kernel operation must not take effect
//! before it completes (the driver holds them back), so a responder's CHILD_SA is installed
//! before the IKE_AUTH response that lets the initiator send ESP.

mod children;
mod control;
mod ike_life;
mod liveness;
mod nat;
mod pacing;
mod refusals;
mod shared;
mod status;
#[cfg(test)]
mod tests;
mod timers;
mod vips;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::ChaCha20Rng;

use super::conns::{ConnEntry, ShuntEntry, endpoint_config, fmt_identification};
use super::keylog::KeyRecord;
use super::updown::{UpdownCall, UpdownInfo};
use crate::config::conn::Auto;
use crate::config::settings::DaemonSettings;
use crate::control::{Done, Reply, Request, StatusReport};
use crate::ike::{
    Endpoint, Event, IkeError, IkeSaExportedKeys, IkeSaId, Role, Transmit, UniqueIds,
};
use crate::kernel::{ChildId, KernelError, KernelEvent, KernelOp, KernelOutput, Lifetime};

/// How long SIGTERM waits for the peers' answers to our DELETEs.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// An ikectl connection (its replies go to [`Effect::Reply`] with this id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CtlId(pub u64);

/// A kernel operation in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OpId(pub u64);

/// What the driver must do, in order.
#[derive(Debug)]
pub enum Effect {
    /// Send an IKE datagram.
    Transmit(Transmit),
    /// Apply a kernel operation and report its result with the id.
    Kernel(OpId, KernelOp),
    /// A reply to an ikectl connection (the last one is [`Reply::Done`]).
    Reply(CtlId, Reply),
    /// Read ipsec.conf, ipsec.secrets and the settings file again and hand the result to
    /// [`Supervisor::config_loaded`] (with this requester).
    LoadConfig(Option<CtlId>),
    /// Append to the Wireshark key log (only with [`Settings::key_log`]).
    KeyLog(KeyRecord),
    /// Run a CHILD_SA's `leftupdown` script and/or `leftfirewall` rules (asynchronously: the
    /// daemon does not wait for it).
    Updown(Box<UpdownCall>),
    /// Send a NAT keepalive (RFC 3948: the one byte 0xff, no non-ESP marker) from our NAT-T
    /// port.
    Keepalive {
        /// Our address and NAT-T port.
        local: SocketAddr,
        /// The peer's address and port.
        remote: SocketAddr,
    },
}

/// What a reload read: the conns and the daemon settings.
#[derive(Debug)]
pub struct Reloaded {
    /// ipsec.conf's conns with their secrets.
    pub conns: Vec<ConnEntry>,
    /// ipsec.conf's shunt conns (`type=pass|drop`, `auto=route`).
    pub shunts: Vec<ShuntEntry>,
    /// The settings file (`/etc/ikev2d.toml`).
    pub settings: DaemonSettings,
    /// `config setup` `uniqueids=`.
    pub unique_ids: UniqueIds,
}

/// Fixed facts about the daemon's surroundings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The kernel interface's name for `status` (`xfrm`, `none`).
    pub kernel_name: &'static str,
    /// Whether the kernel interface really installs SAs (status shows `installed`).
    pub kernel_installs: bool,
    /// Our NAT-T port (local port of UDP-encapsulated ESP).
    pub natt_port: u16,
    /// Emit [`Effect::KeyLog`] records.
    pub key_log: bool,
    /// Interval of NAT keepalives on IKE SAs behind a NAT (strongSwan's `keep_alive`; the
    /// settings file's `[nat] keepalive`, 20 s by default; zero: none).
    pub nat_keepalive: Duration,
}

/// Signals the daemon reacts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM.
    Term,
    /// SIGINT (like SIGTERM).
    Int,
    /// SIGHUP: reload.
    Hup,
}

/// A CHILD_SA installed in the kernel (the engine owns the protocol state).
struct ChildRecord {
    conn: String,
    /// The IKE SA that holds it (it moves with an IKE SA rekey).
    ike_sa: IkeSaId,
    kernel_id: ChildId,
    facts: status::ChildFacts,
    installed_at: Instant,
    /// The kernel's soft and hard limits in seconds (0: none), for `status`.
    expiry_secs: (u64, u64),
    /// `inactivity`: the idle watch of this CHILD_SA (boxed: most conns have none).
    idle: Option<Box<liveness::IdleWatch>>,
    /// What its `down` updown call needs, when its conn has `leftupdown`/`leftfirewall` and
    /// it is the CHILD_SA the `up` call announced (a rekey hands this on to the new one).
    updown: Option<Box<UpdownInfo>>,
}

/// What a kernel result means.
enum Pending {
    Install {
        ike_sa: IkeSaId,
        conn: String,
        facts: Box<status::ChildFacts>,
        lifetime: Lifetime,
        rekeyed_from: Option<(u32, u32)>,
        text: String,
        updown: Option<Box<UpdownInfo>>,
    },
    Remove {
        conn: String,
    },
    Activate {
        conn: String,
    },
    InstallTrap {
        name: String,
        reqid: u32,
    },
    RemoveTrap,
    /// Adding (`add`) or removing a virtual IP.
    VirtualIp {
        addr: std::net::IpAddr,
        add: bool,
    },
    /// Counters of CHILD_SAs watched for `inactivity` (inbound SPIs, in order).
    Idle {
        spis: Vec<u32>,
    },
    Status {
        ctl: CtlId,
        report: StatusReport,
        /// Where each counter result goes: conn, IKE SA, CHILD_SA index.
        slots: Vec<(usize, usize, usize)>,
    },
    Flush,
}

/// An `ikectl up` waiting for its IKE SA and CHILD_SA.
struct UpWaiter {
    name: String,
    ctl: CtlId,
}

/// An `ikectl down` waiting for IKE SAs to be gone.
struct DownWaiter {
    ids: HashSet<IkeSaId>,
    /// Inbound SPIs of CHILD_SAs deleted from IKE SAs of other conns.
    children: HashSet<u32>,
    ctl: CtlId,
}

/// Where the daemon is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    /// SIGTERM: IKE SAs are being deleted, until they are gone or the deadline.
    Draining {
        deadline: Instant,
    },
    /// Removing SAs, traps and leftovers; the flush is the last operation.
    Flushing,
    Stopped,
}

/// The daemon's policy around one engine.
pub struct Supervisor<R> {
    endpoint: Endpoint<R>,
    settings: Settings,
    conns: Vec<ConnEntry>,
    /// Shunt conns: their policies are installed with the traps.
    shunts: Vec<ShuntEntry>,
    rng: ChaCha20Rng,
    /// Installed CHILD_SAs by inbound SPI (boxed: a big table's free slots then cost a
    /// pointer each, not a record).
    children: HashMap<u32, Box<ChildRecord>>,
    /// Inbound SPIs of the installed CHILD_SAs of each IKE SA.
    by_ike: HashMap<IkeSaId, Vec<u32>>,
    /// Installed CHILD_SAs by (reqid, outbound SPI), for the kernel's EXPIRE of an outbound SA.
    by_out: HashMap<(u32, u32), u32>,
    pending: HashMap<OpId, Pending>,
    next_op: u64,
    up_waiters: HashMap<IkeSaId, Vec<UpWaiter>>,
    down_waiters: Vec<DownWaiter>,
    /// reqids of trap and shunt policies installed or being installed.
    traps: HashSet<u32>,
    /// Renewal and hard end of each established IKE SA.
    ike_lives: HashMap<IkeSaId, ike_life::IkeLife>,
    /// The earlier of each IKE SA's renewal and hard end.
    ike_life_timers: timers::Deadlines<IkeSaId>,
    /// Make-before-break reauthentications, by the new IKE SA.
    reauths: HashMap<IkeSaId, ike_life::Reauth>,
    phase: Phase,
    effects: VecDeque<Effect>,
    /// Our initiations not yet established, for `keyingtries`.
    attempts: HashMap<IkeSaId, liveness::Attempt>,
    /// Tries of `keyingtries` waiting for their back-off.
    retries: Vec<liveness::Retry>,
    /// A liveness check is outstanding on an IKE SA: when the peer was last heard before it.
    dpd_sent: HashMap<IkeSaId, Instant>,
    /// IKE SAs we are deleting ourselves (no `dpdaction` when they go).
    local_deletes: HashSet<IkeSaId>,
    /// CHILD_SAs we answered a rekey for, by the inbound SPI of the CHILD_SA they replace:
    /// their outbound SA goes in when that one goes ([`ChildSaInstall::defer_outbound`](crate::kernel::ChildSaInstall::defer_outbound)).
    outbound_waits: HashMap<u32, ChildId>,
    /// Responder IKE SAs that probably reauthenticate another (same peer and address, see
    /// [`Event::DuplicateIkeSa`]): new → old. Their CHILD_SAs replace the old SA's like a
    /// rekey does.
    reauth_suspects: HashMap<IkeSaId, IkeSaId>,
    /// IKE SAs started by an ACQUIRE of a `right=%any` conn's trap, by conn and peer.
    acquired: HashMap<(String, std::net::IpAddr), IkeSaId>,
    /// The same, by IKE SA (to forget it when the IKE SA goes).
    acquired_by: HashMap<IkeSaId, (String, std::net::IpAddr)>,
    /// Mass deletes (`down`, shutdown) in progress, a window at a time.
    pacer: pacing::DeletePacer,
    /// When each IKE SA of a conn with `dpddelay` is looked at next (never later than its
    /// liveness check is due).
    dpd_timers: timers::Deadlines<IkeSaId>,
    /// When each CHILD_SA watched for `inactivity` is read next (by inbound SPI).
    idle_timers: timers::Deadlines<u32>,
    /// When NAT keepalives are due next (while some IKE SA is behind a NAT).
    next_keepalive: Option<Instant>,
    /// Refused IKE_SA_INIT requests, logged with a rate limit.
    refusals: refusals::RefusalLog,
    /// Virtual IPs assigned to us, with the IKE SAs holding each.
    vips: BTreeMap<std::net::IpAddr, BTreeSet<IkeSaId>>,
}

impl<R: rand::CryptoRng> Supervisor<R> {
    /// A supervisor over `endpoint` with `conns` (given to the engine here); `rng` draws the
    /// rekey jitter.
    pub fn new(
        mut endpoint: Endpoint<R>,
        settings: Settings,
        conns: Vec<ConnEntry>,
        rng: ChaCha20Rng,
    ) -> Self {
        endpoint.set_conns(conns.iter().map(|c| c.spec.clone()).collect());
        Self {
            endpoint,
            settings,
            conns,
            shunts: Vec::new(),
            rng,
            children: HashMap::new(),
            by_ike: HashMap::new(),
            by_out: HashMap::new(),
            pending: HashMap::new(),
            next_op: 0,
            up_waiters: HashMap::new(),
            down_waiters: Vec::new(),
            traps: HashSet::new(),
            ike_lives: HashMap::new(),
            ike_life_timers: timers::Deadlines::default(),
            reauths: HashMap::new(),
            phase: Phase::Running,
            effects: VecDeque::new(),
            attempts: HashMap::new(),
            retries: Vec::new(),
            dpd_sent: HashMap::new(),
            local_deletes: HashSet::new(),
            outbound_waits: HashMap::new(),
            reauth_suspects: HashMap::new(),
            acquired: HashMap::new(),
            acquired_by: HashMap::new(),
            pacer: pacing::DeletePacer::default(),
            dpd_timers: timers::Deadlines::default(),
            idle_timers: timers::Deadlines::default(),
            next_keepalive: None,
            refusals: refusals::RefusalLog::default(),
            vips: BTreeMap::new(),
        }
    }

    /// The shunt conns (before [`Self::start`], which installs them).
    pub fn set_shunts(&mut self, shunts: Vec<ShuntEntry>) {
        self.shunts = shunts;
    }

    /// Start-up actions: traps and shunts for `auto=route`, initiation for `auto=start`.
    pub fn start(&mut self, now: Instant) {
        self.install_traps();
        let starts: Vec<String> = self
            .conns
            .iter()
            .filter(|c| c.auto == Auto::Start)
            .map(|c| c.spec.name.clone())
            .collect();
        for name in starts {
            match self.initiate(now, &name, 1) {
                Ok(id) => {
                    tracing::info!(target: "ike", "auto=start: initiating IKE_SA {name}[{}]", id.0)
                }
                Err(e) => tracing::error!(target: "ike", "auto=start {name}: {e}"),
            }
        }
        self.drain_engine(now);
    }

    /// The next effect to execute.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// When [`Supervisor::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let drain = match self.phase {
            Phase::Draining { deadline } => Some(deadline),
            _ => None,
        };
        [
            self.endpoint.poll_timeout(),
            drain,
            self.next_keepalive,
            self.refusals.deadline(),
            self.ike_life_timeout(),
            self.liveness_timeout_at(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Everything is removed after a shutdown: the driver may exit.
    pub fn is_stopped(&self) -> bool {
        self.phase == Phase::Stopped
    }

    /// A received IKE datagram.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) {
        self.endpoint.handle_datagram(now, local, remote, data);
        self.drain_engine(now);
    }

    /// The deadline from [`Supervisor::poll_timeout`] passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.endpoint.handle_timeout(now);
        self.keepalive_timeout(now);
        self.refusals_timeout(now);
        if self.phase == Phase::Running {
            self.ike_life_timers(now);
        }
        self.drain_engine(now);
        self.liveness_timeout(now);
        self.drain_engine(now);
    }

    /// A signal arrived.
    pub fn handle_signal(&mut self, now: Instant, signal: Signal) {
        match signal {
            Signal::Term => self.shutdown(now, "SIGTERM"),
            Signal::Int => self.shutdown(now, "SIGINT"),
            Signal::Hup => self.effects.push_back(Effect::LoadConfig(None)),
        }
    }

    /// An ikectl request.
    pub fn handle_request(&mut self, now: Instant, ctl: CtlId, request: Request) {
        match request {
            Request::Up { name } => self.up(now, name, ctl),
            Request::Down { name } => self.down(now, &name, ctl),
            Request::Status { page } => self.status(now, ctl, page),
            Request::Reload => self.effects.push_back(Effect::LoadConfig(Some(ctl))),
        }
        self.drain_engine(now);
    }

    /// The result of [`Effect::LoadConfig`]: on success the new conns apply to new SAs, the
    /// new engine settings (retransmissions, half-open limits) at once.
    pub fn config_loaded(
        &mut self,
        now: Instant,
        from: Option<CtlId>,
        loaded: Result<Reloaded, String>,
    ) {
        let who = if from.is_some() {
            "ikectl reload"
        } else {
            "SIGHUP"
        };
        let Reloaded {
            conns,
            shunts,
            settings,
            unique_ids,
        } = match loaded {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(target: "cfg", "{who}: reload refused, keeping the running configuration:\n{e}");
                if let Some(ctl) = from {
                    self.done(ctl, Done::failed(e));
                }
                return;
            }
        };
        tracing::info!(target: "cfg", "{who}: configuration reloaded");
        let n = conns.len() + shunts.len();
        self.endpoint.set_config(endpoint_config(
            &settings,
            self.settings.key_log,
            self.settings.natt_port,
            unique_ids,
        ));
        self.settings.nat_keepalive = settings.nat.interval();
        self.endpoint
            .set_conns(conns.iter().map(|c| c.spec.clone()).collect());
        self.conns = conns;
        self.shunts = shunts;
        self.remove_traps();
        self.install_traps();
        self.refile_dpd(now);
        if let Some(ctl) = from {
            self.progress(ctl, format!("loaded {n} conn(s)"));
            self.done(ctl, Done::ok());
        }
        self.drain_engine(now);
    }

    /// A kernel event (ACQUIRE, EXPIRE).
    pub fn handle_kernel_event(&mut self, now: Instant, ev: KernelEvent) {
        match ev {
            KernelEvent::Acquire {
                reqid,
                local,
                remote,
                ..
            } => self.acquire(now, reqid, local, remote),
            KernelEvent::Expire { reqid, sa, hard } => self.expire(now, reqid, sa.spi, hard),
        }
        self.drain_engine(now);
    }

    /// The result of the kernel operation `op`.
    pub fn handle_kernel_done(
        &mut self,
        now: Instant,
        op: OpId,
        result: Result<KernelOutput, KernelError>,
    ) {
        let Some(pending) = self.pending.remove(&op) else {
            tracing::warn!(target: "kernel", "result of unknown kernel operation {}", op.0);
            return;
        };
        match (pending, result) {
            (
                Pending::Install {
                    ike_sa,
                    conn,
                    facts,
                    lifetime,
                    rekeyed_from,
                    text,
                    updown,
                },
                Ok(KernelOutput::Installed(kernel_id)),
            ) => self.installed(
                now,
                ike_sa,
                conn,
                kernel_id,
                *facts,
                lifetime,
                rekeyed_from,
                text,
                updown,
            ),
            (
                Pending::Install {
                    ike_sa,
                    conn,
                    rekeyed_from,
                    ..
                },
                r,
            ) => {
                let e = failure(r);
                tracing::error!(target: "kernel", "installing CHILD_SA of {conn}[{}] failed: {e}", ike_sa.0);
                self.install_failed(now, ike_sa, rekeyed_from.is_some(), &e);
            }
            (Pending::Remove { conn }, Ok(_)) => {
                tracing::info!(target: "kernel", "removed CHILD_SA of {conn}")
            }
            (Pending::Remove { conn }, Err(e)) => {
                tracing::error!(target: "kernel", "removing CHILD_SA of {conn}: {e}")
            }
            (Pending::Activate { conn }, Ok(_)) => {
                tracing::debug!(target: "kernel", "outbound SA of the rekeyed CHILD_SA of {conn} installed")
            }
            (Pending::Activate { conn }, Err(e)) => {
                tracing::error!(target: "kernel", "installing the outbound SA of the rekeyed CHILD_SA of {conn}: {e}")
            }
            (Pending::InstallTrap { name, reqid }, Ok(_)) => {
                tracing::info!(target: "kernel", "auto=route {name}: policies installed (reqid {reqid:#x})")
            }
            (Pending::InstallTrap { name, reqid }, Err(e)) => {
                tracing::error!(target: "kernel", "auto=route {name}: {e}");
                self.traps.remove(&reqid);
            }
            (Pending::VirtualIp { addr, add }, Ok(_)) => {
                tracing::info!(target: "kernel", "virtual IP {addr} {} lo", if add { "added to" } else { "removed from" })
            }
            (Pending::VirtualIp { addr, add }, Err(e)) => {
                tracing::error!(target: "kernel", "{} virtual IP {addr}: {e}", if add { "adding" } else { "removing" })
            }
            (Pending::RemoveTrap, Ok(_)) => {}
            (Pending::RemoveTrap, Err(e)) => {
                tracing::warn!(target: "kernel", "removing trap policies: {e}")
            }
            (Pending::Status { ctl, report, slots }, r) => self.status_done(ctl, report, &slots, r),
            (Pending::Idle { spis }, r) => self.idle_counters(now, &spis, r),
            (Pending::Flush, r) => {
                match r {
                    Ok(KernelOutput::Flushed(f)) if f.sas + f.policies > 0 => {
                        tracing::info!(target: "kernel", "flushed {} leftover SAs and {} policies", f.sas, f.policies);
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!(target: "kernel", "final flush: {e}"),
                }
                if self.phase == Phase::Flushing {
                    self.phase = Phase::Stopped;
                    tracing::info!(target: "dmn", "ikev2d stopped");
                }
            }
        }
        self.drain_engine(now);
    }

    fn kernel(&mut self, op: KernelOp, pending: Pending) {
        let id = OpId(self.next_op);
        self.next_op += 1;
        self.pending.insert(id, pending);
        self.effects.push_back(Effect::Kernel(id, op));
    }

    fn reply(&mut self, ctl: CtlId, r: Reply) {
        self.effects.push_back(Effect::Reply(ctl, r));
    }

    fn progress(&mut self, ctl: CtlId, text: String) {
        self.reply(ctl, Reply::Progress(text));
    }

    fn done(&mut self, ctl: CtlId, d: Done) {
        self.reply(ctl, Reply::Done(d));
    }

    fn shutdown(&mut self, now: Instant, why: &str) {
        if self.phase != Phase::Running {
            return;
        }
        tracing::info!(target: "dmn", "{why}: deleting IKE SAs, then removing SAs and policies");
        self.phase = Phase::Draining {
            deadline: now + SHUTDOWN_GRACE,
        };
        self.cancel_retries(None);
        let sas = self.endpoint.ike_sas();
        self.delete_paced(now, sas);
        self.drain_engine(now);
    }

    /// After SIGTERM, once the IKE SAs are gone (or the grace time is over): remove every
    /// CHILD_SA and trap, then flush what is left.
    fn finish_if_drained(&mut self, now: Instant) {
        let Phase::Draining { deadline } = self.phase else {
            return;
        };
        if self.endpoint.ike_sa_count() > 0 && now < deadline {
            return;
        }
        if self.pacer.queued() > 0 {
            tracing::warn!(target: "dmn", "grace time over: sending the last {} Deletes without waiting for answers", self.pacer.queued());
            self.delete_rest_now(now);
            while let Some(t) = self.endpoint.poll_transmit() {
                self.effects.push_back(Effect::Transmit(t));
            }
        }
        self.phase = Phase::Flushing;
        self.by_ike.clear();
        self.by_out.clear();
        self.idle_timers.clear();
        let mut children: Vec<Box<ChildRecord>> = self.children.drain().map(|(_, c)| c).collect();
        children.sort_by_key(|c| c.kernel_id);
        for c in children {
            self.updown_down(c.updown);
            self.kernel(
                KernelOp::RemoveChild(c.kernel_id),
                Pending::Remove { conn: c.conn },
            );
        }
        self.remove_traps();
        self.kernel(KernelOp::Flush, Pending::Flush);
        let ups: Vec<UpWaiter> = self.up_waiters.drain().flat_map(|(_, w)| w).collect();
        for w in ups {
            self.done(w.ctl, Done::failed("ikev2d is shutting down"));
        }
        for w in std::mem::take(&mut self.down_waiters) {
            self.done(w.ctl, Done::ok());
        }
    }

    /// Handles every pending engine event, then queues every pending datagram (events first:
    /// see the module docs).
    fn drain_engine(&mut self, now: Instant) {
        loop {
            let mut idle = true;
            while let Some(ev) = self.endpoint.poll_event() {
                idle = false;
                self.event(now, ev);
            }
            while let Some(t) = self.endpoint.poll_transmit() {
                idle = false;
                self.effects.push_back(Effect::Transmit(t));
            }
            if idle {
                break;
            }
        }
        self.finish_if_drained(now);
        #[cfg(debug_assertions)]
        self.check_indexes();
    }

    /// The supervisor's indexes agree with a scan of the engine and the records (debug
    /// builds only: O(n) per call, like the engine's own check in `poll_timeout`).
    #[cfg(debug_assertions)]
    fn check_indexes(&self) {
        let mut filed = 0;
        for (id, spis) in &self.by_ike {
            for spi in spis {
                let rec = self.children.get(spi);
                assert_eq!(rec.map(|r| r.ike_sa), Some(*id), "by_ike: {spi:08x}");
                filed += 1;
            }
        }
        assert_eq!(filed, self.children.len(), "by_ike misses CHILD_SAs");
        assert_eq!(self.by_out.len(), self.children.len(), "by_out out of date");
        let owners: HashMap<u32, IkeSaId> = self
            .endpoint
            .ike_sas()
            .into_iter()
            .flat_map(|sa| sa.children.into_iter().map(move |c| (c.spi_in, sa.id)))
            .collect();
        for (spi, rec) in &self.children {
            assert_eq!(
                owners.get(spi),
                Some(&rec.ike_sa),
                "CHILD_SA {spi:08x} recorded under the wrong IKE SA"
            );
            assert_eq!(
                self.by_out
                    .get(&(rec.kernel_id.reqid, rec.kernel_id.spi_out)),
                Some(spi)
            );
            assert_eq!(
                self.idle_timers.get(*spi),
                rec.idle.as_ref().and_then(|w| w.due()),
                "inactivity timer of {spi:08x}"
            );
        }
        self.check_liveness_timers();
        self.check_ike_life_timers();
    }

    /// An IKE SA's keys for the Wireshark key log (present only when the engine exports them).
    fn log_ike_keys(&mut self, spi_i: &[u8; 8], spi_r: &[u8; 8], keys: Option<&IkeSaExportedKeys>) {
        if let Some(keys) = keys {
            self.effects
                .push_back(Effect::KeyLog(KeyRecord::ike_sa(spi_i, spi_r, keys)));
        }
    }

    fn event(&mut self, now: Instant, ev: Event) {
        match ev {
            Event::IkeSaEstablished {
                id,
                conn,
                role,
                local,
                remote,
                spi_i,
                spi_r,
                proposal,
                nat_detected,
                local_id,
                remote_id,
                exported_keys,
                virtual_ips,
                peer_virtual_ips,
                dns_servers,
            } => {
                self.log_ike_keys(&spi_i, &spi_r, exported_keys.as_deref());
                self.attempts.remove(&id);
                self.vips_established(
                    id,
                    &conn,
                    &fmt_identification(&remote_id),
                    &virtual_ips,
                    &peer_virtual_ips,
                    &dns_servers,
                );
                let text = format!(
                    "IKE_SA {conn}[{}] established between {}[{}]...{}[{}]",
                    id.0,
                    local.ip(),
                    fmt_identification(&local_id),
                    remote.ip(),
                    fmt_identification(&remote_id)
                );
                tracing::info!(target: "ike", "{text} ({} SPIs {}_i {}_r, {proposal}{})",
                    role_name(role), super::hex(&spi_i), super::hex(&spi_r),
                    if nat_detected { ", NAT detected" } else { "" });
                for ctl in self.up_ctls(id) {
                    self.progress(ctl, text.clone());
                    self.progress(ctl, format!("IKE proposal: {proposal}"));
                }
                self.schedule_ike(now, id, &conn);
                self.file_dpd(id, now);
                self.reauth_established(now, id);
                if nat_detected {
                    self.arm_keepalive(now, id);
                }
            }
            Event::Retransmit {
                id,
                conn,
                remote,
                attempt,
                of,
                next_in,
            } => self.retransmitted(id, &conn, remote, attempt, of, next_in),
            Event::PeerMoved { id, conn, from, to } => self.peer_moved(now, id, &conn, from, to),
            Event::InitRefused { peer, conn, reason } => {
                self.init_refused(now, peer, conn.as_deref(), reason)
            }
            Event::IkeSaRekeyed {
                old,
                new,
                conn,
                spi_i,
                spi_r,
                proposal,
                exported_keys,
            } => {
                self.log_ike_keys(&spi_i, &spi_r, exported_keys.as_deref());
                tracing::info!(target: "ike", "IKE_SA {conn}[{}] rekeyed as {conn}[{}] (SPIs {}_i {}_r, {proposal})",
                    old.0, new.0, super::hex(&spi_i), super::hex(&spi_r));
                self.ike_rekeyed(now, old, new, &conn);
                self.move_children(old, new);
                self.file_dpd(new, now);
                self.vips_rekeyed(old, new);
                if let Some(w) = self.up_waiters.remove(&old) {
                    self.up_waiters.entry(new).or_default().extend(w);
                }
            }
            Event::IkeSaFailed { id, conn, error } => {
                let name = conn.as_deref().unwrap_or("?");
                tracing::warn!(target: "ike", "IKE_SA {name}[{}] failed: {error}", id.0);
                self.local_deletes.remove(&id);
                if !self.initiate_failed(now, id, &error) {
                    self.fail_up(id, None, &error);
                }
                self.ike_gone(now, id);
            }
            Event::ChildSaReady(ready) => self.child_ready(now, &ready),
            Event::ChildSaFailed { id, conn, error } => {
                tracing::warn!(target: "ike", "CHILD_SA of {conn}[{}] failed: {error}", id.0);
                self.fail_up(id, Some(&conn), &error);
                self.reauth_child_done(now, id);
            }
            Event::ChildSaDeleted {
                id,
                conn,
                spi_in,
                spi_out,
            } => {
                tracing::info!(target: "ike", "CHILD_SA of {conn}[{}] with SPIs {spi_in:08x}_i {spi_out:08x}_o deleted", id.0);
                self.remove_child(spi_in);
                self.child_deleted_for_down(spi_in);
            }
            Event::DuplicateIkeSa {
                old,
                new,
                conn,
                delete_in,
            } => {
                let when = if delete_in.is_zero() {
                    "now".to_string()
                } else {
                    format!(
                        "in {} s unless the peer does (suspected reauthentication)",
                        delete_in.as_secs()
                    )
                };
                tracing::info!(target: "ike", "IKE_SA {conn}[{}] duplicates IKE_SA {conn}[{}] of the same peer (uniqueids): deleting [{}] {when}",
                    new.0, old.0, old.0);
                if !delete_in.is_zero() {
                    self.reauth_suspects.insert(new, old);
                }
            }
            Event::IkeSaRekeyFailed { id, conn, error } => {
                tracing::warn!(target: "ike", "rekeying IKE_SA {conn}[{}] failed: {error}", id.0);
                self.renew_failed(now, id);
            }
            Event::IkeSaDeleted {
                id,
                conn,
                by_peer,
                error,
            } => {
                let dead = matches!(error, Some(IkeError::PeerNotResponding { .. }));
                let why = match error {
                    Some(e) => format!(": {e}"),
                    None if by_peer => " by the peer".to_string(),
                    None => String::new(),
                };
                tracing::info!(target: "ike", "IKE_SA {conn}[{}] deleted{why}", id.0);
                for w in self.up_waiters.remove(&id).unwrap_or_default() {
                    self.done(
                        w.ctl,
                        Done::failed(format!("IKE_SA {conn}[{}] was deleted", id.0)),
                    );
                }
                self.ike_gone(now, id);
                self.ike_sa_lost(now, id, &conn, by_peer, dead);
            }
        }
    }

    /// An IKE SA is gone: remove the CHILD_SAs the engine no longer has, finish `down`
    /// waiters.
    fn ike_gone(&mut self, now: Instant, id: IkeSaId) {
        self.ike_life_gone(now, id);
        self.paced_gone(now, id);
        self.dpd_timers.set(id, None);
        if let Some(key) = self.acquired_by.remove(&id) {
            self.acquired.remove(&key);
        }
        self.vips_gone(id);
        let mut spis = self.by_ike.remove(&id).unwrap_or_default();
        spis.sort_unstable();
        for spi in spis {
            match self.engine_child(spi) {
                // Moved to another IKE SA (a rekey): filed under it.
                Some((owner, _)) => self.file_child(spi, owner),
                None => self.remove_child(spi),
            }
        }
        let mut progress = Vec::new();
        for w in &mut self.down_waiters {
            if w.ids.remove(&id) {
                progress.push(w.ctl);
            }
        }
        for ctl in progress {
            self.progress(ctl, format!("IKE_SA [{}] deleted", id.0));
        }
        self.finish_down_waiters();
    }
}

/// The error of a failed operation (an unexpected output is a bug in the executor).
fn failure(r: Result<KernelOutput, KernelError>) -> String {
    match r {
        Err(e) => e.to_string(),
        Ok(other) => format!("unexpected kernel result {other:?}"),
    }
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Initiator => "initiator",
        Role::Responder => "responder",
    }
}
