//! What the load generator counts and how it sums up: set-up latencies, failures,
//! retransmissions, and the summary line (rate and nearest-rank percentiles).

use std::fmt;
use std::time::Duration;

/// Counts of one worker (or of all, after [`Recorder::merge`]).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Recorder {
    /// Set-up latency of every established IKE_SA + CHILD_SA.
    latencies: Vec<Duration>,
    /// Set-ups that ended without both SAs.
    pub failed: u64,
    /// Requests sent again after no answer in time.
    pub retransmits: u64,
    /// Established SAs the responder deleted or that ended before the run was over.
    pub lost: u64,
    /// Datagrams the socket refused to send.
    pub send_errors: u64,
    /// Deletes answered (with `--delete`).
    pub deleted: u64,
}

impl Recorder {
    /// One IKE_SA + CHILD_SA established after `latency`.
    pub fn established(&mut self, latency: Duration) {
        self.latencies.push(latency);
    }

    /// How many were established.
    pub fn count(&self) -> u64 {
        self.latencies.len() as u64
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: Recorder) {
        self.latencies.extend(other.latencies);
        self.failed += other.failed;
        self.retransmits += other.retransmits;
        self.lost += other.lost;
        self.send_errors += other.send_errors;
        self.deleted += other.deleted;
    }

    /// The summary of a run whose set-up phase took `elapsed`.
    pub fn summary(mut self, elapsed: Duration) -> Summary {
        self.latencies.sort_unstable();
        let established = self.count();
        let secs = elapsed.as_secs_f64();
        Summary {
            established,
            failed: self.failed,
            retransmits: self.retransmits,
            lost: self.lost,
            send_errors: self.send_errors,
            deleted: self.deleted,
            elapsed,
            rate: if secs > 0.0 {
                established as f64 / secs
            } else {
                0.0
            },
            p50: percentile(&self.latencies, 50.0),
            p99: percentile(&self.latencies, 99.0),
            max: self.latencies.last().copied(),
        }
    }
}

/// The nearest-rank `p`-th percentile (0 < p ≤ 100) of ascending `sorted` values: the
/// smallest value with at least p % of the values at or below it. `None` when empty.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    // Rounded up to a whole rank, at least 1 and at most n; the f64 → usize cast saturates.
    let rank = ((p / 100.0 * n as f64).ceil() as usize).clamp(1, n);
    sorted.get(rank - 1).copied()
}

/// The numbers of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// IKE_SA + CHILD_SA pairs established.
    pub established: u64,
    /// Set-ups that failed.
    pub failed: u64,
    /// Retransmitted requests.
    pub retransmits: u64,
    /// Established SAs gone before the end.
    pub lost: u64,
    /// Send errors.
    pub send_errors: u64,
    /// Deletes answered.
    pub deleted: u64,
    /// Duration of the set-up phase.
    pub elapsed: Duration,
    /// Established per second.
    pub rate: f64,
    /// Median set-up latency.
    pub p50: Option<Duration>,
    /// 99th percentile set-up latency.
    pub p99: Option<Duration>,
    /// Longest set-up latency.
    pub max: Option<Duration>,
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".into(), |d| format!("{:.3}", d.as_secs_f64() * 1e3))
}

/// One `key=value` line, for scripts.
impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "established={} failed={} lost={} retransmits={} send_errors={} deleted={} \
             elapsed_s={:.3} rate={:.1} p50_ms={} p99_ms={} max_ms={}",
            self.established,
            self.failed,
            self.lost,
            self.retransmits,
            self.send_errors,
            self.deleted,
            self.elapsed.as_secs_f64(),
            self.rate,
            ms(self.p50),
            ms(self.p99),
            ms(self.max)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(ms).collect();
        assert_eq!(percentile(&v, 50.0), Some(ms(50)));
        assert_eq!(percentile(&v, 99.0), Some(ms(99)));
        assert_eq!(percentile(&v, 100.0), Some(ms(100)));
        assert_eq!(percentile(&v, 0.5), Some(ms(1)));
        let three = [ms(10), ms(20), ms(30)];
        assert_eq!(percentile(&three, 50.0), Some(ms(20)));
        assert_eq!(percentile(&three, 99.0), Some(ms(30)));
        assert_eq!(percentile(&[ms(7)], 99.0), Some(ms(7)));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn summary_merges_workers_and_sorts() {
        let mut a = Recorder::default();
        a.established(ms(30));
        a.established(ms(10));
        a.retransmits = 2;
        a.failed = 1;
        let mut b = Recorder::default();
        b.established(ms(20));
        b.established(ms(40));
        b.lost = 1;
        b.deleted = 2;
        a.merge(b);
        assert_eq!(a.count(), 4);
        let s = a.summary(Duration::from_secs(2));
        assert_eq!(s.established, 4);
        assert_eq!((s.failed, s.retransmits, s.lost, s.deleted), (1, 2, 1, 2));
        assert_eq!(s.rate, 2.0);
        assert_eq!(s.p50, Some(ms(20)));
        assert_eq!(s.p99, Some(ms(40)));
        assert_eq!(s.max, Some(ms(40)));
        assert_eq!(
            s.to_string(),
            "established=4 failed=1 lost=1 retransmits=2 send_errors=0 deleted=2 \
             elapsed_s=2.000 rate=2.0 p50_ms=20.000 p99_ms=40.000 max_ms=40.000"
        );
    }

    #[test]
    fn empty_run_has_no_percentiles_and_zero_rate() {
        let s = Recorder::default().summary(Duration::ZERO);
        assert_eq!((s.established, s.rate, s.p50, s.max), (0, 0.0, None, None));
        assert!(s.to_string().contains("p50_ms=- p99_ms=- max_ms=-"));
    }
}
