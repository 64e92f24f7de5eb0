//! `ikectl status`: the report from the engine's IKE SAs and the installed CHILD_SAs, with
//! the kernel's counters filled in when they come back.

use std::time::Instant;

use super::{CtlId, Pending, Supervisor, role_name};
use crate::control::{
    ChildReport, ConnReport, Done, IkeSaReport, LeaseReport, Page, PageReport, Reply,
    ResponderReport, StatusReport,
};
use crate::crypto::{Encr, Integ};
use crate::daemon::conns::{fmt_identification, fmt_ts};
use crate::daemon::hex;
use crate::ike::{ChildSaReady, ChildSaStatus, IkeSaStatus, IpsecProto, Mode, ResponderStats};
use crate::kernel::{KernelError, KernelOp, KernelOutput};
use crate::wire::TrafficSelector;

impl<R: rand::CryptoRng> Supervisor<R> {
    /// Builds the report (of every IKE SA, or of one `page` of them) and asks the kernel for
    /// the counters of its CHILD_SAs.
    pub(super) fn status(&mut self, now: Instant, ctl: CtlId, page: Option<Page>) {
        let mut conns: Vec<ConnReport> = self.conns.iter().map(|c| c.report.clone()).collect();
        let mut ids = Vec::new();
        let mut slots = Vec::new();
        let (offset, limit) = page.map_or((0, usize::MAX), |p| (p.offset, p.limit));
        for sa in self.endpoint.ike_sa_page(offset, limit) {
            let ci = match conns.iter().position(|c| c.name == sa.conn) {
                Some(i) => i,
                None => {
                    conns.push(removed_conn(&sa));
                    conns.len() - 1
                }
            };
            let report = self.ike_report(&sa, now);
            for (k, rec) in sa
                .children
                .iter()
                .filter_map(|ch| self.children.get(&ch.spi_in))
                .enumerate()
            {
                ids.push(rec.kernel_id);
                slots.push((ci, conns[ci].ike_sas.len(), k)); // ok: ci < conns.len()
            }
            conns[ci].ike_sas.push(report); // ok: ci < conns.len()
        }
        let report = StatusReport {
            kernel: self.settings.kernel_name.to_string(),
            conns,
            responder: responder_report(self.endpoint.responder_stats()),
            leases: self
                .endpoint
                .leases()
                .into_iter()
                .map(|l| LeaseReport {
                    pool: l.pool.to_string(),
                    address: l.address.to_string(),
                    identity: fmt_identification(&l.identity),
                    online: l.online,
                })
                .collect(),
            page: page.map(|p| PageReport {
                offset: p.offset,
                limit: p.limit,
                total: self.endpoint.ike_sa_count(),
            }),
        };
        if ids.is_empty() {
            self.status_done(ctl, report, &[], Ok(KernelOutput::Counters(Vec::new())));
        } else {
            self.kernel(
                KernelOp::Counters(ids),
                Pending::Status { ctl, report, slots },
            );
        }
    }

    /// The counters arrived: reply.
    pub(super) fn status_done(
        &mut self,
        ctl: CtlId,
        mut report: StatusReport,
        slots: &[(usize, usize, usize)],
        counters: Result<KernelOutput, KernelError>,
    ) {
        match counters {
            Ok(KernelOutput::Counters(results)) => {
                for (&(c, s, k), r) in slots.iter().zip(results) {
                    let Some(child) = report
                        .conns
                        .get_mut(c)
                        .and_then(|c| c.ike_sas.get_mut(s))
                        .and_then(|s| s.children.get_mut(k))
                    else {
                        continue;
                    };
                    match r {
                        Ok(n) => {
                            child.bytes_in = n.inbound.bytes;
                            child.packets_in = n.inbound.packets;
                            child.bytes_out = n.outbound.bytes;
                            child.packets_out = n.outbound.packets;
                        }
                        Err(e) => {
                            tracing::warn!(target: "kernel", "counters of CHILD_SA {}: {e}", child.spi_in)
                        }
                    }
                }
            }
            Ok(other) => tracing::error!(target: "kernel", "unexpected kernel result {other:?}"),
            Err(e) => tracing::warn!(target: "kernel", "counters: {e}"),
        }
        self.reply(ctl, Reply::Status(report));
        self.done(ctl, Done::ok());
    }

    fn ike_report(&self, sa: &IkeSaStatus, now: Instant) -> IkeSaReport {
        let age = sa.established_at.map(|t| now.saturating_duration_since(t));
        let renewal = self.ike_renewal(sa.id, now);
        let children = sa
            .children
            .iter()
            .filter_map(|ch| self.children.get(&ch.spi_in).map(|rec| (ch, rec)))
            .map(|(ch, rec)| {
                let mut report = rec.facts.report(self.settings.kernel_installs, ch);
                let elapsed = now.saturating_duration_since(rec.installed_at).as_secs();
                report.installed_secs = elapsed;
                let left = |limit: u64| (limit != 0).then(|| limit.saturating_sub(elapsed));
                report.rekey_in_secs = left(rec.expiry_secs.0);
                report.expires_in_secs = left(rec.expiry_secs.1);
                report
            })
            .collect();
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
            lifetime_left_secs: self.ike_hard_left(sa.id, now),
            renew_in_secs: renewal.map(|(n, _)| n),
            reauth: renewal.is_some_and(|(_, r)| r),
            nat_detected: sa.nat_detected,
            virtual_ips: sa.virtual_ips.iter().map(ToString::to_string).collect(),
            peer_virtual_ips: sa
                .peer_virtual_ips
                .iter()
                .map(ToString::to_string)
                .collect(),
            dns_servers: sa.dns_servers.iter().map(ToString::to_string).collect(),
            children,
        }
    }
}

/// A conn removed by a reload that still has SAs.
fn removed_conn(sa: &IkeSaStatus) -> ConnReport {
    ConnReport {
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
    }
}

/// What `status` shows of a negotiated CHILD_SA, kept as values (the report's text is made
/// only when asked for: a few dozen bytes per CHILD_SA instead of a dozen strings). The
/// selectors are the engine's ([`crate::ike::ChildSaStatus`]), not copied here.
#[derive(Debug, Clone)]
pub(super) struct ChildFacts {
    pub(super) protocol: IpsecProto,
    pub(super) mode: Mode,
    reqid: u32,
    spi_in: u32,
    spi_out: u32,
    encr: Option<Encr>,
    integ: Option<Integ>,
    esn: bool,
}

impl ChildFacts {
    pub(super) fn of(c: &ChildSaReady) -> Self {
        Self {
            protocol: c.protocol,
            mode: c.mode,
            reqid: c.reqid,
            spi_in: c.spi_in,
            spi_out: c.spi_out,
            encr: c.encr,
            integ: c.integ,
            esn: c.esn,
        }
    }

    /// "CHILD_SA conn{n} established with SPIs …" (the log line and `ikectl up`'s).
    pub(super) fn established_text(c: &ChildSaReady) -> String {
        format!(
            "CHILD_SA {}{{{}}} established with SPIs {:08x}_i {:08x}_o and TS {} === {}",
            c.conn,
            c.ike_sa.0,
            c.spi_in,
            c.spi_out,
            ts_text(&c.local_ts),
            ts_text(&c.remote_ts)
        )
    }
}

fn ts_text(ts: &[TrafficSelector]) -> String {
    ts.iter().map(fmt_ts).collect::<Vec<_>>().join(" ")
}

impl ChildFacts {
    /// The status entry (counters and times are filled in later).
    /// The report of the CHILD_SA the engine shows as `ch`.
    pub(super) fn report(&self, installed: bool, ch: &ChildSaStatus) -> ChildReport {
        let c = self;
        ChildReport {
            protocol: c.protocol.to_string(),
            mode: c.mode.to_string(),
            reqid: c.reqid,
            installed,
            spi_in: format!("{:08x}", c.spi_in),
            spi_out: format!("{:08x}", c.spi_out),
            encr: c.encr.map_or("", |e| e.name()).to_string(),
            encr_key_bits: c.encr.map_or(0, |e| u32::from(e.key_bits())),
            integ: c.integ.map(|i| i.name().to_string()),
            integ_key_bits: c
                .integ
                .map(|i| u32::try_from(i.key_len() * 8).unwrap_or(u32::MAX)),
            esn: c.esn,
            local_ts: ch.local_ts.iter().map(fmt_ts).collect(),
            remote_ts: ch.remote_ts.iter().map(fmt_ts).collect(),
            bytes_in: 0,
            packets_in: 0,
            bytes_out: 0,
            packets_out: 0,
            installed_secs: 0,
            rekey_in_secs: None,
            expires_in_secs: None,
        }
    }
}

/// The engine's responder counters as `ikectl status` shows them.
fn responder_report(s: ResponderStats) -> ResponderReport {
    ResponderReport {
        half_open: s.half_open,
        cookies_sent: s.cookies_sent,
        dropped_per_ip: s.dropped_per_ip,
        dropped_total: s.dropped_total,
        replays_refused: s.replays_refused,
    }
}
