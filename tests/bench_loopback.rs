//! The load generator `ikev2d-bench` against an `ikev2d --kernel none` responder on loopback
//! (unprivileged ports, a `right=%any` conn and a wildcard PSK): every set-up is established,
//! none fails, and the responder keeps one IKE SA per client identity.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use ikev2d::control::StatusReport;

const PSK: &str = "bench key";

/// A responder on 127.0.0.1 with one `right=%any` conn; killed on drop.
struct Responder {
    child: Child,
    ctl: std::path::PathBuf,
    port: u16,
}

impl Responder {
    fn start(dir: &Path, ike: &str, esp: &str) -> Self {
        let port = free_port();
        let natt = free_port();
        let conf = dir.join("r.conf");
        let secrets = dir.join("r.secrets");
        std::fs::write(
            &conf,
            format!(
                "conn bench\n\tleft=127.0.0.1\n\tright=%any\n\tleftikeport={port}\n\
                 \tauthby=secret\n\tkeyexchange=ikev2\n\ttype=tunnel\n\
                 \tike={ike}\n\tesp={esp}\n\tauto=add\n"
            ),
        )
        .unwrap();
        std::fs::write(&secrets, format!(": PSK \"{PSK}\"\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600)).unwrap();
        let ctl = dir.join("r.ctl");
        let mut child = Command::new(env!("CARGO_BIN_EXE_ikev2d"))
            .args(["--conf", conf.to_str().unwrap()])
            .args(["--secrets", secrets.to_str().unwrap()])
            .args(["--ctl", ctl.to_str().unwrap()])
            .args(["--port", &port.to_string()])
            .args(["--natt-port", &natt.to_string()])
            .args(["--kernel", "none"])
            .env("RUST_LOG", "warn")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[responder] {line}");
                let _ = tx.send(line);
            }
        });
        loop {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("responder never said it was ready");
            if line.contains("ikev2d ready") {
                break;
            }
        }
        Self { child, ctl, port }
    }

    fn status(&self) -> StatusReport {
        let out = Command::new(env!("CARGO_BIN_EXE_ikectl"))
            .args(["--ctl", self.ctl.to_str().unwrap(), "status", "--json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs the generator; returns its exit success and its `key=value` summary line.
fn bench(port: u16, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ikev2d-bench"))
        .args(["--remote", &format!("127.0.0.1:{port}"), "--psk", PSK])
        .args(args)
        .output()
        .unwrap();
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let last = stdout.lines().last().unwrap_or_default().to_string();
    (out.status.success(), last)
}

fn field<'a>(summary: &'a str, key: &str) -> &'a str {
    summary
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key} in {summary:?}"))
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("ikev2d-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Identities of the responder's established IKE SAs.
fn established_ids(r: &Responder) -> BTreeSet<String> {
    r.status()
        .conns
        .iter()
        .flat_map(|c| &c.ike_sas)
        .filter(|sa| sa.state == "ESTABLISHED" && sa.children.len() == 1)
        .filter_map(|sa| sa.remote_id.clone())
        .collect()
}

#[test]
fn bench_x25519_gcm_all_established_and_kept() {
    let dir = tempdir("bench-x25519");
    let r = Responder::start(&dir, "aes128gcm16-prfsha256-x25519!", "aes128gcm16!");
    let (ok, s) = bench(r.port, &["-n", "24", "-c", "4"]);
    assert!(ok, "{s}");
    assert_eq!(field(&s, "established"), "24", "{s}");
    assert_eq!(field(&s, "failed"), "0", "{s}");
    assert_eq!(field(&s, "lost"), "0", "{s}");
    let ids = established_ids(&r);
    assert_eq!(ids.len(), 24, "{ids:?}");
    assert!(
        ids.contains("@client-0.bench") && ids.contains("@client-23.bench"),
        "{ids:?}"
    );

    // A second run with other identities, deleting its SAs at the end: the first 24 stay.
    let (ok, s) = bench(
        r.port,
        &["-n", "8", "-c", "2", "--id-prefix", "other-", "--delete"],
    );
    assert!(ok, "{s}");
    assert_eq!(field(&s, "established"), "8", "{s}");
    assert_eq!(field(&s, "deleted"), "8", "{s}");
    assert_eq!(established_ids(&r), ids);
}

#[test]
fn bench_modp2048_cbc_all_established() {
    let dir = tempdir("bench-modp");
    let r = Responder::start(&dir, "aes128-sha256-modp2048!", "aes128-sha256!");
    let (ok, s) = bench(
        r.port,
        &[
            "-n",
            "6",
            "-c",
            "3",
            "--ike",
            "aes128-sha256-modp2048!",
            "--esp",
            "aes128-sha256!",
        ],
    );
    assert!(ok, "{s}");
    assert_eq!(field(&s, "established"), "6", "{s}");
    assert_eq!(field(&s, "failed"), "0", "{s}");
    assert_eq!(established_ids(&r).len(), 6);
}

#[test]
fn bench_wrong_psk_counts_failures() {
    let dir = tempdir("bench-wrongpsk");
    let r = Responder::start(&dir, "aes128gcm16-prfsha256-x25519!", "aes128gcm16!");
    let out = Command::new(env!("CARGO_BIN_EXE_ikev2d-bench"))
        .args(["--remote", &format!("127.0.0.1:{}", r.port)])
        .args(["--psk", "not the key", "-n", "3", "-c", "3"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    let s = stdout.lines().last().unwrap_or_default();
    assert_eq!(field(s, "established"), "0", "{s}");
    assert_eq!(field(s, "failed"), "3", "{s}");
    assert!(established_ids(&r).is_empty());
}

/// Runs `ikev2d-bench --flood-secs` against the responder; `lab` sets IKEV2D_FLOOD_LAB=1.
/// Returns its exit success, its report line and its stderr.
fn flood(port: u16, lab: bool, args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ikev2d-bench"));
    cmd.args(["--remote", &format!("127.0.0.1:{port}")])
        .args(["--ike", "aes128gcm16-prfsha256-x25519!"])
        .args(args)
        .env_remove("IKEV2D_FLOOD_LAB");
    if lab {
        cmd.env("IKEV2D_FLOOD_LAB", "1");
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default().to_string();
    (out.status.success(), last, stderr)
}

fn count(summary: &str, key: &str) -> u64 {
    field(summary, key).parse().unwrap()
}

#[test]
fn flood_refuses_to_run_outside_the_lab() {
    let dir = tempdir("flood-refused");
    let r = Responder::start(&dir, "aes128gcm16-prfsha256-x25519!", "aes128gcm16!");
    let args = [
        "--flood-secs",
        "1",
        "--cookie-rate",
        "10",
        "--local",
        "127.0.0.1",
    ];
    let (ok, report, stderr) = flood(r.port, false, &args);
    assert!(!ok && report.is_empty(), "{report}");
    assert!(stderr.contains("IKEV2D_FLOOD_LAB=1 is not set"), "{stderr}");
    // A public spoofed range is refused even in the lab.
    let public = ["--spoof-rate", "10", "--spoof-from", "192.0.2.0/24"];
    let (ok, _, stderr) = flood(r.port, true, &[&args[..], &public[..]].concat());
    assert!(
        !ok && stderr.contains("192.0.2.0 is not a private"),
        "{stderr}"
    );
    // Nothing reached the responder.
    let s = r.status().responder;
    assert_eq!((s.half_open, s.cookies_sent), (0, 0), "{s:?}");
}

/// The lab's flood in small, on loopback (127.0.0.0/8 is all local, so the spoofed range needs
/// no route): the responder challenges both kinds of source with cookies, holds the address that
/// answers them to its per-address limit, and a legitimate client still gets in afterwards,
/// while the flood's half-open SAs keep the responder in cookie mode.
#[test]
fn flood_meets_cookies_and_the_per_address_limit_and_a_client_still_gets_in() {
    let dir = tempdir("flood-loopback");
    let r = Responder::start(&dir, "aes128gcm16-prfsha256-x25519!", "aes128gcm16!");
    let spoof_port = free_port().to_string();
    let (ok, s, _) = flood(
        r.port,
        true,
        &[
            "--flood-secs",
            "2",
            "--local",
            "127.0.2.1",
            "--cookie-rate",
            "50",
            "--spoof-rate",
            "100",
            "--spoof-from",
            "127.99.0.0/16",
            "--spoof-port",
            &spoof_port,
        ],
    );
    assert!(ok, "{s}");
    assert_eq!(count(&s, "real_sent"), 100, "{s}");
    assert_eq!(count(&s, "spoofed_sent"), 200, "{s}");
    // Past the cookie threshold (30 half-open SAs) every new request gets a COOKIE; the
    // cookie-answering address holds at most 5 half-open SAs (max_half_open_per_ip).
    assert!(count(&s, "spoofed_cookies") > 0, "{s}");
    assert!(count(&s, "real_cookies") > 0, "{s}");
    assert_eq!(
        count(&s, "real_cookie_answers"),
        count(&s, "real_cookies"),
        "{s}"
    );
    assert!(count(&s, "real_responses") <= 5, "{s}");
    assert!(count(&s, "spoofed_responses") <= 30, "{s}");
    assert_eq!(
        count(&s, "real_other") + count(&s, "spoofed_other"),
        0,
        "{s}"
    );
    let st = r.status().responder;
    assert!(st.cookies_sent > 0 && st.dropped_per_ip > 0, "{st:?}");
    assert_eq!(st.dropped_total, 0, "{st:?}");
    assert!(st.half_open >= 30, "{st:?}");

    // Half-open SAs last 30 s: a new client now meets a COOKIE and still comes up.
    let (ok, b) = bench(r.port, &["-n", "2", "-c", "1", "--local", "127.0.3.1"]);
    assert!(ok, "{b}");
    assert_eq!(field(&b, "established"), "2", "{b}");
    let after = r.status().responder;
    assert!(after.cookies_sent > st.cookies_sent, "{st:?} {after:?}");
}
