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
                let (key, salt) = enc_key.split_at(encr.key_len());
                let mut salt_arr = Zeroizing::new([0u8; Encr::GCM_SALT_LEN]);
                salt_arr.copy_from_slice(salt);
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
        let pad_len = padded_len - plaintext.len() - 1;
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
                let nonce = gcm_nonce(salt, iv);
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
        let (iv, rest) = body.split_at(iv_len);
        let (ciphertext, icv) = rest.split_at(ct_len);
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
                let nonce = gcm_nonce(salt, iv);
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
fn gcm_nonce(salt: &[u8; Encr::GCM_SALT_LEN], iv: &[u8]) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    let (s, i) = nonce.split_at_mut(Encr::GCM_SALT_LEN);
    s.copy_from_slice(salt);
    i.copy_from_slice(iv);
    nonce
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
