//! Encryption transforms (transform type 1), shared by IKE (SK payload) and ESP.

use crate::wire::TransformId;

/// Encryption transform with its key length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encr {
    /// ENCR_AES_CBC (12), RFC 3602; needs an integrity transform.
    AesCbc { key_bits: u16 },
    /// ENCR_AES_GCM_16 (20), RFC 5282 / RFC 4106: AEAD with a 16-byte ICV.
    AesGcm16 { key_bits: u16 },
}

impl Encr {
    /// Salt length of the GCM nonce, taken from the end of the key material (RFC 5282 §7.1).
    pub(crate) const GCM_SALT_LEN: usize = 4;

    /// The transform with IANA ID `id` and Key Length attribute `key_bits` (required for
    /// AES; 128, 192 or 256).
    pub fn from_id(id: u16, key_bits: Option<u16>) -> Option<Self> {
        let key_bits = key_bits.filter(|b| matches!(b, 128 | 192 | 256))?;
        match TransformId(id) {
            TransformId::ENCR_AES_CBC => Some(Self::AesCbc { key_bits }),
            TransformId::ENCR_AES_GCM_16 => Some(Self::AesGcm16 { key_bits }),
            _ => None,
        }
    }

    /// IANA transform ID.
    pub fn id(self) -> u16 {
        match self {
            Self::AesCbc { .. } => TransformId::ENCR_AES_CBC,
            Self::AesGcm16 { .. } => TransformId::ENCR_AES_GCM_16,
        }
        .0
    }

    /// Key length in bits (the Key Length attribute value).
    pub fn key_bits(self) -> u16 {
        match self {
            Self::AesCbc { key_bits } | Self::AesGcm16 { key_bits } => key_bits,
        }
    }

    /// AES key length in bytes (without any salt).
    pub(crate) fn key_len(self) -> usize {
        usize::from(self.key_bits() / 8)
    }

    /// Whether this is a combined-mode (AEAD) cipher that needs no integrity transform.
    pub fn is_aead(self) -> bool {
        matches!(self, Self::AesGcm16 { .. })
    }

    /// Bytes of key material taken from prf+ for this transform: the key, plus the 4-byte
    /// salt for GCM (RFC 5282 §7.1, RFC 4106 §8.1). This is also what the kernel expects
    /// for `rfc4106(gcm(aes))` (key ‖ salt).
    pub fn key_material_len(self) -> usize {
        match self {
            Self::AesCbc { .. } => self.key_len(),
            Self::AesGcm16 { .. } => self.key_len() + Self::GCM_SALT_LEN,
        }
    }

    /// strongSwan-style name, e.g. `AES_CBC_256`, `AES_GCM_16_128`.
    pub fn name(self) -> &'static str {
        match self {
            Self::AesCbc { key_bits: 128 } => "AES_CBC_128",
            Self::AesCbc { key_bits: 192 } => "AES_CBC_192",
            Self::AesCbc { key_bits: 256 } => "AES_CBC_256",
            Self::AesCbc { .. } => "AES_CBC",
            Self::AesGcm16 { key_bits: 128 } => "AES_GCM_16_128",
            Self::AesGcm16 { key_bits: 192 } => "AES_GCM_16_192",
            Self::AesGcm16 { key_bits: 256 } => "AES_GCM_16_256",
            Self::AesGcm16 { .. } => "AES_GCM_16",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_id_requires_a_valid_key_length() {
        assert_eq!(
            Encr::from_id(12, Some(128)),
            Some(Encr::AesCbc { key_bits: 128 })
        );
        assert_eq!(
            Encr::from_id(20, Some(256)),
            Some(Encr::AesGcm16 { key_bits: 256 })
        );
        assert_eq!(Encr::from_id(12, None), None);
        assert_eq!(Encr::from_id(20, Some(64)), None);
        assert_eq!(Encr::from_id(3, Some(128)), None);
    }

    #[test]
    fn key_material_includes_gcm_salt() {
        assert_eq!(Encr::AesCbc { key_bits: 256 }.key_material_len(), 32);
        assert_eq!(Encr::AesGcm16 { key_bits: 128 }.key_material_len(), 20);
        assert_eq!(Encr::AesGcm16 { key_bits: 256 }.key_material_len(), 36);
        assert_eq!(Encr::AesGcm16 { key_bits: 128 }.name(), "AES_GCM_16_128");
        assert_eq!(Encr::AesCbc { key_bits: 256 }.name(), "AES_CBC_256");
    }
}
