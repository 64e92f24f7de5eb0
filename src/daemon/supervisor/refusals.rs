//! Rate-limited logging of refused IKE_SA_INIT requests: within each window, the first
//! refusal of an address is logged with the peer and the reason, the address's further
//! refusals are counted and summed up when the window closes; beyond a few addresses per
//! window only one total is kept (a flood from many spoofed sources costs a bounded number
//! of lines and no memory per source).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::Supervisor;
use crate::ike::InitRefusal;

/// Length of one logging window.
pub(super) const WINDOW: Duration = Duration::from_secs(10);
/// Addresses logged by name in one window.
pub(super) const NAMED_PER_WINDOW: usize = 8;

/// Refusals of the current window.
#[derive(Debug, Default)]
pub(super) struct RefusalLog {
    /// When the current window closes (`None`: nothing refused since the last summary).
    closes: Option<Instant>,
    /// Named addresses and their refusals not logged one by one.
    named: HashMap<IpAddr, u64>,
    /// Refusals of addresses beyond the named ones.
    others: u64,
}

impl RefusalLog {
    /// A refusal at `now`: the line to log now, if any.
    pub(super) fn record(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        conn: Option<&str>,
        reason: InitRefusal,
    ) -> Option<String> {
        if self.closes.is_none() {
            self.closes = now.checked_add(WINDOW);
        }
        let ip = peer.ip();
        if let Some(n) = self.named.get_mut(&ip) {
            *n = n.saturating_add(1);
            return None;
        }
        if self.named.len() >= NAMED_PER_WINDOW {
            self.others = self.others.saturating_add(1);
            return None;
        }
        self.named.insert(ip, 0);
        let conn = conn.map(|c| format!(" (conn {c})")).unwrap_or_default();
        Some(format!("IKE_SA_INIT from {peer}{conn} refused: {reason}"))
    }

    /// When [`RefusalLog::close`] has work.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.closes
    }

    /// Closes the window if it is over: the summary lines.
    pub(super) fn close(&mut self, now: Instant) -> Vec<String> {
        if self.closes.is_none_or(|t| t > now) {
            return Vec::new();
        }
        self.closes = None;
        let secs = WINDOW.as_secs();
        let mut named: Vec<(IpAddr, u64)> = self.named.drain().filter(|(_, n)| *n > 0).collect();
        named.sort_unstable();
        let mut lines: Vec<String> = named
            .into_iter()
            .map(|(ip, n)| format!("{n} more IKE_SA_INIT from {ip} refused in the last {secs} s"))
            .collect();
        let others = std::mem::take(&mut self.others);
        if others > 0 {
            lines.push(format!(
                "{others} IKE_SA_INIT from further addresses refused in the last {secs} s (not logged one by one)"
            ));
        }
        lines
    }
}

impl<R: rand::CryptoRng> Supervisor<R> {
    /// The engine refused a new IKE_SA_INIT request.
    pub(super) fn init_refused(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        conn: Option<&str>,
        reason: InitRefusal,
    ) {
        if let Some(line) = self.refusals.record(now, peer, conn, reason) {
            tracing::warn!(target: "ike", "{line}");
        }
    }

    /// The refusal log's window is over: its summary.
    pub(super) fn refusals_timeout(&mut self, now: Instant) {
        for line in self.refusals.close(now) {
            tracing::warn!(target: "ike", "{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(i: u8, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::from([198, 51, 100, i]), port)
    }

    #[test]
    fn one_line_per_address_and_window_then_a_summary() {
        let t0 = Instant::now();
        let mut log = RefusalLog::default();
        let first = log.record(t0, peer(1, 500), Some("c"), InitRefusal::NoProposal);
        assert_eq!(
            first.as_deref(),
            Some(
                "IKE_SA_INIT from 198.51.100.1:500 (conn c) refused: no acceptable proposal (NO_PROPOSAL_CHOSEN)"
            )
        );
        for port in 0..1000 {
            assert_eq!(
                log.record(t0, peer(1, port), None, InitRefusal::Cookie),
                None
            );
        }
        assert_eq!(log.deadline(), Some(t0 + WINDOW));
        assert!(log.close(t0 + Duration::from_secs(9)).is_empty());
        assert_eq!(
            log.close(t0 + WINDOW),
            ["1000 more IKE_SA_INIT from 198.51.100.1 refused in the last 10 s"]
        );
        assert_eq!(log.deadline(), None);
        // A new window names the address again.
        assert!(
            log.record(t0 + WINDOW, peer(1, 500), None, InitRefusal::TooMany)
                .is_some()
        );
    }

    #[test]
    fn many_sources_cost_a_bounded_number_of_lines_and_entries() {
        let t0 = Instant::now();
        let mut log = RefusalLog::default();
        let mut lines = 0;
        for i in 0..=255u8 {
            for port in 0..100 {
                let p = SocketAddr::new(IpAddr::from([203, 0, i, 1]), port);
                lines += usize::from(log.record(t0, p, None, InitRefusal::Cookie).is_some());
            }
        }
        assert_eq!(lines, NAMED_PER_WINDOW);
        assert_eq!(log.named.len(), NAMED_PER_WINDOW);
        let summary = log.close(t0 + WINDOW);
        assert_eq!(summary.len(), NAMED_PER_WINDOW + 1);
        let others = 256 * 100 - NAMED_PER_WINDOW * 100;
        assert_eq!(
            summary.last().map(String::as_str),
            Some(
                format!(
                    "{others} IKE_SA_INIT from further addresses refused in the last 10 s (not logged one by one)"
                )
                .as_str()
            )
        );
    }
}
