//! IKE SA key schedule (RFC 7296 §2.14, §2.18) and CHILD_SA KEYMAT (§2.17).

use zeroize::Zeroizing;

use super::{CryptoError, Encr, Integ, Prf, redacted};

/// The seven IKE SA keys. `Debug` prints nothing secret.
pub struct IkeKeys {
    /// Key for deriving CHILD_SA keys and the next SKEYSEED.
    pub sk_d: Zeroizing<Vec<u8>>,
    /// Integrity key, initiator → responder (empty for AEAD).
    pub sk_ai: Zeroizing<Vec<u8>>,
    /// Integrity key, responder → initiator (empty for AEAD).
    pub sk_ar: Zeroizing<Vec<u8>>,
    /// Encryption key material, initiator → responder (includes the salt for GCM).
    pub sk_ei: Zeroizing<Vec<u8>>,
    /// Encryption key material, responder → initiator (includes the salt for GCM).
    pub sk_er: Zeroizing<Vec<u8>>,
    /// Key for the initiator's AUTH payload.
    pub sk_pi: Zeroizing<Vec<u8>>,
    /// Key for the responder's AUTH payload.
    pub sk_pr: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for IkeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        redacted(f, "IkeKeys")
    }
}

/// CHILD_SA keys for one SA pair; the `_i` keys protect initiator → responder traffic.
/// Encryption keys include the 4-byte salt for GCM (what the kernel expects). `Debug` prints
/// nothing secret.
pub struct ChildKeys {
    pub encr_i: Zeroizing<Vec<u8>>,
    pub integ_i: Zeroizing<Vec<u8>>,
    pub encr_r: Zeroizing<Vec<u8>>,
    pub integ_r: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for ChildKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        redacted(f, "ChildKeys")
    }
}

/// AEAD ciphers take no integrity transform; the others need one.
pub(crate) fn check_integ(encr: Encr, integ: Option<Integ>) -> Result<usize, CryptoError> {
    match (encr.is_aead(), integ) {
        (true, None) => Ok(0),
        (false, Some(i)) => Ok(i.key_len()),
        (_, i) => Err(CryptoError::IntegMismatch {
            encr: encr.name(),
            integ: i.map_or("none", Integ::name),
        }),
    }
}

/// Splits `material` into consecutive pieces of the given lengths.
fn split<const N: usize>(material: &[u8], lens: [usize; N]) -> [Zeroizing<Vec<u8>>; N] {
    let mut rest = material;
    lens.map(|len| {
        let (head, tail) = rest.split_at(len.min(rest.len()));
        rest = tail;
        Zeroizing::new(head.to_vec())
    })
}

/// `SKEYSEED = prf(Ni | Nr, g^ir)` (RFC 7296 §2.14). With HMAC PRFs the whole of Ni | Nr is
/// the key.
pub fn skeyseed(prf: Prf, ni: &[u8], nr: &[u8], shared_secret: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut key = Zeroizing::new(Vec::with_capacity(ni.len() + nr.len()));
    key.extend_from_slice(ni);
    key.extend_from_slice(nr);
    prf.prf(&key, shared_secret)
}

/// SKEYSEED of a rekeyed IKE SA: `prf(SK_d (old), g^ir (new) | Ni | Nr)` (RFC 7296 §2.18),
/// where `prf` is the old IKE SA's PRF.
pub fn skeyseed_rekey(
    prf: Prf,
    old_sk_d: &[u8],
    shared_secret: &[u8],
    ni: &[u8],
    nr: &[u8],
) -> Zeroizing<Vec<u8>> {
    prf.prf_parts(old_sk_d, &[shared_secret, ni, nr])
}

/// `prf+(SKEYSEED, Ni | Nr | SPIi | SPIr)` split into SK_d | SK_ai | SK_ar | SK_ei | SK_er |
/// SK_pi | SK_pr (RFC 7296 §2.14). Used directly after [`skeyseed_rekey`] when rekeying.
#[allow(clippy::too_many_arguments)] // mirrors the RFC formula's inputs
pub fn derive_ike_keys_from_skeyseed(
    prf: Prf,
    encr: Encr,
    integ: Option<Integ>,
    skeyseed: &[u8],
    ni: &[u8],
    nr: &[u8],
    spi_i: &[u8; 8],
    spi_r: &[u8; 8],
) -> Result<IkeKeys, CryptoError> {
    let a = check_integ(encr, integ)?;
    let e = encr.key_material_len();
    let p = prf.key_len();
    let lens = [p, a, a, e, e, p, p];
    let mut seed = Vec::with_capacity(ni.len() + nr.len() + 16);
    for part in [ni, nr, spi_i, spi_r] {
        seed.extend_from_slice(part);
    }
    let material = prf.prf_plus(skeyseed, &seed, lens.iter().sum())?;
    let [sk_d, sk_ai, sk_ar, sk_ei, sk_er, sk_pi, sk_pr] = split(&material, lens);
    Ok(IkeKeys {
        sk_d,
        sk_ai,
        sk_ar,
        sk_ei,
        sk_er,
        sk_pi,
        sk_pr,
    })
}

/// Keys of a new IKE SA from IKE_SA_INIT: SKEYSEED = prf(Ni | Nr, g^ir), then
/// [`derive_ike_keys_from_skeyseed`].
#[allow(clippy::too_many_arguments)] // mirrors the RFC formula's inputs
pub fn derive_ike_keys(
    prf: Prf,
    encr: Encr,
    integ: Option<Integ>,
    ni: &[u8],
    nr: &[u8],
    shared_secret: &[u8],
    spi_i: &[u8; 8],
    spi_r: &[u8; 8],
) -> Result<IkeKeys, CryptoError> {
    let seed = skeyseed(prf, ni, nr, shared_secret);
    derive_ike_keys_from_skeyseed(prf, encr, integ, &seed, ni, nr, spi_i, spi_r)
}

/// CHILD_SA KEYMAT = prf+(SK_d, [g^ir (new)] | Ni | Nr) split into encr_i | integ_i | encr_r |
/// integ_r (RFC 7296 §2.17).
pub fn derive_child_keys(
    prf: Prf,
    sk_d: &[u8],
    ni: &[u8],
    nr: &[u8],
    encr: Encr,
    integ: Option<Integ>,
    dh_shared: Option<&[u8]>,
) -> Result<ChildKeys, CryptoError> {
    let a = check_integ(encr, integ)?;
    let e = encr.key_material_len();
    let lens = [e, a, e, a];
    let dh = dh_shared.unwrap_or_default();
    let mut seed = Zeroizing::new(Vec::with_capacity(dh.len() + ni.len() + nr.len()));
    for part in [dh, ni, nr] {
        seed.extend_from_slice(part);
    }
    let material = prf.prf_plus(sk_d, &seed, lens.iter().sum())?;
    let [encr_i, integ_i, encr_r, integ_r] = split(&material, lens);
    Ok(ChildKeys {
        encr_i,
        integ_i,
        encr_r,
        integ_r,
    })
}
