//! A deadline index: keys ordered by when they are due, so that the next deadline and the
//! keys due now are found without looking at every key (the supervisor keeps one per kind of
//! timer: liveness checks, `inactivity` readings, IKE SA renewals).

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::time::Instant;

/// At most one deadline per key.
#[derive(Debug)]
pub(super) struct Deadlines<K> {
    by_time: BTreeSet<(Instant, K)>,
    by_key: HashMap<K, Instant>,
}

impl<K> Default for Deadlines<K> {
    fn default() -> Self {
        Self {
            by_time: BTreeSet::new(),
            by_key: HashMap::new(),
        }
    }
}

impl<K: Copy + Ord + Hash> Deadlines<K> {
    /// Sets (`Some`) or clears (`None`) the deadline of `key`.
    pub(super) fn set(&mut self, key: K, at: Option<Instant>) {
        if let Some(old) = self.by_key.remove(&key) {
            self.by_time.remove(&(old, key));
        }
        if let Some(at) = at {
            self.by_key.insert(key, at);
            self.by_time.insert((at, key));
        }
    }

    /// The deadline of `key` (for the debug cross-checks against a scan).
    #[cfg(any(debug_assertions, test))]
    pub(super) fn get(&self, key: K) -> Option<Instant> {
        self.by_key.get(&key).copied()
    }

    /// The earliest deadline.
    pub(super) fn first(&self) -> Option<Instant> {
        self.by_time.first().map(|(at, _)| *at)
    }

    /// Removes and returns the keys due at `now`, earliest first.
    pub(super) fn take_due(&mut self, now: Instant) -> Vec<K> {
        let mut due = Vec::new();
        while let Some(&(at, key)) = self.by_time.first() {
            if at > now {
                break;
            }
            self.by_time.pop_first();
            self.by_key.remove(&key);
            due.push(key);
        }
        due
    }

    /// Clears every deadline.
    pub(super) fn clear(&mut self) {
        self.by_time.clear();
        self.by_key.clear();
    }

    /// Every key with its deadline (for the debug cross-checks against a scan).
    #[cfg(debug_assertions)]
    pub(super) fn iter(&self) -> impl Iterator<Item = (K, Instant)> + '_ {
        self.by_key.iter().map(|(k, at)| (*k, *at))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn keys_come_out_in_deadline_order_and_once() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut d = Deadlines::default();
        d.set(1u32, Some(t0 + s(5)));
        d.set(2, Some(t0 + s(3)));
        d.set(3, Some(t0 + s(9)));
        d.set(1, Some(t0 + s(1)));
        assert_eq!(d.first(), Some(t0 + s(1)));
        d.set(2, None);
        assert_eq!(d.get(2), None);
        assert_eq!(d.take_due(t0 + s(4)), vec![1]);
        assert_eq!(d.take_due(t0 + s(4)), Vec::<u32>::new());
        assert_eq!(d.first(), Some(t0 + s(9)));
        assert_eq!(d.take_due(t0 + s(9)), vec![3]);
        assert_eq!(d.first(), None);
    }
}
