//! Retransmission schedule of our outstanding request (window size 1).

use std::time::{Duration, Instant};

use crate::wire::ExchangeType;

/// The longest single wait; keeps `Instant` arithmetic in range whatever the configuration.
const MAX_DELAY: Duration = Duration::from_secs(24 * 3600);

/// Initiator retransmission policy: the n-th retransmission (n = 1..=tries) is sent
/// `timeout × base^(n-1)` after the previous transmission; after the last one we wait
/// `timeout × base^tries` and give up. Defaults (strongSwan): 4 s, 1.8, 5 → retransmits at
/// 4, 11.2, 24.2, 47.5, 89.5 s, give up at 165 s.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetransmitPolicy {
    /// First timeout.
    pub timeout: Duration,
    /// Exponential base.
    pub base: f64,
    /// Number of retransmissions before giving up.
    pub tries: u32,
}

impl Default for RetransmitPolicy {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(4),
            base: 1.8,
            tries: 5,
        }
    }
}

impl RetransmitPolicy {
    /// Wait after transmission number `n` (0 = the first send), capped at one day.
    pub fn delay(&self, n: u32) -> Duration {
        let exp = i32::try_from(n).unwrap_or(i32::MAX);
        let secs = self.timeout.as_secs_f64() * self.base.powi(exp);
        Duration::try_from_secs_f64(secs)
            .unwrap_or(MAX_DELAY)
            .min(MAX_DELAY)
    }

    fn deadline(&self, now: Instant, n: u32) -> Instant {
        let d = self.delay(n);
        now.checked_add(d).unwrap_or(now)
    }
}

/// What to do when an outstanding request's deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// Send the request again.
    Retransmit,
    /// Retransmissions exhausted.
    GiveUp {
        /// Retransmissions sent.
        tries: u32,
    },
}

/// Our request awaiting its response.
#[derive(Debug, Clone)]
pub(crate) struct Outstanding {
    /// Message ID of the request.
    pub(crate) mid: u32,
    /// Exchange type of the request (the response must match).
    pub(crate) exchange: ExchangeType,
    /// The datagram to retransmit.
    pub(crate) datagram: Vec<u8>,
    retransmits: u32,
    deadline: Instant,
}

impl Outstanding {
    pub(crate) fn new(
        now: Instant,
        policy: &RetransmitPolicy,
        mid: u32,
        exchange: ExchangeType,
        datagram: Vec<u8>,
    ) -> Self {
        Self {
            mid,
            exchange,
            datagram,
            retransmits: 0,
            deadline: policy.deadline(now, 0),
        }
    }

    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Retransmissions sent so far.
    pub(crate) fn retransmits(&self) -> u32 {
        self.retransmits
    }

    /// Advance the schedule if the deadline passed.
    pub(crate) fn expire(&mut self, now: Instant, policy: &RetransmitPolicy) -> Option<Expiry> {
        if now < self.deadline {
            return None;
        }
        if self.retransmits >= policy.tries {
            return Some(Expiry::GiveUp {
                tries: self.retransmits,
            });
        }
        self.retransmits += 1; // ok: < policy.tries (checked above)
        self.deadline = policy.deadline(now, self.retransmits);
        Some(Expiry::Retransmit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strongswan_schedule() {
        let p = RetransmitPolicy::default();
        let t0 = Instant::now();
        let mut o = Outstanding::new(t0, &p, 0, ExchangeType::IKE_SA_INIT, vec![1]);
        let mut sends = vec![];
        let now = loop {
            let now = o.deadline();
            match o.expire(now, &p) {
                Some(Expiry::Retransmit) => sends.push((now - t0).as_secs_f64()),
                Some(Expiry::GiveUp { tries }) => {
                    assert_eq!(tries, 5);
                    break now;
                }
                None => unreachable!(),
            }
        };
        let expect = [4.0, 11.2, 24.16, 47.488, 89.4784];
        assert_eq!(sends.len(), expect.len());
        for (a, b) in sends.iter().zip(expect) {
            assert!((a - b).abs() < 0.01, "{a} vs {b}");
        }
        let give_up = (now - t0).as_secs_f64();
        assert!((give_up - 165.06).abs() < 0.05, "{give_up}");
    }

    #[test]
    fn not_before_deadline_and_absurd_config() {
        let p = RetransmitPolicy {
            timeout: Duration::from_secs(1),
            base: 1e300,
            tries: 3,
        };
        let t0 = Instant::now();
        let mut o = Outstanding::new(t0, &p, 0, ExchangeType::IKE_SA_INIT, vec![]);
        assert_eq!(o.expire(t0, &p), None);
        assert_eq!(
            o.expire(t0 + Duration::from_secs(1), &p),
            Some(Expiry::Retransmit)
        );
        assert_eq!(p.delay(5), MAX_DELAY);
        let nan = RetransmitPolicy {
            base: f64::NAN,
            ..p
        };
        assert_eq!(nan.delay(2), MAX_DELAY);
    }
}
