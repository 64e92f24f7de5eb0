//! Encrypted (SK) payload protection: AES-CBC + HMAC (RFC 7296 §3.14) and AES-GCM-16
//! (RFC 5282).

use aes_gcm::aead::consts::{U12, U16};
use aes_gcm::{AeadCore, AeadInOut, AesGcm, KeyInit};
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, BlockSizeUser, KeyIvInit};
use zeroize::Zeroizing;

use super::keys::check_integ;
use super::{CryptoError, Encr, Integ};

/// AES block size (CBC IV length and alignment).
const AES_BLOCK: usize = 16;
/// Explicit IV length of AES-GCM in IKE (RFC 5282 §3.1).
const GCM_IV_LEN: usize = 8;
/// ICV length of ENCR_AES_GCM_16.
const GCM_TAG_LEN: usize = 16;

type Gcm<A> = AesGcm<A, U12>;

/// Keys and transforms protecting one direction of SK payloads. `Debug` shows only the
/// transform names.
pub struct SkCrypto {
    mode: Mode,
}

enum Mode {
    Cbc {
        key_bits: u16,
        enc_key: Zeroizing<Vec<u8>>,
        integ: Integ,
        integ_key: Zeroizing<Vec<u8>>,
    },
    Gcm {
        key_bits: u16,
        key: Zeroizing<Vec<u8>>,
        salt: Zeroizing<[u8; 4]>,
    },
}

impl std::fmt::Debug for SkCrypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("SkCrypto");
        match &self.mode {
            Mode::Cbc {
                key_bits, integ, ..
            } => d
                .field(
                    "encr",
                    &Encr::AesCbc {
                        key_bits: *key_bits,
                    },
                )
                .field("integ", integ),
            Mode::Gcm { key_bits, .. } => d.field(
                "encr",
                &Encr::AesGcm16 {
                    key_bits: *key_bits,
                },
            ),
        };
        d.finish_non_exhaustive()
    }
}

fn key_length(what: &'static str, expected: usize, key: &[u8]) -> Result<(), CryptoError> {
    if key.len() == expected {
        Ok(())
    } else {
        Err(CryptoError::KeyLength {
            what,
            expected,
            actual: key.len(),
        })
    }
}

/// Runs `$body` with `$C` bound to the AES type for `$bits` (128/192/256).
macro_rules! with_aes {
    ($bits:expr, $C:ident => $body:expr) => {
        match $bits {
            128 => {
                type $C = aes::Aes128;
                $body
            }
            192 => {
                type $C = aes::Aes192;
                $body
            }
            _ => {
                type $C = aes::Aes256;
                $body
            }
        }
    };
}

impl SkCrypto {
    /// Builds the protection for one direction. `enc_key` is SK_e (AES key, plus the 4-byte
    /// salt for GCM); `integ_key` is SK_a (ignored and expected empty for AEAD).
    pub fn new(
        encr: Encr,
        integ: Option<Integ>,
        enc_key: &[u8],
        integ_key: &[u8],
    ) -> Result<Self, CryptoError> {
        let key_bits = encr.key_bits();
        if !matches!(key_bits, 128 | 192 | 256) {
            return Err(CryptoError::KeyLength {
                what: "AES",
                expected: 32,
                actual: usize::from(key_bits / 8),
            });
        }
        check_integ(encr, integ)?;
        key_length("SK_e", encr.key_material_len(), enc_key)?;
        let mode = match (encr, integ) {
            (Encr::AesCbc { .. }, Some(integ)) => {
                key_length("SK_a", integ.key_len(), integ_key)?;
                Mode::Cbc {
                    key_bits,
                    enc_key: Zeroizing::new(enc_key.to_vec()),
                    integ,
                    integ_key: Zeroizing::new(integ_key.to_vec()),
                }
            }
            _ => {
                key_length("SK_a", 0, integ_key)?;
                let salt_err = || CryptoError::KeyLength {
                    what: "SK_e",
                    expected: encr.key_material_len(),
                    actual: enc_key.len(),
                };
                let (key, salt) = enc_key
                    .split_at_checked(encr.key_len())
                    .ok_or_else(salt_err)?;
                let salt_arr: Zeroizing<[u8; Encr::GCM_SALT_LEN]> =
                    Zeroizing::new(salt.try_into().map_err(|_| salt_err())?);
                Mode::Gcm {
                    key_bits,
                    key: Zeroizing::new(key.to_vec()),
                    salt: salt_arr,
                }
            }
        };
        Ok(Self { mode })
    }

    /// Length of the IV at the start of the SK payload body.
    pub fn iv_len(&self) -> usize {
        match self.mode {
            Mode::Cbc { .. } => AES_BLOCK,
            Mode::Gcm { .. } => GCM_IV_LEN,
        }
    }

    /// Length of the ICV at the end of the SK payload body.
    pub fn icv_len(&self) -> usize {
        match &self.mode {
            Mode::Cbc { integ, .. } => integ.icv_len(),
            Mode::Gcm { .. } => GCM_TAG_LEN,
        }
    }

    /// Length of the padded plaintext (inner payloads, padding, pad-length octet).
    fn padded_len(&self, plaintext_len: usize) -> usize {
        let with_pad_len = plaintext_len + 1;
        match self.mode {
            Mode::Cbc { .. } => with_pad_len.next_multiple_of(AES_BLOCK),
            // RFC 5282 §3.2: GCM needs no alignment; the pad-length octet is still there.
            Mode::Gcm { .. } => with_pad_len,
        }
    }

    /// Length of the SK payload body (IV ‖ encrypted padded plaintext ‖ ICV) for a
    /// plaintext of `plaintext_len` bytes.
    pub fn sealed_len(&self, plaintext_len: usize) -> usize {
        self.iv_len() + self.padded_len(plaintext_len) + self.icv_len()
    }

    /// Encrypts and authenticates `plaintext`, returning IV ‖ ciphertext ‖ ICV.
    ///
    /// `aad` is every message byte before the IV (IKE header and SK payload header, with the
    /// final lengths, i.e. for a body of [`Self::sealed_len`] bytes); `iv` must be
    /// [`Self::iv_len`] fresh random bytes. Padding bytes are zero.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8], iv: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if iv.len() != self.iv_len() {
            return Err(CryptoError::IvLength {
                expected: self.iv_len(),
                actual: iv.len(),
            });
        }
        let padded_len = self.padded_len(plaintext.len());
        let pad_len = padded_len - plaintext.len() - 1; // ok: padded_len > plaintext.len()
        let mut out = Vec::with_capacity(self.sealed_len(plaintext.len()));
        out.extend_from_slice(iv);
        out.extend_from_slice(plaintext);
        out.resize(out.len() + pad_len, 0);
        // pad_len < AES block size, so it fits the octet.
        out.push(u8::try_from(pad_len).map_err(|_| CryptoError::BadPadding)?);
        let (_, body) = out.split_at_mut(iv.len());
        match &self.mode {
            Mode::Cbc {
                key_bits,
                enc_key,
                integ,
                integ_key,
            } => {
                with_aes!(*key_bits, C => cbc_encrypt::<C>(enc_key, iv, body))?;
                let icv = integ.compute_parts(integ_key, &[aad, &out]);
                out.extend_from_slice(&icv);
            }
            Mode::Gcm {
                key_bits,
                key,
                salt,
            } => {
                let nonce = gcm_nonce(salt, iv)?;
                let tag = with_aes!(*key_bits, C => gcm_encrypt::<C>(key, &nonce, aad, body))?;
                out.extend_from_slice(&tag);
            }
        }
        Ok(out)
    }

    /// Verifies and decrypts an SK payload body (IV ‖ ciphertext ‖ ICV) with `aad` = every
    /// message byte before the IV. The ICV is checked (in constant time) before decryption;
    /// the returned plaintext has the padding and pad-length octet removed.
    pub fn open(&self, aad: &[u8], body: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let (iv_len, icv_len) = (self.iv_len(), self.icv_len());
        let invalid = CryptoError::InvalidLength {
            what: "SK payload body",
            len: body.len(),
        };
        let ct_len = body
            .len()
            .checked_sub(iv_len + icv_len)
            .filter(|&n| n > 0)
            .ok_or_else(|| invalid.clone())?;
        let (iv, rest) = body
            .split_at_checked(iv_len)
            .ok_or_else(|| invalid.clone())?;
        let (ciphertext, icv) = rest
            .split_at_checked(ct_len)
            .ok_or_else(|| invalid.clone())?;
        let mut plain = Zeroizing::new(ciphertext.to_vec());
        match &self.mode {
            Mode::Cbc {
                key_bits,
                enc_key,
                integ,
                integ_key,
            } => {
                if ct_len % AES_BLOCK != 0 {
                    return Err(invalid);
                }
                let signed = body.get(..iv_len + ct_len).ok_or(invalid)?;
                if !integ.verify_parts(integ_key, &[aad, signed], icv) {
                    return Err(CryptoError::IntegrityCheckFailed);
                }
                with_aes!(*key_bits, C => cbc_decrypt::<C>(enc_key, iv, &mut plain))?;
            }
            Mode::Gcm {
                key_bits,
                key,
                salt,
            } => {
                let nonce = gcm_nonce(salt, iv)?;
                with_aes!(*key_bits, C => gcm_decrypt::<C>(key, &nonce, aad, &mut plain, icv))?;
            }
        }
        let (&pad_len, _) = plain.split_last().ok_or(CryptoError::BadPadding)?;
        let keep = plain
            .len()
            .checked_sub(usize::from(pad_len) + 1)
            .ok_or(CryptoError::BadPadding)?;
        plain.truncate(keep);
        Ok(plain)
    }
}

/// GCM nonce = salt ‖ IV (RFC 5282 §4 / RFC 4106 §4).
fn gcm_nonce(salt: &[u8; Encr::GCM_SALT_LEN], iv: &[u8]) -> Result<[u8; 12], CryptoError> {
    let iv: &[u8; GCM_IV_LEN] = iv.try_into().map_err(|_| CryptoError::IvLength {
        expected: GCM_IV_LEN,
        actual: iv.len(),
    })?;
    let mut nonce = [0u8; 12];
    for (n, b) in nonce.iter_mut().zip(salt.iter().chain(iv)) {
        *n = *b;
    }
    Ok(nonce)
}

fn cbc_encrypt<C>(key: &[u8], iv: &[u8], buf: &mut [u8]) -> Result<(), CryptoError>
where
    C: BlockSizeUser + cbc::cipher::BlockCipherEncrypt + cbc::cipher::KeyInit,
{
    let enc = cbc::Encryptor::<C>::new_from_slices(key, iv).map_err(|_| key_err(key))?;
    let len = buf.len();
    enc.encrypt_padded::<NoPadding>(buf, len)
        .map_err(|_| CryptoError::InvalidLength {
            what: "CBC plaintext",
            len,
        })?;
    Ok(())
}

fn cbc_decrypt<C>(key: &[u8], iv: &[u8], buf: &mut [u8]) -> Result<(), CryptoError>
where
    C: BlockSizeUser + cbc::cipher::BlockCipherDecrypt + cbc::cipher::KeyInit,
{
    let dec = cbc::Decryptor::<C>::new_from_slices(key, iv).map_err(|_| key_err(key))?;
    let len = buf.len();
    dec.decrypt_padded::<NoPadding>(buf)
        .map_err(|_| CryptoError::InvalidLength {
            what: "CBC ciphertext",
            len,
        })?;
    Ok(())
}

fn gcm_encrypt<C>(
    key: &[u8],
    nonce: &[u8; 12],
    aad: &[u8],
    buf: &mut [u8],
) -> Result<[u8; GCM_TAG_LEN], CryptoError>
where
    Gcm<C>: KeyInit + AeadInOut + AeadCore<NonceSize = U12, TagSize = U16>,
{
    let cipher = Gcm::<C>::new_from_slice(key).map_err(|_| key_err(key))?;
    let tag = cipher
        .encrypt_inout_detached(&(*nonce).into(), aad, buf.into())
        .map_err(|_| CryptoError::EncryptFailed)?;
    Ok(tag.into())
}

fn gcm_decrypt<C>(
    key: &[u8],
    nonce: &[u8; 12],
    aad: &[u8],
    buf: &mut [u8],
    tag: &[u8],
) -> Result<(), CryptoError>
where
    Gcm<C>: KeyInit + AeadInOut + AeadCore<NonceSize = U12, TagSize = U16>,
{
    let cipher = Gcm::<C>::new_from_slice(key).map_err(|_| key_err(key))?;
    let tag = tag
        .try_into()
        .map_err(|_| CryptoError::IntegrityCheckFailed)?;
    cipher
        .decrypt_inout_detached(&(*nonce).into(), aad, buf.into(), tag)
        .map_err(|_| CryptoError::IntegrityCheckFailed)
}

fn key_err(key: &[u8]) -> CryptoError {
    CryptoError::KeyLength {
        what: "AES",
        expected: 32,
        actual: key.len(),
    }
}

#[cfg(test)]
mod tests {
    use aes::cipher::{BlockCipherEncrypt, KeyInit as _};
    use hex_literal::hex;

    use super::*;

    const AAD: &[u8] = b"IKE header + SK payload header...";

    fn suites() -> Vec<(Encr, Option<Integ>)> {
        let mut v = Vec::new();
        for key_bits in [128, 192, 256] {
            v.push((Encr::AesGcm16 { key_bits }, None));
            for integ in [
                Integ::HmacSha1_96,
                Integ::HmacSha256_128,
                Integ::HmacSha384_192,
                Integ::HmacSha512_256,
            ] {
                v.push((Encr::AesCbc { key_bits }, Some(integ)));
            }
        }
        v
    }

    fn make(encr: Encr, integ: Option<Integ>) -> SkCrypto {
        let ek: Vec<u8> = (0..encr.key_material_len()).map(|i| i as u8).collect();
        let ak: Vec<u8> = (0..integ.map_or(0, Integ::key_len))
            .map(|i| 0x80 | i as u8)
            .collect();
        SkCrypto::new(encr, integ, &ek, &ak).unwrap()
    }

    #[test]
    fn seal_open_round_trip_every_suite_and_length() {
        for (encr, integ) in suites() {
            let sk = make(encr, integ);
            let iv = vec![0x5a; sk.iv_len()];
            for len in [0, 1, 15, 16, 17, 100] {
                let pt: Vec<u8> = (0..len).map(|i| i as u8).collect();
                let body = sk.seal(AAD, &pt, &iv).unwrap();
                assert_eq!(body.len(), sk.sealed_len(len), "{} {len}", encr.name());
                assert_eq!(&body[..sk.iv_len()], iv.as_slice());
                if !encr.is_aead() {
                    assert_eq!((body.len() - sk.iv_len() - sk.icv_len()) % 16, 0);
                }
                assert_eq!(sk.open(AAD, &body).unwrap().as_slice(), pt);
            }
        }
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        for (encr, integ) in suites() {
            let sk = make(encr, integ);
            let iv = vec![3; sk.iv_len()];
            let body = sk.seal(AAD, b"inner payloads", &iv).unwrap();
            for i in 0..AAD.len() {
                let mut aad = AAD.to_vec();
                aad[i] ^= 0x01;
                assert_eq!(sk.open(&aad, &body), Err(CryptoError::IntegrityCheckFailed));
            }
            for i in 0..body.len() {
                let mut b = body.clone();
                b[i] ^= 0x80;
                assert_eq!(
                    sk.open(AAD, &b),
                    Err(CryptoError::IntegrityCheckFailed),
                    "{} byte {i}",
                    encr.name()
                );
            }
        }
    }

    #[test]
    fn short_or_misaligned_bodies_are_rejected() {
        let sk = make(Encr::AesCbc { key_bits: 128 }, Some(Integ::HmacSha256_128));
        let body = sk.seal(AAD, b"x", &[0; 16]).unwrap();
        assert!(matches!(
            sk.open(AAD, &body[..32]),
            Err(CryptoError::InvalidLength { .. })
        ));
        let mut cut = body.clone();
        cut.remove(20);
        assert!(matches!(
            sk.open(AAD, &cut),
            Err(CryptoError::InvalidLength { .. })
        ));
        assert!(matches!(
            sk.open(AAD, &[]),
            Err(CryptoError::InvalidLength { .. })
        ));
        assert_eq!(
            sk.seal(AAD, b"x", &[0; 8]),
            Err(CryptoError::IvLength {
                expected: 16,
                actual: 8
            })
        );
    }

    // The CBC layout is IV ‖ AES-CBC(payload ‖ zero padding ‖ pad length) ‖ ICV over
    // aad ‖ IV ‖ ciphertext; checked against the raw AES block function.
    #[test]
    fn cbc_layout_matches_raw_aes() {
        let (ek, ak) = ([0x11u8; 16], [0x22u8; 32]);
        let integ = Integ::HmacSha256_128;
        let sk = SkCrypto::new(Encr::AesCbc { key_bits: 128 }, Some(integ), &ek, &ak).unwrap();
        let iv = [0x33u8; 16];
        let body = sk.seal(AAD, b"hello", &iv).unwrap();
        assert_eq!(body.len(), 16 + 16 + 16);
        let mut block = [0u8; 16];
        block[..5].copy_from_slice(b"hello");
        block[15] = 10; // 10 padding bytes, then the pad-length octet
        for (b, v) in block.iter_mut().zip(iv) {
            *b ^= v;
        }
        let mut block = block.into();
        aes::Aes128::new(&ek.into()).encrypt_block(&mut block);
        assert_eq!(&body[16..32], block.as_slice());
        assert_eq!(
            &body[32..],
            integ.compute_parts(&ak, &[AAD, &body[..32]]).as_slice()
        );
    }

    fn cbc_open_with_plaintext_block(last_byte: u8) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        // Build a body by hand whose decrypted block ends in `last_byte`.
        let (ek, ak) = ([0x44u8; 16], [0x55u8; 20]);
        let integ = Integ::HmacSha1_96;
        let sk = SkCrypto::new(Encr::AesCbc { key_bits: 128 }, Some(integ), &ek, &ak).unwrap();
        let iv = [0u8; 16];
        let mut plain = [7u8; 16];
        plain[15] = last_byte;
        // With a zero IV the first CBC block is the raw AES encryption of the plaintext.
        let mut block: aes::Block = plain.into();
        aes::Aes128::new(&ek.into()).encrypt_block(&mut block);
        let mut body = iv.to_vec();
        body.extend_from_slice(&block);
        let icv = integ.compute_parts(&ak, &[AAD, &body]);
        body.extend_from_slice(&icv);
        sk.open(AAD, &body)
    }

    #[test]
    fn pad_length_is_checked() {
        assert_eq!(cbc_open_with_plaintext_block(15).unwrap().as_slice(), b"");
        assert_eq!(cbc_open_with_plaintext_block(14).unwrap().as_slice(), [7u8]);
        assert_eq!(
            cbc_open_with_plaintext_block(16),
            Err(CryptoError::BadPadding)
        );
        assert_eq!(
            cbc_open_with_plaintext_block(255),
            Err(CryptoError::BadPadding)
        );
    }

    // McGrew & Viega GCM test case 4 (AES-128, 60-byte plaintext, 20-byte AAD) in the RFC
    // 4106/5282 framing: salt = first 4 nonce bytes (appended to the key material), IV = last
    // 8. The decrypted last byte 0x39 (57) is taken as pad length, leaving 60 - 58 = 2 bytes.
    #[test]
    fn gcm_known_answer_through_open() {
        let key = hex!("feffe9928665731c6d6a8f9467308308");
        let salt = hex!("cafebabe");
        let iv = hex!("facedbaddecaf888");
        let aad = hex!("feedfacedeadbeeffeedfacedeadbeefabaddad2");
        let ct = hex!(
            "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
            "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091"
        );
        let tag = hex!("5bc94fbc3221a5db94fae95ae7121a47");
        let sk = SkCrypto::new(
            Encr::AesGcm16 { key_bits: 128 },
            None,
            &[key.as_slice(), &salt].concat(),
            &[],
        )
        .unwrap();
        let body = [iv.as_slice(), &ct, &tag].concat();
        assert_eq!(sk.open(&aad, &body).unwrap().as_slice(), hex!("d931"));
        let mut bad = body.clone();
        bad[body.len() - 1] ^= 1;
        assert_eq!(sk.open(&aad, &bad), Err(CryptoError::IntegrityCheckFailed));
    }

    #[test]
    fn constructor_checks_keys_and_transforms() {
        let cbc = Encr::AesCbc { key_bits: 256 };
        let gcm = Encr::AesGcm16 { key_bits: 256 };
        let sha = Some(Integ::HmacSha256_128);
        assert!(matches!(
            SkCrypto::new(cbc, None, &[0; 32], &[]),
            Err(CryptoError::IntegMismatch { .. })
        ));
        assert!(matches!(
            SkCrypto::new(gcm, sha, &[0; 36], &[0; 32]),
            Err(CryptoError::IntegMismatch { .. })
        ));
        assert_eq!(
            SkCrypto::new(cbc, sha, &[0; 16], &[0; 32]).unwrap_err(),
            CryptoError::KeyLength {
                what: "SK_e",
                expected: 32,
                actual: 16
            }
        );
        assert!(matches!(
            SkCrypto::new(cbc, sha, &[0; 32], &[0; 20]),
            Err(CryptoError::KeyLength { what: "SK_a", .. })
        ));
        assert!(matches!(
            SkCrypto::new(gcm, None, &[0; 32], &[]),
            Err(CryptoError::KeyLength { what: "SK_e", .. })
        ));
        assert!(matches!(
            SkCrypto::new(Encr::AesCbc { key_bits: 100 }, sha, &[0; 12], &[0; 32]),
            Err(CryptoError::KeyLength { .. })
        ));
        let sk = SkCrypto::new(gcm, None, &[0; 36], &[]).unwrap();
        assert_eq!(
            (sk.iv_len(), sk.icv_len(), sk.sealed_len(10)),
            (8, 16, 8 + 11 + 16)
        );
        assert_eq!(
            format!("{sk:?}"),
            "SkCrypto { encr: AesGcm16 { key_bits: 256 }, .. }"
        );
    }
}
