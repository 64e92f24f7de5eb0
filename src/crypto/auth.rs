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
