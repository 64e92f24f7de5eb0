//! Transforms and key schedule: PRF, prf+, DH groups, SK payload protection, PSK AUTH, CHILD_SA KEYMAT.
//!
//! Everything here is built on the RustCrypto crates; no primitive is hand-written. Transform
//! identifiers are the plain IANA numbers (u16) so this layer does not depend on `crate::wire`.
//! Secrets live in [`Zeroizing`](zeroize::Zeroizing) buffers or `ZeroizeOnDrop` types and every
//! type holding one has a redacting `Debug`.

mod auth;
mod dh;
mod encr;
mod keys;
mod prf;
mod sk;

pub use auth::{psk_auth, verify_psk_auth};
pub use dh::{DhGroup, DhPrivate};
pub use encr::Encr;
pub use keys::{
    ChildKeys, IkeKeys, derive_child_keys, derive_ike_keys, derive_ike_keys_from_skeyseed,
    skeyseed, skeyseed_rekey,
};
pub use prf::{Integ, Prf};
pub use sk::SkCrypto;

/// Errors of the crypto layer. Each names one specific failure; none carries secret data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The peer's KE public value is malformed or outside the group (wrong length, not on the
    /// curve, 0/1/p-1 for MODP, or an X25519 value giving an all-zero shared secret).
    #[error("invalid peer public value for DH group {group:?}")]
    InvalidPeerPublicValue { group: DhGroup },
    /// A Diffie-Hellman computation handed to another thread did not finish there (the
    /// thread failed).
    #[error("the Diffie-Hellman computation failed on its worker thread")]
    WorkerFailed,
    /// ICV / AEAD tag of a protected message did not verify.
    #[error("integrity check failed")]
    IntegrityCheckFailed,
    /// Decrypted plaintext carried a pad length larger than the plaintext.
    #[error("bad padding in decrypted payload")]
    BadPadding,
    /// A key had the wrong length for its transform.
    #[error("{what} key has {actual} bytes, expected {expected}")]
    KeyLength {
        what: &'static str,
        expected: usize,
        actual: usize,
    },
    /// The IV given to `seal` has the wrong length.
    #[error("IV has {actual} bytes, expected {expected}")]
    IvLength { expected: usize, actual: usize },
    /// prf+ was asked for more than 255 PRF output blocks (RFC 7296 §2.13).
    #[error("prf+ asked for {requested} bytes, more than 255 blocks ({max} bytes)")]
    PrfPlusTooLong { requested: usize, max: usize },
    /// A protected body is too short or its ciphertext is not block-aligned.
    #[error("invalid {what} length {len}")]
    InvalidLength { what: &'static str, len: usize },
    /// AEAD encryption needs no integrity transform and non-AEAD needs one.
    #[error("encryption transform {encr} does not fit integrity transform {integ}")]
    IntegMismatch {
        encr: &'static str,
        integ: &'static str,
    },
    /// The AEAD implementation refused to encrypt (message too long).
    #[error("encryption failed")]
    EncryptFailed,
}

/// Writes `name { .. }` for a type holding secrets, listing only non-secret facts.
fn redacted(f: &mut std::fmt::Formatter<'_>, name: &str) -> std::fmt::Result {
    f.debug_struct(name).finish_non_exhaustive()
}
