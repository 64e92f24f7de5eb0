//! Virtual IPs of a road warrior (`leftsourceip=%config`): the addresses the gateway assigned
//! are added to `lo` when the IKE SA is established (before its CHILD_SA, whose selectors name
//! them), follow the IKE SA through rekeys, and are removed when the last IKE SA holding one
//! is gone (a make-before-break reauthentication gets the same address: it stays).

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::{Pending, Supervisor};
use crate::ike::IkeSaId;
use crate::kernel::KernelOp;

impl<R: rand::CryptoRng> Supervisor<R> {
    /// IKE SA `id` was assigned `vips` (as initiator) or leased `peer_vips` (as responder).
    pub(super) fn vips_established(
        &mut self,
        id: IkeSaId,
        conn: &str,
        peer: &str,
        vips: &[IpAddr],
        peer_vips: &[IpAddr],
        dns: &[IpAddr],
    ) {
        if !dns.is_empty() {
            let list: Vec<String> = dns.iter().map(ToString::to_string).collect();
            tracing::info!(target: "cfg", "IKE_SA {conn}[{}]: DNS servers {} assigned by {peer} (reported, not installed)", id.0, list.join(", "));
        }
        for a in peer_vips {
            tracing::info!(target: "cfg", "IKE_SA {conn}[{}]: leased virtual IP {a} to {peer}", id.0);
        }
        let asked = self
            .conns
            .iter()
            .any(|c| c.spec.name == conn && !c.spec.request_vips.is_empty());
        if asked && vips.is_empty() {
            tracing::warn!(target: "cfg", "IKE_SA {conn}[{}]: asked {peer} for a virtual IP, none assigned", id.0);
        }
        for &a in vips {
            for ctl in self.up_ctls(id) {
                self.progress(ctl, format!("virtual IP {a} assigned by {peer}"));
            }
            let holders = self.vips.entry(a).or_default();
            if holders.is_empty() {
                tracing::info!(target: "cfg", "IKE_SA {conn}[{}]: installing virtual IP {a} assigned by {peer}", id.0);
                self.kernel(
                    KernelOp::AddVirtualIp(a),
                    Pending::VirtualIp { addr: a, add: true },
                );
            }
            if let Some(holders) = self.vips.get_mut(&a) {
                holders.insert(id);
            }
        }
    }

    /// The new IKE SA of a rekey holds the old one's virtual IPs.
    pub(super) fn vips_rekeyed(&mut self, old: IkeSaId, new: IkeSaId) {
        for holders in self.vips.values_mut() {
            if holders.remove(&old) {
                holders.insert(new);
            }
        }
    }

    /// IKE SA `id` is gone: remove the virtual IPs no other IKE SA holds.
    pub(super) fn vips_gone(&mut self, id: IkeSaId) {
        let mut unused = Vec::new();
        self.vips.retain(|a, holders: &mut BTreeSet<IkeSaId>| {
            let was = holders.remove(&id);
            if was && holders.is_empty() {
                unused.push(*a);
                false
            } else {
                true
            }
        });
        for a in unused {
            tracing::info!(target: "cfg", "removing virtual IP {a}");
            self.kernel(
                KernelOp::RemoveVirtualIp(a),
                Pending::VirtualIp {
                    addr: a,
                    add: false,
                },
            );
        }
    }
}
