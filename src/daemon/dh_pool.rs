//! Diffie-Hellman key pairs made ahead of time on worker threads (`[crypto] workers`), so
//! that the engine's thread spends a handshake's CPU on the shared secret and the rest of
//! the exchange, and the other cores make the key pairs. The engine takes them through
//! [`KeyPairSource`]; when the stock of a group runs out it makes its own, so a burst is
//! never slower than without the pool.
//!
//! A group is stocked once the engine has asked for it; the workers keep [`STOCK`] key
//! pairs of each such group ready and sleep otherwise. Key pairs are zeroized when dropped,
//! also those still in stock when the pool goes.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;

use crate::crypto::{DhGroup, DhPrivate};
use crate::ike::KeyPairSource;

/// Key pairs kept ready per group: about 10 ms of X25519 handshakes at full load, a few
/// KiB of memory.
pub const STOCK: usize = 64;

/// The pool: the engine's handle and the worker threads.
pub struct DhPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

struct Shared {
    stock: Mutex<Stock>,
    /// Signalled when a group runs low, and to stop.
    low: Condvar,
    /// Signalled when a group is fully stocked (what the tests wait for).
    full: Condvar,
}

#[derive(Default)]
struct Stock {
    ready: HashMap<DhGroup, Vec<DhPrivate>>,
    /// Key pairs being made per group.
    making: HashMap<DhGroup, usize>,
    stop: bool,
}

impl Stock {
    /// A group whose stock (ready and being made) is short.
    fn short(&self) -> Option<DhGroup> {
        self.ready
            .iter()
            .find(|(g, ready)| ready.len() + self.making.get(g).copied().unwrap_or(0) < STOCK)
            .map(|(g, _)| *g)
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Stock> {
        self.stock.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl DhPool {
    /// Starts `workers` threads (at least one), each with its own RNG seeded from the OS.
    pub fn spawn(workers: usize) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            stock: Mutex::new(Stock::default()),
            low: Condvar::new(),
            full: Condvar::new(),
        });
        let mut pool = Self {
            shared,
            workers: Vec::new(),
        };
        for i in 0..workers.max(1) {
            let shared = pool.shared.clone();
            let rng = ChaCha20Rng::from_rng(&mut rand::rng());
            let handle = std::thread::Builder::new()
                .name(format!("dh-{i}"))
                .spawn(move || work(&shared, rng))?;
            pool.workers.push(handle);
        }
        Ok(pool)
    }

    /// Worker threads.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Key pairs of `group` ready now.
    #[cfg(test)]
    fn ready(&self, group: DhGroup) -> usize {
        self.shared.lock().ready.get(&group).map_or(0, Vec::len)
    }
}

impl KeyPairSource for DhPool {
    fn take(&mut self, group: DhGroup) -> Option<DhPrivate> {
        let mut stock = self.shared.lock();
        let ready = stock.ready.entry(group).or_default();
        let dh = ready.pop();
        // Wake the workers once a group is half used, not on every key pair taken.
        let low = ready.len() < STOCK / 2 && stock.making.get(&group).is_none_or(|n| *n == 0);
        drop(stock);
        if low {
            self.shared.low.notify_all();
        }
        dh
    }
}

fn work(shared: &Shared, mut rng: ChaCha20Rng) {
    loop {
        let group = {
            let mut stock = shared.lock();
            loop {
                if stock.stop {
                    return;
                }
                if let Some(g) = stock.short() {
                    *stock.making.entry(g).or_default() += 1; // ok: at most STOCK
                    break g;
                }
                stock = shared
                    .low
                    .wait(stock)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        let dh = group.generate(&mut rng);
        let mut stock = shared.lock();
        if let Some(n) = stock.making.get_mut(&group) {
            *n = n.saturating_sub(1);
        }
        let ready = stock.ready.entry(group).or_default();
        ready.push(dh);
        if ready.len() == STOCK {
            shared.full.notify_all();
        }
    }
}

impl Drop for DhPool {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.low.notify_all();
        for w in self.workers.drain(..) {
            // A worker that panicked has nothing left to clean up.
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits until `group` is fully stocked.
    fn wait_stocked(pool: &DhPool, group: DhGroup) {
        let mut stock = pool.shared.lock();
        while stock.ready.get(&group).map_or(0, Vec::len) < STOCK {
            stock = pool.shared.full.wait(stock).unwrap();
        }
    }

    #[test]
    fn a_group_is_stocked_once_asked_for_and_key_pairs_are_distinct() {
        let mut pool = DhPool::spawn(2).unwrap();
        assert_eq!(pool.workers(), 2);
        // Nothing is made before a group is asked for.
        assert_eq!(pool.ready(DhGroup::Curve25519), 0);
        assert!(pool.take(DhGroup::Curve25519).is_none());
        wait_stocked(&pool, DhGroup::Curve25519);
        assert_eq!(pool.ready(DhGroup::Ecp256), 0);
        let mut publics: Vec<Vec<u8>> = (0..STOCK)
            .map(|_| pool.take(DhGroup::Curve25519).unwrap())
            .map(|dh| {
                assert_eq!(dh.group(), DhGroup::Curve25519);
                dh.public_value()
            })
            .collect();
        publics.sort();
        publics.dedup();
        assert_eq!(publics.len(), STOCK);
        // Used up, it is stocked again; dropping the pool stops its workers.
        wait_stocked(&pool, DhGroup::Curve25519);
        drop(pool);
    }

    #[test]
    fn pooled_key_pairs_agree_with_a_peer() {
        let mut pool = DhPool::spawn(1).unwrap();
        let _ = pool.take(DhGroup::Ecp256);
        wait_stocked(&pool, DhGroup::Ecp256);
        let ours = pool.take(DhGroup::Ecp256).unwrap();
        let theirs = DhGroup::Ecp256.generate(&mut ChaCha20Rng::seed_from_u64(3));
        assert_eq!(
            *ours.agree(&theirs.public_value()).unwrap(),
            *theirs.agree(&ours.public_value()).unwrap()
        );
    }
}
