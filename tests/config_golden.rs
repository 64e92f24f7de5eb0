//! Golden tests for `ikectl check`: every directory of tests/config-corpus holds an
//! ipsec.conf, an ipsec.secrets and `check.expected`, the exact report (diagnostics with
//! file:line:column, one summary line per conn, totals). Directories named `bad-*` are the
//! negative cases and must report errors; the others must be error-free.
//!
//! Set `UPDATE_GOLDEN=1` to rewrite the .expected files after an intended change (and review
//! the diff).

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use ikev2d::config::check::check;
use ikev2d::config::conn::HostResolver;

/// A fixed name table instead of the system resolver.
struct FakeDns;

impl HostResolver for FakeDns {
    fn resolve(&self, name: &str) -> std::io::Result<Vec<IpAddr>> {
        let addr: IpAddr = match name {
            "moon.strongswan.org" => Ipv4Addr::new(192, 168, 0, 1).into(),
            "sun.strongswan.org" => Ipv4Addr::new(192, 168, 0, 2).into(),
            _ => return Err(std::io::ErrorKind::NotFound.into()),
        };
        Ok(vec![addr])
    }
}

/// Secrets files come out of git as 0644; make them 0600 so the permission warning (covered
/// by unit tests) does not depend on the checkout's umask.
fn private_secrets(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for entry in walk(dir) {
        if entry.extension().is_some_and(|e| e == "secrets") {
            std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn case_dirs(root: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("ipsec.conf").exists())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn corpus_matches_expected_reports() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    let dirs = case_dirs("tests/config-corpus");
    assert!(dirs.len() >= 15, "corpus went missing: {dirs:?}");
    for dir in dirs {
        private_secrets(&dir);
        let report = check(
            &dir.join("ipsec.conf"),
            &dir.join("ipsec.secrets"),
            &FakeDns,
        );
        let got = report.to_string();
        let bad = dir
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("bad-");
        assert_eq!(!report.ok(), bad, "{}: error status\n{got}", dir.display());
        let expected_path = dir.join("check.expected");
        if update {
            std::fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if got != expected {
            failures.push(format!(
                "{}:\n--- expected\n{expected}--- got\n{got}",
                dir.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The lab's configurations in conf/ must be clean: no error and no warning.
#[test]
fn lab_configs_are_clean() {
    let mut n = 0;
    for scenario in case_dirs("conf").into_iter().chain(
        ["conf/host-host", "conf/net-net"]
            .iter()
            .flat_map(|d| case_dirs(d)),
    ) {
        private_secrets(&scenario);
        let report = check(
            &scenario.join("ipsec.conf"),
            &scenario.join("ipsec.secrets"),
            &FakeDns,
        );
        assert!(
            report.diagnostics.items.is_empty(),
            "{}:\n{report}",
            scenario.display()
        );
        assert!(
            report
                .summaries
                .iter()
                .any(|s| s.contains("auto=add") && s.contains("psk: "))
        );
        n += 1;
    }
    assert_eq!(n, 4, "expected alice and bob for host-host and net-net");
}
