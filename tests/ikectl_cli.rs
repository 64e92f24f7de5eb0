//! The ikectl binary: `check` exit codes and output, and the not-yet-wired subcommands.

use std::process::Command;

fn ikectl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ikectl"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn private(path: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn check_clean_config_exits_0() {
    private("conf/host-host/alice/ipsec.secrets");
    let (code, out, _) = ikectl(&[
        "check",
        "--conf",
        "conf/host-host/alice/ipsec.conf",
        "--secrets",
        "conf/host-host/alice/ipsec.secrets",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("host-host: 10.1.0.1 <-> 10.1.0.2, ids 10.1.0.1 <-> 10.1.0.2, transport, ike aes128-sha256-x25519!, esp aes128-sha256!, auto=add, ikelifetime 3h, lifetime 1h, psk: conf/host-host/alice/ipsec.secrets:2\n"), "{out}");
}

#[test]
fn check_broken_config_exits_1() {
    private("tests/config-corpus/bad-keywords/ipsec.secrets");
    let (code, out, _) = ikectl(&[
        "check",
        "--conf",
        "tests/config-corpus/bad-keywords/ipsec.conf",
        "--secrets",
        "tests/config-corpus/bad-keywords/ipsec.secrets",
    ]);
    assert_eq!(code, 1);
    assert!(out.contains("tests/config-corpus/bad-keywords/ipsec.conf:10:2: error: unknown keyword 'rigthsubnet' (did you mean 'rightsubnet'?)\n"), "{out}");
}

#[test]
fn check_missing_files_exits_1() {
    let (code, out, _) = ikectl(&[
        "check",
        "--conf",
        "/nonexistent.conf",
        "--secrets",
        "/nonexistent.secrets",
    ]);
    assert_eq!(code, 1);
    assert!(
        out.starts_with("/nonexistent.conf:1:1: error: cannot read file:"),
        "{out}"
    );
}

#[test]
fn daemon_commands_without_a_daemon_exit_3() {
    let ctl = "/nonexistent/ikev2d-test.ctl";
    for args in [
        &["--ctl", ctl, "up", "host-host"][..],
        &["--ctl", ctl, "down", "x"],
        &["--ctl", ctl, "status", "--json"],
        &["--ctl", ctl, "reload"],
        &["status", "--ctl", ctl],
    ] {
        let (code, _, err) = ikectl(args);
        assert_eq!(code, 3, "{args:?}");
        assert!(
            err.starts_with(
                "ikectl: ikev2d is not running (no control socket at /nonexistent/ikev2d-test.ctl"
            ),
            "{err}"
        );
    }
    let (code, _, _) = ikectl(&["frobnicate"]);
    assert_eq!(code, 2, "clap usage error");
}

#[test]
fn check_shows_the_settings_file_and_its_errors() {
    private("conf/host-host/alice/ipsec.secrets");
    let base = [
        "check",
        "--conf",
        "conf/host-host/alice/ipsec.conf",
        "--secrets",
        "conf/host-host/alice/ipsec.secrets",
        "--settings",
    ];
    let (code, out, _) = ikectl(&[&base[..], &["conf/ikev2d.toml"]].concat());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("settings from conf/ikev2d.toml:\n"), "{out}");
    assert!(out.contains("retransmit.tries = 5\n"), "{out}");
    assert!(out.contains("responder.cookie_threshold = 30\n"), "{out}");

    let dir = std::env::temp_dir().join(format!("ikectl-settings-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("ikev2d.toml");
    std::fs::write(&bad, "[retransmit]\ntries = 5\nbase = 20\n").unwrap();
    let bad = bad.to_str().unwrap();
    let (code, out, _) = ikectl(&[&base[..], &[bad]].concat());
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("{bad}:3:8: error: base 20 is outside 1..=10")),
        "{out}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
