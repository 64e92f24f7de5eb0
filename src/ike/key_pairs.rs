//! Where the engine's Diffie-Hellman key pairs come from: made ahead of time by a
//! [`KeyPairSource`] (the daemon's pool on other cores) when one is ready, else made here
//! with the endpoint's RNG; and, only when configured, a responder's IKE_SA_INIT key pair
//! reused for a short time (RFC 7296 §2.12).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::crypto::{DhGroup, DhPrivate};

/// Key pairs made ahead of time. The engine takes one per key exchange and never gives one
/// back; a source that has none ready answers `None` and the engine makes its own.
pub trait KeyPairSource: Send {
    /// A fresh key pair of `group`, if one is ready.
    fn take(&mut self, group: DhGroup) -> Option<DhPrivate>;
}

/// The engine's key pairs (see the module documentation).
#[derive(Default)]
pub(crate) struct KeyPairs {
    source: Option<Box<dyn KeyPairSource>>,
    /// The responder key pair of each group being reused, with when it was made.
    reused: HashMap<DhGroup, (Instant, DhPrivate)>,
}

impl KeyPairs {
    pub(crate) fn set_source(&mut self, source: Box<dyn KeyPairSource>) {
        self.source = Some(source);
    }

    /// A fresh key pair of `group`.
    pub(crate) fn fresh(&mut self, group: DhGroup, rng: &mut impl rand::CryptoRng) -> DhPrivate {
        self.source
            .as_mut()
            .and_then(|s| s.take(group))
            .unwrap_or_else(|| group.generate(rng))
    }

    /// The key pair for a responder's IKE_SA_INIT at `now`: the one made less than `reuse`
    /// ago for the same group when `reuse` is non-zero, else a fresh one.
    pub(crate) fn for_responder(
        &mut self,
        group: DhGroup,
        now: Instant,
        reuse: Duration,
        rng: &mut impl rand::CryptoRng,
    ) -> DhPrivate {
        if reuse.is_zero() {
            self.reused.clear();
            return self.fresh(group, rng);
        }
        match self.reused.get(&group) {
            Some((made, dh)) if now.saturating_duration_since(*made) < reuse => dh.clone(),
            _ => {
                let dh = self.fresh(group, rng);
                self.reused.insert(group, (now, dh.clone()));
                dh
            }
        }
    }
}

impl std::fmt::Debug for KeyPairs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPairs")
            .field("source", &self.source.is_some())
            .field("reused", &self.reused.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::ChaCha20Rng;

    use super::*;

    /// A source holding a fixed stock, counting what it handed out.
    struct Stock(Vec<DhPrivate>);

    impl KeyPairSource for Stock {
        fn take(&mut self, group: DhGroup) -> Option<DhPrivate> {
            let i = self.0.iter().position(|d| d.group() == group)?;
            Some(self.0.swap_remove(i))
        }
    }

    #[test]
    fn a_ready_key_pair_is_used_and_an_empty_source_falls_back_to_the_rng() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let ready = DhGroup::Curve25519.generate(&mut rng);
        let ready_public = ready.public_value();
        let mut keys = KeyPairs::default();
        keys.set_source(Box::new(Stock(vec![ready])));
        assert_eq!(
            keys.fresh(DhGroup::Curve25519, &mut rng).public_value(),
            ready_public
        );
        let made = keys.fresh(DhGroup::Curve25519, &mut rng);
        assert_ne!(made.public_value(), ready_public);
        assert_eq!(made.group(), DhGroup::Curve25519);
    }

    #[test]
    fn responder_key_pairs_are_reused_only_within_the_configured_time() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut keys = KeyPairs::default();
        let g = DhGroup::Curve25519;
        let off = |keys: &mut KeyPairs, rng: &mut ChaCha20Rng, at| {
            keys.for_responder(g, at, Duration::ZERO, rng)
                .public_value()
        };
        assert_ne!(off(&mut keys, &mut rng, t0), off(&mut keys, &mut rng, t0));

        let on = |keys: &mut KeyPairs, rng: &mut ChaCha20Rng, at| {
            keys.for_responder(g, at, s(10), rng).public_value()
        };
        let first = on(&mut keys, &mut rng, t0);
        assert_eq!(on(&mut keys, &mut rng, t0 + s(9)), first);
        let second = on(&mut keys, &mut rng, t0 + s(10));
        assert_ne!(second, first);
        assert_eq!(on(&mut keys, &mut rng, t0 + s(19)), second);
        // Another group has its own key pair; turning reuse off forgets them all.
        let ecp = keys.for_responder(DhGroup::Ecp256, t0 + s(19), s(10), &mut rng);
        assert_eq!(ecp.group(), DhGroup::Ecp256);
        assert_ne!(off(&mut keys, &mut rng, t0 + s(19)), second);
        assert_ne!(on(&mut keys, &mut rng, t0 + s(19)), second);
    }
}
