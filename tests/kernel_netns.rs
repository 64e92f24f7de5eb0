//! XfrmKernel against the host kernel (XFRM without ESP), each test in a network namespace of
//! its own: the test re-executes itself under `unshare -n`, so nothing touches the host's
//! tables and everything disappears with the namespace.
//!
//! Needs root: `cargo test --test kernel_netns -- --ignored --test-threads=1`

use std::net::{IpAddr, UdpSocket};
use std::os::fd::AsFd;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use ikev2d::kernel::{
    ChildPolicy, ChildSaInstall, EspCrypto, EventSocket, IntegAlg, Integrity, IpsecProto,
    KernelError, KernelEvent, KernelIpsec, KeyBytes, Lifetime, Mark, Marks, Mode, REQID_MIN,
    ShuntAction, ShuntPolicy, SocketFamily, Target, TrafficSelector, XfrmKernel, bypass_socket,
    set_udp_encap,
};

const INNER: &str = "IKEV2D_KERNEL_NETNS_INNER";

/// Runs `body` in a fresh network namespace (re-executing this test there).
fn in_netns(test: &str, body: impl FnOnce()) {
    if std::env::var_os(INNER).is_some() {
        body();
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("unshare")
        .arg("-n")
        .arg(exe)
        .args([
            test,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(INNER, "1")
        .output()
        .expect("unshare");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{test} failed in its namespace");
    assert!(stdout.contains("1 passed"), "{test} did not run");
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn sh(args: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn policy(reqid: u32, mode: Mode) -> ChildPolicy {
    ChildPolicy {
        local: ip("10.7.0.1"),
        remote: ip("10.7.0.2"),
        mode,
        proto: IpsecProto::Esp,
        reqid,
        local_ts: vec![TrafficSelector::host(ip("10.7.0.1"))],
        remote_ts: vec![TrafficSelector::host(ip("10.7.0.2"))],
        marks: Marks::default(),
    }
}

fn cbc_sha256() -> EspCrypto {
    EspCrypto::AesCbc {
        key: KeyBytes::new(vec![0x11; 16]),
        integ: Integrity {
            alg: IntegAlg::HmacSha256_128,
            key: KeyBytes::new(vec![0x22; 32]),
        },
    }
}

fn child(spi_in: u32, crypto: EspCrypto) -> ChildSaInstall {
    ChildSaInstall {
        policy: policy(REQID_MIN + 3, Mode::Transport),
        spi_in,
        spi_out: 0xc100_0002,
        crypto_in: crypto.clone(),
        crypto_out: crypto,
        replay_window: 32,
        lifetime: Lifetime {
            soft_secs: 50,
            hard_secs: 60,
            ..Lifetime::default()
        },
        encap: None,
        defer_outbound: false,
    }
}

#[test]
#[ignore = "needs root; runs in its own network namespace"]
fn policies_added_removed_and_foreign_ones_kept() {
    in_netns("policies_added_removed_and_foreign_ones_kept", || {
        sh(
            "ip xfrm policy add src 10.9.9.1/32 dst 10.9.9.2/32 dir out \
            tmpl src 10.9.9.1 dst 10.9.9.2 proto esp reqid 7 mode transport",
        );
        let mut k = XfrmKernel::open().unwrap();
        let reqid = REQID_MIN + 2;
        let trap = policy(reqid, Mode::Tunnel);
        k.install_trap(&trap).unwrap();
        let listed = sh("ip xfrm policy");
        println!("{listed}");
        assert_eq!(listed.matches(&format!("reqid {reqid} ")).count(), 3);
        for dir in ["dir out", "dir in", "dir fwd"] {
            assert!(listed.contains(dir), "{dir}: {listed}");
        }
        assert_eq!(
            k.install_trap(&trap),
            Err(KernelError::Exists {
                target: Target::Trap(reqid)
            })
        );
        k.remove_trap(reqid).unwrap();
        let listed = sh("ip xfrm policy");
        assert!(!listed.contains(&format!("reqid {reqid} ")), "{listed}");
        assert!(listed.contains("reqid 7 "), "{listed}");

        k.install_trap(&trap).unwrap();
        let report = k.flush_ours().unwrap();
        assert_eq!(report.policies, 3);
        let listed = sh("ip xfrm policy");
        assert!(listed.contains("reqid 7 "), "{listed}");
        assert_eq!(listed.matches("reqid").count(), 1, "{listed}");
    });
}

#[test]
#[ignore = "needs root; runs in its own network namespace"]
fn shunts_and_marked_policies() {
    in_netns("shunts_and_marked_policies", || {
        // A foreign template-less policy (another daemon's bypass) stays.
        sh("ip xfrm policy add src 10.9.9.1/32 dst 10.9.9.2/32 dir out priority 7");
        let mut k = XfrmKernel::open().unwrap();
        let any = TrafficSelector::from_net("0.0.0.0/0".parse().unwrap());
        let ssh = ShuntPolicy {
            action: ShuntAction::Pass,
            reqid: REQID_MIN + 3,
            local_ts: vec![any.with_proto(6, 22..=22)],
            remote_ts: vec![any],
            marks: Marks::default(),
        };
        k.install_shunt(&ssh).unwrap();
        let drop = ShuntPolicy {
            action: ShuntAction::Drop,
            reqid: REQID_MIN + 4,
            local_ts: vec![TrafficSelector::host(ip("10.7.0.1"))],
            remote_ts: vec![TrafficSelector::host(ip("10.7.0.9"))],
            marks: Marks::default(),
        };
        k.install_shunt(&drop).unwrap();
        // Two traps that differ only by their mark.
        let mark = |value| {
            Some(Mark {
                value,
                mask: 0xffff_ffff,
            })
        };
        let mut marked = policy(REQID_MIN + 5, Mode::Transport);
        marked.marks = Marks {
            inbound: mark(1),
            outbound: mark(2),
        };
        k.install_trap(&marked).unwrap();
        k.install_trap(&policy(REQID_MIN + 6, Mode::Transport))
            .unwrap();
        let listed = sh("ip xfrm policy");
        println!("{listed}");
        assert_eq!(listed.matches("proto tcp sport 22").count(), 2, "{listed}");
        assert_eq!(listed.matches("proto tcp dport 22").count(), 2, "{listed}");
        assert_eq!(listed.matches("action block").count(), 4, "{listed}");
        assert!(listed.contains("mark 0x1/0xffffffff"), "{listed}");
        assert!(listed.contains("mark 0x2/0xffffffff"), "{listed}");
        assert_eq!(listed.matches("src 10.7.0.1/32 dst 10.7.0.2/32").count(), 2);
        k.remove_trap(ssh.reqid).unwrap();
        k.remove_trap(marked.reqid).unwrap();
        let listed = sh("ip xfrm policy");
        assert!(
            !listed.contains("sport 22") && !listed.contains("mark"),
            "{listed}"
        );
        // What a previous run left: the drop shunt and the unmarked trap; the foreign
        // policy stays.
        let mut fresh = XfrmKernel::open().unwrap();
        assert_eq!(fresh.flush_ours().unwrap().policies, 4 + 2);
        let listed = sh("ip xfrm policy");
        assert!(listed.contains("priority 7 "), "{listed}");
        assert_eq!(listed.matches("dir ").count(), 1, "{listed}");
    });
}

#[test]
#[ignore = "needs root and nft; runs in its own network namespace"]
fn leftfirewall_nft_rules_come_and_go() {
    use ikev2d::daemon::updown::{UpdownCall, UpdownInfo, Verb, firewall};
    use ikev2d::wire::{TrafficSelector as Ts, TsType};
    in_netns("leftfirewall_nft_rules_come_and_go", || {
        let ts = |net: &str| {
            let n: ipnet::IpNet = net.parse().unwrap();
            Ts {
                ts_type: TsType::IPV4_ADDR_RANGE,
                ip_protocol: 0,
                start_port: 0,
                end_port: u16::MAX,
                start_addr: n.network(),
                end_addr: n.broadcast(),
            }
        };
        let call = |verb, spi_in| UpdownCall {
            verb,
            info: UpdownInfo {
                conn: "net-net".into(),
                script: None,
                firewall: true,
                unique_id: 1,
                reqid: REQID_MIN + 1,
                spi_in,
                proto: IpsecProto::Esp,
                me: ip("10.1.0.1"),
                my_id: "alice".into(),
                peer: ip("10.1.0.2"),
                peer_id: "bob".into(),
                local_ts: vec![ts("10.1.1.0/24")],
                remote_ts: vec![ts("10.1.2.0/24")],
            },
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // Two CHILD_SAs of the conn (e.g. one per IKE SA during a reauthentication).
        assert_eq!(
            rt.block_on(firewall(&call(Verb::Up, 0xc000_0001))).unwrap(),
            2
        );
        assert_eq!(
            rt.block_on(firewall(&call(Verb::Up, 0xc000_0002))).unwrap(),
            2
        );
        let listed = sh("nft list table inet ikev2d");
        println!("{listed}");
        assert!(listed.contains("hook forward"), "{listed}");
        assert_eq!(listed.matches("ipsec out reqid").count(), 2, "{listed}");
        assert_eq!(listed.matches("ipsec in reqid").count(), 2, "{listed}");
        assert!(
            listed.contains("ip saddr 10.1.2.0/24 ip daddr 10.1.1.0/24 ipsec in reqid"),
            "{listed}"
        );
        assert_eq!(
            rt.block_on(firewall(&call(Verb::Down, 0xc000_0001)))
                .unwrap(),
            2
        );
        let listed = sh("nft list table inet ikev2d");
        assert_eq!(listed.matches("accept comment").count(), 2, "{listed}");
        assert!(listed.contains("spi c0000002") && !listed.contains("spi c0000001"));
        assert_eq!(
            rt.block_on(firewall(&call(Verb::Down, 0xc000_0002)))
                .unwrap(),
            2
        );
        assert_eq!(
            rt.block_on(firewall(&call(Verb::Down, 0xc000_0002)))
                .unwrap(),
            0
        );
        let listed = sh("nft list table inet ikev2d");
        assert!(!listed.contains("accept comment"), "{listed}");
        // A host-to-host CHILD_SA: input and output rules, gone with its down call.
        let mut host = call(Verb::Up, 0xc000_0003);
        host.info.local_ts = vec![ts("10.1.0.1/32")];
        host.info.remote_ts = vec![ts("10.1.0.2/32")];
        assert_eq!(rt.block_on(firewall(&host)).unwrap(), 2);
        let listed = sh("nft -a list table inet ikev2d");
        println!("{listed}");
        for rule in [
            "ip saddr 10.1.0.2 ip daddr 10.1.0.1 ipsec in reqid",
            "ip saddr 10.1.0.1 ip daddr 10.1.0.2 ipsec out reqid",
        ] {
            assert_eq!(listed.matches(rule).count(), 1, "{rule}: {listed}");
        }
        host.verb = Verb::Down;
        assert_eq!(rt.block_on(firewall(&host)).unwrap(), 2);
        let listed = sh("nft list table inet ikev2d");
        assert!(!listed.contains("accept comment"), "{listed}");
    });
}

#[test]
#[ignore = "needs root; runs in its own network namespace"]
fn sa_add_reports_no_esp_and_leaves_nothing() {
    in_netns("sa_add_reports_no_esp_and_leaves_nothing", || {
        let mut k = XfrmKernel::open().unwrap();
        let err = k
            .install_child(&child(0xc100_0001, cbc_sha256()))
            .unwrap_err();
        println!("cbc+sha256: {err}");
        assert_eq!(
            err,
            KernelError::NoEsp {
                target: Target::Sa {
                    dst: ip("10.7.0.1"),
                    spi: 0xc100_0001
                }
            }
        );
        assert_eq!(sh("ip xfrm state"), "");
        assert_eq!(sh("ip xfrm policy"), "");

        let gcm = EspCrypto::AesGcm16 {
            key: KeyBytes::new(vec![0x33; 20]),
        };
        let err = k.install_child(&child(0xc100_0002, gcm)).unwrap_err();
        println!("gcm: {err}");
        assert!(
            matches!(err, KernelError::UnsupportedAlgorithm { ref algs, .. } if algs == "rfc4106(gcm(aes))"),
            "{err:?}"
        );
        assert_eq!(sh("ip xfrm state"), "");
        assert_eq!(sh("ip xfrm policy"), "");
        assert_eq!(k.children().count(), 0);
    });
}

#[test]
#[ignore = "needs root; runs in its own network namespace"]
fn ike_socket_options() {
    in_netns("ike_socket_options", || {
        sh("ip link set lo up");
        let v4 = UdpSocket::bind("127.0.0.1:0").unwrap();
        let v6 = UdpSocket::bind("[::1]:0").unwrap();
        bypass_socket(v4.as_fd(), SocketFamily::V4).unwrap();
        bypass_socket(v6.as_fd(), SocketFamily::V6).unwrap();
        set_udp_encap(v4.as_fd()).unwrap();
        let listed = sh("ip xfrm policy");
        println!("{listed}");
        assert_eq!(listed.matches("socket in").count(), 2, "{listed}");
        assert_eq!(listed.matches("socket out").count(), 2, "{listed}");
        // XfrmKernel's flush leaves per-socket policies alone.
        let mut k = XfrmKernel::open().unwrap();
        assert_eq!(k.flush_ours().unwrap().policies, 0);
        assert_eq!(sh("ip xfrm policy"), listed);
        drop((v4, v6));
        assert_eq!(sh("ip xfrm policy"), "");
    });
}

#[test]
#[ignore = "needs root; runs in its own network namespace"]
fn acquire_event_from_trap() {
    in_netns("acquire_event_from_trap", || {
        // Not on lo: loopback has disable_xfrm=1. 10.7.0.2 is off-link behind a veth.
        sh(
            "ip link add va type veth peer name vb && ip addr add 10.7.0.1/24 dev va \
            && ip link set va up && ip link set vb up",
        );
        let mut events = EventSocket::open().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || tx.send(events.recv_event()));
        let mut k = XfrmKernel::open().unwrap();
        let reqid = REQID_MIN + 4;
        k.install_trap(&policy(reqid, Mode::Transport)).unwrap();
        let sock = UdpSocket::bind("10.7.0.1:0").unwrap();
        // The trap holds the packet back (EAGAIN) or drops it; either way the kernel asks.
        let sent = sock.send_to(b"trigger", "10.7.0.2:7");
        println!("send: {sent:?}");
        let event = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("no ACQUIRE within 10 s")
            .unwrap();
        println!("{event:?}");
        let KernelEvent::Acquire {
            reqid: r,
            local,
            remote,
            flow,
            ..
        } = event
        else {
            panic!("expected an ACQUIRE, got {event:?}");
        };
        assert_eq!((r, local, remote), (reqid, ip("10.7.0.1"), ip("10.7.0.2")));
        assert_eq!(
            (flow.src, flow.dst, flow.proto, flow.dport),
            (ip("10.7.0.1"), ip("10.7.0.2"), 17, 7)
        );
        k.flush_ours().unwrap();
        assert_eq!(sh("ip xfrm policy"), "");
        // Only the kernel's acquire state is left (SPI 0; it cannot be deleted by id and
        // expires after net.core.xfrm_acq_expires).
        let state = sh("ip xfrm state");
        assert_eq!(state.matches("spi ").count(), 1, "{state}");
        assert!(state.contains("spi 0x00000000"), "{state}");
    });
}

#[test]
#[ignore = "needs root; runs in its own network namespace"]
fn virtual_ip_added_to_lo_and_removed_and_a_foreign_one_kept() {
    in_netns(
        "virtual_ip_added_to_lo_and_removed_and_a_foreign_one_kept",
        || {
            let mut k = XfrmKernel::open().unwrap();
            k.add_virtual_ip(ip("10.3.0.1")).unwrap();
            assert!(sh("ip -4 addr show dev lo").contains("inet 10.3.0.1/32"));
            // An address the host already has: left alone, also on removal.
            sh("ip addr add 10.3.0.9/32 dev lo");
            k.add_virtual_ip(ip("10.3.0.9")).unwrap();
            k.remove_virtual_ip(ip("10.3.0.9")).unwrap();
            assert!(sh("ip -4 addr show dev lo").contains("inet 10.3.0.9/32"));
            k.remove_virtual_ip(ip("10.3.0.1")).unwrap();
            assert!(!sh("ip -4 addr show dev lo").contains("10.3.0.1"));
            // A flush removes ours too.
            k.add_virtual_ip(ip("10.3.0.2")).unwrap();
            k.flush_ours().unwrap();
            let lo = sh("ip -4 addr show dev lo");
            assert!(!lo.contains("10.3.0.2") && lo.contains("10.3.0.9"), "{lo}");
        },
    );
}
