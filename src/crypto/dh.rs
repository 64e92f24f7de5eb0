//! Key exchange groups (transform type 4): MODP-2048 (RFC 3526), ECP-256 (RFC 5903) and
//! Curve25519 (RFC 8031).

use crypto_bigint::modular::{FixedMontyForm, FixedMontyParams};
use crypto_bigint::{Odd, U256, U2048};
use p256::elliptic_curve::Generate;
use p256::elliptic_curve::sec1::ToSec1Point;
use zeroize::{ZeroizeOnDrop, Zeroizing};

use super::CryptoError;
use crate::wire::TransformId;

/// Diffie-Hellman group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DhGroup {
    /// 2048-bit MODP group (14), RFC 3526 §3.
    Modp2048,
    /// 256-bit random ECP group (19), RFC 5903.
    Ecp256,
    /// Curve25519 (31), RFC 8031.
    Curve25519,
}

/// RFC 3526 §3 prime: 2^2048 - 2^1984 - 1 + 2^64 * { [2^1918 pi] + 124476 }; generator 2.
const MODP2048_P: Odd<U2048> = Odd::<U2048>::from_be_hex(concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22",
    "514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6",
    "F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3D",
    "C2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB",
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3BE39E772C180E8603",
    "9B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA0510",
    "15728E5A8AACAA68FFFFFFFFFFFFFFFF",
));

/// Montgomery parameters for [`MODP2048_P`], computed at compile time.
const MODP2048_PARAMS: FixedMontyParams<{ U2048::LIMBS }> =
    FixedMontyParams::new_vartime(MODP2048_P);

impl DhGroup {
    /// The group with IANA transform ID `id`, if supported.
    pub fn from_id(id: u16) -> Option<Self> {
        match TransformId(id) {
            TransformId::DH_MODP2048 => Some(Self::Modp2048),
            TransformId::DH_ECP256 => Some(Self::Ecp256),
            TransformId::DH_CURVE25519 => Some(Self::Curve25519),
            _ => None,
        }
    }

    /// IANA transform ID (also the KE payload's DH Group Num).
    pub fn id(self) -> u16 {
        match self {
            Self::Modp2048 => TransformId::DH_MODP2048,
            Self::Ecp256 => TransformId::DH_ECP256,
            Self::Curve25519 => TransformId::DH_CURVE25519,
        }
        .0
    }

    /// strongSwan-style name, e.g. `MODP_2048`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Modp2048 => "MODP_2048",
            Self::Ecp256 => "ECP_256",
            Self::Curve25519 => "CURVE_25519",
        }
    }

    /// Length in bytes of the KE payload's key exchange data.
    pub fn public_len(self) -> usize {
        match self {
            Self::Modp2048 => 256,
            Self::Ecp256 => 64,
            Self::Curve25519 => 32,
        }
    }

    /// Generates a fresh private value for this group from `rng`.
    /// The public value is computed here too, so that a key pair made ahead of time (on
    /// another core) costs its user nothing but the shared secret.
    pub fn generate(self, rng: &mut impl rand::CryptoRng) -> DhPrivate {
        let inner = match self {
            Self::Modp2048 => {
                let mut bytes = Zeroizing::new([0u8; 32]);
                rng.fill_bytes(bytes.as_mut_slice());
                Inner::modp(&bytes)
            }
            Self::Ecp256 => Inner::Ecp256(p256::SecretKey::generate_from_rng(rng)),
            Self::Curve25519 => Inner::Curve25519(x25519_dalek::StaticSecret::random_from_rng(rng)),
        };
        DhPrivate::new(inner)
    }

    fn invalid(self) -> CryptoError {
        CryptoError::InvalidPeerPublicValue { group: self }
    }
}

/// A private DH value with its public value. Zeroized on drop; `Debug` shows only the group.
/// `Clone` only for the optional reuse of a responder's key pair (RFC 7296 §2.12); every
/// copy is zeroized on its own drop.
#[derive(Clone)]
pub struct DhPrivate {
    inner: Inner,
    /// The KE payload's data, computed once with the private value.
    public: Vec<u8>,
}

#[derive(Clone)]
enum Inner {
    /// Private exponent, 256 bits with the top bit set (RFC 3526 §8: 2048-bit MODP needs an
    /// exponent of at least ~220 bits).
    Modp2048(Zeroizing<U256>),
    Ecp256(p256::SecretKey),
    Curve25519(x25519_dalek::StaticSecret),
}

impl Inner {
    fn modp(exponent: &[u8; 32]) -> Self {
        let mut x = Zeroizing::new(U256::from_be_slice(exponent));
        *x = x.bitor(&U256::ONE.shl_vartime(255));
        Self::Modp2048(x)
    }

    /// Public value as sent in the KE payload: MODP g^x big-endian padded to 256 bytes,
    /// ECP-256 x ‖ y (no SEC1 0x04 prefix, RFC 5903 §7), X25519 the 32-byte u-coordinate.
    fn public(&self) -> Vec<u8> {
        match self {
            Self::Modp2048(x) => {
                let g = FixedMontyForm::new(&U2048::from_u8(2), &MODP2048_PARAMS);
                g.pow(&**x).retrieve().to_be_bytes().as_ref().to_vec()
            }
            Self::Ecp256(secret) => {
                let point = secret.public_key().to_sec1_point(false);
                point.as_bytes().get(1..).unwrap_or_default().to_vec()
            }
            Self::Curve25519(secret) => x25519_dalek::PublicKey::from(secret).to_bytes().to_vec(),
        }
    }
}

impl ZeroizeOnDrop for DhPrivate {}

impl std::fmt::Debug for DhPrivate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DhPrivate")
            .field("group", &self.group())
            .finish_non_exhaustive()
    }
}

impl DhPrivate {
    /// The group this value belongs to.
    pub fn group(&self) -> DhGroup {
        match self.inner {
            Inner::Modp2048(_) => DhGroup::Modp2048,
            Inner::Ecp256(_) => DhGroup::Ecp256,
            Inner::Curve25519(_) => DhGroup::Curve25519,
        }
    }

    fn new(inner: Inner) -> Self {
        let public = inner.public();
        Self { inner, public }
    }

    /// Public value as sent in the KE payload: MODP big-endian padded to 256 bytes, ECP-256
    /// x ‖ y (no SEC1 0x04 prefix, RFC 5903 §7), X25519 the 32-byte u-coordinate.
    pub fn public_value(&self) -> Vec<u8> {
        self.public.clone()
    }

    /// Shared secret g^ir from the peer's KE data, after validating it: exact length, MODP
    /// 1 < y < p-1, ECP point on the curve and not the identity, X25519 result not all-zero.
    /// MODP output is padded to 256 bytes, ECP-256 is the x coordinate (RFC 5903 §7).
    pub fn agree(&self, peer_public: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let group = self.group();
        if peer_public.len() != group.public_len() {
            return Err(group.invalid());
        }
        match &self.inner {
            Inner::Modp2048(x) => {
                let y = U2048::from_be_slice(peer_public);
                let p_minus_1 = MODP2048_P.as_ref().wrapping_sub(&U2048::ONE);
                // Public data: variable-time comparison is fine.
                if y <= U2048::ONE || y >= p_minus_1 {
                    return Err(group.invalid());
                }
                let shared = Zeroizing::new(
                    FixedMontyForm::new(&y, &MODP2048_PARAMS)
                        .pow(&**x)
                        .retrieve(),
                );
                let mut bytes = shared.to_be_bytes();
                let out = Zeroizing::new(bytes.as_ref().to_vec());
                zeroize::Zeroize::zeroize(&mut bytes);
                Ok(out)
            }
            Inner::Ecp256(secret) => {
                let mut sec1 = Vec::with_capacity(65);
                sec1.push(0x04);
                sec1.extend_from_slice(peer_public);
                let peer = p256::PublicKey::from_sec1_bytes(&sec1).map_err(|_| group.invalid())?;
                let shared = secret.diffie_hellman(&peer);
                Ok(Zeroizing::new(shared.raw_secret_bytes().to_vec()))
            }
            Inner::Curve25519(secret) => {
                let bytes: [u8; 32] = peer_public.try_into().map_err(|_| group.invalid())?;
                let shared = secret.diffie_hellman(&x25519_dalek::PublicKey::from(bytes));
                if !shared.was_contributory() {
                    return Err(group.invalid());
                }
                Ok(Zeroizing::new(shared.as_bytes().to_vec()))
            }
        }
    }

    /// Builds a private value from fixed bytes (test vectors).
    #[cfg(test)]
    pub(crate) fn from_fixed(group: DhGroup, secret: &[u8]) -> Self {
        let inner = match group {
            DhGroup::Modp2048 => Inner::modp(secret.try_into().unwrap()),
            DhGroup::Ecp256 => Inner::Ecp256(p256::SecretKey::from_slice(secret).unwrap()),
            DhGroup::Curve25519 => Inner::Curve25519(x25519_dalek::StaticSecret::from(
                <[u8; 32]>::try_from(secret).unwrap(),
            )),
        };
        Self::new(inner)
    }
}

#[cfg(test)]
mod tests {
    use hex_literal::hex;
    use rand::SeedableRng;
    use rand::rngs::ChaCha20Rng;

    use super::*;

    fn rng() -> ChaCha20Rng {
        ChaCha20Rng::seed_from_u64(7)
    }

    // RFC 7748 §6.1.
    const ALICE_PRIV: [u8; 32] =
        hex!("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
    const ALICE_PUB: [u8; 32] =
        hex!("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
    const BOB_PRIV: [u8; 32] =
        hex!("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
    const BOB_PUB: [u8; 32] =
        hex!("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
    const X25519_SHARED: [u8; 32] =
        hex!("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");

    #[test]
    fn rfc7748_x25519() {
        let alice = DhPrivate::from_fixed(DhGroup::Curve25519, &ALICE_PRIV);
        let bob = DhPrivate::from_fixed(DhGroup::Curve25519, &BOB_PRIV);
        assert_eq!(alice.public_value(), ALICE_PUB);
        assert_eq!(bob.public_value(), BOB_PUB);
        assert_eq!(alice.agree(&BOB_PUB).unwrap().as_slice(), X25519_SHARED);
        assert_eq!(bob.agree(&ALICE_PUB).unwrap().as_slice(), X25519_SHARED);
    }

    #[test]
    fn x25519_rejects_low_order_and_bad_length() {
        let k = DhGroup::Curve25519.generate(&mut rng());
        let invalid = Err(CryptoError::InvalidPeerPublicValue {
            group: DhGroup::Curve25519,
        });
        assert_eq!(k.agree(&[0u8; 32]), invalid);
        let mut one = [0u8; 32];
        one[0] = 1; // u = 1 has order 4
        assert_eq!(k.agree(&one), invalid);
        assert_eq!(k.agree(&[9u8; 31]), invalid);
    }

    // RFC 5903 §8.1 (256-bit random ECP group).
    const ECP_I: [u8; 32] =
        hex!("C88F01F510D9AC3F70A292DAA2316DE544E9AAB8AFE84049C62A9C57862D1433");
    const ECP_GI: [u8; 64] = hex!(
        "DAD0B65394221CF9B051E1FECA5787D098DFE637FC90B9EF945D0C3772581180"
        "5271A0461CDB8252D61F1C456FA3E59AB1F45B33ACCF5F58389E0577B8990BB3"
    );
    const ECP_R: [u8; 32] =
        hex!("C6EF9C5D78AE012A011164ACB397CE2088685D8F06BF9BE0B283AB46476BEE53");
    const ECP_GR: [u8; 64] = hex!(
        "D12DFB5289C8D4F81208B70270398C342296970A0BCCB74C736FC7554494BF63"
        "56FBF3CA366CC23E8157854C13C58D6AAC23F046ADA30F8353E74F33039872AB"
    );
    const ECP_GIR_X: [u8; 32] =
        hex!("D6840F6B42F6EDAFD13116E0E12565202FEF8E9ECE7DCE03812464D04B9442DE");

    #[test]
    fn rfc5903_ecp256() {
        let i = DhPrivate::from_fixed(DhGroup::Ecp256, &ECP_I);
        let r = DhPrivate::from_fixed(DhGroup::Ecp256, &ECP_R);
        assert_eq!(i.public_value(), ECP_GI);
        assert_eq!(r.public_value(), ECP_GR);
        assert_eq!(i.agree(&ECP_GR).unwrap().as_slice(), ECP_GIR_X);
        assert_eq!(r.agree(&ECP_GI).unwrap().as_slice(), ECP_GIR_X);
    }

    #[test]
    fn ecp256_rejects_points_off_the_curve() {
        let k = DhGroup::Ecp256.generate(&mut rng());
        let invalid = Err(CryptoError::InvalidPeerPublicValue {
            group: DhGroup::Ecp256,
        });
        let mut off = ECP_GR;
        off[63] ^= 1;
        assert_eq!(k.agree(&off), invalid);
        assert_eq!(k.agree(&[0u8; 64]), invalid);
        assert_eq!(k.agree(&ECP_GR[..63]), invalid);
        assert_eq!(k.agree(&[ECP_GR.as_slice(), &[0]].concat()), invalid);
    }

    #[test]
    fn generated_keys_agree_in_every_group() {
        let mut rng = rng();
        for group in [DhGroup::Modp2048, DhGroup::Ecp256, DhGroup::Curve25519] {
            let a = group.generate(&mut rng);
            let b = group.generate(&mut rng);
            assert_eq!(a.group(), group);
            let (pa, pb) = (a.public_value(), b.public_value());
            assert_eq!(pa.len(), group.public_len());
            assert_ne!(pa, pb);
            let s1 = a.agree(&pb).unwrap();
            let s2 = b.agree(&pa).unwrap();
            assert_eq!(s1, s2, "{}", group.name());
            assert_eq!(DhGroup::from_id(group.id()), Some(group));
        }
    }

    #[test]
    fn modp_public_value_is_g_to_the_x() {
        // All-zero secret bytes give x = 2^255 (the forced top bit alone), so g^x is 2
        // squared 255 times; this pins the exponent encoding and the output padding.
        let k = DhPrivate::from_fixed(DhGroup::Modp2048, &[0u8; 32]);
        let params = MODP2048_PARAMS;
        let mut acc = FixedMontyForm::new(&U2048::from_u8(2), &params);
        for _ in 0..255 {
            acc = acc.square();
        }
        let expected = acc.retrieve().to_be_bytes();
        assert_eq!(k.public_value(), expected.as_ref());
        // g^x for x = 2^255 + 1 is twice that.
        let mut one = [0u8; 32];
        one[31] = 1;
        let k1 = DhPrivate::from_fixed(DhGroup::Modp2048, &one);
        let doubled = acc.double().retrieve().to_be_bytes();
        assert_eq!(k1.public_value(), doubled.as_ref());
    }

    #[test]
    fn modp_rejects_trivial_peer_values() {
        let k = DhGroup::Modp2048.generate(&mut rng());
        let invalid = Err(CryptoError::InvalidPeerPublicValue {
            group: DhGroup::Modp2048,
        });
        let p = MODP2048_P.as_ref();
        let be = |v: U2048| v.to_be_bytes().as_ref().to_vec();
        for bad in [
            U2048::ZERO,
            U2048::ONE,
            p.wrapping_sub(&U2048::ONE),
            *p,
            p.wrapping_add(&U2048::ONE),
            U2048::MAX,
        ] {
            assert_eq!(k.agree(&be(bad)), invalid);
        }
        assert_eq!(k.agree(&[2u8; 255]), invalid);
        // 2 and p-2 are in range.
        assert!(k.agree(&be(U2048::from_u8(2))).is_ok());
        assert!(k.agree(&be(p.wrapping_sub(&U2048::from_u8(2)))).is_ok());
    }

    #[test]
    fn debug_does_not_print_secrets() {
        let k = DhPrivate::from_fixed(DhGroup::Curve25519, &ALICE_PRIV);
        assert_eq!(format!("{k:?}"), "DhPrivate { group: Curve25519, .. }");
    }
}
