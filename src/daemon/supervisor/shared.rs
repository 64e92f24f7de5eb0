//! Several conns over one IKE SA: `ikectl up` of a conn whose peer, identities, PSK and IKE
//! proposal match an established IKE SA of another conn adds its CHILD_SA to that SA
//! (CREATE_CHILD_SA, as strongSwan does), and `ikectl down` of such a conn deletes just its
//! CHILD_SAs.

use std::collections::HashSet;
use std::time::Instant;

use super::{CtlId, DownWaiter, Supervisor, UpWaiter};
use crate::ike::{IkeError, IkeSaId, IkeSaState};

impl<R: rand::CryptoRng> Supervisor<R> {
    /// Asks an established IKE SA of another conn for a CHILD_SA of `name`; `false` when
    /// none can carry it (a new IKE SA is needed).
    pub(super) fn up_over_existing(&mut self, now: Instant, name: &str, ctl: CtlId) -> bool {
        let mut candidates: Vec<(IkeSaId, String)> = self
            .endpoint
            .ike_sas()
            .into_iter()
            .filter(|sa| sa.state == IkeSaState::Established && sa.conn != name)
            .filter(|sa| {
                !sa.children.iter().any(|c| {
                    !c.replaced && self.children.get(&c.spi_in).is_some_and(|r| r.conn == name)
                })
            })
            .map(|sa| (sa.id, sa.conn))
            .collect();
        candidates.sort_unstable_by_key(|(id, _)| id.0);
        for (id, carrier) in candidates {
            match self.endpoint.create_child(now, id, name) {
                Ok(()) => {
                    let text = format!("adding CHILD_SA of {name} to IKE_SA {carrier}[{}]", id.0);
                    tracing::info!(target: "ike", "{text}");
                    self.progress(ctl, text);
                    self.up_waiters.entry(id).or_default().push(UpWaiter {
                        name: name.to_string(),
                        ctl,
                    });
                    return true;
                }
                Err(IkeError::ForeignConn(..)) => {}
                Err(e) => {
                    tracing::warn!(target: "ike", "up {name} over IKE_SA {carrier}[{}]: {e}", id.0)
                }
            }
        }
        false
    }

    /// Deletes the CHILD_SAs of `name` that ride IKE SAs of other conns; returns their
    /// inbound SPIs (the answer to `down` waits for them).
    pub(super) fn down_riding_children(&mut self, now: Instant, name: &str) -> HashSet<u32> {
        let mut riding: Vec<(IkeSaId, u32)> = self
            .endpoint
            .ike_sas()
            .into_iter()
            .filter(|sa| sa.conn != name)
            .flat_map(|sa| {
                sa.children
                    .iter()
                    .map(|c| (sa.id, c.spi_in))
                    .collect::<Vec<_>>()
            })
            .filter(|(_, spi)| self.children.get(spi).is_some_and(|r| r.conn == name))
            .collect();
        riding.sort_unstable();
        let mut spis = HashSet::new();
        for (id, spi) in riding {
            match self.endpoint.delete_child(now, id, spi) {
                Ok(()) => {
                    spis.insert(spi);
                }
                Err(e) => {
                    tracing::warn!(target: "ike", "down {name}: deleting CHILD_SA {spi:08x}: {e}")
                }
            }
        }
        spis
    }

    /// A CHILD_SA was deleted: `down`s waiting for it may be finished.
    pub(super) fn child_deleted_for_down(&mut self, spi_in: u32) {
        for w in &mut self.down_waiters {
            w.children.remove(&spi_in);
        }
        self.finish_down_waiters();
    }

    /// Answers the `down`s that wait for nothing more.
    pub(super) fn finish_down_waiters(&mut self) {
        let (finished, waiting): (Vec<DownWaiter>, Vec<DownWaiter>) =
            std::mem::take(&mut self.down_waiters)
                .into_iter()
                .partition(|w| w.ids.is_empty() && w.children.is_empty());
        self.down_waiters = waiting;
        for w in finished {
            self.done(w.ctl, crate::control::Done::ok());
        }
    }
}
