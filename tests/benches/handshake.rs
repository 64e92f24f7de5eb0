//! Responder CPU time for one full IKE_SA_INIT + IKE_AUTH per IKE suite, next to the cost
//! of that suite's Diffie-Hellman alone (one key generation + one agreement, which is what
//! the responder does). Run: `cargo bench --bench handshake`.

use std::hint::black_box;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use ikev2d::crypto::{DhGroup, Encr, Integ, Prf};
use ikev2d::ike::{
    ConnSpec, Endpoint, EndpointConfig, EspProposal, Event, IkeProposal, IpsecProto, Mode,
    SpiAllocator, SpiError,
};
use ikev2d::wire::Identification;
use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;

struct Spis(u32);

impl SpiAllocator for Spis {
    fn allocate_esp_spi(&mut self, _: IpAddr, _: IpAddr) -> Result<u32, SpiError> {
        self.0 = self.0.wrapping_add(1);
        Ok(self.0)
    }
}

const A: &str = "192.0.2.1";
const B: &str = "192.0.2.2";

fn suites() -> Vec<(&'static str, IkeProposal)> {
    let gcm = |b| Encr::AesGcm16 { key_bits: b };
    let cbc = |b| Encr::AesCbc { key_bits: b };
    let p = |encr, integ: Option<Integ>, prf, dh| IkeProposal {
        encr: vec![encr],
        integ: integ.into_iter().collect(),
        prf: vec![prf],
        dh: vec![dh],
    };
    vec![
        (
            "aes128gcm16-prfsha256-x25519",
            p(gcm(128), None, Prf::HmacSha256, DhGroup::Curve25519),
        ),
        (
            "aes256gcm16-prfsha384-ecp256",
            p(gcm(256), None, Prf::HmacSha384, DhGroup::Ecp256),
        ),
        (
            "aes128-sha256-x25519",
            p(
                cbc(128),
                Some(Integ::HmacSha256_128),
                Prf::HmacSha256,
                DhGroup::Curve25519,
            ),
        ),
        (
            "aes256-sha256-modp2048",
            p(
                cbc(256),
                Some(Integ::HmacSha256_128),
                Prf::HmacSha256,
                DhGroup::Modp2048,
            ),
        ),
    ]
}

fn conn(local: &str, remote: &str, ike: &IkeProposal) -> ConnSpec {
    ConnSpec {
        name: "bench".into(),
        local_addr: Some(local.parse().unwrap()),
        remote_addr: Some(remote.parse().unwrap()),
        local_port: 500,
        remote_port: 500,
        local_id: Some(Identification::fqdn(local)),
        remote_id: None,
        psk: ikev2d::ike::Psks::fixed(b"benchmark pre-shared key"),
        ike_proposals: vec![ike.clone()],
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

/// One handshake; returns the time spent inside the responder.
fn handshake(ike: &IkeProposal, seed: u64) -> Duration {
    let now = Instant::now();
    let mut i = Endpoint::new(
        EndpointConfig::default(),
        ChaCha20Rng::seed_from_u64(seed),
        Box::new(Spis(0)),
    );
    i.set_conns(vec![conn(A, B, ike)]);
    let mut r = Endpoint::new(
        EndpointConfig::default(),
        ChaCha20Rng::seed_from_u64(seed ^ 0x5555),
        Box::new(Spis(1 << 31)),
    );
    r.set_conns(vec![conn(B, A, ike)]);
    i.initiate(now, "bench").unwrap();
    let mut in_responder = Duration::ZERO;
    let addr = |s: &str| SocketAddr::new(s.parse().unwrap(), 500);
    for _ in 0..2 {
        let req = i.poll_transmit().unwrap();
        let t = Instant::now();
        r.handle_datagram(now, addr(B), addr(A), &req.data);
        let resp = r.poll_transmit().unwrap();
        in_responder += t.elapsed();
        i.handle_datagram(now, addr(A), addr(B), &resp.data);
    }
    assert!(matches!(
        r.poll_event(),
        Some(Event::IkeSaEstablished { .. })
    ));
    in_responder
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("responder");
    g.sample_size(20);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(3));
    let mut dh_done = Vec::new();
    for (name, ike) in suites() {
        g.bench_function(format!("handshake/{name}"), |b| {
            let mut seed = 0;
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        seed += 1;
                        handshake(&ike, seed)
                    })
                    .sum()
            });
        });
        let group = ike.dh[0];
        if dh_done.contains(&group) {
            continue;
        }
        dh_done.push(group);
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let peer = group.generate(&mut rng).public_value();
        g.bench_function(format!("dh/{}", group.name()), |b| {
            b.iter(|| {
                let own = group.generate(&mut rng);
                black_box((own.public_value(), own.agree(black_box(&peer)).unwrap()))
            });
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
