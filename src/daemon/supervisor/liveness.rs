//! Keeping tunnels alive: dead peer detection (`dpddelay`), what happens when the peer is
//! gone (`dpdaction`) or deleted the IKE SA (`closeaction`), and `keyingtries` with back-off
//! for initiations that fail.
//!
//! * DPD: an established IKE SA of a conn with `dpdaction` other than `none` gets an empty
//!   INFORMATIONAL ([`Endpoint::check_liveness`](crate::ike::Endpoint::check_liveness)) when
//!   nothing authentic arrived from the peer for `dpddelay` (and no check is outstanding).
//!   The engine retransmits by its schedule; when that gives up it reports the IKE SA
//!   deleted with `PeerNotResponding` — unless we were deleting it ourselves, the peer is
//!   gone (whichever request of ours went unanswered).
//! * Actions (for `dpdaction` on a dead peer, `closeaction` on the peer's Delete), taken only
//!   when no other IKE SA of the conn remains (a rekeyed or re-established SA replaced it):
//!   `clear` leaves it removed; `hold` installs the conn's trap policies so that traffic
//!   initiates again (ACQUIRE); `restart` initiates at once.
//! * `keyingtries`: an IKE SA we initiated whose peer did not answer (the retransmissions
//!   gave up) is initiated again after a back-off of 1 s, 2 s, 4 s … (at most
//!   [`MAX_BACKOFF`]) until the conn's tries are used up; `%forever` never stops. As in
//!   strongSwan, an answer that refuses (NO_PROPOSAL_CHOSEN, AUTHENTICATION_FAILED, ...) is
//!   final. An `ikectl up` waits across the tries.
//! * `inactivity`: a CHILD_SA's kernel packet counters (both directions) are read every
//!   `inactivity`; when they did not move since the last reading, the CHILD_SA is closed (the
//!   IKE SA with it when it was the last one, as strongSwan does). An idle CHILD_SA thus goes
//!   between one and two `inactivity` intervals after its last packet.

use std::time::{Duration, Instant};

use super::{Supervisor, UpWaiter};
use crate::config::conn::Action;
use crate::ike::{IkeError, IkeSaId, IkeSaState, IkeSaStatus};
use crate::kernel::{KernelError, KernelOp, KernelOutput};

/// The longest wait between two tries of `keyingtries`.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// An initiation of ours and which try of `keyingtries` it is (1 = the first).
pub(super) struct Attempt {
    pub(super) conn: String,
    pub(super) tries: u32,
}

/// A try of `keyingtries` waiting for its back-off.
pub(super) struct Retry {
    pub(super) at: Instant,
    pub(super) conn: String,
    pub(super) tries: u32,
    pub(super) waiters: Vec<UpWaiter>,
}

/// A CHILD_SA watched for `inactivity`.
pub(super) struct IdleWatch {
    inactivity: Duration,
    /// Packets (in + out) at the last reading.
    packets: u64,
    /// The next reading.
    next: Instant,
    /// A reading is in flight.
    reading: bool,
}

impl IdleWatch {
    pub(super) fn new(inactivity: Duration, now: Instant) -> Self {
        Self {
            inactivity,
            packets: 0,
            next: now + inactivity,
            reading: false,
        }
    }

    pub(super) fn due(&self) -> Option<Instant> {
        (!self.reading).then_some(self.next)
    }
}

/// The wait before try `tries` (2 = the first retry): 1 s, doubling, at most [`MAX_BACKOFF`].
pub(super) fn backoff(tries: u32) -> Duration {
    let exp = tries.saturating_sub(2).min(16);
    Duration::from_secs(1u64 << exp).min(MAX_BACKOFF)
}

impl<R: rand::CryptoRng> Supervisor<R> {
    /// Initiates `conn` as try number `tries` of its `keyingtries`.
    pub(super) fn initiate(
        &mut self,
        now: Instant,
        conn: &str,
        tries: u32,
    ) -> Result<IkeSaId, IkeError> {
        let id = self.endpoint.initiate(now, conn)?;
        self.attempts.insert(
            id,
            Attempt {
                conn: conn.to_string(),
                tries,
            },
        );
        Ok(id)
    }

    /// Deletes an IKE SA on our own account (its deletion then triggers no `dpdaction`).
    pub(super) fn delete_ike(&mut self, now: Instant, id: IkeSaId) {
        self.local_deletes.insert(id);
        if let Err(e) = self.endpoint.delete_ike_sa(now, id) {
            tracing::warn!(target: "ike", "deleting IKE_SA [{}]: {e}", id.0);
        }
    }

    /// When the established IKE SA `sa` needs a liveness check, if its conn wants them.
    fn dpd_due(&self, sa: &IkeSaStatus) -> Option<Instant> {
        if sa.state != IkeSaState::Established {
            return None;
        }
        let delay = self
            .conns
            .iter()
            .find(|c| c.spec.name == sa.conn)?
            .dpddelay?;
        let heard = sa.established_at.max(sa.last_received)?;
        if self.dpd_sent.get(&sa.id) == Some(&heard) {
            // A check is outstanding (nothing arrived since it was sent): the engine's
            // retransmissions decide.
            return None;
        }
        heard.checked_add(delay)
    }

    /// When to look at IKE SA `id` again for its liveness check: when the check is due, or
    /// (a check outstanding, or the SA not established) after another `dpddelay`; `None`
    /// when the SA is gone or its conn has no `dpddelay`. Authentic messages only move the
    /// check later, so a look that comes early just files the SA again.
    fn dpd_next(&self, id: IkeSaId, now: Instant) -> Option<Instant> {
        let sa = self.endpoint.ike_sa(id)?;
        let delay = self
            .conns
            .iter()
            .find(|c| c.spec.name == sa.conn)?
            .dpddelay?;
        self.dpd_due(&sa).or_else(|| now.checked_add(delay))
    }

    /// Files IKE SA `id` for its next liveness look (after it was established, rekeyed or
    /// checked).
    pub(super) fn file_dpd(&mut self, id: IkeSaId, now: Instant) {
        let at = self.dpd_next(id, now);
        self.dpd_timers.set(id, at);
    }

    /// A reload may change `dpddelay`: every IKE SA is filed again.
    pub(super) fn refile_dpd(&mut self, now: Instant) {
        self.dpd_timers.clear();
        for sa in self.endpoint.ike_sas() {
            if sa.state == IkeSaState::Established {
                self.file_dpd(sa.id, now);
            }
        }
    }

    /// The next liveness look, `inactivity` reading or retry (for
    /// [`Supervisor::poll_timeout`]).
    pub(super) fn liveness_timeout_at(&self) -> Option<Instant> {
        let retry = self.retries.iter().map(|r| r.at).min();
        [self.dpd_timers.first(), self.idle_timers.first(), retry]
            .into_iter()
            .flatten()
            .min()
    }

    /// Every established IKE SA whose liveness check a scan finds due is filed no later
    /// (debug builds: the index against a scan).
    #[cfg(debug_assertions)]
    pub(super) fn check_liveness_timers(&self) {
        for sa in self.endpoint.ike_sas() {
            if let Some(due) = self.dpd_due(&sa) {
                let filed = self.dpd_timers.get(sa.id);
                assert!(
                    filed.is_some_and(|t| t <= due),
                    "liveness check of IKE_SA [{}] due {due:?}, filed {filed:?}",
                    sa.id.0
                );
            }
        }
        for (id, _) in self.dpd_timers.iter() {
            assert!(self.endpoint.ike_sa(id).is_some(), "IKE_SA [{}] gone", id.0);
        }
    }

    /// Sends the liveness checks and starts the retries due at `now`.
    pub(super) fn liveness_timeout(&mut self, now: Instant) {
        for id in self.dpd_timers.take_due(now) {
            let Some(sa) = self.endpoint.ike_sa(id) else {
                continue;
            };
            if self.dpd_due(&sa).is_some_and(|t| t <= now) {
                tracing::debug!(target: "ike", "IKE_SA {}[{}]: nothing received for dpddelay, checking liveness", sa.conn, sa.id.0);
                if let Some(heard) = sa.established_at.max(sa.last_received) {
                    self.dpd_sent.insert(sa.id, heard);
                }
                if let Err(e) = self.endpoint.check_liveness(now, sa.id) {
                    tracing::warn!(target: "ike", "liveness check of IKE_SA [{}]: {e}", sa.id.0);
                }
            }
            self.file_dpd(id, now);
        }
        let (due, wait): (Vec<Retry>, Vec<Retry>) = std::mem::take(&mut self.retries)
            .into_iter()
            .partition(|r| r.at <= now);
        self.retries = wait;
        for r in due {
            self.retry(now, r);
        }
        self.read_idle_counters(now);
    }

    /// Reads the counters of the CHILD_SAs whose `inactivity` reading is due.
    fn read_idle_counters(&mut self, now: Instant) {
        let mut due: Vec<(u32, crate::kernel::ChildId)> = Vec::new();
        for spi in self.idle_timers.take_due(now) {
            if let Some(c) = self.children.get_mut(&spi)
                && let Some(w) = c.idle.as_mut()
            {
                w.reading = true;
                due.push((spi, c.kernel_id));
            }
        }
        if due.is_empty() {
            return;
        }
        due.sort_unstable_by_key(|(spi, _)| *spi);
        let (spis, ids) = due.into_iter().unzip();
        self.kernel(KernelOp::Counters(ids), super::Pending::Idle { spis });
    }

    /// The counters for `inactivity` arrived: close the CHILD_SAs that carried nothing.
    pub(super) fn idle_counters(
        &mut self,
        now: Instant,
        spis: &[u32],
        r: Result<KernelOutput, KernelError>,
    ) {
        let results = match r {
            Ok(KernelOutput::Counters(v)) => v,
            other => {
                tracing::warn!(target: "kernel", "reading counters for inactivity: {}", super::failure(other));
                Vec::new()
            }
        };
        let mut idle = Vec::new();
        for (i, spi) in spis.iter().enumerate() {
            let Some(c) = self.children.get_mut(spi) else {
                continue;
            };
            let Some(w) = c.idle.as_mut() else {
                continue;
            };
            w.reading = false;
            w.next = now + w.inactivity;
            self.idle_timers.set(*spi, Some(w.next));
            match results.get(i) {
                Some(Ok(n)) => {
                    let packets = n.inbound.packets.saturating_add(n.outbound.packets);
                    if packets == w.packets {
                        idle.push((*spi, c.conn.clone(), w.inactivity));
                    }
                    w.packets = packets;
                }
                Some(Err(e)) => {
                    tracing::warn!(target: "kernel", "counters of CHILD_SA {spi:08x}: {e}");
                }
                None => {}
            }
        }
        for (spi, conn, inactivity) in idle {
            self.close_idle(now, spi, &conn, inactivity);
        }
    }

    fn close_idle(&mut self, now: Instant, spi_in: u32, conn: &str, inactivity: Duration) {
        let Some((ike_sa, false)) = self.engine_child(spi_in) else {
            // Gone, or replaced by a rekey and about to be deleted anyway.
            return;
        };
        let others = self
            .endpoint
            .ike_sa(ike_sa)
            .iter()
            .flat_map(|s| s.children.iter())
            .filter(|c| c.spi_in != spi_in && !c.replaced)
            .count();
        if others == 0 {
            tracing::info!(target: "ike", "CHILD_SA {conn} {spi_in:08x} idle for {} s (inactivity): deleting IKE_SA [{}]", inactivity.as_secs(), ike_sa.0);
            self.delete_ike(now, ike_sa);
        } else {
            tracing::info!(target: "ike", "CHILD_SA {conn} {spi_in:08x} idle for {} s (inactivity): deleting it", inactivity.as_secs());
            if let Err(e) = self.endpoint.delete_child(now, ike_sa, spi_in) {
                tracing::warn!(target: "ike", "deleting CHILD_SA {spi_in:08x}: {e}");
            }
        }
    }

    fn retry(&mut self, now: Instant, r: Retry) {
        if self.endpoint.conn_has_sas(&r.conn) {
            tracing::info!(target: "ike", "{}: an IKE_SA exists again, no further try", r.conn);
            for w in r.waiters {
                self.done(
                    w.ctl,
                    crate::control::Done::failed("an IKE_SA of the conn exists already"),
                );
            }
            return;
        }
        match self.initiate(now, &r.conn, r.tries) {
            Ok(id) => {
                tracing::info!(target: "ike", "initiating IKE_SA {}[{}] (try {})", r.conn, id.0, r.tries);
                for w in &r.waiters {
                    self.progress(
                        w.ctl,
                        format!("initiating IKE_SA {}[{}] (try {})", r.conn, id.0, r.tries),
                    );
                }
                if !r.waiters.is_empty() {
                    self.up_waiters.entry(id).or_default().extend(r.waiters);
                }
            }
            Err(e) => {
                tracing::error!(target: "ike", "initiating {}: {e}", r.conn);
                for w in r.waiters {
                    self.done(w.ctl, crate::control::Done::failed(e.to_string()));
                }
            }
        }
    }

    /// An initiation of ours failed: if the peer did not answer, schedule the next try if
    /// `keyingtries` allows. Returns
    /// whether it did (the `up` waiters then moved to the retry).
    pub(super) fn initiate_failed(&mut self, now: Instant, id: IkeSaId, error: &IkeError) -> bool {
        let Some(a) = self.attempts.remove(&id) else {
            return false;
        };
        if !matches!(error, IkeError::PeerNotResponding { .. })
            || self.phase != super::Phase::Running
        {
            return false;
        }
        let Some(entry) = self.conns.iter().find(|c| c.spec.name == a.conn) else {
            return false;
        };
        if entry.keyingtries.is_some_and(|n| a.tries >= n) {
            tracing::warn!(target: "ike", "{}: giving up after {} tries (keyingtries)", a.conn, a.tries);
            return false;
        }
        let tries = a.tries.saturating_add(1);
        let wait = backoff(tries);
        let limit = entry
            .keyingtries
            .map_or_else(|| "%forever".to_string(), |n| n.to_string());
        tracing::info!(target: "ike", "{}: try {} of {limit} in {} s", a.conn, tries, wait.as_secs());
        let waiters = self.up_waiters.remove(&id).unwrap_or_default();
        for w in &waiters {
            self.progress(
                w.ctl,
                format!(
                    "{error}; trying again in {} s (try {tries} of {limit})",
                    wait.as_secs()
                ),
            );
        }
        self.retries.push(Retry {
            at: now + wait,
            conn: a.conn,
            tries,
            waiters,
        });
        true
    }

    /// An established IKE SA is gone: the peer deleted it (`closeaction`) or stopped
    /// answering (`dead`: `dpdaction`), unless we deleted it ourselves.
    pub(super) fn ike_sa_lost(
        &mut self,
        now: Instant,
        id: IkeSaId,
        conn: &str,
        by_peer: bool,
        dead: bool,
    ) {
        self.dpd_sent.remove(&id);
        if self.local_deletes.remove(&id)
            || self.phase != super::Phase::Running
            || !(by_peer || dead)
        {
            return;
        }
        if self.endpoint.conn_has_sas(conn) {
            // Replaced (rekeyed, or the peer re-established it with INITIAL_CONTACT).
            return;
        }
        let Some(entry) = self.conns.iter().find(|c| c.spec.name == conn) else {
            return;
        };
        let (keyword, action) = if by_peer {
            ("closeaction", entry.closeaction)
        } else {
            ("dpdaction", entry.dpdaction)
        };
        let why = if by_peer {
            "deleted by the peer"
        } else {
            "the peer stopped answering"
        };
        match action {
            Action::None => {}
            Action::Clear => {
                tracing::info!(target: "ike", "IKE_SA {conn}[{}]: {why}; {keyword}=clear: its SAs are removed", id.0);
            }
            Action::Hold => {
                tracing::info!(target: "ike", "IKE_SA {conn}[{}]: {why}; {keyword}=hold: trap policies installed, traffic initiates again", id.0);
                let spec = entry.spec.clone();
                if !self.traps.contains(&spec.reqid) {
                    self.install_trap(spec);
                }
            }
            Action::Restart => {
                tracing::info!(target: "ike", "IKE_SA {conn}[{}]: {why}; {keyword}=restart: initiating again", id.0);
                if let Err(e) = self.initiate(now, conn, 1) {
                    tracing::error!(target: "ike", "restarting {conn}: {e}");
                }
            }
        }
    }

    /// `ikectl down`, a reload or a shutdown: no further tries for `conn` (all when `None`).
    pub(super) fn cancel_retries(&mut self, conn: Option<&str>) {
        let (gone, keep): (Vec<Retry>, Vec<Retry>) = std::mem::take(&mut self.retries)
            .into_iter()
            .partition(|r| conn.is_none_or(|c| c == r.conn));
        self.retries = keep;
        for r in gone {
            for w in r.waiters {
                self.done(w.ctl, crate::control::Done::failed("cancelled"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let waits: Vec<u64> = (2..=8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }
}
