//! The driver: one task owning the sans-IO engine ([`Endpoint`]). It selects over received
//! datagrams, the engine's timer, kernel events, control requests and signals; it is the only
//! place that reads the clock. Engine output (datagrams, events) is drained after every input.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::CryptoRng;
use tokio::signal::unix::Signal;
use tokio::sync::mpsc;

use super::conns::{ConnEntry, fmt_identification, fmt_ts};
use super::ctl::CtlRequest;
use super::install::{self, SharedKernel};
use super::keylog::KeyLog;
use super::net::{Datagram, Net};
use super::{Reloader, hex};
use crate::config::conn::Auto;
use crate::control::{ChildReport, Done, IkeSaReport, Reply, Request, StatusReport};
use crate::ike::{ChildSaReady, Endpoint, Event, IkeError, IkeSaId, IkeSaStatus, Role};
use crate::kernel::{ChildId, KernelEvent, KernelIpsec, UdpEncap};

/// How long SIGTERM waits for the peers' answers to our DELETEs.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Inputs of the driver other than the engine itself.
pub struct Inputs {
    /// Received IKE datagrams.
    pub datagrams: mpsc::Receiver<Datagram>,
    /// Control requests.
    pub ctl: mpsc::Receiver<CtlRequest>,
    /// Kernel events (ACQUIRE, EXPIRE).
    pub kernel: mpsc::Receiver<KernelEvent>,
    /// SIGTERM.
    pub sigterm: Signal,
    /// SIGINT (handled like SIGTERM).
    pub sigint: Signal,
    /// SIGHUP (reload).
    pub sighup: Signal,
}

/// A CHILD_SA the daemon negotiated (and, with a kernel, installed).
struct ChildRecord {
    ike_sa: IkeSaId,
    conn: String,
    kernel_id: ChildId,
    ready: ChildReport,
    installed_at: Instant,
    lifetime: crate::kernel::Lifetime,
    /// A rekey replaced this CHILD_SA; it only waits for its deletion.
    replaced: bool,
}

/// An `ikectl up` waiting for its IKE SA and CHILD_SA.
struct UpWaiter {
    name: String,
    replies: mpsc::UnboundedSender<Reply>,
}

/// An `ikectl down` (or the shutdown) waiting for IKE SAs to be gone.
struct DownWaiter {
    ids: HashSet<IkeSaId>,
    replies: mpsc::UnboundedSender<Reply>,
}

/// Per IKE SA facts from its establishment event.
struct IkeInfo {
    nat: bool,
    remote: SocketAddr,
}

/// The driver state.
pub struct Driver<R> {
    endpoint: Endpoint<R>,
    net: Net,
    kernel: SharedKernel,
    kernel_name: &'static str,
    natt_port: u16,
    conns: Vec<ConnEntry>,
    reloader: Reloader,
    children: HashMap<(IkeSaId, u32), ChildRecord>,
    ike_info: HashMap<IkeSaId, IkeInfo>,
    up_waiters: HashMap<IkeSaId, Vec<UpWaiter>>,
    down_waiters: Vec<DownWaiter>,
    traps: HashSet<u32>,
    shutdown: Option<tokio::time::Instant>,
    key_log: Option<KeyLog>,
}

fn send(replies: &mpsc::UnboundedSender<Reply>, r: Reply) {
    // ikectl may have gone away; that is not an error for the daemon.
    let _ = replies.send(r);
}

fn progress(replies: &mpsc::UnboundedSender<Reply>, text: String) {
    send(replies, Reply::Progress(text));
}

fn done(replies: &mpsc::UnboundedSender<Reply>, d: Done) {
    send(replies, Reply::Done(d));
}

impl<R: CryptoRng> Driver<R> {
    /// A driver over an engine that already has `conns`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        endpoint: Endpoint<R>,
        net: Net,
        kernel: SharedKernel,
        kernel_name: &'static str,
        natt_port: u16,
        conns: Vec<ConnEntry>,
        reloader: Reloader,
    ) -> Self {
        Self {
            endpoint,
            net,
            kernel,
            kernel_name,
            natt_port,
            conns,
            reloader,
            children: HashMap::new(),
            ike_info: HashMap::new(),
            up_waiters: HashMap::new(),
            down_waiters: Vec::new(),
            traps: HashSet::new(),
            shutdown: None,
            key_log: None,
        }
    }

    /// Writes every IKE SA's and CHILD_SA's keys to `log` (`--wireshark-keys`); the endpoint
    /// must have been created with [`EndpointConfig::export_keys`](crate::ike::EndpointConfig).
    pub fn set_key_log(&mut self, log: KeyLog) {
        self.key_log = Some(log);
    }

    fn with_kernel<T>(
        &self,
        f: impl FnOnce(&mut install::Kernel) -> Result<T, crate::kernel::KernelError>,
    ) -> Result<T, install::InstallError> {
        let mut k = self
            .kernel
            .lock()
            .map_err(|_| install::InstallError::Poisoned)?;
        Ok(f(&mut k)?)
    }

    /// Start-up actions: traps for `auto=route`, initiation for `auto=start`.
    pub async fn start(&mut self) {
        self.install_traps();
        let now = Instant::now();
        let starts: Vec<String> = self
            .conns
            .iter()
            .filter(|c| c.auto == Auto::Start)
            .map(|c| c.spec.name.clone())
            .collect();
        for name in starts {
            match self.endpoint.initiate(now, &name) {
                Ok(id) => {
                    tracing::info!(target: "ike", "auto=start: initiating IKE_SA {name}[{}]", id.0)
                }
                Err(e) => tracing::error!(target: "ike", "auto=start {name}: {e}"),
            }
        }
        self.drain().await;
    }

    fn install_traps(&mut self) {
        let traps: Vec<_> = self
            .conns
            .iter()
            .filter(|c| c.auto == Auto::Route)
            .map(|c| (c.spec.name.clone(), c.reqid, c.spec.clone()))
            .collect();
        for (name, reqid, spec) in traps {
            let (Some(local), Some(remote)) = (spec.local_addr, spec.remote_addr) else {
                tracing::error!(target: "kernel", "auto=route {name}: needs fixed left and right addresses");
                continue;
            };
            let local_ts = crate::ike::configured_or_host(&spec.local_ts, local);
            let remote_ts = crate::ike::configured_or_host(&spec.remote_ts, remote);
            let trap = install::trap_policy(local, remote, spec.mode, reqid, &local_ts, &remote_ts);
            match self.with_kernel(|k| k.install_trap(&trap)) {
                Ok(()) => {
                    self.traps.insert(reqid);
                    tracing::info!(target: "kernel", "auto=route {name}: trap policies installed (reqid {reqid:#x})");
                }
                Err(e) => tracing::error!(target: "kernel", "auto=route {name}: {e}"),
            }
        }
    }

    fn remove_traps(&mut self) {
        for reqid in std::mem::take(&mut self.traps) {
            if let Err(e) = self.with_kernel(|k| k.remove_trap(reqid)) {
                tracing::warn!(target: "kernel", "removing trap reqid {reqid:#x}: {e}");
            }
        }
    }

    /// Runs until shut down; returns after every SA and policy was removed.
    pub async fn run(mut self, mut inputs: Inputs) {
        loop {
            if let Some(deadline) = self.shutdown
                && (self.endpoint.ike_sas().is_empty() || tokio::time::Instant::now() >= deadline)
            {
                break;
            }
            let timeout = self
                .endpoint
                .poll_timeout()
                .map(tokio::time::Instant::from_std);
            let shutdown = self.shutdown;
            tokio::select! {
                Some(d) = inputs.datagrams.recv() => {
                    self.endpoint.handle_datagram(Instant::now(), d.local, d.remote, &d.data);
                }
                Some(req) = inputs.ctl.recv() => self.control(req),
                Some(ev) = inputs.kernel.recv() => self.kernel_event(ev),
                () = sleep_until(timeout), if timeout.is_some() => {
                    self.endpoint.handle_timeout(Instant::now());
                }
                () = sleep_until(shutdown), if shutdown.is_some() => {}
                Some(()) = inputs.sigterm.recv() => self.begin_shutdown("SIGTERM"),
                Some(()) = inputs.sigint.recv() => self.begin_shutdown("SIGINT"),
                Some(()) = inputs.sighup.recv() => {
                    let (_, d) = self.reload();
                    match d.error {
                        None => tracing::info!(target: "cfg", "SIGHUP: configuration reloaded"),
                        Some(e) => tracing::error!(target: "cfg", "SIGHUP: reload refused, keeping the running configuration:\n{e}"),
                    }
                }
            }
            self.drain().await;
        }
        self.finish();
    }

    fn begin_shutdown(&mut self, why: &str) {
        if self.shutdown.is_some() {
            return;
        }
        tracing::info!(target: "dmn", "{why}: deleting IKE SAs, then removing SAs and policies");
        self.shutdown = Some(tokio::time::Instant::now() + SHUTDOWN_GRACE);
        let now = Instant::now();
        for sa in self.endpoint.ike_sas() {
            if let Err(e) = self.endpoint.delete_ike_sa(now, sa.id) {
                tracing::warn!(target: "ike", "deleting IKE_SA {}[{}]: {e}", sa.conn, sa.id.0);
            }
        }
    }

    fn finish(&mut self) {
        for (_, child) in std::mem::take(&mut self.children) {
            if let Err(e) = self.with_kernel(|k| k.remove_child(child.kernel_id)) {
                tracing::warn!(target: "kernel", "removing {}: {e}", child.kernel_id);
            }
        }
        self.remove_traps();
        match self.with_kernel(|k| k.flush_ours()) {
            Ok(r) if r.sas + r.policies > 0 => {
                tracing::info!(target: "kernel", "flushed {} leftover SAs and {} policies", r.sas, r.policies);
            }
            Ok(_) => {}
            Err(e) => tracing::error!(target: "kernel", "final flush: {e}"),
        }
        for (_, waiters) in self.up_waiters.drain() {
            for w in waiters {
                done(&w.replies, Done::failed("ikev2d is shutting down"));
            }
        }
        for w in self.down_waiters.drain(..) {
            done(&w.replies, Done::ok());
        }
        tracing::info!(target: "dmn", "ikev2d stopped");
    }

    /// Handles every pending event, then sends every pending datagram. Events go first so
    /// that a responder installs its CHILD_SA before its IKE_AUTH response lets the
    /// initiator send ESP.
    async fn drain(&mut self) {
        loop {
            let mut idle = true;
            while let Some(ev) = self.endpoint.poll_event() {
                idle = false;
                self.event(ev);
            }
            while let Some(t) = self.endpoint.poll_transmit() {
                idle = false;
                if let Err(e) = self.net.send(t.local, t.remote, &t.data).await {
                    tracing::warn!(target: "net", "{e}");
                }
            }
            if idle {
                return;
            }
        }
    }

    fn event(&mut self, ev: Event) {
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
            } => {
                if let (Some(log), Some(keys)) = (self.key_log.as_mut(), exported_keys.as_deref())
                    && let Err(e) = log.ike_sa(&spi_i, &spi_r, keys)
                {
                    tracing::warn!(target: "ike", "{e}");
                }
                let text = format!(
                    "IKE_SA {conn}[{}] established between {}[{}]...{}[{}]",
                    id.0,
                    local.ip(),
                    fmt_identification(&local_id),
                    remote.ip(),
                    fmt_identification(&remote_id)
                );
                tracing::info!(target: "ike", "{text} ({} SPIs {}_i {}_r, {proposal}{})",
                    role_name(role), hex(&spi_i), hex(&spi_r),
                    if nat_detected { ", NAT detected" } else { "" });
                for w in self.up_waiters.get(&id).into_iter().flatten() {
                    progress(&w.replies, text.clone());
                    progress(&w.replies, format!("IKE proposal: {proposal}"));
                }
                self.ike_info.insert(
                    id,
                    IkeInfo {
                        nat: nat_detected,
                        remote,
                    },
                );
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
                if let (Some(log), Some(keys)) = (self.key_log.as_mut(), exported_keys.as_deref())
                    && let Err(e) = log.ike_sa(&spi_i, &spi_r, keys)
                {
                    tracing::warn!(target: "ike", "{e}");
                }
                tracing::info!(target: "ike", "IKE_SA {conn}[{}] rekeyed by the peer as {conn}[{}] (SPIs {}_i {}_r, {proposal})",
                    old.0, new.0, hex(&spi_i), hex(&spi_r));
                self.ike_rekeyed(old, new);
            }
            Event::IkeSaFailed { id, conn, error } => {
                let name = conn.as_deref().unwrap_or("?");
                tracing::warn!(target: "ike", "IKE_SA {name}[{}] failed: {error}", id.0);
                self.release_spis();
                self.fail_up(id, &error);
                self.ike_gone(id);
            }
            Event::ChildSaReady(ready) => self.child_ready(&ready),
            Event::ChildSaFailed { id, conn, error } => {
                tracing::warn!(target: "ike", "CHILD_SA of {conn}[{}] failed: {error}", id.0);
                self.release_spis();
                self.fail_up(id, &error);
            }
            Event::ChildSaDeleted {
                id,
                conn,
                spi_in,
                spi_out,
            } => {
                tracing::info!(target: "ike", "CHILD_SA of {conn}[{}] with SPIs {spi_in:08x}_i {spi_out:08x}_o deleted", id.0);
                self.remove_child(id, spi_in);
            }
            Event::IkeSaRekeyFailed { id, conn, error } => {
                tracing::warn!(target: "ike", "rekeying IKE_SA {conn}[{}] failed: {error}", id.0);
            }
            Event::IkeSaDeleted {
                id,
                conn,
                by_peer,
                error,
            } => {
                let why = match error {
                    Some(e) => format!(": {e}"),
                    None if by_peer => " by the peer".to_string(),
                    None => String::new(),
                };
                tracing::info!(target: "ike", "IKE_SA {conn}[{}] deleted{why}", id.0);
                if let Some(waiters) = self.up_waiters.remove(&id) {
                    for w in waiters {
                        done(
                            &w.replies,
                            Done::failed(format!("IKE_SA {conn}[{}] was deleted", id.0)),
                        );
                    }
                }
                self.ike_gone(id);
            }
        }
    }

    /// A negotiation failed: its reserved SPI (larval SA) must not stay in the kernel.
    fn release_spis(&mut self) {
        match self.kernel.lock() {
            Ok(mut k) => {
                let n = k.release_reserved_spis();
                if n > 0 {
                    tracing::debug!(target: "kernel", "released {n} reserved SPI(s)");
                }
            }
            Err(_) => tracing::error!(target: "kernel", "kernel state lost (lock poisoned)"),
        }
    }

    fn fail_up(&mut self, id: IkeSaId, error: &IkeError) {
        if let Some(waiters) = self.up_waiters.remove(&id) {
            for w in waiters {
                progress(
                    &w.replies,
                    format!("establishing connection '{}' failed: {error}", w.name),
                );
                done(&w.replies, Done::failed(error.to_string()));
            }
        }
    }

    /// IKE SA `old` was rekeyed into `new`: its CHILD_SAs (kernel state unchanged) and facts
    /// now belong to `new`.
    fn ike_rekeyed(&mut self, old: IkeSaId, new: IkeSaId) {
        if let Some(info) = self.ike_info.remove(&old) {
            self.ike_info.insert(new, info);
        }
        let moved: Vec<(IkeSaId, u32)> = self
            .children
            .keys()
            .filter(|(sa, _)| *sa == old)
            .copied()
            .collect();
        for key in moved {
            if let Some(mut c) = self.children.remove(&key) {
                c.ike_sa = new;
                self.children.insert((new, key.1), c);
            }
        }
    }

    /// An IKE SA is gone: remove what is left of its CHILD_SAs and finish `down` waiters.
    fn ike_gone(&mut self, id: IkeSaId) {
        self.ike_info.remove(&id);
        let spis: Vec<u32> = self
            .children
            .keys()
            .filter(|(sa, _)| *sa == id)
            .map(|(_, spi)| *spi)
            .collect();
        for spi in spis {
            self.remove_child(id, spi);
        }
        for w in &mut self.down_waiters {
            if w.ids.remove(&id) {
                progress(&w.replies, format!("IKE_SA [{}] deleted", id.0));
            }
        }
        self.down_waiters.retain(|w| {
            if w.ids.is_empty() {
                done(&w.replies, Done::ok());
                false
            } else {
                true
            }
        });
    }

    fn remove_child(&mut self, id: IkeSaId, spi_in: u32) {
        if let Some(child) = self.children.remove(&(id, spi_in)) {
            match self.with_kernel(|k| k.remove_child(child.kernel_id)) {
                Ok(()) => {
                    tracing::info!(target: "kernel", "removed {} of {}", child.kernel_id, child.conn)
                }
                Err(e) => tracing::error!(target: "kernel", "removing {}: {e}", child.kernel_id),
            }
        }
    }

    fn child_ready(&mut self, c: &ChildSaReady) {
        if let Some(log) = self.key_log.as_mut()
            && let Err(e) = log.child_sa(
                c.local,
                c.remote,
                c.encr,
                c.integ,
                c.spi_out,
                &c.keys_out,
                c.spi_in,
                &c.keys_in,
            )
        {
            tracing::warn!(target: "kernel", "{e}");
        }
        let Some(entry) = self.conns.iter().find(|e| e.spec.name == c.conn) else {
            tracing::error!(target: "kernel", "CHILD_SA for unknown conn {}", c.conn);
            return;
        };
        let reqid = entry.reqid;
        let jitter =
            install::rekey_jitter(entry.rekeymargin, entry.rekeyfuzz_percent, &mut rand::rng());
        let life = install::lifetime(c.lifetime, entry.rekeymargin, jitter);
        let encap = self
            .ike_info
            .get(&c.ike_sa)
            .filter(|i| i.nat)
            .map(|i| UdpEncap {
                local_port: self.natt_port,
                remote_port: i.remote.port(),
            });
        let result = install::child_install(c, reqid, life, encap)
            .and_then(|req| self.with_kernel(|k| k.install_child(&req)));
        let kernel_id = match result {
            Ok(id) => id,
            Err(e) => {
                tracing::error!(target: "kernel", "installing CHILD_SA of {}[{}] failed: {e}", c.conn, c.ike_sa.0);
                if c.rekeyed_from.is_some() {
                    // The old CHILD_SA still works until its hard expire; the peer's Delete
                    // of it, or that expire, ends the IKE SA's traffic then.
                    self.release_spis();
                    return;
                }
                if let Some(waiters) = self.up_waiters.remove(&c.ike_sa) {
                    for w in waiters {
                        done(
                            &w.replies,
                            Done::failed(format!("installing the CHILD_SA failed: {e}")),
                        );
                    }
                }
                // Without its CHILD_SA the IKE SA is useless; do not leave the peer sending
                // ESP we cannot decrypt.
                if let Err(e) = self.endpoint.delete_ike_sa(Instant::now(), c.ike_sa) {
                    tracing::warn!(target: "ike", "deleting IKE_SA [{}]: {e}", c.ike_sa.0);
                }
                return;
            }
        };
        let report = child_report(c, reqid, self.kernel_name == "xfrm");
        let text = format!(
            "CHILD_SA {}{{{}}} established with SPIs {}_i {}_o and TS {} === {}",
            c.conn,
            c.ike_sa.0,
            report.spi_in,
            report.spi_out,
            report.local_ts.join(" "),
            report.remote_ts.join(" ")
        );
        let rekey = c
            .rekeyed_from
            .map(|(i, o)| format!(", rekeys {i:08x}_i {o:08x}_o"))
            .unwrap_or_default();
        tracing::info!(target: "kernel", "{text} ({} {}, reqid {reqid:#x}, kernel: {}{rekey})",
            report.protocol, report.mode, self.kernel_name);
        if let Some((old_in, _)) = c.rekeyed_from
            && let Some(old) = self.children.get_mut(&(c.ike_sa, old_in))
        {
            old.replaced = true;
        }
        if let Some(waiters) = self.up_waiters.remove(&c.ike_sa) {
            for w in waiters {
                progress(&w.replies, text.clone());
                progress(
                    &w.replies,
                    format!("connection '{}' established successfully", w.name),
                );
                done(&w.replies, Done::ok());
            }
        }
        self.children.insert(
            (c.ike_sa, c.spi_in),
            ChildRecord {
                ike_sa: c.ike_sa,
                conn: c.conn.clone(),
                kernel_id,
                ready: report,
                installed_at: Instant::now(),
                lifetime: life,
                replaced: false,
            },
        );
    }

    fn kernel_event(&mut self, ev: KernelEvent) {
        match ev {
            KernelEvent::Acquire {
                reqid,
                local,
                remote,
                ..
            } => {
                let Some(entry) = self.conns.iter().find(|c| c.reqid == reqid) else {
                    tracing::debug!(target: "kernel", "ACQUIRE for unknown reqid {reqid:#x}");
                    return;
                };
                let name = entry.spec.name.clone();
                let busy = self.endpoint.ike_sas().iter().any(|s| s.conn == name);
                if busy {
                    tracing::debug!(target: "kernel", "ACQUIRE {local} -> {remote} for {name}: negotiation already under way");
                    return;
                }
                tracing::info!(target: "kernel", "ACQUIRE {local} -> {remote}: initiating {name}");
                if let Err(e) = self.endpoint.initiate(Instant::now(), &name) {
                    tracing::error!(target: "ike", "initiating {name} on ACQUIRE: {e}");
                }
            }
            KernelEvent::Expire { reqid, sa, hard } => {
                let owner = self
                    .children
                    .values()
                    .find(|c| {
                        c.kernel_id.reqid == reqid
                            && (c.kernel_id.spi_in == sa.spi || c.kernel_id.spi_out == sa.spi)
                    })
                    .map(|c| (c.ike_sa, c.conn.clone(), c.kernel_id.spi_in, c.replaced));
                let Some((ike_sa, conn, spi_in, replaced)) = owner else {
                    return;
                };
                let rekey = self
                    .conns
                    .iter()
                    .find(|c| c.spec.name == conn)
                    .is_none_or(|c| c.rekey);
                let now = Instant::now();
                if replaced {
                    // Already rekeyed: a soft expire needs nothing, a hard one (the peer
                    // never deleted it) removes just this CHILD_SA.
                    if hard {
                        tracing::info!(target: "kernel", "rekeyed ESP SA {:08x} of {conn} hit its hard lifetime; deleting its CHILD_SA", sa.spi);
                        if let Err(e) = self.endpoint.delete_child(now, ike_sa, spi_in) {
                            tracing::warn!(target: "ike", "deleting CHILD_SA {spi_in:08x}: {e}");
                            self.remove_child(ike_sa, spi_in);
                        }
                    }
                } else if hard {
                    tracing::warn!(target: "kernel", "ESP SA {:08x} of {conn} hit its hard lifetime; deleting IKE_SA [{}]", sa.spi, ike_sa.0);
                    if let Err(e) = self.endpoint.delete_ike_sa(now, ike_sa) {
                        tracing::warn!(target: "ike", "deleting IKE_SA [{}]: {e}", ike_sa.0);
                    }
                } else if rekey {
                    tracing::info!(target: "kernel", "ESP SA {:08x} of {conn} reached its soft lifetime; rekeying CHILD_SA {spi_in:08x}", sa.spi);
                    if let Err(e) = self.endpoint.rekey_child(now, ike_sa, spi_in) {
                        tracing::warn!(target: "ike", "rekeying CHILD_SA {spi_in:08x}: {e}");
                    }
                } else {
                    tracing::info!(target: "kernel", "ESP SA {:08x} of {conn} reached its soft lifetime (rekey=no)", sa.spi);
                }
            }
        }
    }

    fn control(&mut self, req: CtlRequest) {
        let r = req.replies;
        match req.request {
            Request::Up { name } => self.up(name, r),
            Request::Down { name } => self.down(&name, r),
            Request::Status => {
                send(&r, Reply::Status(self.status()));
                done(&r, Done::ok());
            }
            Request::Reload => {
                let (lines, d) = self.reload();
                match &d.error {
                    None => tracing::info!(target: "cfg", "ikectl reload: configuration reloaded"),
                    Some(e) => {
                        tracing::error!(target: "cfg", "ikectl reload refused, keeping the running configuration:\n{e}")
                    }
                }
                for l in lines {
                    progress(&r, l);
                }
                done(&r, d);
            }
        }
    }

    fn up(&mut self, name: String, r: mpsc::UnboundedSender<Reply>) {
        if self.shutdown.is_some() {
            done(&r, Done::failed("ikev2d is shutting down"));
            return;
        }
        let remote = self
            .conns
            .iter()
            .find(|c| c.spec.name == name)
            .and_then(|c| c.spec.remote_addr);
        match self.endpoint.initiate(Instant::now(), &name) {
            Ok(id) => {
                let to = remote
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "%any".into());
                let text = format!("initiating IKE_SA {name}[{}] to {to}", id.0);
                tracing::info!(target: "ike", "{text}");
                progress(&r, text);
                self.up_waiters
                    .entry(id)
                    .or_default()
                    .push(UpWaiter { name, replies: r });
            }
            Err(e) => {
                tracing::warn!(target: "ike", "up {name}: {e}");
                done(&r, Done::failed(e.to_string()));
            }
        }
    }

    fn down(&mut self, name: &str, r: mpsc::UnboundedSender<Reply>) {
        let ids: HashSet<IkeSaId> = self
            .endpoint
            .ike_sas()
            .iter()
            .filter(|s| s.conn == name)
            .map(|s| s.id)
            .collect();
        if !self.conns.iter().any(|c| c.spec.name == name) && ids.is_empty() {
            done(&r, Done::failed(format!("no conn named {name:?}")));
            return;
        }
        let n = self.endpoint.delete_conn(Instant::now(), name);
        tracing::info!(target: "ike", "down {name}: deleting {n} IKE_SA(s)");
        progress(&r, format!("deleting {n} IKE_SA(s) of {name}"));
        // SAs the engine dropped at once (not yet established) are already gone.
        let live: HashSet<IkeSaId> = self.endpoint.ike_sas().iter().map(|s| s.id).collect();
        let ids: HashSet<IkeSaId> = ids.intersection(&live).copied().collect();
        if ids.is_empty() {
            done(&r, Done::ok());
        } else {
            self.down_waiters.push(DownWaiter { ids, replies: r });
        }
    }

    /// Re-reads both files; on success the new conns apply to new SAs. Returns progress lines
    /// and the outcome.
    fn reload(&mut self) -> (Vec<String>, Done) {
        let conns = match self.reloader.load() {
            Ok(c) => c,
            Err(e) => return (Vec::new(), Done::failed(e)),
        };
        for c in &conns {
            if let Some(addr) = c.spec.local_addr
                && let Err(e) = self.net.add_address(addr)
            {
                return (Vec::new(), Done::failed(e.to_string()));
            }
        }
        let lines = vec![format!("loaded {} conn(s)", conns.len())];
        self.endpoint
            .set_conns(conns.iter().map(|c| c.spec.clone()).collect());
        self.conns = conns;
        self.remove_traps();
        self.install_traps();
        (lines, Done::ok())
    }

    fn status(&mut self) -> StatusReport {
        let now = Instant::now();
        let sas = self.endpoint.ike_sas();
        let mut conns: Vec<_> = self.conns.iter().map(|c| c.report.clone()).collect();
        for sa in &sas {
            let report = self.ike_report(sa, now);
            match conns.iter_mut().find(|c| c.name == sa.conn) {
                Some(c) => c.ike_sas.push(report),
                None => {
                    // A conn removed by a reload still has SAs.
                    let mut c = crate::control::ConnReport {
                        name: sa.conn.clone(),
                        local: sa.local.ip().to_string(),
                        remote: sa.remote.ip().to_string(),
                        local_id: fmt_identification(&sa.local_id),
                        remote_id: "%any".into(),
                        mode: String::new(),
                        auto: "(removed)".into(),
                        local_ts: Vec::new(),
                        remote_ts: Vec::new(),
                        ike_sas: Vec::new(),
                    };
                    c.ike_sas.push(report);
                    conns.push(c);
                }
            }
        }
        StatusReport {
            kernel: self.kernel_name.to_string(),
            conns,
        }
    }

    fn ike_report(&mut self, sa: &IkeSaStatus, now: Instant) -> IkeSaReport {
        let ike_lifetime = self
            .conns
            .iter()
            .find(|c| c.spec.name == sa.conn)
            .map(|c| c.spec.ike_lifetime);
        let age = sa.established_at.map(|t| now.saturating_duration_since(t));
        let mut children = Vec::new();
        for ch in &sa.children {
            let Some(rec) = self.children.get(&(sa.id, ch.spi_in)) else {
                continue;
            };
            let mut report = rec.ready.clone();
            let kernel_id = rec.kernel_id;
            let elapsed = now.saturating_duration_since(rec.installed_at).as_secs();
            report.installed_secs = elapsed;
            let left = |limit: u64| (limit != 0).then(|| limit.saturating_sub(elapsed));
            report.rekey_in_secs = left(rec.lifetime.soft_secs);
            report.expires_in_secs = left(rec.lifetime.hard_secs);
            match self.with_kernel(|k| k.child_counters(kernel_id)) {
                Ok(c) => {
                    report.bytes_in = c.inbound.bytes;
                    report.packets_in = c.inbound.packets;
                    report.bytes_out = c.outbound.bytes;
                    report.packets_out = c.outbound.packets;
                }
                Err(e) => tracing::warn!(target: "kernel", "counters of {kernel_id}: {e}"),
            }
            children.push(report);
        }
        IkeSaReport {
            id: sa.id.0,
            state: sa.state.to_string(),
            role: role_name(sa.role).to_string(),
            local: sa.local.to_string(),
            remote: sa.remote.to_string(),
            local_id: fmt_identification(&sa.local_id),
            remote_id: sa.remote_id.as_ref().map(fmt_identification),
            spi_i: hex(&sa.spi_i),
            spi_r: hex(&sa.spi_r),
            proposal: sa.proposal.clone(),
            established_secs: age.map(|a| a.as_secs()),
            lifetime_left_secs: age
                .zip(ike_lifetime)
                .map(|(a, l)| l.saturating_sub(a).as_secs()),
            nat_detected: sa.nat_detected,
            children,
        }
    }
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Initiator => "initiator",
        Role::Responder => "responder",
    }
}

fn child_report(c: &ChildSaReady, reqid: u32, installed: bool) -> ChildReport {
    ChildReport {
        protocol: "ESP".into(),
        mode: c.mode.to_string(),
        reqid,
        installed,
        spi_in: format!("{:08x}", c.spi_in),
        spi_out: format!("{:08x}", c.spi_out),
        encr: c.encr.name().to_string(),
        encr_key_bits: u32::from(c.encr.key_bits()),
        integ: c.integ.map(|i| i.name().to_string()),
        integ_key_bits: c
            .integ
            .map(|i| u32::try_from(i.key_len() * 8).unwrap_or(u32::MAX)),
        esn: c.esn,
        local_ts: c.local_ts.iter().map(fmt_ts).collect(),
        remote_ts: c.remote_ts.iter().map(fmt_ts).collect(),
        bytes_in: 0,
        packets_in: 0,
        bytes_out: 0,
        packets_out: 0,
        installed_secs: 0,
        rekey_in_secs: None,
        expires_in_secs: None,
    }
}

async fn sleep_until(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
