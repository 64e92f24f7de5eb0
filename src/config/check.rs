//! `ikectl check`: load ipsec.conf and ipsec.secrets, report diagnostics and one summary line
//! per conn. No daemon is needed.
//!
//! `check` treats `left` as the local side when looking up the PSK; the daemon decides the
//! local side at run time with [`super::conn::resolve_local_side`].

use std::fmt;
use std::path::Path;

use super::conn::{Auto, Conn, ConnType, End, HostResolver};
use super::diag::{Diagnostics, Severity};
use super::ident::Identity;
use super::load::{Loaded, load};
use super::secrets::Secrets;
use super::values::{Host, ProtoPort, fmt_duration};

/// The result of `ikectl check`: diagnostics and one summary line per conn.
#[derive(Debug, Default)]
pub struct CheckReport {
    pub diagnostics: Diagnostics,
    pub summaries: Vec<String>,
}

impl CheckReport {
    /// True when there is no error (warnings allowed): `ikectl check` exits 0.
    pub fn ok(&self) -> bool {
        !self.diagnostics.has_errors()
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.diagnostics.items {
            writeln!(f, "{d}")?;
        }
        for s in &self.summaries {
            writeln!(f, "{s}")?;
        }
        let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
        writeln!(
            f,
            "{}, {}, {} (left is taken as local; the daemon picks the local side at run time)",
            plural(self.summaries.len(), "conn"),
            plural(self.diagnostics.count(Severity::Error), "error"),
            plural(self.diagnostics.count(Severity::Warning), "warning"),
        )
    }
}

fn host(e: &End) -> String {
    let mut s = match (&e.host, e.resolved.first()) {
        (Host::Name(n), Some(a)) => format!("{n} ({a})"),
        (h, _) => h.to_string(),
    };
    if e.ikeport != 500 {
        s.push_str(&format!("[{}]", e.ikeport));
    }
    s
}

fn subnets(e: &End) -> String {
    // Without a subnet, an end with a virtual IP (asked for or given) has it as selector.
    let nets = if e.sourceip.is_empty() {
        e.effective_subnets()
    } else {
        e.subnets.clone()
    };
    if nets.is_empty() {
        "dynamic".to_owned()
    } else {
        nets.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A shunt's side: its subnets or host, else every address (`%any`).
fn shunt_nets(e: &End) -> String {
    match subnets(e).as_str() {
        "dynamic" => "%any".to_owned(),
        nets => nets.to_owned(),
    }
}

fn summary(c: &Conn, secrets: &Secrets, diags: &mut Diagnostics) -> String {
    let lid = c.left.effective_id();
    let rid = c.right.effective_id();
    let mut parts = vec![format!("{} <-> {}", host(&c.left), host(&c.right))];
    if !c.conn_type.is_shunt() {
        parts.push(format!("ids {lid} <-> {rid}"));
    }
    let mut mode = c.conn_type.to_string();
    if c.conn_type.is_shunt() {
        mode = format!(
            "shunt type={} {} === {}",
            if c.conn_type == ConnType::Drop {
                "drop"
            } else {
                "pass"
            },
            shunt_nets(&c.left),
            shunt_nets(&c.right)
        );
    } else if c.conn_type == ConnType::Tunnel
        || !c.left.subnets.is_empty()
        || !c.right.subnets.is_empty()
    {
        mode.push_str(&format!(" {} === {}", subnets(&c.left), subnets(&c.right)));
    }
    if c.left.protoport != ProtoPort::default() || c.right.protoport != ProtoPort::default() {
        mode.push_str(&format!(
            " [{} <-> {}]",
            c.left.protoport, c.right.protoport
        ));
    }
    parts.push(mode);
    if c.conn_type.is_shunt() {
        parts.push(format!("auto={}", c.auto));
        return format!("{}: {}", c.name, parts.join(", "));
    }
    for (side, end) in [("left", &c.left), ("right", &c.right)] {
        if !end.sourceip.is_empty() {
            let ips: Vec<String> = end.sourceip.iter().map(ToString::to_string).collect();
            parts.push(format!("{side}sourceip {}", ips.join(",")));
        }
    }
    parts.push(format!("ike {}", c.ike));
    parts.push(match &c.ah {
        Some(ah) => format!("ah {ah}"),
        None => format!("esp {}", c.esp),
    });
    parts.push(format!("auto={}", c.auto));
    parts.push(format!("ikelifetime {}", fmt_duration(c.ikelifetime)));
    parts.push(format!("lifetime {}", fmt_duration(c.lifetime)));
    if c.auto == Auto::Ignore {
        parts.push("not loaded".to_owned());
    } else {
        parts.push(psk_summary(c, secrets, &lid, &rid, diags));
    }
    format!("{}: {}", c.name, parts.join(", "))
}

/// Which ipsec.secrets entries a conn uses: the one for its two identities, or, when an end is
/// only known at IKE_AUTH (`%any`, a wildcard), every entry such a peer could be given.
fn psk_summary(
    c: &Conn,
    secrets: &Secrets,
    lid: &Identity,
    rid: &Identity,
    diags: &mut Diagnostics,
) -> String {
    if lid.is_pattern() || rid.is_pattern() {
        let found: Vec<String> = secrets
            .candidates(lid, rid)
            .map(|e| format!("{}:{}", e.pos.file, e.pos.line))
            .collect();
        if found.is_empty() {
            diags.error(
                &c.pos,
                format!(
                    "conn '{}': no PSK in ipsec.secrets that a peer {rid} of {lid} could use",
                    c.name
                ),
            );
            return "psk: none".to_owned();
        }
        return format!("psk: by peer ID from {}", found.join(" "));
    }
    match secrets.lookup(lid, rid) {
        Some(e) => format!("psk: {}:{}", e.pos.file, e.pos.line),
        None => {
            diags.error(
                &c.pos,
                format!(
                    "conn '{}': no PSK in ipsec.secrets for ids {lid} <-> {rid}",
                    c.name
                ),
            );
            "psk: none".to_owned()
        }
    }
}

/// Builds the report for already loaded files.
pub fn report(loaded: Loaded) -> CheckReport {
    let mut diagnostics = loaded.diagnostics;
    let summaries = loaded
        .config
        .conns
        .iter()
        .map(|c| summary(c, &loaded.secrets, &mut diagnostics))
        .collect();
    CheckReport {
        diagnostics,
        summaries,
    }
}

/// `ikectl check --conf CONF --secrets SECRETS`.
pub fn check(conf: &Path, secrets: &Path, dns: &dyn HostResolver) -> CheckReport {
    report(load(conf, secrets, dns))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::conn::NoDns;
    use crate::config::load::load_str;
    use crate::config::source::{MemResolver, SourceFile};

    fn src(name: &str, text: &str) -> SourceFile {
        SourceFile {
            name: name.to_owned(),
            text: text.to_owned(),
            mode: Some(0o600),
        }
    }

    #[test]
    fn host_host_summary() {
        let conf = src(
            "ipsec.conf",
            "conn host-host\n  left=10.1.0.1\n  right=10.1.0.2\n  authby=secret\n  type=transport\n  keyexchange=ikev2\n  ike=aes128-sha256-x25519!\n  esp=aes128-sha256!\n  auto=add\n",
        );
        let secrets = src("ipsec.secrets", "10.1.0.1 10.1.0.2 : PSK \"x\"\n");
        let r = report(load_str(&conf, &secrets, &MemResolver::default(), &NoDns));
        assert!(r.ok(), "{r}");
        assert_eq!(
            r.summaries,
            [
                "host-host: 10.1.0.1 <-> 10.1.0.2, ids 10.1.0.1 <-> 10.1.0.2, transport, ike aes128-sha256-x25519!, esp aes128-sha256!, auto=add, ikelifetime 3h, lifetime 1h, psk: ipsec.secrets:1"
            ]
        );
    }

    #[test]
    fn virtual_ip_summary() {
        let conf = src(
            "ipsec.conf",
            "conn rw\n  left=10.1.0.2\n  leftsubnet=10.1.2.0/24\n  right=%any\n  rightsourceip=10.3.0.0/24\n  authby=secret\n  auto=add\nconn c\n  left=10.1.1.2\n  leftsourceip=%config\n  right=10.1.0.2\n  rightsubnet=10.1.2.0/24\n  authby=secret\n  auto=add\n",
        );
        let secrets = src("ipsec.secrets", ": PSK \"x\"\n");
        let r = report(load_str(&conf, &secrets, &MemResolver::default(), &NoDns));
        assert!(r.ok(), "{r}");
        assert!(
            r.summaries[0].contains("tunnel 10.1.2.0/24 === dynamic, rightsourceip 10.3.0.0/24,"),
            "{r}"
        );
        assert!(
            r.summaries[1].contains("tunnel dynamic === 10.1.2.0/24, leftsourceip %config4,"),
            "{r}"
        );
    }

    #[test]
    fn ah_conn_summary_and_esp_with_ah_refused() {
        let text = "conn host-host\n  left=10.1.0.1\n  right=10.1.0.2\n  authby=secret\n  type=transport\n  ike=aes128-sha256-x25519!\n  ah=sha1!\n  auto=add\n";
        let secrets = src("ipsec.secrets", "10.1.0.1 10.1.0.2 : PSK \"x\"\n");
        let r = report(load_str(
            &src("ipsec.conf", text),
            &secrets,
            &MemResolver::default(),
            &NoDns,
        ));
        assert!(r.ok(), "{r}");
        assert!(r.summaries[0].contains(", ah sha1!, "), "{r}");
        let both = text.replace("ah=sha1!", "esp=aes128-sha256!\n  ah=sha1!");
        let r = report(load_str(
            &src("ipsec.conf", &both),
            &secrets,
            &MemResolver::default(),
            &NoDns,
        ));
        assert!(!r.ok());
        let shown = r.to_string();
        assert!(
            shown.contains("esp= and ah= together cannot be negotiated"),
            "{shown}"
        );
    }

    #[test]
    fn shunts_need_no_psk_and_auto_route() {
        let text = "conn ssh\n  leftsubnet=0.0.0.0/0[tcp/22]\n  rightsubnet=0.0.0.0/0\n  type=pass\n  authby=never\n  auto=route\nconn dns\n  left=10.1.0.1\n  rightsubnet=10.1.0.0/16[%any/53]\n  type=drop\n  auto=route\n";
        let none = src("ipsec.secrets", "");
        let r = report(load_str(
            &src("ipsec.conf", text),
            &none,
            &MemResolver::default(),
            &NoDns,
        ));
        assert!(r.ok(), "{r}");
        assert_eq!(
            r.summaries,
            [
                "ssh: %any <-> %any, shunt type=pass 0.0.0.0/0 === 0.0.0.0/0 [tcp/22 <-> %any], auto=route",
                "dns: 10.1.0.1 <-> %any, shunt type=pass 10.1.0.1/32 === 10.1.0.0/16 [%any <-> %any/53], auto=route"
                    .replace("type=pass 10.1", "type=drop 10.1")
                    .as_str(),
            ]
        );
        let add = text.replace(
            "type=pass\n  authby=never\n  auto=route",
            "type=pass\n  authby=never\n  auto=add",
        );
        let r = report(load_str(
            &src("ipsec.conf", &add),
            &none,
            &MemResolver::default(),
            &NoDns,
        ));
        assert_eq!(
            r.diagnostics
                .items
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            [
                "ipsec.conf:1:6: error: conn 'ssh': a type=pass shunt is installed as policies, never negotiated: it needs auto=route, not auto=add"
            ]
        );
        let clash = text.replace(
            "rightsubnet=10.1.0.0/16[%any/53]",
            "rightsubnet=10.1.0.0/16[udp/53]\n  rightprotoport=tcp",
        );
        let r = report(load_str(
            &src("ipsec.conf", &clash),
            &none,
            &MemResolver::default(),
            &NoDns,
        ));
        assert!(
            r.to_string().contains("ipsec.conf:7:6: error: conn 'dns': rightsubnet's selector [udp/53] and rightprotoport=tcp disagree"),
            "{r}"
        );
    }

    #[test]
    fn subnet_selector_on_a_tunnel() {
        let conf = src(
            "ipsec.conf",
            "conn t\n  left=10.1.0.1\n  right=10.1.0.2\n  authby=secret\n  rightsubnet=10.1.2.0/24[tcp/22]\n  auto=add\n",
        );
        let secrets = src("ipsec.secrets", "10.1.0.1 10.1.0.2 : PSK \"x\"\n");
        let r = report(load_str(&conf, &secrets, &MemResolver::default(), &NoDns));
        assert!(r.ok(), "{r}");
        assert!(
            r.summaries[0].contains("tunnel 10.1.0.1/32 === 10.1.2.0/24 [%any <-> tcp/22]"),
            "{r}"
        );
    }

    #[test]
    fn missing_psk_is_an_error() {
        let conf = src(
            "c",
            "conn a\n  left=10.0.0.1\n  right=10.0.0.2\n  authby=psk\n  auto=add\n",
        );
        let secrets = src("s", "@other : PSK x\n");
        let r = report(load_str(&conf, &secrets, &MemResolver::default(), &NoDns));
        assert!(!r.ok());
        assert_eq!(
            r.diagnostics.items[0].to_string(),
            "c:1:6: error: conn 'a': no PSK in ipsec.secrets for ids 10.0.0.1 <-> 10.0.0.2"
        );
        assert!(r.to_string().ends_with("1 conn, 1 error, 0 warnings (left is taken as local; the daemon picks the local side at run time)\n"));
    }

    #[test]
    fn missing_files() {
        let r = check(
            Path::new("/nonexistent/ipsec.conf"),
            Path::new("/nonexistent/ipsec.secrets"),
            &NoDns,
        );
        assert!(!r.ok());
        assert_eq!(r.diagnostics.count(Severity::Error), 2);
    }
}
