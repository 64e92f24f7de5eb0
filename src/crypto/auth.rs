//! Shared-key AUTH payload data (RFC 7296 §2.15).

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::Prf;

/// The fixed pad string of RFC 7296 §2.15 (17 octets, no terminator).
const KEY_PAD: &[u8] = b"Key Pad for IKEv2";

/// AUTH = prf(prf(PSK, "Key Pad for IKEv2"), signed_message | peer_nonce | prf(SK_p, id_body)).
///
/// `signed_message` is the sender's whole IKE_SA_INIT message, `peer_nonce` the other side's
/// nonce data, `sk_p` the sender's SK_pi/SK_pr and `id_body` the sender's ID payload body
/// (ID type, 3 reserved octets, identification data).
pub fn psk_auth(
    prf: Prf,
    psk: &[u8],
    signed_message: &[u8],
    peer_nonce: &[u8],
    sk_p: &[u8],
    id_body: &[u8],
) -> Zeroizing<Vec<u8>> {
    let maced_id = prf.prf(sk_p, id_body);
    let key = prf.prf(psk, KEY_PAD);
    prf.prf_parts(&key, &[signed_message, peer_nonce, &maced_id])
}

/// Constant-time check of a received AUTH value against [`psk_auth`].
pub fn verify_psk_auth(
    prf: Prf,
    psk: &[u8],
    signed_message: &[u8],
    peer_nonce: &[u8],
    sk_p: &[u8],
    id_body: &[u8],
    received: &[u8],
) -> bool {
    let expected = psk_auth(prf, psk, signed_message, peer_nonce, sk_p, id_body);
    bool::from(expected.ct_eq(received))
}

#[cfg(test)]
mod tests {
    use hmac::{Hmac, KeyInit, Mac};
    use sha2::Sha256;

    use super::*;

    fn hmac256(key: &[u8], data: &[u8]) -> Vec<u8> {
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
        m.update(data);
        m.finalize().into_bytes().to_vec()
    }

    // RFC 7296 §2.15 computed step by step with plain HMAC-SHA-256.
    #[test]
    fn psk_auth_follows_rfc7296_formula() {
        let psk = b"my shared secret";
        let init_msg = b"whole IKE_SA_INIT request bytes";
        let nr = [0xabu8; 32];
        let sk_pi = [0x5cu8; 32];
        // ID_FQDN (2), 3 reserved octets, "moon.strongswan.org"
        let id_body = [&[2u8, 0, 0, 0][..], b"moon.strongswan.org"].concat();

        let maced_id = hmac256(&sk_pi, &id_body);
        let key = hmac256(psk, b"Key Pad for IKEv2");
        let signed = [&init_msg[..], &nr, &maced_id].concat();
        let expected = hmac256(&key, &signed);

        let auth = psk_auth(Prf::HmacSha256, psk, init_msg, &nr, &sk_pi, &id_body);
        assert_eq!(auth.as_slice(), expected);
        assert!(verify_psk_auth(
            Prf::HmacSha256,
            psk,
            init_msg,
            &nr,
            &sk_pi,
            &id_body,
            &expected
        ));
        let mut bad = expected.clone();
        bad[31] ^= 1;
        assert!(!verify_psk_auth(
            Prf::HmacSha256,
            psk,
            init_msg,
            &nr,
            &sk_pi,
            &id_body,
            &bad
        ));
        assert!(!verify_psk_auth(
            Prf::HmacSha256,
            b"wrong psk",
            init_msg,
            &nr,
            &sk_pi,
            &id_body,
            &expected
        ));
        assert!(!verify_psk_auth(
            Prf::HmacSha256,
            psk,
            init_msg,
            &nr,
            &sk_pi,
            &id_body,
            &expected[..31]
        ));
    }
}
