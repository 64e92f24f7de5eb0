//! HMAC-based pseudo-random functions (IKEv2 transform type 2) and integrity transforms
//! (type 3), plus prf+ (RFC 7296 §2.13).

use hmac::{Hmac, KeyInit, Mac};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use super::CryptoError;
use crate::wire::TransformId;

/// HMAC over the concatenation of `parts`, keyed with `key` (any length).
fn hmac_parts<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Zeroizing<Vec<u8>> {
    // HMAC accepts keys of every length (RFC 2104 §2), so this cannot fail.
    let Ok(mut mac) = <M as KeyInit>::new_from_slice(key) else {
        unreachable!("HMAC accepts keys of any length") // ok: RFC 2104 HMAC takes any key length
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
        match TransformId(id) {
            TransformId::PRF_HMAC_SHA1 => Some(Self::HmacSha1),
            TransformId::PRF_HMAC_SHA2_256 => Some(Self::HmacSha256),
            TransformId::PRF_HMAC_SHA2_384 => Some(Self::HmacSha384),
            TransformId::PRF_HMAC_SHA2_512 => Some(Self::HmacSha512),
            _ => None,
        }
    }

    /// IANA transform ID.
    pub fn id(self) -> u16 {
        match self {
            Self::HmacSha1 => TransformId::PRF_HMAC_SHA1,
            Self::HmacSha256 => TransformId::PRF_HMAC_SHA2_256,
            Self::HmacSha384 => TransformId::PRF_HMAC_SHA2_384,
            Self::HmacSha512 => TransformId::PRF_HMAC_SHA2_512,
        }
        .0
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
            let take = (len - out.len()).min(block.len()); // ok: loop runs while out.len() < len
            out.extend_from_slice(block.get(..take).unwrap_or_default());
            prev = block;
            // At most 255 iterations run (checked above), so the counter never wraps in use.
            counter = counter.wrapping_add(1);
        }
        Ok(out)
    }
}

/// IKEv2/ESP integrity transform (transform type 3): truncated HMAC.
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
        match TransformId(id) {
            TransformId::AUTH_HMAC_SHA1_96 => Some(Self::HmacSha1_96),
            TransformId::AUTH_HMAC_SHA2_256_128 => Some(Self::HmacSha256_128),
            TransformId::AUTH_HMAC_SHA2_384_192 => Some(Self::HmacSha384_192),
            TransformId::AUTH_HMAC_SHA2_512_256 => Some(Self::HmacSha512_256),
            _ => None,
        }
    }

    /// IANA transform ID.
    pub fn id(self) -> u16 {
        match self {
            Self::HmacSha1_96 => TransformId::AUTH_HMAC_SHA1_96,
            Self::HmacSha256_128 => TransformId::AUTH_HMAC_SHA2_256_128,
            Self::HmacSha384_192 => TransformId::AUTH_HMAC_SHA2_384_192,
            Self::HmacSha512_256 => TransformId::AUTH_HMAC_SHA2_512_256,
        }
        .0
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

    /// Truncated ICV over the concatenation of `parts`.
    pub(crate) fn compute_parts(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        let full = self.hash().hmac(key, parts);
        full.get(..self.icv_len()).unwrap_or_default().to_vec()
    }

    /// Constant-time check of `icv` against the ICV over the concatenation of `parts`.
    pub(crate) fn verify_parts(self, key: &[u8], parts: &[&[u8]], icv: &[u8]) -> bool {
        // Slices of different lengths compare unequal (the length is public).
        bool::from(self.compute_parts(key, parts).ct_eq(icv))
    }
}

#[cfg(test)]
mod tests {
    use hex_literal::hex;

    use super::*;

    // RFC 4868 §2.7.1 PRF test case 1 (key 0x0b * 20, "Hi There").
    #[test]
    fn rfc4868_prf_test_case_1() {
        let key = [0x0b; 20];
        let cases: [(Prf, &[u8]); 3] = [
            (
                Prf::HmacSha256,
                &hex!("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
            ),
            (
                Prf::HmacSha384,
                &hex!(
                    "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59c"
                    "faea9ea9076ede7f4af152e8b2fa9cb6"
                ),
            ),
            (
                Prf::HmacSha512,
                &hex!(
                    "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde"
                    "daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854"
                ),
            ),
        ];
        for (prf, expected) in cases {
            assert_eq!(
                prf.prf(&key, b"Hi There").as_slice(),
                expected,
                "{}",
                prf.name()
            );
            assert_eq!(prf.output_len(), expected.len());
        }
    }

    // RFC 4868 §2.7.1 PRF test case 4 (key 0xaa * 131, larger than the block size).
    #[test]
    fn rfc4868_prf_long_key() {
        let key = [0xaa; 131];
        let out = Prf::HmacSha256.prf(
            &key,
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        );
        assert_eq!(
            out.as_slice(),
            hex!("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
        );
    }

    // RFC 4868 §2.7.2 authenticator test cases 1 and 2 (truncated outputs).
    #[test]
    fn rfc4868_integ_test_cases() {
        // (transform, key, data, truncated ICV)
        type Case = (Integ, Vec<u8>, &'static [u8], &'static [u8]);
        let cases: [Case; 6] = [
            (
                Integ::HmacSha256_128,
                vec![0x0b; 32],
                b"Hi There",
                &hex!("198a607eb44bfbc69903a0f1cf2bbdc5"),
            ),
            (
                Integ::HmacSha384_192,
                vec![0x0b; 48],
                b"Hi There",
                &hex!("b6a8d5636f5c6a7224f9977dcf7ee6c7fb6d0c48cbdee973"),
            ),
            (
                Integ::HmacSha512_256,
                vec![0x0b; 64],
                b"Hi There",
                &hex!("637edc6e01dce7e6742a99451aae82df23da3e92439e590e43e761b33e910fb8"),
            ),
            (
                Integ::HmacSha256_128,
                b"Jefe".repeat(8),
                b"what do ya want for nothing?",
                &hex!("167f928588c5cc2eef8e3093caa0e87c"),
            ),
            (
                Integ::HmacSha384_192,
                b"Jefe".repeat(12),
                b"what do ya want for nothing?",
                &hex!("2c7353974f1842fd66d53c452ca42122b28c0b594cfb184d"),
            ),
            (
                Integ::HmacSha512_256,
                b"Jefe".repeat(16),
                b"what do ya want for nothing?",
                &hex!("cb370917ae8a7ce28cfd1d8f4705d6141c173b2a9362c15df235dfb251b15454"),
            ),
        ];
        for (integ, key, data, icv) in cases {
            assert_eq!(key.len(), integ.key_len());
            assert_eq!(integ.compute_parts(&key, &[data]), icv, "{}", integ.name());
            assert_eq!(integ.icv_len(), icv.len());
            assert!(integ.verify_parts(&key, &[data], icv));
            let mut bad = icv.to_vec();
            bad[0] ^= 1;
            assert!(!integ.verify_parts(&key, &[data], &bad));
            assert!(!integ.verify_parts(&key, &[data], &icv[..icv.len() - 1]));
        }
    }

    // HMAC-SHA1-96 (RFC 2404 §3 test case 2: key "Jefe").
    #[test]
    fn rfc2404_hmac_sha1_96() {
        let icv = Integ::HmacSha1_96.compute_parts(b"Jefe", &[b"what do ya want for nothing?"]);
        assert_eq!(icv, hex!("effcdf6ae5eb2fa2d27416d5"));
    }

    // HKDF-Expand (RFC 5869 §2.3) computes T(n) = HMAC(PRK, T(n-1) | info | n), the same
    // construction as prf+: cross-check against the hkdf crate.
    #[test]
    fn prf_plus_matches_hkdf_expand() {
        let key = [0x42u8; 32];
        let seed = b"Ni | Nr | SPIi | SPIr";
        for len in [1, 31, 32, 33, 100, 255 * 32] {
            let ours = Prf::HmacSha256.prf_plus(&key, seed, len).unwrap();
            let mut theirs = vec![0u8; len];
            hkdf::Hkdf::<sha2::Sha256>::from_prk(&key)
                .unwrap()
                .expand(seed, &mut theirs)
                .unwrap();
            assert_eq!(ours.as_slice(), theirs, "len {len}");
        }
        let key = [0x17u8; 64];
        let ours = Prf::HmacSha512.prf_plus(&key, seed, 300).unwrap();
        let mut theirs = vec![0u8; 300];
        hkdf::Hkdf::<sha2::Sha512>::from_prk(&key)
            .unwrap()
            .expand(seed, &mut theirs)
            .unwrap();
        assert_eq!(ours.as_slice(), theirs);
    }

    #[test]
    fn prf_plus_is_limited_to_255_blocks() {
        assert!(Prf::HmacSha256.prf_plus(b"k", b"s", 255 * 32).is_ok());
        assert_eq!(
            Prf::HmacSha256.prf_plus(b"k", b"s", 255 * 32 + 1),
            Err(CryptoError::PrfPlusTooLong {
                requested: 255 * 32 + 1,
                max: 255 * 32
            })
        );
        assert!(Prf::HmacSha256.prf_plus(b"k", b"s", 0).unwrap().is_empty());
    }

    #[test]
    fn ids_round_trip() {
        for id in 0..=32 {
            if let Some(p) = Prf::from_id(id) {
                assert_eq!(p.id(), id);
                assert_eq!(p.key_len(), p.output_len());
            }
            if let Some(i) = Integ::from_id(id) {
                assert_eq!(i.id(), id);
            }
        }
        assert_eq!(Prf::from_id(5), Some(Prf::HmacSha256));
        assert_eq!(Prf::from_id(4), None); // AES128_XCBC: not supported
        assert_eq!(Integ::from_id(12), Some(Integ::HmacSha256_128));
        assert_eq!(Prf::HmacSha256.name(), "PRF_HMAC_SHA2_256");
        assert_eq!(Integ::HmacSha512_256.name(), "HMAC_SHA2_512_256");
    }
}
