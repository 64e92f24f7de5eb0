//! `ikectl up` and `down`: initiating and deleting, and the waiters that answer when done.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{CtlId, DownWaiter, Pending, Phase, Supervisor, UpWaiter};
use crate::control::Done;
use crate::ike::{IkeError, IkeSaId};
use crate::kernel::KernelOp;

impl<R: rand::CryptoRng> Supervisor<R> {
    pub(super) fn up(&mut self, now: Instant, name: String, ctl: CtlId) {
        if self.phase != Phase::Running {
            self.done(ctl, Done::failed("ikev2d is shutting down"));
            return;
        }
        if let Some(reqid) = self.shunt_reqid(&name) {
            // A shunt has nothing to negotiate: `up` (re)installs its policies.
            let text = if self.traps.contains(&reqid) {
                format!("shunt {name} is installed")
            } else {
                self.install_shunt(&name);
                format!("installing shunt {name}")
            };
            self.progress(ctl, text);
            self.done(ctl, Done::ok());
            return;
        }
        let remote = self
            .conns
            .iter()
            .find(|c| c.spec.name == name)
            .and_then(|c| c.spec.remote_addr);
        if self.up_over_existing(now, &name, ctl) {
            return;
        }
        match self.initiate(now, &name, 1) {
            Ok(id) => {
                let to = remote.map_or_else(|| "%any".into(), |a| a.to_string());
                let text = format!("initiating IKE_SA {name}[{}] to {to}", id.0);
                tracing::info!(target: "ike", "{text}");
                self.progress(ctl, text);
                self.up_waiters
                    .entry(id)
                    .or_default()
                    .push(UpWaiter { name, ctl });
            }
            Err(e) => {
                tracing::warn!(target: "ike", "up {name}: {e}");
                self.done(ctl, Done::failed(e.to_string()));
            }
        }
    }

    /// The reqid of the shunt conn `name`, if it is one.
    fn shunt_reqid(&self, name: &str) -> Option<u32> {
        self.shunts
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.policy.reqid)
    }

    pub(super) fn down(&mut self, now: Instant, name: &str, ctl: CtlId) {
        if let Some(reqid) = self.shunt_reqid(name) {
            let text = if self.traps.remove(&reqid) {
                self.kernel(KernelOp::RemoveTrap(reqid), Pending::RemoveTrap);
                format!("removing shunt {name}")
            } else {
                format!("shunt {name} is not installed")
            };
            tracing::info!(target: "kernel", "down {name}: {text}");
            self.progress(ctl, text);
            self.done(ctl, Done::ok());
            return;
        }
        let ids: HashSet<IkeSaId> = self
            .endpoint
            .ike_sas()
            .iter()
            .filter(|s| s.conn == name)
            .map(|s| s.id)
            .collect();
        if !self.conns.iter().any(|c| c.spec.name == name) && ids.is_empty() {
            self.done(ctl, Done::failed(format!("no conn named {name:?}")));
            return;
        }
        let children = self.down_riding_children(now, name);
        if !children.is_empty() {
            let text = format!(
                "deleting {} CHILD_SA(s) of {name} from other IKE_SAs",
                children.len()
            );
            tracing::info!(target: "ike", "down {name}: {text}");
            self.progress(ctl, text);
        }
        self.cancel_retries(Some(name));
        self.local_deletes.extend(ids.iter().copied());
        let n = self.endpoint.delete_conn(now, name);
        tracing::info!(target: "ike", "down {name}: deleting {n} IKE_SA(s)");
        self.progress(ctl, format!("deleting {n} IKE_SA(s) of {name}"));
        // SAs the engine dropped at once (not yet established) are already gone.
        let live: HashSet<IkeSaId> = self.endpoint.ike_sas().iter().map(|s| s.id).collect();
        let ids: HashSet<IkeSaId> = ids.intersection(&live).copied().collect();
        self.down_waiters.push(DownWaiter { ids, children, ctl });
        self.finish_down_waiters();
    }

    /// Our request on IKE SA `id` was sent again: logged with the peer, and streamed to a
    /// waiting `ikectl up` so that a dead peer shows at once.
    pub(super) fn retransmitted(
        &mut self,
        id: IkeSaId,
        conn: &str,
        remote: SocketAddr,
        attempt: u32,
        of: u32,
        next_in: Duration,
    ) {
        let wait = next_in.as_secs_f64().round();
        tracing::info!(target: "ike", "IKE_SA {conn}[{}]: retransmit {attempt} of {of} to {remote}, next in {wait} s", id.0);
        for ctl in self.up_ctls(id) {
            self.progress(
                ctl,
                format!("retransmit {attempt} of {of} to {remote}, next in {wait} s"),
            );
        }
    }

    /// The `up`s waiting on IKE SA `id` (only those of `conn` if given) failed.
    pub(super) fn fail_up(&mut self, id: IkeSaId, conn: Option<&str>, error: &IkeError) {
        for w in self.take_up_waiters(id, conn) {
            self.progress(
                w.ctl,
                format!("establishing connection '{}' failed: {error}", w.name),
            );
            self.done(w.ctl, Done::failed(error.to_string()));
        }
    }

    /// Removes and returns the `up`s waiting on IKE SA `id`, only those of `conn` if given
    /// (a CHILD_SA of another conn may ride the same IKE SA).
    /// The ikectl connections waiting for `ikectl up` on IKE SA `id`.
    pub(super) fn up_ctls(&self, id: IkeSaId) -> Vec<CtlId> {
        self.up_waiters
            .get(&id)
            .into_iter()
            .flatten()
            .map(|w| w.ctl)
            .collect()
    }

    pub(super) fn take_up_waiters(&mut self, id: IkeSaId, conn: Option<&str>) -> Vec<UpWaiter> {
        let Some(all) = self.up_waiters.remove(&id) else {
            return Vec::new();
        };
        let (taken, kept): (Vec<UpWaiter>, Vec<UpWaiter>) = all
            .into_iter()
            .partition(|w| conn.is_none_or(|c| c == w.name));
        if !kept.is_empty() {
            self.up_waiters.insert(id, kept);
        }
        taken
    }
}
