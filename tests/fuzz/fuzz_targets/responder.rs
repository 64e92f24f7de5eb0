//! A responder fed arbitrary datagrams: raw (first byte even), or after a genuine
//! IKE_SA_INIT exchange with the fuzz input's header SPIs replaced by the live SA's (first
//! byte odd), so that SA lookup, message-ID handling and SK opening are reached.
#![no_main]

use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ikev2d::crypto::{DhGroup, Encr, Prf};
use ikev2d::ike::{
    ConnSpec, Endpoint, EndpointConfig, EspProposal, IkeProposal, Mode, SpiAllocator, SpiError,
};
use ikev2d::wire::Identification;
use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;

struct Spis(u32);

impl SpiAllocator for Spis {
    fn allocate_esp_spi(&mut self, _: IpAddr, _: IpAddr) -> Result<u32, SpiError> {
        self.0 = self.0.wrapping_add(1);
        Ok(self.0)
    }
}

const I: &str = "192.0.2.1:500";
const R: &str = "192.0.2.2:500";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn conn(local: &str, remote: Option<&str>) -> ConnSpec {
    ConnSpec {
        name: "fuzz".into(),
        local_addr: Some(addr(local).ip()),
        remote_addr: remote.map(|r| addr(r).ip()),
        local_port: 500,
        remote_port: 500,
        local_id: Identification::fqdn(local),
        remote_id: None,
        psk: b"fuzzing psk".to_vec().into(),
        ike_proposals: vec![IkeProposal {
            encr: vec![Encr::AesGcm16 { key_bits: 128 }],
            integ: vec![],
            prf: vec![Prf::HmacSha256],
            dh: vec![DhGroup::Curve25519],
        }],
        esp_proposals: vec![EspProposal {
            encr: vec![Encr::AesGcm16 { key_bits: 128 }],
            integ: vec![],
            esn: false,
            dh: vec![],
        }],
        mode: Mode::Tunnel,
        local_ts: vec![],
        remote_ts: vec![],
        lifetime: Duration::from_secs(3600),
        ike_lifetime: Duration::from_secs(10800),
    }
}

fn endpoint(conn: ConnSpec, seed: u64) -> Endpoint<ChaCha20Rng> {
    let mut e = Endpoint::new(
        EndpointConfig::default(),
        ChaCha20Rng::seed_from_u64(seed),
        Box::new(Spis(seed as u32)),
    );
    e.set_conns(vec![conn]);
    e
}

fuzz_target!(|data: &[u8]| {
    static T0: OnceLock<Instant> = OnceLock::new();
    let now = *T0.get_or_init(Instant::now);
    let Some((sel, rest)) = data.split_first() else {
        return;
    };
    let mut r = endpoint(conn(R, None), 2);
    if sel & 1 == 0 {
        // Several raw datagrams separated by 0xfe bytes.
        for d in rest.split(|b| *b == 0xfe) {
            r.handle_datagram(now, addr(R), addr(I), d);
        }
    } else {
        let mut i = endpoint(conn(I, Some(R)), 1);
        i.initiate(now, "fuzz").unwrap();
        let init = i.poll_transmit().unwrap();
        r.handle_datagram(now, addr(R), addr(I), &init.data);
        let resp = r.poll_transmit().unwrap();
        let mut d = rest.to_vec();
        if let (Some(dst), Some(src)) = (d.get_mut(..16), resp.data.get(..16)) {
            dst.copy_from_slice(src);
        }
        if sel & 2 != 0 {
            // Also let the genuine IKE_AUTH through first.
            i.handle_datagram(now, addr(I), addr(R), &resp.data);
            if let Some(auth) = i.poll_transmit() {
                r.handle_datagram(now, addr(R), addr(I), &auth.data);
            }
        }
        r.handle_datagram(now, addr(R), addr(I), &d);
    }
    while r.poll_transmit().is_some() {}
    while r.poll_event().is_some() {}
    let _ = r.ike_sas();
    r.handle_timeout(now + Duration::from_secs(3600));
});
