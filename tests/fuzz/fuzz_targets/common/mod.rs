//! Shared by the engine fuzz targets: two endpoints on fixed addresses with seeded RNGs, a
//! genuine handshake between them, and sealing of arbitrary inner payload bytes into an SK
//! payload with the keys the endpoints export, so that fuzz input reaches the code behind
//! decryption.
#![allow(dead_code)] // each target uses a subset

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use ikev2d::crypto::{DhGroup, Encr, Prf, SkCrypto};
use ikev2d::ike::{
    IpsecProto, ConnSpec, Endpoint, EndpointConfig, EspProposal, Event, IkeProposal, IkeSaExportedKeys, Mode,
    SpiAllocator, SpiError,
};
use ikev2d::wire::{ExchangeType, Header, Identification, PayloadType};
use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;

pub struct Spis(u32);

impl SpiAllocator for Spis {
    fn allocate_esp_spi(&mut self, _: IpAddr, _: IpAddr) -> Result<u32, SpiError> {
        self.0 = self.0.wrapping_add(1);
        Ok(self.0)
    }
}

pub const I: &str = "192.0.2.1:500";
pub const R: &str = "192.0.2.2:500";

pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub fn conn(local: &str, remote: Option<&str>) -> ConnSpec {
    ConnSpec {
        name: "fuzz".into(),
        local_addr: Some(addr(local).ip()),
        remote_addr: remote.map(|r| addr(r).ip()),
        local_port: 500,
        remote_port: 500,
        local_id: Some(Identification::fqdn(local)),
        remote_id: None,
        psk: ikev2d::ike::Psks::fixed(b"fuzzing psk"),
        ike_proposals: vec![IkeProposal {
            encr: vec![Encr::AesGcm16 { key_bits: 128 }],
            integ: vec![],
            prf: vec![Prf::HmacSha256],
            dh: vec![DhGroup::Curve25519],
        }],
        esp_proposals: vec![EspProposal {
            protocol: IpsecProto::Esp,
            encr: vec![Encr::AesGcm16 { key_bits: 128 }],
            integ: vec![],
            esn: false,
            dh: vec![],
        }],
        mode: Mode::Tunnel,
        local_ts: vec![],
        remote_ts: vec![],
        lifetime: Duration::from_secs(3600),
        reqid: 1,
        rekey_margin: Duration::from_secs(540),
        rekey_fuzz_percent: 100,
        ike_lifetime: Duration::from_secs(10800),
        force_encaps: false,
        request_vips: vec![],
        pools: vec![],
        request_dns: vec![],
        peer_dns: vec![],
    }
}

pub fn endpoint(conn: ConnSpec, seed: u64) -> Endpoint<ChaCha20Rng> {
    let mut e = Endpoint::new(
        EndpointConfig {
            export_keys: true,
            ..EndpointConfig::default()
        },
        ChaCha20Rng::seed_from_u64(seed),
        Box::new(Spis(seed as u32)),
    );
    e.set_conns(vec![conn]);
    e
}

/// Initiator `i` (on I) and responder `r` (on R) after IKE_SA_INIT and IKE_AUTH, with the SA's
/// SPIs and keys; `deliver_auth_response` false keeps r's IKE_AUTH response from i (returned).
pub struct Handshake {
    pub i: Endpoint<ChaCha20Rng>,
    pub r: Endpoint<ChaCha20Rng>,
    pub spi_i: [u8; 8],
    pub spi_r: [u8; 8],
    pub keys: Box<IkeSaExportedKeys>,
    pub auth_response: Vec<u8>,
}

pub fn handshake(now: Instant, deliver_auth_response: bool) -> Option<Handshake> {
    let mut i = endpoint(conn(I, Some(R)), 1);
    let mut r = endpoint(conn(R, None), 2);
    i.initiate(now, "fuzz").ok()?;
    let init = i.poll_transmit()?;
    r.handle_datagram(now, addr(R), addr(I), &init.data);
    let init_resp = r.poll_transmit()?;
    i.handle_datagram(now, addr(I), addr(R), &init_resp.data);
    let auth = i.poll_transmit()?;
    r.handle_datagram(now, addr(R), addr(I), &auth.data);
    let auth_response = r.poll_transmit()?.data;
    if deliver_auth_response {
        i.handle_datagram(now, addr(I), addr(R), &auth_response);
        while i.poll_event().is_some() {}
    }
    let mut found = None;
    while let Some(e) = r.poll_event() {
        if let Event::IkeSaEstablished {
            spi_i,
            spi_r,
            exported_keys: Some(keys),
            ..
        } = e
        {
            found = Some((spi_i, spi_r, keys));
        }
    }
    let (spi_i, spi_r, keys) = found?;
    Some(Handshake {
        i,
        r,
        spi_i,
        spi_r,
        keys,
        auth_response,
    })
}

/// Who sends the sealed message: decides the keys (SK_ei/SK_ai or SK_er/SK_ar) and the I flag.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum From {
    Initiator,
    Responder,
}

/// An encrypted message of `hs`'s IKE SA whose SK payload holds `inner` (arbitrary bytes, read
/// as a payload chain starting with `first`).
pub fn seal(
    hs: &Handshake,
    from: From,
    exchange: ExchangeType,
    response: bool,
    message_id: u32,
    first: PayloadType,
    inner: &[u8],
) -> Option<Vec<u8>> {
    let k = &hs.keys;
    let (ek, ak) = match from {
        From::Initiator => (&k.sk_ei, &k.sk_ai),
        From::Responder => (&k.sk_er, &k.sk_ar),
    };
    let sk = SkCrypto::new(k.encr, k.integ, ek, ak).ok()?;
    let body_len = sk.sealed_len(inner.len());
    let total = Header::LEN + 4 + body_len;
    let mut flags = 0;
    if from == From::Initiator {
        flags |= Header::FLAG_INITIATOR;
    }
    if response {
        flags |= Header::FLAG_RESPONSE;
    }
    let header = Header {
        spi_i: hs.spi_i,
        spi_r: hs.spi_r,
        next_payload: PayloadType::SK,
        major: 2,
        minor: 0,
        exchange,
        flags,
        message_id,
        length: u32::try_from(total).ok()?,
    };
    let mut msg = Vec::with_capacity(total);
    header.encode(&mut msg);
    msg.push(first.0);
    msg.push(0);
    msg.extend_from_slice(&u16::try_from(4 + body_len).ok()?.to_be_bytes());
    let iv = vec![0u8; sk.iv_len()];
    let body = sk.seal(&msg, inner, &iv).ok()?;
    msg.extend_from_slice(&body);
    Some(msg)
}

/// Drains an endpoint's output and fires its timers far ahead.
pub fn settle(e: &mut Endpoint<ChaCha20Rng>, now: Instant) {
    while e.poll_transmit().is_some() {}
    while e.poll_event().is_some() {}
    let _ = e.ike_sas();
    e.handle_timeout(now + Duration::from_secs(3600));
    while e.poll_transmit().is_some() {}
    while e.poll_event().is_some() {}
}
