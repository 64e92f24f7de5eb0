//! NAT traversal around the engine (RFC 3948, RFC 7296 §2.23): NAT keepalives on the paths
//! of IKE SAs behind a NAT (every `[nat] keepalive` of the settings file, none when 0), and CHILD_SAs that follow a peer whose NAT mapping changed.

use std::net::SocketAddr;
use std::time::Instant;

use super::{Effect, Supervisor};
use crate::ike::{IkeSaId, IkeSaState, IkeSaStatus};

impl<R: rand::CryptoRng> Supervisor<R> {
    /// The paths (ours, the peer's) that need NAT keepalives now: established IKE SAs behind
    /// a NAT whose path is on our NAT-T port.
    fn keepalive_paths(&self) -> Vec<(SocketAddr, SocketAddr)> {
        if self.settings.nat_keepalive.is_zero() {
            // `[nat] keepalive = 0` in the settings file: none.
            return Vec::new();
        }
        self.endpoint
            .ike_sas()
            .into_iter()
            .filter(|sa| self.needs_keepalive(sa))
            .map(|sa| (sa.local, sa.remote))
            .collect()
    }

    /// Whether `sa` is established behind a NAT on our NAT-T port.
    fn needs_keepalive(&self, sa: &IkeSaStatus) -> bool {
        sa.behind_nat
            && sa.state == IkeSaState::Established
            && sa.local.port() == self.settings.natt_port
    }

    /// IKE SA `id` was established with a NAT on the path: start the keepalive timer if we
    /// are behind it.
    pub(super) fn arm_keepalive(&mut self, now: Instant, id: IkeSaId) {
        if self.next_keepalive.is_some() || self.settings.nat_keepalive.is_zero() {
            return;
        }
        if self
            .endpoint
            .ike_sa(id)
            .is_some_and(|sa| self.needs_keepalive(&sa))
        {
            self.next_keepalive = now.checked_add(self.settings.nat_keepalive);
        }
    }

    /// The keepalive timer: one 0xff byte on each path behind a NAT, then again after the
    /// interval while any is left.
    pub(super) fn keepalive_timeout(&mut self, now: Instant) {
        if self.next_keepalive.is_none_or(|t| t > now) {
            return;
        }
        let paths = self.keepalive_paths();
        for (local, remote) in &paths {
            tracing::debug!(target: "net", "NAT keepalive {local} -> {remote}");
            self.effects.push_back(Effect::Keepalive {
                local: *local,
                remote: *remote,
            });
        }
        self.next_keepalive = if paths.is_empty() {
            None
        } else {
            now.checked_add(self.settings.nat_keepalive)
        };
    }

    /// The peer of IKE SA `id` came back from another address or port: its installed
    /// CHILD_SAs still send ESP to the old NAT mapping, so each is rekeyed; the new ones are
    /// installed with the new encapsulation ports and the old ones deleted.
    pub(super) fn peer_moved(
        &mut self,
        now: Instant,
        id: IkeSaId,
        conn: &str,
        from: SocketAddr,
        to: SocketAddr,
    ) {
        tracing::info!(target: "ike", "IKE_SA {conn}[{}]: peer moved from {from} to {to} (NAT mapping changed), rekeying its CHILD_SAs", id.0);
        let mut spis: Vec<u32> = self
            .endpoint
            .ike_sa(id)
            .into_iter()
            .flat_map(|sa| sa.children)
            .filter(|c| !c.replaced && self.children.contains_key(&c.spi_in))
            .map(|c| c.spi_in)
            .collect();
        spis.sort_unstable();
        for spi in spis {
            if let Err(e) = self.endpoint.rekey_child(now, id, spi) {
                tracing::warn!(target: "ike", "rekeying CHILD_SA {spi:08x}_i of {conn}[{}] after the peer moved: {e}", id.0);
            }
        }
    }
}
