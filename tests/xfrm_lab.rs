//! Installer for the interop lab (scenarios `kernel-xfrm-*`): installs one CHILD_SA with
//! [`XfrmKernel`] in the network namespace it runs in, on a kernel with ESP (UML).
//!
//! Run by `interop/xfrm-lab.sh` as
//! `xfrm_lab-HASH lab_child --exact --ignored --nocapture` with:
//! - `XFRM_LAB_LOCAL`, `XFRM_LAB_REMOTE`: addresses of this host and the peer;
//! - `XFRM_LAB_ALG`: `gcm` (AES-GCM-16-128) or `cbc-sha256` (AES-CBC-128 + HMAC-SHA2-256-128);
//! - `XFRM_LAB_MODE`: `transport` (default) or `tunnel`;
//! - `XFRM_LAB_LOCAL_TS`, `XFRM_LAB_REMOTE_TS`: traffic selectors as CIDR (default: the hosts);
//! - `XFRM_LAB_REPLAY`: replay window (default 32);
//! - `XFRM_LAB_CMD`, `XFRM_LAB_REPLY`: FIFOs of a line protocol with the scenario:
//!   → `SPI <hex>` (our inbound SPI, drawn at random from the SPI range), ← `PEER <hex>` (the peer's inbound SPI),
//!   → `INSTALLED`, ← `STOP`, → `COUNTERS ...`, → `REMOVED`.
//!
//! `lab_expire` (same addresses and algorithm variables, no FIFOs) installs a CHILD_SA with
//! 2 s soft and 4 s hard lifetimes and expects the kernel's soft then hard EXPIRE events for
//! both SAs, then removes the CHILD_SA (whose SAs the kernel already deleted). Its inbound SPI
//! is drawn at random from the SPI range unless `XFRM_LAB_SPI_IN` (hex) gives one.
//!
//! Keys are fixed lab keys chosen per direction so that both hosts agree.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::sync::mpsc;
use std::time::Duration;

use ikev2d::kernel::{
    ChildPolicy, ChildSaInstall, EspCrypto, EventSocket, IntegAlg, Integrity, KernelEvent,
    KernelIpsec, KeyBytes, Lifetime, Marks, Mode, REQID_MIN, SPI_RANGE, SaId, TrafficSelector,
    XfrmKernel,
};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// Lab keys of the SA from `src` to `dst`: the same on both hosts.
fn crypto(alg: &str, src: IpAddr, dst: IpAddr) -> EspCrypto {
    let tag = if src < dst { 0xa0 } else { 0xb0 };
    let bytes = |n: usize, salt: u8| (0..n).map(|i| tag ^ salt ^ (i as u8)).collect::<Vec<_>>();
    match alg {
        "gcm" => EspCrypto::AesGcm16 {
            key: KeyBytes::new(bytes(20, 0x01)),
        },
        "cbc-sha256" => EspCrypto::AesCbc {
            key: KeyBytes::new(bytes(16, 0x02)),
            integ: Integrity {
                alg: IntegAlg::HmacSha256_128,
                key: KeyBytes::new(bytes(32, 0x03)),
            },
        },
        "ah-sha1" => EspCrypto::Ah {
            integ: Integrity {
                alg: IntegAlg::HmacSha1_96,
                key: KeyBytes::new(bytes(20, 0x04)),
            },
        },
        other => panic!("unknown XFRM_LAB_ALG {other}"),
    }
}

fn selectors(name: &str, host: IpAddr) -> Vec<TrafficSelector> {
    match std::env::var(name) {
        Ok(cidr) => vec![TrafficSelector::from_net(cidr.parse().expect("CIDR"))],
        Err(_) => vec![TrafficSelector::host(host)],
    }
}

struct Control {
    cmd: BufReader<File>,
    reply: File,
}

impl Control {
    fn open() -> Self {
        // Same order as the scenario opens its ends: commands first, then replies.
        let cmd = BufReader::new(File::open(env("XFRM_LAB_CMD")).unwrap());
        let reply = OpenOptions::new()
            .write(true)
            .open(env("XFRM_LAB_REPLY"))
            .unwrap();
        Self { cmd, reply }
    }

    fn say(&mut self, line: &str) {
        println!("-> {line}");
        writeln!(self.reply, "{line}").unwrap();
        self.reply.flush().unwrap();
    }

    fn expect(&mut self, word: &str) -> String {
        let mut line = String::new();
        self.cmd.read_line(&mut line).unwrap();
        println!("<- {}", line.trim_end());
        line.trim_end()
            .strip_prefix(word)
            .unwrap_or_else(|| panic!("expected {word}, got {line:?}"))
            .trim()
            .to_string()
    }
}

/// The CHILD_SA described by the environment.
fn lab_install(spi_in: u32, spi_out: u32, lifetime: Lifetime) -> ChildSaInstall {
    let local: IpAddr = env("XFRM_LAB_LOCAL").parse().unwrap();
    let remote: IpAddr = env("XFRM_LAB_REMOTE").parse().unwrap();
    let alg = env("XFRM_LAB_ALG");
    let mode = match env_or("XFRM_LAB_MODE", "transport").as_str() {
        "transport" => Mode::Transport,
        "tunnel" => Mode::Tunnel,
        other => panic!("unknown XFRM_LAB_MODE {other}"),
    };
    ChildSaInstall {
        policy: ChildPolicy {
            local,
            remote,
            mode,
            proto: crypto(&alg, local, remote).proto(),
            reqid: REQID_MIN + 1,
            local_ts: selectors("XFRM_LAB_LOCAL_TS", local),
            remote_ts: selectors("XFRM_LAB_REMOTE_TS", remote),
            marks: Marks::default(),
        },
        spi_in,
        spi_out,
        crypto_in: crypto(&alg, remote, local),
        crypto_out: crypto(&alg, local, remote),
        replay_window: env_or("XFRM_LAB_REPLAY", "32").parse().unwrap(),
        lifetime,
        encap: None,
        defer_outbound: false,
    }
}

#[test]
#[ignore = "run by the interop lab inside a namespace of a kernel with ESP"]
fn lab_child() {
    let mut ctl = Control::open();
    let mut kernel = XfrmKernel::open().unwrap();
    let flushed = kernel.flush_ours().unwrap();
    println!("flushed at start: {flushed:?}");
    // The SPI is ours to choose (no reservation: the install fails if the kernel has it).
    let spi_in = rand::random_range(SPI_RANGE);
    ctl.say(&format!("SPI {spi_in:08x}"));
    let spi_out = u32::from_str_radix(&ctl.expect("PEER"), 16).unwrap();
    let lifetime = Lifetime {
        soft_secs: 3000,
        hard_secs: 3600,
        ..Lifetime::default()
    };
    let child = lab_install(spi_in, spi_out, lifetime);
    let id = kernel.install_child(&child).unwrap();
    println!("installed {id}");
    ctl.say("INSTALLED");

    ctl.expect("STOP");
    let counters = kernel.child_counters(id).unwrap();
    ctl.say(&format!(
        "COUNTERS in {} packets {} bytes, out {} packets {} bytes",
        counters.inbound.packets,
        counters.inbound.bytes,
        counters.outbound.packets,
        counters.outbound.bytes
    ));
    assert!(counters.inbound.packets > 0, "{counters:?}");
    assert!(counters.outbound.packets > 0, "{counters:?}");
    kernel.remove_child(id).unwrap();
    ctl.say("REMOVED");
}

#[test]
#[ignore = "run by the interop lab inside a namespace of a kernel with ESP"]
fn lab_expire() {
    let mut events = EventSocket::open().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || while tx.send(events.recv_event()).is_ok() {});
    let mut kernel = XfrmKernel::open().unwrap();
    kernel.flush_ours().unwrap();
    let spi_in = match std::env::var("XFRM_LAB_SPI_IN") {
        Ok(hex) => u32::from_str_radix(&hex, 16).unwrap(),
        Err(_) => rand::random_range(SPI_RANGE),
    };
    let started = std::time::Instant::now();
    let lifetime = Lifetime {
        // Lifetimes count in whole seconds: 2 s / 4 s keeps soft before hard.
        soft_secs: 2,
        hard_secs: 4,
        ..Lifetime::default()
    };
    let child = lab_install(spi_in, 0xc0de_0001, lifetime);
    let id = kernel.install_child(&child).unwrap();
    println!("installed {id}");
    let sa_in = SaId {
        dst: child.policy.local,
        spi: spi_in,
    };
    let sa_out = SaId {
        dst: child.policy.remote,
        spi: 0xc0de_0001,
    };
    let mut expected = vec![
        (sa_in, false),
        (sa_out, false),
        (sa_in, true),
        (sa_out, true),
    ];
    while !expected.is_empty() {
        let event = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("no EXPIRE within 10 s")
            .unwrap();
        println!("{:?}: event {event:?}", started.elapsed());
        if let KernelEvent::Expire { reqid, sa, hard } = event {
            assert_eq!(reqid, child.policy.reqid);
            assert!(
                !hard || !expected.contains(&(sa, false)),
                "hard before soft EXPIRE for {sa:?}"
            );
            expected.retain(|e| *e != (sa, hard));
        }
    }
    // The kernel deleted both SAs at their hard lifetime; removal still drops the policies.
    kernel.remove_child(id).unwrap();
    println!("removed {id}");
}
