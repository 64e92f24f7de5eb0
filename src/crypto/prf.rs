//! HMAC-based pseudo-random functions (IKEv2 transform type 2) and integrity transforms
//! (type 3), plus prf+ (RFC 7296 §2.13).

use hmac::{Hmac, KeyInit, Mac};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use super::CryptoError;

/// HMAC over the concatenation of `parts`, keyed with `key` (any length).
fn hmac_parts<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Zeroizing<Vec<u8>> {
    // HMAC accepts keys of every length (RFC 2104 §2), so this cannot fail.
    let Ok(mut mac) = <M as KeyInit>::new_from_slice(key) else {
        unreachable!("HMAC accepts keys of any length")
    };
    for p in parts {
        mac.update(p);
    }
    let mut out = mac.finalize().into_bytes();
    let v = Zeroizing::new(out.to_vec());
    out.as_mut_slice().zeroize();
    v
}

/// Hash function underlying an HMAC transform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Hash {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn output_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }

    fn hmac(self, key: &[u8], parts: &[&[u8]]) -> Zeroizing<Vec<u8>> {
        match self {
            Self::Sha1 => hmac_parts::<Hmac<sha1::Sha1>>(key, parts),
            Self::Sha256 => hmac_parts::<Hmac<sha2::Sha256>>(key, parts),
            Self::Sha384 => hmac_parts::<Hmac<sha2::Sha384>>(key, parts),
            Self::Sha512 => hmac_parts::<Hmac<sha2::Sha512>>(key, parts),
        }
    }
}

/// IKEv2 pseudo-random function (transform type 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Prf {
    /// PRF_HMAC_SHA1 (2), RFC 2104.
    HmacSha1,
    /// PRF_HMAC_SHA2_256 (5), RFC 4868.
    HmacSha256,
    /// PRF_HMAC_SHA2_384 (6), RFC 4868.
    HmacSha384,
    /// PRF_HMAC_SHA2_512 (7), RFC 4868.
    HmacSha512,
}

impl Prf {
    /// Maximum number of output blocks of prf+ (the counter is one octet).
    const MAX_PRF_PLUS_BLOCKS: usize = 255;

    /// The PRF with IANA transform ID `id`, if supported.
    pub fn from_id(id: u16) -> Option<Self> {
        match id {
            2 => Some(Self::HmacSha1),
            5 => Some(Self::HmacSha256),
            6 => Some(Self::HmacSha384),
            7 => Some(Self::HmacSha512),
            _ => None,
        }
    }

    /// IANA transform ID.
    pub fn id(self) -> u16 {
        match self {
            Self::HmacSha1 => 2,
            Self::HmacSha256 => 5,
            Self::HmacSha384 => 6,
            Self::HmacSha512 => 7,
        }
    }

    fn hash(self) -> Hash {
        match self {
            Self::HmacSha1 => Hash::Sha1,
            Self::HmacSha256 => Hash::Sha256,
            Self::HmacSha384 => Hash::Sha384,
            Self::HmacSha512 => Hash::Sha512,
        }
    }

    /// Output length in bytes.
    pub fn output_len(self) -> usize {
        self.hash().output_len()
    }

    /// Preferred key length in bytes (the output length, RFC 7296 §2.13): length of SK_d,
    /// SK_pi and SK_pr.
    pub fn key_len(self) -> usize {
        self.output_len()
    }

    /// strongSwan-style name, e.g. `PRF_HMAC_SHA2_256`.
    pub fn name(self) -> &'static str {
        match self {
            Self::HmacSha1 => "PRF_HMAC_SHA1",
            Self::HmacSha256 => "PRF_HMAC_SHA2_256",
            Self::HmacSha384 => "PRF_HMAC_SHA2_384",
            Self::HmacSha512 => "PRF_HMAC_SHA2_512",
        }
    }

    /// `prf(key, data)`.
    pub fn prf(self, key: &[u8], data: &[u8]) -> Zeroizing<Vec<u8>> {
        self.prf_parts(key, &[data])
    }

    /// `prf(key, parts[0] | parts[1] | ...)` without building the concatenation.
    pub(crate) fn prf_parts(self, key: &[u8], parts: &[&[u8]]) -> Zeroizing<Vec<u8>> {
        self.hash().hmac(key, parts)
    }

    /// `prf+(key, seed)` truncated to `len` bytes (RFC 7296 §2.13):
    /// `T1 = prf(K, S | 0x01)`, `Tn = prf(K, Tn-1 | S | n)`, at most 255 blocks.
    pub fn prf_plus(
        self,
        key: &[u8],
        seed: &[u8],
        len: usize,
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let max = Self::MAX_PRF_PLUS_BLOCKS * self.output_len();
        if len > max {
            return Err(CryptoError::PrfPlusTooLong {
                requested: len,
                max,
            });
        }
        let mut out = Zeroizing::new(Vec::with_capacity(len));
        let mut prev: Zeroizing<Vec<u8>> = Zeroizing::new(Vec::new());
        let mut counter: u8 = 1;
        while out.len() < len {
            let block = self.prf_parts(key, &[&prev, seed, &[counter]]);
            let take = (len - out.len()).min(block.len());
            out.extend_from_slice(block.get(..take).unwrap_or_default());
            prev = block;
            // At most 255 iterations run (checked above), so the counter never wraps in use.
            counter = counter.wrapping_add(1);
        }
        Ok(out)
    }
}

/// IKEv2/ESP integrity transform (transform type 3): truncated HMAC.
#[allow(non_camel_case_types)] // the names mirror the IANA registry (AUTH_HMAC_SHA2_256_128)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Integ {
    /// AUTH_HMAC_SHA1_96 (2), RFC 2404.
    HmacSha1_96,
    /// AUTH_HMAC_SHA2_256_128 (12), RFC 4868.
    HmacSha256_128,
    /// AUTH_HMAC_SHA2_384_192 (13), RFC 4868.
    HmacSha384_192,
    /// AUTH_HMAC_SHA2_512_256 (14), RFC 4868.
    HmacSha512_256,
}

impl Integ {
    /// The integrity transform with IANA ID `id`, if supported.
    pub fn from_id(id: u16) -> Option<Self> {
        match id {
            2 => Some(Self::HmacSha1_96),
            12 => Some(Self::HmacSha256_128),
            13 => Some(Self::HmacSha384_192),
            14 => Some(Self::HmacSha512_256),
            _ => None,
        }
    }

    /// IANA transform ID.
    pub fn id(self) -> u16 {
        match self {
            Self::HmacSha1_96 => 2,
            Self::HmacSha256_128 => 12,
            Self::HmacSha384_192 => 13,
            Self::HmacSha512_256 => 14,
        }
    }

    fn hash(self) -> Hash {
        match self {
            Self::HmacSha1_96 => Hash::Sha1,
            Self::HmacSha256_128 => Hash::Sha256,
            Self::HmacSha384_192 => Hash::Sha384,
            Self::HmacSha512_256 => Hash::Sha512,
        }
    }

    /// Key length in bytes (the hash output length, RFC 4868 §2.1.1 / RFC 2404).
    pub fn key_len(self) -> usize {
        self.hash().output_len()
    }

    /// Length of the truncated ICV in bytes.
    pub fn icv_len(self) -> usize {
        match self {
            Self::HmacSha1_96 => 12,
            Self::HmacSha256_128 => 16,
            Self::HmacSha384_192 => 24,
            Self::HmacSha512_256 => 32,
        }
    }

    /// strongSwan-style name, e.g. `HMAC_SHA2_256_128`.
    pub fn name(self) -> &'static str {
        match self {
            Self::HmacSha1_96 => "HMAC_SHA1_96",
            Self::HmacSha256_128 => "HMAC_SHA2_256_128",
            Self::HmacSha384_192 => "HMAC_SHA2_384_192",
            Self::HmacSha512_256 => "HMAC_SHA2_512_256",
        }
    }

    /// Truncated ICV over `data`.
    pub fn compute(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        self.compute_parts(key, &[data])
    }

    /// Truncated ICV over the concatenation of `parts`.
    pub(crate) fn compute_parts(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        let full = self.hash().hmac(key, parts);
        full.get(..self.icv_len()).unwrap_or_default().to_vec()
    }

    /// Constant-time check of `icv` against the ICV over `data`.
    pub fn verify(self, key: &[u8], data: &[u8], icv: &[u8]) -> bool {
        self.verify_parts(key, &[data], icv)
    }

    /// Constant-time check of `icv` against the ICV over the concatenation of `parts`.
    pub(crate) fn verify_parts(self, key: &[u8], parts: &[&[u8]], icv: &[u8]) -> bool {
        // Slices of different lengths compare unequal (the length is public).
        bool::from(self.compute_parts(key, parts).ct_eq(icv))
    }
}
