//! Mass deletes, paced: `ikectl down` of a conn with thousands of IKE SAs, and SIGTERM, do
//! not send every Delete at once (the peer's socket buffer would overflow, and every
//! retransmission would fire at the same moments until the give-up). At most
//! [`DELETE_WINDOW`] Deletes are outstanding; each IKE SA that goes lets the next one start.
//! IKE SAs that are not established have no exchange to wait for and go at once.

use std::collections::{HashSet, VecDeque};
use std::time::Instant;

use super::Supervisor;
use crate::ike::{IkeSaId, IkeSaState, IkeSaStatus};

/// How many Deletes of a mass delete are outstanding at most.
pub const DELETE_WINDOW: usize = 128;

/// IKE SAs waiting for their Delete, and those whose Delete is out.
#[derive(Debug, Default)]
pub(super) struct DeletePacer {
    queue: VecDeque<IkeSaId>,
    in_flight: HashSet<IkeSaId>,
}

impl DeletePacer {
    /// IKE SAs still waiting for their turn.
    pub(super) fn queued(&self) -> usize {
        self.queue.len()
    }
}

impl<R: rand::CryptoRng> Supervisor<R> {
    /// Deletes `sas` on our own account: those not established at once, the established
    /// ones [`DELETE_WINDOW`] at a time, in id order.
    pub(super) fn delete_paced(&mut self, now: Instant, mut sas: Vec<IkeSaStatus>) {
        sas.sort_unstable_by_key(|sa| sa.id.0);
        for sa in sas {
            if sa.state == IkeSaState::Established {
                self.local_deletes.insert(sa.id);
                self.pacer.queue.push_back(sa.id);
            } else {
                self.delete_ike(now, sa.id);
            }
        }
        self.pump_deletes(now);
    }

    /// Starts queued Deletes while the window has room.
    fn pump_deletes(&mut self, now: Instant) {
        while self.pacer.in_flight.len() < DELETE_WINDOW {
            let Some(id) = self.pacer.queue.pop_front() else {
                break;
            };
            // Gone meanwhile (the peer deleted it first): nothing to send.
            if self.endpoint.has_ike_sa(id) {
                self.pacer.in_flight.insert(id);
                self.delete_ike(now, id);
            }
        }
    }

    /// IKE SA `id` is gone: its place in the window goes to the next one.
    pub(super) fn paced_gone(&mut self, now: Instant, id: IkeSaId) {
        if self.pacer.in_flight.remove(&id) {
            self.pump_deletes(now);
        }
    }

    /// The shutdown's grace time is over: the Deletes still queued are sent now, without
    /// waiting for answers (the daemon stops).
    pub(super) fn delete_rest_now(&mut self, now: Instant) {
        for id in std::mem::take(&mut self.pacer.queue) {
            if self.endpoint.has_ike_sa(id) {
                self.delete_ike(now, id);
            }
        }
    }
}
