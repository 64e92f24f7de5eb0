//! The engine's Diffie-Hellman work: key pairs made ahead of time by a [`DhOffload`] (the
//! daemon's pool on other cores) when one is ready, else made here with the endpoint's RNG;
//! a responder's IKE_SA_INIT shared secret computed by the offload while the response is on
//! its way and collected when the keys are first needed (IKE_AUTH); and, only when
//! configured, a responder's IKE_SA_INIT key pair reused for a short time (RFC 7296 §2.12).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::crypto::{CryptoError, DhGroup, DhPrivate};

/// Diffie-Hellman work done outside the engine's thread.
pub trait DhOffload: Send {
    /// A fresh key pair of `group`, if one is ready (the engine takes one per key exchange
    /// and never gives one back; without one it makes its own).
    fn key_pair(&mut self, group: DhGroup) -> Option<DhPrivate>;

    /// Starts computing the shared secret of `dh` and the peer's public value `peer`. The
    /// default computes it at once.
    fn agree_later(&mut self, dh: DhPrivate, peer: Vec<u8>) -> Box<dyn Agreement> {
        Box::new(Agreed(dh.agree(&peer)))
    }
}

/// A shared secret being computed.
pub trait Agreement: Send {
    /// The shared secret (waiting for it if it is being computed right now), or why the
    /// peer's public value was refused.
    fn wait(self: Box<Self>) -> Result<Zeroizing<Vec<u8>>, CryptoError>;
}

/// A shared secret computed already.
struct Agreed(Result<Zeroizing<Vec<u8>>, CryptoError>);

impl Agreement for Agreed {
    fn wait(self: Box<Self>) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        self.0
    }
}

/// A responder's shared secret: computed now (no offload), or later.
pub(crate) enum SharedSecret {
    Now(Result<Zeroizing<Vec<u8>>, CryptoError>),
    Later(Box<dyn Agreement>),
}

/// The engine's key pairs (see the module documentation).
#[derive(Default)]
pub(crate) struct KeyPairs {
    source: Option<Box<dyn DhOffload>>,
    /// The responder key pair of each group being reused, with when it was made.
    reused: HashMap<DhGroup, (Instant, DhPrivate)>,
}

impl KeyPairs {
    pub(crate) fn set_source(&mut self, source: Box<dyn DhOffload>) {
        self.source = Some(source);
    }

    /// A fresh key pair of `group`.
    pub(crate) fn fresh(&mut self, group: DhGroup, rng: &mut impl rand::CryptoRng) -> DhPrivate {
        self.source
            .as_mut()
            .and_then(|s| s.key_pair(group))
            .unwrap_or_else(|| group.generate(rng))
    }

    /// The shared secret of a responder's `dh` with the initiator's public value `peer`:
    /// offloaded when there is an offload, else computed now.
    pub(crate) fn agree(&mut self, dh: DhPrivate, peer: &[u8]) -> SharedSecret {
        match self.source.as_mut() {
            Some(s) => SharedSecret::Later(s.agree_later(dh, peer.to_vec())),
            None => SharedSecret::Now(dh.agree(peer)),
        }
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

    impl DhOffload for Stock {
        fn key_pair(&mut self, group: DhGroup) -> Option<DhPrivate> {
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

        // The default offload agrees at once, like the engine without one.
        let peer = DhGroup::Curve25519.generate(&mut rng);
        let ours = keys.fresh(DhGroup::Curve25519, &mut rng);
        let expected = ours.agree(&peer.public_value()).unwrap();
        let SharedSecret::Later(later) = keys.agree(ours, &peer.public_value()) else {
            panic!("an offload takes the agreement");
        };
        assert_eq!(*later.wait().unwrap(), *expected);
        let bad = keys.fresh(DhGroup::Curve25519, &mut rng);
        let SharedSecret::Later(later) = keys.agree(bad, &[0; 32]) else {
            panic!("an offload takes the agreement");
        };
        assert!(
            later.wait().is_err(),
            "an all-zero X25519 result is refused"
        );
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
