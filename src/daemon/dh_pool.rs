//! Diffie-Hellman work on worker threads (`[crypto] workers`), the engine's [`DhOffload`]:
//! the other cores make key pairs ahead of time and compute responders' IKE_SA_INIT shared
//! secrets while the responses travel, so that the engine's thread spends a handshake's
//! CPU on the rest of the exchange. When the stock of a group runs out the engine makes its
//! own key pair, and a shared secret not started yet when the engine needs it is computed
//! by the engine itself: a burst is never slower than without the pool.
//!
//! Shared secrets come first; a group is stocked once the engine has asked for it, with
//! [`STOCK`] key pairs; the workers sleep otherwise. Key pairs and secrets are zeroized when
//! dropped, also those still in the pool when it goes.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;

use zeroize::Zeroizing;

use crate::crypto::{CryptoError, DhGroup, DhPrivate};
use crate::ike::{Agreement, DhOffload};

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
    /// Shared secrets to compute, oldest first.
    agreements: VecDeque<Arc<Job>>,
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

type Secret = Result<Zeroizing<Vec<u8>>, CryptoError>;

/// One shared secret, shared by the engine's [`Agreement`] and the pool's queue.
struct Job {
    state: Mutex<JobState>,
    done: Condvar,
}

enum JobState {
    Queued(DhPrivate, Vec<u8>),
    /// Being computed, or taken by the engine.
    Running,
    Done(Secret),
}

impl Job {
    fn lock(&self) -> MutexGuard<'_, JobState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The inputs, if nobody has started on it.
    fn start(&self) -> Option<(DhPrivate, Vec<u8>)> {
        let mut state = self.lock();
        match std::mem::replace(&mut *state, JobState::Running) {
            JobState::Queued(dh, peer) => Some((dh, peer)),
            other => {
                *state = other;
                None
            }
        }
    }
}

/// The engine's handle on a [`Job`].
struct Pending(Arc<Job>);

impl Agreement for Pending {
    fn wait(self: Box<Self>) -> Secret {
        let mut state = self.0.lock();
        loop {
            match std::mem::replace(&mut *state, JobState::Running) {
                // No worker has got to it: compute it here (a worker will skip it).
                JobState::Queued(dh, peer) => {
                    drop(state);
                    return dh.agree(&peer);
                }
                JobState::Done(secret) => return secret,
                JobState::Running => {
                    state = self
                        .0
                        .done
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
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

impl DhOffload for DhPool {
    fn agree_later(&mut self, dh: DhPrivate, peer: Vec<u8>) -> Box<dyn Agreement> {
        let job = Arc::new(Job {
            state: Mutex::new(JobState::Queued(dh, peer)),
            done: Condvar::new(),
        });
        self.shared.lock().agreements.push_back(job.clone());
        self.shared.low.notify_one();
        Box::new(Pending(job))
    }

    fn key_pair(&mut self, group: DhGroup) -> Option<DhPrivate> {
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

/// What a worker does next.
enum Task {
    Agree(Arc<Job>),
    Make(DhGroup),
}

fn work(shared: &Shared, mut rng: ChaCha20Rng) {
    loop {
        let task = {
            let mut stock = shared.lock();
            loop {
                if stock.stop {
                    return;
                }
                if let Some(job) = stock.agreements.pop_front() {
                    break Task::Agree(job);
                }
                if let Some(g) = stock.short() {
                    *stock.making.entry(g).or_default() += 1; // ok: at most STOCK
                    break Task::Make(g);
                }
                stock = shared
                    .low
                    .wait(stock)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        let group = match task {
            // Unless its IKE SA is gone already.
            Task::Agree(job) if Arc::strong_count(&job) > 1 => {
                if let Some((dh, peer)) = job.start() {
                    let secret = dh.agree(&peer);
                    *job.lock() = JobState::Done(secret);
                    job.done.notify_all();
                }
                continue;
            }
            Task::Agree(_) => continue,
            Task::Make(g) => g,
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
        assert!(pool.key_pair(DhGroup::Curve25519).is_none());
        wait_stocked(&pool, DhGroup::Curve25519);
        assert_eq!(pool.ready(DhGroup::Ecp256), 0);
        let mut publics: Vec<Vec<u8>> = (0..STOCK)
            .map(|_| pool.key_pair(DhGroup::Curve25519).unwrap())
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
    fn shared_secrets_come_from_a_worker_or_from_the_caller_when_none_started() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let peer = DhGroup::Curve25519.generate(&mut rng);
        let ours = || DhGroup::Curve25519.generate(&mut ChaCha20Rng::seed_from_u64(5));
        let expected = ours().agree(&peer.public_value()).unwrap();
        // A pool without workers: the caller computes it.
        let mut idle = DhPool {
            shared: Arc::new(Shared {
                stock: Mutex::new(Stock::default()),
                low: Condvar::new(),
                full: Condvar::new(),
            }),
            workers: Vec::new(),
        };
        let job = idle.agree_later(ours(), peer.public_value());
        assert_eq!(*job.wait().unwrap(), *expected);
        // With workers, many at once, refusals included.
        let mut pool = DhPool::spawn(2).unwrap();
        let jobs: Vec<_> = (0..50)
            .map(|_| pool.agree_later(ours(), peer.public_value()))
            .collect();
        let bad = pool.agree_later(ours(), vec![0; 32]);
        for job in jobs {
            assert_eq!(*job.wait().unwrap(), *expected);
        }
        assert!(bad.wait().is_err());
    }

    #[test]
    fn pooled_key_pairs_agree_with_a_peer() {
        let mut pool = DhPool::spawn(1).unwrap();
        let _ = pool.key_pair(DhGroup::Ecp256);
        wait_stocked(&pool, DhGroup::Ecp256);
        let ours = pool.key_pair(DhGroup::Ecp256).unwrap();
        let theirs = DhGroup::Ecp256.generate(&mut ChaCha20Rng::seed_from_u64(3));
        assert_eq!(
            *ours.agree(&theirs.public_value()).unwrap(),
            *theirs.agree(&ours.public_value()).unwrap()
        );
    }
}
