//! CHILD_SAs and traps: what goes into the kernel and comes out, ACQUIRE and EXPIRE.

use std::time::Instant;

use super::{ChildRecord, Effect, Pending, Supervisor, status};
use crate::config::conn::Auto;
use crate::control::Done;
use crate::daemon::install;
use crate::daemon::keylog::KeyRecord;
use crate::daemon::updown::{UpdownCall, UpdownInfo, Verb, pluto_id};
use crate::ike::{ChildSaReady, IkeSaId};
use crate::kernel::{ChildId, KernelOp, Lifetime, Marks, UdpEncap};

impl<R: rand::CryptoRng> Supervisor<R> {
    pub(super) fn install_traps(&mut self) {
        let shunts: Vec<_> = self.shunts.iter().map(|s| s.name.clone()).collect();
        for name in shunts {
            self.install_shunt(&name);
        }
        let traps: Vec<_> = self
            .conns
            .iter()
            .filter(|c| c.auto == Auto::Route)
            .map(|c| c.spec.clone())
            .collect();
        for spec in traps {
            self.install_trap(spec);
        }
    }

    /// The policies of the shunt conn `name` (not when they are installed already).
    pub(super) fn install_shunt(&mut self, name: &str) {
        let Some(shunt) = self.shunts.iter().find(|s| s.name == name) else {
            return;
        };
        let policy = shunt.policy.clone();
        if !self.traps.insert(policy.reqid) {
            return;
        }
        self.kernel(
            KernelOp::InstallShunt(policy.clone()),
            Pending::InstallTrap {
                name: name.to_owned(),
                reqid: policy.reqid,
            },
        );
    }

    /// The marks of conn `name` (none for an unknown conn).
    pub(super) fn conn_marks(&self, name: &str) -> Marks {
        self.conns
            .iter()
            .find(|c| c.spec.name == name)
            .map(|c| c.marks)
            .unwrap_or_default()
    }

    /// Trap policies for one conn (auto=route, dpdaction=hold, closeaction=hold).
    /// With `right=%any` (transport mode only: a tunnel's template must name the peer) the
    /// trap covers `rightsubnet`, or every address, and each ACQUIRE names its peer.
    pub(super) fn install_trap(&mut self, spec: crate::ike::ConnSpec) {
        let Some(local) = spec.local_addr else {
            tracing::error!(target: "kernel", "trap policies for {}: need a fixed left address", spec.name);
            return;
        };
        let (remote, remote_ts) = match spec.remote_addr {
            Some(remote) => (
                remote,
                crate::ike::configured_or_host(&spec.remote_ts, remote),
            ),
            None if spec.mode == crate::kernel::Mode::Transport => {
                let any = if local.is_ipv4() {
                    std::net::IpAddr::from([0u8; 4])
                } else {
                    std::net::IpAddr::from([0u8; 16])
                };
                let ts = if !spec.remote_ts.is_empty() {
                    spec.remote_ts.clone()
                } else if local.is_ipv4() {
                    vec![crate::wire::TrafficSelector::any_v4()]
                } else {
                    vec![crate::wire::TrafficSelector::any_v6()]
                };
                (any, ts)
            }
            None => {
                tracing::error!(target: "kernel", "trap policies for {}: right=%any needs type=transport (a tunnel's policy names the peer)", spec.name);
                return;
            }
        };
        let local_ts = crate::ike::configured_or_host(&spec.local_ts, local);
        let trap = install::trap_policy(
            local,
            remote,
            spec.mode,
            spec.child_protocol(),
            spec.reqid,
            &local_ts,
            &remote_ts,
            self.conn_marks(&spec.name),
        );
        self.traps.insert(spec.reqid);
        self.kernel(
            KernelOp::InstallTrap(trap),
            Pending::InstallTrap {
                name: spec.name,
                reqid: spec.reqid,
            },
        );
    }

    pub(super) fn remove_traps(&mut self) {
        let mut reqids: Vec<u32> = self.traps.drain().collect();
        reqids.sort_unstable();
        for reqid in reqids {
            self.kernel(KernelOp::RemoveTrap(reqid), Pending::RemoveTrap);
        }
    }

    /// Which IKE SA holds the CHILD_SA with inbound SPI `spi_in`, and whether a rekey
    /// replaced it (the engine's facts).
    pub(super) fn engine_child(&self, spi_in: u32) -> Option<(IkeSaId, bool)> {
        self.endpoint.child_owner(spi_in)
    }

    /// Files the installed CHILD_SA `spi_in` under IKE SA `owner` (where the engine has it).
    pub(super) fn file_child(&mut self, spi_in: u32, owner: IkeSaId) {
        let Some(rec) = self.children.get_mut(&spi_in) else {
            return;
        };
        let old = std::mem::replace(&mut rec.ike_sa, owner);
        self.unfile_child(old, spi_in);
        self.by_ike.entry(owner).or_default().push(spi_in);
    }

    fn unfile_child(&mut self, ike_sa: IkeSaId, spi_in: u32) {
        if let Some(spis) = self.by_ike.get_mut(&ike_sa) {
            spis.retain(|s| *s != spi_in);
            if spis.is_empty() {
                self.by_ike.remove(&ike_sa);
            }
        }
    }

    /// The CHILD_SAs of IKE SA `old` belong to `new` now (an IKE SA rekey).
    pub(super) fn move_children(&mut self, old: IkeSaId, new: IkeSaId) {
        for spi in self.by_ike.remove(&old).unwrap_or_default() {
            self.file_child(spi, new);
        }
    }

    pub(super) fn remove_child(&mut self, spi_in: u32) {
        self.outbound_waits.retain(|_, new| new.spi_in != spi_in);
        if let Some(new) = self.outbound_waits.remove(&spi_in) {
            // The CHILD_SA that replaces this one sends from now on (before this one's
            // removal, so outbound traffic always finds an SA).
            let conn = self
                .children
                .get(&spi_in)
                .map(|c| c.conn.clone())
                .unwrap_or_default();
            self.kernel(KernelOp::ActivateOutbound(new), Pending::Activate { conn });
        }
        if let Some(child) = self.children.remove(&spi_in) {
            self.unfile_child(child.ike_sa, spi_in);
            self.by_out
                .remove(&(child.kernel_id.reqid, child.kernel_id.spi_out));
            self.idle_timers.set(spi_in, None);
            self.updown_down(child.updown);
            self.kernel(
                KernelOp::RemoveChild(child.kernel_id),
                Pending::Remove { conn: child.conn },
            );
        }
    }

    pub(super) fn child_ready(&mut self, now: Instant, c: &ChildSaReady) {
        if self.settings.key_log {
            // AH is not encrypted: only ESP CHILD_SAs have a key record.
            self.effects
                .extend(KeyRecord::child_sa(c).map(Effect::KeyLog));
        }
        let jitter = install::rekey_jitter(c.rekey_margin, c.rekey_fuzz_percent, &mut self.rng);
        let mut lifetime = install::lifetime(c.lifetime, c.rekey_margin, jitter);
        if let Some(entry) = self.conns.iter().find(|e| e.spec.name == c.conn) {
            entry
                .volume
                .apply(&mut lifetime, c.rekey_fuzz_percent, &mut self.rng);
        }
        let encap = c.natt_remote_port.map(|remote_port| UdpEncap {
            local_port: self.settings.natt_port,
            remote_port,
        });
        let marks = self.conn_marks(&c.conn);
        let mut request = match install::child_install(c, lifetime, encap, marks) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(target: "kernel", "installing CHILD_SA of {}[{}] failed: {e}", c.conn, c.ike_sa.0);
                self.install_failed(now, c.ike_sa, c.rekeyed_from.is_some(), &e.to_string());
                return;
            }
        };
        let replaces = c.rekeyed_from.map(|(old_in, _)| old_in).or_else(|| {
            // A make-before-break reauthentication's CHILD_SA replaces the old IKE SA's
            // CHILD_SA of the same conn, which the peer deletes once this one is in.
            let old = self.reauth_suspects.get(&c.ike_sa)?;
            let sa = self.endpoint.ike_sa(*old)?;
            sa.children
                .iter()
                .filter(|o| !o.replaced)
                .find(|o| {
                    self.children
                        .get(&o.spi_in)
                        .is_some_and(|r| r.conn == c.conn)
                })
                .map(|o| o.spi_in)
        });
        // We answered: the initiator installs its new inbound SA only when our response
        // arrives, and deletes the old CHILD_SA (or IKE SA) right after. Our new outbound SA
        // waits for that Delete, so our first packets on it cannot arrive before the peer's
        // inbound SA exists (strongSwan's responder does the same).
        if !c.initiator
            && let Some(old_in) = replaces
        {
            request.defer_outbound = true;
            self.outbound_waits.insert(
                old_in,
                ChildId {
                    reqid: request.policy.reqid,
                    spi_in: request.spi_in,
                    spi_out: request.spi_out,
                },
            );
        }
        let updown = self.updown_info(c);
        let facts = status::ChildFacts::of(c);
        let text = status::ChildFacts::established_text(c);
        self.kernel(
            KernelOp::InstallChild(Box::new(request)),
            Pending::Install {
                ike_sa: c.ike_sa,
                conn: c.conn.clone(),
                facts: Box::new(facts),
                lifetime,
                rekeyed_from: c.rekeyed_from,
                text,
                updown,
            },
        );
    }

    /// The updown facts of a new CHILD_SA, when its conn has `leftupdown` or `leftfirewall`
    /// (and is not a rekey: strongSwan calls the script once per CHILD_SA, not per rekey).
    fn updown_info(&self, c: &ChildSaReady) -> Option<Box<UpdownInfo>> {
        let entry = self.conns.iter().find(|e| e.spec.name == c.conn)?;
        if (entry.updown.is_none() && !entry.firewall) || c.rekeyed_from.is_some() {
            return None;
        }
        let ike = self.endpoint.ike_sa(c.ike_sa)?;
        Some(Box::new(UpdownInfo {
            conn: c.conn.clone(),
            script: entry.updown.clone(),
            firewall: entry.firewall,
            unique_id: c.ike_sa.0,
            reqid: c.reqid,
            spi_in: c.spi_in,
            proto: c.protocol,
            me: c.local,
            my_id: pluto_id(&ike.local_id),
            peer: c.remote,
            peer_id: ike
                .remote_id
                .as_ref()
                .map_or_else(|| "%any".to_owned(), pluto_id),
            local_ts: c.local_ts.clone(),
            remote_ts: c.remote_ts.clone(),
        }))
    }

    /// The `down` call of a CHILD_SA that goes (none when its `up` was not made by it).
    pub(super) fn updown_down(&mut self, info: Option<Box<UpdownInfo>>) {
        if let Some(info) = info {
            self.effects.push_back(Effect::Updown(Box::new(UpdownCall {
                verb: Verb::Down,
                info: *info,
            })));
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn installed(
        &mut self,
        now: Instant,
        ike_sa: IkeSaId,
        conn: String,
        kernel_id: ChildId,
        facts: status::ChildFacts,
        lifetime: Lifetime,
        rekeyed_from: Option<(u32, u32)>,
        text: String,
        updown: Option<Box<UpdownInfo>>,
    ) {
        let rekey = rekeyed_from
            .map(|(i, o)| format!(", rekeys {i:08x}_i {o:08x}_o"))
            .unwrap_or_default();
        tracing::info!(target: "kernel", "{text} ({} {}, reqid {:#x}, kernel: {}{rekey})",
            facts.protocol, facts.mode, kernel_id.reqid, self.settings.kernel_name);
        let record_conn = conn.clone();
        let idle = self
            .conns
            .iter()
            .find(|c| c.spec.name == conn)
            .and_then(|c| c.inactivity)
            .map(|inactivity| Box::new(super::liveness::IdleWatch::new(inactivity, now)));
        // A rekey takes the announced CHILD_SA's place: its `down` call moves here.
        let updown = match rekeyed_from {
            Some((old_in, _)) => self
                .children
                .get_mut(&old_in)
                .and_then(|old| old.updown.take()),
            None => {
                if let Some(info) = &updown {
                    self.effects.push_back(Effect::Updown(Box::new(UpdownCall {
                        verb: Verb::Up,
                        info: (**info).clone(),
                    })));
                }
                updown
            }
        };
        let record = Box::new(ChildRecord {
            conn,
            ike_sa,
            kernel_id,
            facts,
            installed_at: now,
            expiry_secs: (lifetime.soft_secs, lifetime.hard_secs),
            idle,
            updown,
        });
        let spi_in = kernel_id.spi_in;
        self.idle_timers
            .set(spi_in, record.idle.as_ref().and_then(|w| w.due()));
        self.by_out
            .insert((kernel_id.reqid, kernel_id.spi_out), spi_in);
        self.children.insert(spi_in, record);
        self.by_ike.entry(ike_sa).or_default().push(spi_in);
        match self.engine_child(spi_in) {
            // Its IKE SA may have been rekeyed while the install ran.
            Some((owner, _)) => self.file_child(spi_in, owner),
            // Deleted (or its IKE SA gone) while the install ran.
            None => self.remove_child(spi_in),
        }
        if rekeyed_from.is_none() {
            self.reauth_child_done(now, ike_sa);
        }
        for w in self.take_up_waiters(ike_sa, Some(&record_conn)) {
            self.progress(w.ctl, text.clone());
            self.progress(
                w.ctl,
                format!("connection '{}' established successfully", w.name),
            );
            self.done(w.ctl, Done::ok());
        }
    }

    pub(super) fn install_failed(
        &mut self,
        now: Instant,
        ike_sa: IkeSaId,
        rekey: bool,
        error: &str,
    ) {
        if rekey {
            // The old CHILD_SA still works until its hard expire; the peer's Delete of it,
            // or that expire, ends the IKE SA's traffic then.
            return;
        }
        for w in self.up_waiters.remove(&ike_sa).unwrap_or_default() {
            self.done(
                w.ctl,
                Done::failed(format!("installing the CHILD_SA failed: {error}")),
            );
        }
        // Without its CHILD_SA the IKE SA is useless; do not leave the peer sending ESP we
        // cannot decrypt.
        self.delete_ike(now, ike_sa);
    }

    pub(super) fn acquire(
        &mut self,
        now: Instant,
        reqid: u32,
        local: std::net::IpAddr,
        remote: std::net::IpAddr,
    ) {
        let Some(entry) = self.conns.iter().find(|c| c.spec.reqid == reqid) else {
            tracing::debug!(target: "kernel", "ACQUIRE for unknown reqid {reqid:#x}");
            return;
        };
        let name = entry.spec.name.clone();
        if entry.spec.remote_addr.is_none() {
            self.acquire_any(now, name, local, remote);
            return;
        }
        if self.endpoint.conn_has_sas(&name) {
            tracing::debug!(target: "kernel", "ACQUIRE {local} -> {remote} for {name}: negotiation already under way");
            return;
        }
        tracing::info!(target: "kernel", "ACQUIRE {local} -> {remote}: initiating {name}");
        if let Err(e) = self.initiate(now, &name, 1) {
            tracing::error!(target: "ike", "initiating {name} on ACQUIRE: {e}");
        }
    }

    /// ACQUIRE on the trap of a `right=%any` conn: initiate to the packet's destination,
    /// unless an IKE SA to it is there or under way.
    fn acquire_any(
        &mut self,
        now: Instant,
        name: String,
        local: std::net::IpAddr,
        remote: std::net::IpAddr,
    ) {
        let key = (name, remote);
        if let Some(id) = self.acquired.get(&key)
            && self.endpoint.ike_sa(*id).is_some()
        {
            tracing::debug!(target: "kernel", "ACQUIRE {local} -> {remote} for {}: negotiation already under way", key.0);
            return;
        }
        tracing::info!(target: "kernel", "ACQUIRE {local} -> {remote}: initiating {} to {remote}", key.0);
        match self.endpoint.initiate_to(now, &key.0, remote) {
            Ok(id) => {
                self.acquired_by.insert(id, key.clone());
                if let Some(old) = self.acquired.insert(key, id) {
                    self.acquired_by.remove(&old);
                }
            }
            Err(e) => {
                tracing::error!(target: "ike", "initiating {} to {remote} on ACQUIRE: {e}", key.0)
            }
        }
    }

    pub(super) fn expire(&mut self, now: Instant, reqid: u32, spi: u32, hard: bool) {
        let inbound = self
            .children
            .get(&spi)
            .filter(|c| c.kernel_id.reqid == reqid)
            .map(|_| spi);
        let Some(spi_in) = inbound.or_else(|| self.by_out.get(&(reqid, spi)).copied()) else {
            return;
        };
        let Some(conn) = self.children.get(&spi_in).map(|c| c.conn.clone()) else {
            return;
        };
        let Some((ike_sa, replaced)) = self.engine_child(spi_in) else {
            if hard {
                self.remove_child(spi_in);
            }
            return;
        };
        let rekey = self
            .conns
            .iter()
            .find(|c| c.spec.name == conn)
            .is_none_or(|c| c.rekey);
        if replaced {
            // Already rekeyed: a soft expire needs nothing, a hard one (the peer never
            // deleted it) removes just this CHILD_SA.
            if hard {
                tracing::info!(target: "kernel", "rekeyed ESP SA {spi:08x} of {conn} hit its hard lifetime; deleting its CHILD_SA");
                if let Err(e) = self.endpoint.delete_child(now, ike_sa, spi_in) {
                    tracing::warn!(target: "ike", "deleting CHILD_SA {spi_in:08x}: {e}");
                    self.remove_child(spi_in);
                }
            }
        } else if hard {
            tracing::warn!(target: "kernel", "ESP SA {spi:08x} of {conn} hit its hard lifetime; deleting IKE_SA [{}]", ike_sa.0);
            self.delete_ike(now, ike_sa);
        } else if rekey {
            tracing::info!(target: "kernel", "ESP SA {spi:08x} of {conn} reached its soft lifetime; rekeying CHILD_SA {spi_in:08x}");
            if let Err(e) = self.endpoint.rekey_child(now, ike_sa, spi_in) {
                tracing::warn!(target: "ike", "rekeying CHILD_SA {spi_in:08x}: {e}");
            }
        } else {
            tracing::info!(target: "kernel", "ESP SA {spi:08x} of {conn} reached its soft lifetime (rekey=no)");
        }
    }
}
