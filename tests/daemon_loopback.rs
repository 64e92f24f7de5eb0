//! Two ikev2d processes on loopback (127.0.0.1 = alice, 127.0.0.2 = bob) with `--kernel none`,
//! driven through ikectl: up, status, down, reload, wrong PSK, unknown conn, daemon not
//! running, SIGTERM. No privileges needed: unprivileged ports, nothing reaches the kernel.
//!
//! Synchronisation is by events: the daemon prints an "ikev2d ready" line on stderr, ikectl
//! returns when the daemon reports the outcome, and log lines are awaited as they arrive.

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use ikev2d::control::StatusReport;

/// Upper bound for anything to happen (generous for a loaded 2-core machine).
const WAIT: Duration = Duration::from_secs(30);

const ALICE: &str = "127.0.0.1";
const BOB: &str = "127.0.0.2";

/// Two free UDP ports usable on both loopback addresses.
fn free_ports() -> (u16, u16) {
    loop {
        let a = UdpSocket::bind(format!("{ALICE}:0")).unwrap();
        let b = UdpSocket::bind(format!("{ALICE}:0")).unwrap();
        let pa = a.local_addr().unwrap().port();
        let pb = b.local_addr().unwrap().port();
        if UdpSocket::bind(format!("{BOB}:{pa}")).is_ok()
            && UdpSocket::bind(format!("{BOB}:{pb}")).is_ok()
        {
            return (pa, pb);
        }
    }
}

struct Daemon {
    child: Child,
    ctl: PathBuf,
    lines: mpsc::Receiver<String>,
    log: Vec<String>,
}

impl Daemon {
    /// Starts ikev2d for `me` with a host-host conn (`auto=add`) to `peer` and waits for its
    /// ready line.
    fn start(dir: &Path, name: &str, me: &str, peer: &str, psk: &str, ports: (u16, u16)) -> Self {
        Self::start_auto(dir, name, me, peer, psk, ports, "add")
    }

    /// Like [`Daemon::start`] with the given `auto=` value.
    fn start_auto(
        dir: &Path,
        name: &str,
        me: &str,
        peer: &str,
        psk: &str,
        ports: (u16, u16),
        auto: &str,
    ) -> Self {
        let conf = dir.join(format!("{name}.conf"));
        let secrets = dir.join(format!("{name}.secrets"));
        std::fs::write(
            &conf,
            format!(
                "config setup\n\tcharondebug=\"any 4\"\n\n\
                 conn hh\n\tleft={me}\n\tright={peer}\n\tleftikeport={p}\n\trightikeport={p}\n\
                 \tauthby=secret\n\tkeyexchange=ikev2\n\ttype=transport\n\
                 \tike=aes128-sha256-x25519!\n\tesp=aes128-sha256!\n\tauto={auto}\n",
                p = ports.0
            ),
        )
        .unwrap();
        std::fs::write(&secrets, format!("{me} {peer} : PSK \"{psk}\"\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600)).unwrap();
        let ctl = dir.join(format!("{name}.ctl"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_ikev2d"))
            .args(["--conf", conf.to_str().unwrap()])
            .args(["--secrets", secrets.to_str().unwrap()])
            .args(["--ctl", ctl.to_str().unwrap()])
            .args(["--port", &ports.0.to_string()])
            .args(["--natt-port", &ports.1.to_string()])
            .args(["--kernel", "none"])
            .env_remove("RUST_LOG")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        let tag = name.to_string();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[{tag}] {line}");
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut d = Self {
            child,
            ctl,
            lines,
            log: Vec::new(),
        };
        d.wait_for("ikev2d ready");
        d
    }

    /// Waits until a stderr line contains `needle` (lines seen earlier count too).
    fn wait_for(&mut self, needle: &str) -> String {
        if let Some(l) = self.log.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        loop {
            match self.lines.recv_timeout(WAIT) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(e) => panic!("no line containing {needle:?} ({e}); log: {:#?}", self.log),
            }
        }
    }

    fn ikectl(&self, args: &[&str]) -> Output {
        ikectl(&self.ctl, args)
    }

    fn status(&self) -> StatusReport {
        let out = self.ikectl(&["status", "--json"]);
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn sigterm(mut self) -> std::process::ExitStatus {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        self.child.wait().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ikectl(ctl: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ikectl"))
        .args(["--ctl", ctl.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ikev2d-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn up_status_down_and_sigterm() {
    let dir = tempdir("loopback");
    let ports = free_ports();
    let alice = Daemon::start(&dir, "alice", ALICE, BOB, "same key", ports);
    let mut bob = Daemon::start(&dir, "bob", BOB, ALICE, "same key", ports);

    let up = alice.ikectl(&["up", "hh"]);
    let out = text(&up.stdout);
    assert!(up.status.success(), "{up:?}");
    assert!(
        out.contains(&format!("initiating IKE_SA hh[1] to {BOB}")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "established between {ALICE}[{ALICE}]...{BOB}[{BOB}]"
        )),
        "{out}"
    );
    assert!(
        out.contains("CHILD_SA hh{1} established with SPIs"),
        "{out}"
    );
    assert!(
        out.contains("connection 'hh' established successfully"),
        "{out}"
    );

    let a = alice.status();
    let b = bob.status();
    assert_eq!(a.kernel, "none");
    let (asa, bsa) = (&a.conns[0].ike_sas, &b.conns[0].ike_sas);
    assert_eq!((asa.len(), bsa.len()), (1, 1), "{a:#?}\n{b:#?}");
    let (asa, bsa) = (&asa[0], &bsa[0]);
    assert_eq!(asa.state, "ESTABLISHED");
    assert_eq!(bsa.state, "ESTABLISHED");
    assert_eq!(
        (asa.role.as_str(), bsa.role.as_str()),
        ("initiator", "responder")
    );
    assert_eq!((&asa.spi_i, &asa.spi_r), (&bsa.spi_i, &bsa.spi_r));
    assert_eq!(asa.remote_id.as_deref(), Some(BOB));
    assert!(
        asa.proposal
            .as_deref()
            .unwrap_or("")
            .contains("CURVE_25519"),
        "{asa:?}"
    );
    let (ac, bc) = (&asa.children, &bsa.children);
    assert_eq!((ac.len(), bc.len()), (1, 1));
    let (ac, bc) = (&ac[0], &bc[0]);
    assert_eq!(
        (ac.spi_in.as_str(), ac.spi_out.as_str()),
        (bc.spi_out.as_str(), bc.spi_in.as_str())
    );
    assert_eq!(ac.protocol, "ESP");
    assert_eq!(ac.mode, "TRANSPORT");
    assert_eq!(ac.encr_key_bits, 128);
    assert_eq!(ac.integ_key_bits, Some(256));
    assert!(!ac.installed);
    assert_eq!(ac.local_ts, vec![format!("{ALICE}/32")]);
    assert_eq!(ac.remote_ts, vec![format!("{BOB}/32")]);
    // The text form answers the same questions.
    let st = text(&alice.ikectl(&["status"]).stdout);
    assert!(st.contains("1 up, 1 total, 1 CHILD_SA"), "{st}");
    assert!(
        st.contains(&format!("ESP SPIs: {}_i {}_o", ac.spi_in, ac.spi_out)),
        "{st}"
    );

    // Unknown conn: a clear error, non-zero exit.
    let bad = alice.ikectl(&["up", "nope"]);
    assert_eq!(bad.status.code(), Some(1), "{bad:?}");
    assert!(text(&bad.stderr).contains("nope"), "{bad:?}");

    let down = alice.ikectl(&["down", "hh"]);
    assert!(down.status.success(), "{down:?}");
    assert!(alice.status().conns[0].ike_sas.is_empty());
    // bob answered alice's DELETE before alice's `down` returned.
    assert!(bob.status().conns[0].ike_sas.is_empty());
    bob.wait_for("deleted by the peer");

    // A broken file is refused with its diagnostics; the running conns stay.
    let conf = dir.join("alice.conf");
    let good = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(&conf, format!("{good}\tbogus_keyword=1\n")).unwrap();
    let reload = alice.ikectl(&["reload"]);
    assert_eq!(reload.status.code(), Some(1), "{reload:?}");
    assert!(text(&reload.stderr).contains("bogus_keyword"), "{reload:?}");
    assert_eq!(alice.status().conns.len(), 1);
    std::fs::write(&conf, &good).unwrap();
    let reload = alice.ikectl(&["reload"]);
    assert!(reload.status.success(), "{reload:?}");
    assert!(
        text(&reload.stdout).contains("loaded 1 conn(s)"),
        "{reload:?}"
    );

    // Again, ended by SIGTERM: alice deletes its IKE SA, bob learns it, alice exits 0.
    let up = alice.ikectl(&["up", "hh"]);
    assert!(up.status.success(), "{up:?}");
    assert_eq!(bob.status().conns[0].ike_sas.len(), 1);
    let status = alice.sigterm();
    assert!(status.success(), "{status:?}");
    bob.wait_for("IKE_SA hh[2] deleted by the peer");
    assert!(bob.status().conns[0].ike_sas.is_empty());
    // alice's control socket is gone: "not running", exit 3.
    let gone = ikectl(&dir.join("alice.ctl"), &["status"]);
    assert_eq!(gone.status.code(), Some(3), "{gone:?}");
    assert!(text(&gone.stderr).contains("not running"), "{gone:?}");
    drop(bob);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn wrong_psk_fails_on_both_sides() {
    let dir = tempdir("wrong-psk");
    let ports = free_ports();
    let mut alice = Daemon::start(&dir, "alice", ALICE, BOB, "alice's key", ports);
    let mut bob = Daemon::start(&dir, "bob", BOB, ALICE, "bob's key", ports);
    let up = alice.ikectl(&["up", "hh"]);
    assert_eq!(up.status.code(), Some(1), "{up:?}");
    assert!(text(&up.stderr).contains("AUTHENTICATION_FAILED"), "{up:?}");
    bob.wait_for("AUTHENTICATION_FAILED");
    assert!(alice.status().conns[0].ike_sas.is_empty());
    assert!(bob.status().conns[0].ike_sas.is_empty());
    // Logs run at the highest level (charondebug "any 4") and still never show a PSK.
    alice.wait_for("AUTHENTICATION_FAILED");
    for line in bob.log.iter().chain(&alice.log) {
        assert!(
            !line.contains("bob's key") && !line.contains("alice's key"),
            "{line}"
        );
    }
    drop((alice, bob));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn auto_start_initiates_at_startup() {
    let dir = tempdir("auto-start");
    let ports = free_ports();
    let mut bob = Daemon::start(&dir, "bob", BOB, ALICE, "k", ports);
    let mut alice = Daemon::start_auto(&dir, "alice", ALICE, BOB, "k", ports, "start");
    alice.wait_for("CHILD_SA hh{1} established");
    bob.wait_for("CHILD_SA hh{1} established");
    assert_eq!(bob.status().conns[0].ike_sas[0].children.len(), 1);
    drop((alice, bob));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ikectl_without_daemon_exits_3() {
    let out = ikectl(Path::new("/nonexistent/ikev2d.ctl"), &["status"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        text(&out.stderr).contains("ikev2d is not running"),
        "{out:?}"
    );
}
