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
        let (head, tail) = rest.split_at(len.min(rest.len())); // ok: clamped to the length
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
/// integ_r (RFC 7296 §2.17). `encr` is `None` for AH: its KEYMAT is the two integrity keys
/// only (the encryption keys come back empty).
pub fn derive_child_keys(
    prf: Prf,
    sk_d: &[u8],
    ni: &[u8],
    nr: &[u8],
    encr: Option<Encr>,
    integ: Option<Integ>,
    dh_shared: Option<&[u8]>,
) -> Result<ChildKeys, CryptoError> {
    let (e, a) = match (encr, integ) {
        (Some(encr), integ) => (encr.key_material_len(), check_integ(encr, integ)?),
        (None, Some(i)) => (0, i.key_len()),
        (None, None) => {
            return Err(CryptoError::IntegMismatch {
                encr: "none",
                integ: "none",
            });
        }
    };
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

#[cfg(test)]
mod tests {
    use hex_literal::hex;

    use super::*;

    // NIST CAVP SP 800-135 IKEv2 KDF, [SHA-1], g^ir 256 bits, Ni/Nr 64 bits, DKM and child DKM
    // 1056 bits, COUNT = 0 (as shipped in libreswan programs/cavp/test.acvp.ikev2.run).
    const NI: [u8; 8] = hex!("32b50d5f4a3763f3");
    const NR: [u8; 8] = hex!("9206a04b26564cb1");
    const GIR: [u8; 32] = hex!("4b2c1f971981a8ad8d0abeafabf38cf75fc8349c148142465ed9c8b516b8be52");
    const GIR_NEW: [u8; 32] =
        hex!("863f3c9d06efd39d2b907b97f8699e5dd5251ef64a2a176f36ee40c87d4f9330");
    const SPI_I: [u8; 8] = hex!("34c9e7c188868785");
    const SPI_R: [u8; 8] = hex!("3ff77d760d2b2199");
    const SKEYSEED: [u8; 20] = hex!("a9a7b222b59f8f48645f28a1db5b5f5d7479cba7");
    const DKM: [u8; 132] = hex!(
        "a14293677cc80ff8f9cc0eee30d895da9d8f405666e30ef0dfcb63c634a46002a2a63080e514a062"
        "768b76606f9fa5e992204fc5a670bde3f10d6b027113936a5c55b648a194ae587b0088d52204b702"
        "c979fa280870d2ed41efa9c549fd11198af1670b143d384bd275c5f594cf266b05ebadca855e4249"
        "520a441a81157435a7a56cc4"
    );
    const DKM_CHILD: [u8; 132] = hex!(
        "8059e3ee8810e6c3a91bc8bcd2a7a41151b8d0e6ae239c7b38093ad85ef4c5811a8e7b5d1cdabd95"
        "60b2d5e092d1f24e2d4b85eccdf0ad0dc9abd94b51ee71814ca6dbc8bb51b6309f5b9545c7eb35cf"
        "5580b1e521a8fe20754a2d883ba0c2cf285f524aea6545b33106bc03e614296d319d41d4b50b3f51"
        "0b1c0a22f3e664994d234cb4"
    );
    const DKM_CHILD_DH: [u8; 132] = hex!(
        "bb43244c1860ad65ee1e211ffe8bb3661750c8f89cb9f547df7f4fa61d37301628190e38c66232ea"
        "b4b3ab14c400a5197dd3730ed4820a8a10394d51e1c0400052f63ebd36b0e7ef53aaed31eba4a508"
        "0d7d4b5666023a8bbb5ffb7857240f9a05884d1b7d2f933708450b7b3288f1fc863ab49fa901227c"
        "ffc06e27899c7054d56fd74c"
    );
    const SKEYSEED_REKEY: [u8; 20] = hex!("63e81194946ebd05df7df5ebf5d8750056bf1f1d");

    const PRF: Prf = Prf::HmacSha1;
    const CBC128: Encr = Encr::AesCbc { key_bits: 128 };

    fn concat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn cavp_skeyseed() {
        assert_eq!(skeyseed(PRF, &NI, &NR, &GIR).as_slice(), SKEYSEED);
    }

    #[test]
    fn cavp_dkm_via_prf_plus() {
        let seed = concat(&[&NI, &NR, &SPI_I, &SPI_R]);
        assert_eq!(
            PRF.prf_plus(&SKEYSEED, &seed, DKM.len())
                .unwrap()
                .as_slice(),
            DKM
        );
    }

    #[test]
    fn cavp_dkm_split_into_ike_keys() {
        // PRF-HMAC-SHA1 + AES-CBC-128 + HMAC-SHA1-96 needs 20+20+20+16+16+20+20 = 132 bytes,
        // exactly the CAVP DKM length.
        let k = derive_ike_keys(
            PRF,
            CBC128,
            Some(Integ::HmacSha1_96),
            &NI,
            &NR,
            &GIR,
            &SPI_I,
            &SPI_R,
        )
        .unwrap();
        let lens: Vec<usize> = [
            &k.sk_d, &k.sk_ai, &k.sk_ar, &k.sk_ei, &k.sk_er, &k.sk_pi, &k.sk_pr,
        ]
        .iter()
        .map(|x| x.len())
        .collect();
        assert_eq!(lens, [20, 20, 20, 16, 16, 20, 20]);
        let all = concat(&[
            &k.sk_d, &k.sk_ai, &k.sk_ar, &k.sk_ei, &k.sk_er, &k.sk_pi, &k.sk_pr,
        ]);
        assert_eq!(all, DKM);
    }

    #[test]
    fn aead_ike_keys_have_empty_sk_a_and_salted_sk_e() {
        let gcm = Encr::AesGcm16 { key_bits: 128 };
        let k = derive_ike_keys(PRF, gcm, None, &NI, &NR, &GIR, &SPI_I, &SPI_R).unwrap();
        assert!(k.sk_ai.is_empty() && k.sk_ar.is_empty());
        assert_eq!(k.sk_ei.len(), 20);
        let all = concat(&[&k.sk_d, &k.sk_ei, &k.sk_er, &k.sk_pi, &k.sk_pr]);
        assert_eq!(all, &DKM[..all.len()]);
    }

    #[test]
    fn cavp_child_dkm_without_and_with_dh() {
        // CAVP's SK_d is the first PRF-output-length bytes of DKM.
        let sk_d = &DKM[..20];
        let keys = |dh| {
            derive_child_keys(
                PRF,
                sk_d,
                &NI,
                &NR,
                Some(CBC128),
                Some(Integ::HmacSha1_96),
                dh,
            )
            .unwrap()
        };
        let k = keys(None);
        let all = concat(&[&k.encr_i, &k.integ_i, &k.encr_r, &k.integ_r]);
        assert_eq!(all, &DKM_CHILD[..72]);
        let k = keys(Some(&GIR_NEW));
        let all = concat(&[&k.encr_i, &k.integ_i, &k.encr_r, &k.integ_r]);
        assert_eq!(all, &DKM_CHILD_DH[..72]);

        let seed = concat(&[&NI, &NR]);
        assert_eq!(
            PRF.prf_plus(sk_d, &seed, 132).unwrap().as_slice(),
            DKM_CHILD
        );
        let seed = concat(&[&GIR_NEW, &NI, &NR]);
        assert_eq!(
            PRF.prf_plus(sk_d, &seed, 132).unwrap().as_slice(),
            DKM_CHILD_DH
        );
    }

    #[test]
    fn cavp_rekey_skeyseed() {
        let sk_d = &DKM[..20];
        assert_eq!(
            skeyseed_rekey(PRF, sk_d, &GIR_NEW, &NI, &NR).as_slice(),
            SKEYSEED_REKEY
        );
    }

    #[test]
    fn transform_combinations_are_checked() {
        let gcm = Encr::AesGcm16 { key_bits: 256 };
        let bad = derive_ike_keys(
            PRF,
            gcm,
            Some(Integ::HmacSha256_128),
            &NI,
            &NR,
            &GIR,
            &SPI_I,
            &SPI_R,
        );
        assert!(matches!(bad, Err(CryptoError::IntegMismatch { .. })));
        let bad = derive_child_keys(PRF, &DKM[..20], &NI, &NR, Some(CBC128), None, None);
        assert!(matches!(bad, Err(CryptoError::IntegMismatch { .. })));
    }

    #[test]
    fn debug_is_redacted() {
        let k = derive_ike_keys(
            PRF,
            CBC128,
            Some(Integ::HmacSha1_96),
            &NI,
            &NR,
            &GIR,
            &SPI_I,
            &SPI_R,
        )
        .unwrap();
        assert_eq!(format!("{k:?}"), "IkeKeys { .. }");
        let c = derive_child_keys(
            PRF,
            &k.sk_d,
            &NI,
            &NR,
            Some(CBC128),
            Some(Integ::HmacSha1_96),
            None,
        )
        .unwrap();
        assert_eq!(format!("{c:?}"), "ChildKeys { .. }");
    }

    #[test]
    fn ah_keymat_is_integrity_keys_only() {
        let sk_d = &DKM[..20];
        let esp = derive_child_keys(
            PRF,
            sk_d,
            &NI,
            &NR,
            Some(CBC128),
            Some(Integ::HmacSha1_96),
            None,
        )
        .unwrap();
        let ah =
            derive_child_keys(PRF, sk_d, &NI, &NR, None, Some(Integ::HmacSha1_96), None).unwrap();
        // The same prf+ stream, cut as SK_ai | SK_ar (20 bytes each) instead of
        // encr_i (16) | integ_i (20) | encr_r (16) | integ_r (20).
        let stream: Vec<u8> = [&esp.encr_i, &esp.integ_i, &esp.encr_r, &esp.integ_r]
            .iter()
            .flat_map(|k| k.iter().copied())
            .collect();
        assert!(ah.encr_i.is_empty() && ah.encr_r.is_empty());
        assert_eq!(ah.integ_i.as_slice(), &stream[..20]);
        assert_eq!(ah.integ_r.as_slice(), &stream[20..40]);
        let none = derive_child_keys(PRF, sk_d, &NI, &NR, None, None, None);
        assert!(matches!(none, Err(CryptoError::IntegMismatch { .. })));
    }
}
