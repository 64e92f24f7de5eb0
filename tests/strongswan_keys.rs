//! Known answers from a real peer: the key schedule, the SK payload and the PSK AUTH of ikev2d's
//! crypto layer against what strongSwan 5.9.8 derived and sent in the lab (`tests/data/README.md`).
//!
//! From the captured IKE_SA_INIT pair (nonces, SPIs) and charon's logged X25519 shared secret,
//! our SKEYSEED and SK_* must equal charon's; with those keys the captured IKE_AUTH request and
//! response must verify and decrypt, and the AUTH payloads inside must be what our PSK AUTH
//! computes (PRF_HMAC_SHA2_256, AES_CBC_128, HMAC_SHA2_256_128).

use std::collections::HashMap;

use ikev2d::crypto::{
    Encr, IkeKeys, Integ, Prf, SkCrypto, derive_ike_keys, psk_auth, skeyseed, verify_psk_auth,
};
use ikev2d::wire::{Identification, Message, Payload, parse_payloads};

const PSK: &[u8] = b"lab-psk-0123456789";
const PRF: Prf = Prf::HmacSha256;
const ENCR: Encr = Encr::AesCbc { key_bits: 128 };
const INTEG: Integ = Integ::HmacSha256_128;

fn data(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// charon's logged values, `name = hex` per line.
fn charon_keys() -> HashMap<String, Vec<u8>> {
    let text = String::from_utf8(data("strongswan-ike-keys.txt")).unwrap();
    text.lines()
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.trim().to_owned(), hex(v.trim())))
        .collect()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn nonce(msg: &Message) -> Vec<u8> {
    msg.payloads
        .iter()
        .find_map(|p| match p {
            Payload::Nonce(n) => Some(n.clone()),
            _ => None,
        })
        .expect("a nonce payload")
}

struct Captured {
    init_req: Vec<u8>,
    ni: Vec<u8>,
    init_resp: Vec<u8>,
    nr: Vec<u8>,
    keys: IkeKeys,
}

fn captured() -> Captured {
    let init_req = data("strongswan-ike-sa-init-request.bin");
    let init_resp = data("strongswan-ike-sa-init-response.bin");
    let req = Message::parse(&init_req).unwrap();
    let resp = Message::parse(&init_resp).unwrap();
    let (ni, nr) = (nonce(&req), nonce(&resp));
    let g_ir = &charon_keys()["g_ir"];
    let keys = derive_ike_keys(
        PRF,
        ENCR,
        Some(INTEG),
        &ni,
        &nr,
        g_ir,
        &resp.header.spi_i,
        &resp.header.spi_r,
    )
    .unwrap();
    Captured {
        init_req,
        ni,
        init_resp,
        nr,
        keys,
    }
}

/// Verifies and decrypts a captured IKE_AUTH message; returns its inner payloads.
fn open(name: &str, sk_e: &[u8], sk_a: &[u8]) -> Vec<Payload> {
    let raw = data(name);
    let msg = Message::parse(&raw).unwrap();
    let Some(Payload::Encrypted(sk)) = msg.payloads.last() else {
        panic!("{name}: no SK payload");
    };
    let aad = &raw[..raw.len() - sk.data.len()];
    let crypto = SkCrypto::new(ENCR, Some(INTEG), sk_e, sk_a).unwrap();
    let plain = crypto.open(aad, &sk.data).unwrap();
    parse_payloads(sk.next_inner, &plain).unwrap()
}

fn id_and_auth(payloads: &[Payload]) -> (Identification, Vec<u8>) {
    let id = payloads.iter().find_map(|p| match p {
        Payload::IdI(id) | Payload::IdR(id) => Some(id.clone()),
        _ => None,
    });
    let auth = payloads.iter().find_map(|p| match p {
        Payload::Auth(a) => Some(a.data.clone()),
        _ => None,
    });
    (id.expect("an ID payload"), auth.expect("an AUTH payload"))
}

#[test]
fn key_schedule_matches_charon() {
    let c = captured();
    let charon = charon_keys();
    assert_eq!(
        skeyseed(PRF, &c.ni, &c.nr, &charon["g_ir"]).as_slice(),
        charon["skeyseed"].as_slice()
    );
    let k = &c.keys;
    for (name, ours) in [
        ("sk_d", &k.sk_d),
        ("sk_ai", &k.sk_ai),
        ("sk_ar", &k.sk_ar),
        ("sk_ei", &k.sk_ei),
        ("sk_er", &k.sk_er),
        ("sk_pi", &k.sk_pi),
        ("sk_pr", &k.sk_pr),
    ] {
        assert_eq!(ours.as_slice(), charon[name].as_slice(), "{name}");
    }
}

#[test]
fn initiator_auth_decrypts_and_verifies() {
    let c = captured();
    let inner = open(
        "strongswan-ike-auth-request.bin",
        &c.keys.sk_ei,
        &c.keys.sk_ai,
    );
    let (id_i, auth) = id_and_auth(&inner);
    assert_eq!(auth, charon_keys()["auth_initiator"]);
    let ours = psk_auth(
        PRF,
        PSK,
        &c.init_req,
        &c.nr,
        &c.keys.sk_pi,
        &id_i.body_bytes(),
    );
    assert_eq!(ours.as_slice(), auth.as_slice());
    assert!(!verify_psk_auth(
        PRF,
        b"another-psk",
        &c.init_req,
        &c.nr,
        &c.keys.sk_pi,
        &id_i.body_bytes(),
        &auth
    ));
}

#[test]
fn responder_auth_decrypts_and_verifies() {
    let c = captured();
    let inner = open(
        "strongswan-ike-auth-response.bin",
        &c.keys.sk_er,
        &c.keys.sk_ar,
    );
    let (id_r, auth) = id_and_auth(&inner);
    assert!(verify_psk_auth(
        PRF,
        PSK,
        &c.init_resp,
        &c.ni,
        &c.keys.sk_pr,
        &id_r.body_bytes(),
        &auth
    ));
}

#[test]
fn tampered_auth_message_is_refused() {
    let c = captured();
    let mut raw = data("strongswan-ike-auth-request.bin");
    let last = raw.len() - 1;
    raw[last] ^= 1;
    let msg = Message::parse(&raw).unwrap();
    let Some(Payload::Encrypted(sk)) = msg.payloads.last() else {
        panic!("no SK payload");
    };
    let aad = &raw[..raw.len() - sk.data.len()];
    let crypto = SkCrypto::new(ENCR, Some(INTEG), &c.keys.sk_ei, &c.keys.sk_ai).unwrap();
    assert!(crypto.open(aad, &sk.data).is_err());
}
