//! IKE SA lifetimes (`ikelifetime`, `margintime`, `rekeyfuzz`, `rekey`, `reauth`): each
//! established IKE SA is renewed at `ikelifetime - margintime - jitter` (jitter up to
//! `rekeyfuzz` of the margin, from the supervisor's RNG) and deleted at `ikelifetime` if that
//! never succeeded. With `reauth=no` the renewal is an IKE SA rekey (RFC 7296 §2.18); with
//! `reauth=yes` it is make-before-break reauthentication (§2.8.3): a new IKE SA with a CHILD_SA
//! for every conn the old one carried, and only once those are installed the old IKE SA is
//! deleted. The new CHILD_SAs use the same reqids, and the kernel counts the users of a
//! reqid's policies, so removing the old SAs leaves the new ones' policies in place.

use std::time::{Duration, Instant};

use super::{Phase, Supervisor};
use crate::daemon::install;
use crate::ike::IkeSaId;

/// After a failed rekey or reauthentication, the next try comes this much later (while the
/// IKE SA's `ikelifetime` leaves room for it).
pub(super) const RENEW_RETRY: Duration = Duration::from_secs(30);

/// The schedule of one established IKE SA.
pub(super) struct IkeLife {
    /// When to rekey or reauthenticate; `None` with `rekey=no` or once started.
    renew_at: Option<Instant>,
    /// When the IKE SA is deleted if it is still there (`ikelifetime`).
    hard_at: Option<Instant>,
    /// Reauthenticate instead of rekeying.
    reauth: bool,
}

/// A make-before-break reauthentication in progress, by the new IKE SA.
pub(super) struct Reauth {
    /// The IKE SA being replaced.
    old: IkeSaId,
    /// Conns of the old SA's other CHILD_SAs, created over the new SA once it is up.
    extra: Vec<String>,
    /// CHILD_SAs of the new SA still to be installed (or to fail) before `old` goes.
    outstanding: usize,
}

impl<R: rand::CryptoRng> Supervisor<R> {
    /// IKE SA `id` of `conn` was established (or took over by a rekey) at `now`: schedule
    /// its renewal and hard end.
    pub(super) fn schedule_ike(&mut self, now: Instant, id: IkeSaId, conn: &str) {
        let Some(entry) = self.conns.iter().find(|c| c.spec.name == conn) else {
            return;
        };
        let life = entry.spec.ike_lifetime;
        if life.is_zero() {
            return;
        }
        let (margin, fuzz, rekey, reauth) = (
            entry.spec.rekey_margin,
            entry.spec.rekey_fuzz_percent,
            entry.rekey,
            entry.reauth,
        );
        let jitter = install::rekey_jitter(margin, fuzz, &mut self.rng);
        // Never before half the lifetime (a margin as long as the lifetime would renew at once).
        let renew_after = life
            .saturating_sub(margin)
            .saturating_sub(jitter)
            .max(life / 2);
        let renew_at = rekey.then(|| now.checked_add(renew_after)).flatten();
        let hard_at = now.checked_add(life);
        self.ike_lives.insert(
            id,
            IkeLife {
                renew_at,
                hard_at,
                reauth,
            },
        );
        self.file_ike_life(id);
    }

    /// Files IKE SA `id` under the earlier of its renewal and hard end (or none).
    fn file_ike_life(&mut self, id: IkeSaId) {
        let at = self
            .ike_lives
            .get(&id)
            .and_then(|l| [l.renew_at, l.hard_at].into_iter().flatten().min());
        self.ike_life_timers.set(id, at);
    }

    /// The timer index agrees with the schedules (debug builds: against a scan).
    #[cfg(debug_assertions)]
    pub(super) fn check_ike_life_timers(&self) {
        for (id, l) in &self.ike_lives {
            assert_eq!(
                self.ike_life_timers.get(*id),
                [l.renew_at, l.hard_at].into_iter().flatten().min(),
                "IKE_SA [{}] life timer",
                id.0
            );
        }
        for (id, _) in self.ike_life_timers.iter() {
            assert!(self.ike_lives.contains_key(&id), "IKE_SA [{}] timer", id.0);
        }
    }

    /// The earliest IKE SA renewal or hard end (none once shutting down: then the SAs go
    /// anyway, and a past deadline nobody acts on would wake the driver in a loop).
    pub(super) fn ike_life_timeout(&self) -> Option<Instant> {
        if self.phase != Phase::Running {
            return None;
        }
        self.ike_life_timers.first()
    }

    /// Acts on every renewal and hard end due at `now`.
    pub(super) fn ike_life_timers(&mut self, now: Instant) {
        let mut due: Vec<(IkeSaId, bool)> = self
            .ike_life_timers
            .take_due(now)
            .into_iter()
            .filter_map(|id| {
                let l = self.ike_lives.get(&id)?;
                Some((id, l.hard_at.is_some_and(|t| t <= now)))
            })
            .collect();
        due.sort_unstable_by_key(|(id, _)| id.0);
        for (id, hard) in due {
            if hard {
                self.ike_lives.remove(&id);
                tracing::warn!(target: "ike", "IKE_SA [{}] reached its ikelifetime without being renewed; deleting it", id.0);
                // Its CHILD_SAs end now, not when the peer answers the Delete.
                let spis: Vec<u32> = self
                    .endpoint
                    .ike_sa(id)
                    .iter()
                    .flat_map(|s| s.children.iter().map(|c| c.spi_in))
                    .collect();
                for spi in spis {
                    self.remove_child(spi);
                }
                // Our own delete: no dpdaction/closeaction when it goes.
                self.local_deletes.insert(id);
                if let Err(e) = self.endpoint.delete_ike_sa(now, id) {
                    tracing::warn!(target: "ike", "deleting IKE_SA [{}]: {e}", id.0);
                }
                continue;
            }
            let Some(life) = self.ike_lives.get_mut(&id) else {
                continue;
            };
            life.renew_at = None;
            let reauth = life.reauth;
            self.file_ike_life(id);
            if reauth {
                self.reauthenticate(now, id);
            } else {
                tracing::info!(target: "ike", "IKE_SA [{}] reached its rekey time; rekeying", id.0);
                if let Err(e) = self.endpoint.rekey_ike(now, id) {
                    tracing::warn!(target: "ike", "rekeying IKE_SA [{}]: {e}", id.0);
                }
            }
        }
    }

    /// Make-before-break: a new IKE SA for the conn of `old`, its other conns' CHILD_SAs
    /// follow once it is up.
    fn reauthenticate(&mut self, now: Instant, old: IkeSaId) {
        let Some(sa) = self.endpoint.ike_sa(old) else {
            return;
        };
        let mut extra: Vec<String> = sa
            .children
            .iter()
            .filter(|c| !c.replaced)
            .filter_map(|c| self.children.get(&c.spi_in))
            .map(|r| r.conn.clone())
            .filter(|c| *c != sa.conn)
            .collect();
        extra.sort();
        extra.dedup();
        match self.endpoint.initiate(now, &sa.conn) {
            Ok(new) => {
                tracing::info!(target: "ike", "IKE_SA {}[{}] reached its reauthentication time; reauthenticating as {}[{}]",
                    sa.conn, old.0, sa.conn, new.0);
                let outstanding = 1 + extra.len();
                self.reauths.insert(
                    new,
                    Reauth {
                        old,
                        extra,
                        outstanding,
                    },
                );
            }
            Err(e) => {
                tracing::warn!(target: "ike", "reauthenticating IKE_SA {}[{}]: {e}; rekeying instead", sa.conn, old.0);
                if let Err(e) = self.endpoint.rekey_ike(now, old) {
                    tracing::warn!(target: "ike", "rekeying IKE_SA [{}]: {e}", old.0);
                }
            }
        }
    }

    /// IKE SA `id` is up: if it reauthenticates another, ask for the other conns' CHILD_SAs.
    pub(super) fn reauth_established(&mut self, now: Instant, id: IkeSaId) {
        let Some(r) = self.reauths.get(&id) else {
            return;
        };
        for conn in r.extra.clone() {
            if let Err(e) = self.endpoint.create_child(now, id, &conn) {
                tracing::warn!(target: "ike", "reauthentication: CHILD_SA of {conn} over IKE_SA [{}]: {e}", id.0);
                self.reauth_child_done(now, id);
            }
        }
    }

    /// A CHILD_SA of IKE SA `id` was installed or failed: when it was the last one a
    /// reauthentication waited for, the old IKE SA goes.
    pub(super) fn reauth_child_done(&mut self, now: Instant, id: IkeSaId) {
        let Some(r) = self.reauths.get_mut(&id) else {
            return;
        };
        r.outstanding = r.outstanding.saturating_sub(1);
        if r.outstanding > 0 {
            return;
        }
        let old = r.old;
        self.reauths.remove(&id);
        tracing::info!(target: "ike", "reauthentication: IKE_SA [{}] and its CHILD_SAs are up; deleting IKE_SA [{}]", id.0, old.0);
        self.local_deletes.insert(old);
        if let Err(e) = self.endpoint.delete_ike_sa(now, old) {
            tracing::warn!(target: "ike", "deleting IKE_SA [{}]: {e}", old.0);
        }
    }

    /// IKE SA `old` was rekeyed into `new` at `now`: the schedule starts again for `new`.
    pub(super) fn ike_rekeyed(&mut self, now: Instant, old: IkeSaId, new: IkeSaId, conn: &str) {
        self.ike_lives.remove(&old);
        self.ike_life_timers.set(old, None);
        self.schedule_ike(now, new, conn);
        if let Some(r) = self.reauths.remove(&old) {
            self.reauths.insert(new, r);
        }
        for r in self.reauths.values_mut() {
            if r.old == old {
                r.old = new;
            }
        }
    }

    /// The renewal of IKE SA `id` failed at `now`: try again after [`RENEW_RETRY`] if that
    /// comes before its hard end.
    pub(super) fn renew_failed(&mut self, now: Instant, id: IkeSaId) {
        let Some(l) = self.ike_lives.get_mut(&id) else {
            return;
        };
        let next = now
            .checked_add(RENEW_RETRY)
            .filter(|t| l.hard_at.is_none_or(|h| *t < h));
        l.renew_at = next;
        self.file_ike_life(id);
        match next {
            Some(_) => {
                tracing::info!(target: "ike", "IKE_SA [{}]: renewing again in {} s", id.0, RENEW_RETRY.as_secs())
            }
            None => {
                tracing::warn!(target: "ike", "IKE_SA [{}]: no time left to renew it again; it ends at its ikelifetime", id.0)
            }
        }
    }

    /// IKE SA `id` is gone at `now`: its schedule and a reauthentication it was part of end
    /// (the old SA of a failed reauthentication is renewed again later).
    pub(super) fn ike_life_gone(&mut self, now: Instant, id: IkeSaId) {
        self.ike_lives.remove(&id);
        self.ike_life_timers.set(id, None);
        if let Some(r) = self.reauths.remove(&id) {
            tracing::warn!(target: "ike", "reauthentication as IKE_SA [{}] failed", id.0);
            self.renew_failed(now, r.old);
        }
        self.reauths.retain(|_, r| r.old != id);
        self.reauth_suspects.remove(&id);
        self.reauth_suspects.retain(|_, old| *old != id);
    }

    /// Seconds until IKE SA `id` is renewed, and whether by reauthentication.
    pub(super) fn ike_renewal(&self, id: IkeSaId, now: Instant) -> Option<(u64, bool)> {
        let l = self.ike_lives.get(&id)?;
        let at = l.renew_at?;
        Some((secs_until(now, at), l.reauth))
    }

    /// Seconds until IKE SA `id` is deleted at its `ikelifetime`.
    pub(super) fn ike_hard_left(&self, id: IkeSaId, now: Instant) -> Option<u64> {
        let at = self.ike_lives.get(&id)?.hard_at?;
        Some(secs_until(now, at))
    }
}

fn secs_until(now: Instant, at: Instant) -> u64 {
    at.saturating_duration_since(now).as_secs()
}
