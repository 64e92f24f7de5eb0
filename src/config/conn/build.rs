//! Building typed conns: `also=` chains (depth first, cycles reported) and `%default`
//! sections resolve each conn's effective values, then the ipsec.conf(5) defaults apply.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::diag::{Diagnostics, Pos, did_you_mean};
use crate::config::ident::Identity;
use crate::config::parse::{RawConf, Section, SectionKind};
use crate::config::proposal::{Proposals, Protocol};
use crate::config::values::{DnsServer, Host, Mark, ProtoPort, SourceIp, SubnetList};

use super::section::{Checked, build_setup, check_conn_section};
use super::validate::check_conn;
use super::value::Val;
use super::{
    Action, AuthMethod, Auto, Config, Conn, ConnType, End, Fragmentation, HostResolver, Setup,
};

/// Effective settings of one conn after also= and %default.
struct Resolved<'a> {
    values: BTreeMap<&'a str, &'a Val>,
}

impl Resolved<'_> {
    fn get(&self, key: &str) -> Option<&Val> {
        self.values.get(key).copied().filter(|v| **v != Val::Unset)
    }
}

macro_rules! getter {
    ($name:ident, $variant:ident, $ty:ty) => {
        fn $name(&self, key: &str) -> Option<$ty> {
            match self.get(key) {
                Some(Val::$variant(x)) => Some(x.clone()),
                _ => None,
            }
        }
    };
}

impl Resolved<'_> {
    getter!(host, Host, Host);
    getter!(id, Id, Identity);
    getter!(subnets, Subnets, SubnetList);
    getter!(protoport, ProtoPort, ProtoPort);
    getter!(sourceips, SourceIps, Vec<SourceIp>);
    getter!(dns, Dns, Vec<DnsServer>);
    getter!(port, Port, u16);
    getter!(auth, Auth, AuthMethod);
    getter!(proposals, Proposals, Proposals);
    getter!(conn_type, ConnType, ConnType);
    getter!(auto, Auto, Auto);
    getter!(duration, Duration, Duration);
    getter!(percent, Percent, u32);
    getter!(tries, Tries, Option<u32>);
    getter!(flag, Bool, bool);
    getter!(action, Action, Action);
    getter!(frag, Fragmentation, Fragmentation);
    getter!(number, U32, u32);
    getter!(count, U64, u64);
    getter!(mark, Mark, Mark);
    getter!(text, Text, String);
}

struct Builder<'a> {
    conns: Vec<(&'a Section, Checked)>,
    defaults: Checked,
    dns: &'a dyn HostResolver,
}

impl<'a> Builder<'a> {
    fn index(&self, name: &str) -> Option<usize> {
        self.conns.iter().position(|(s, _)| s.name == name)
    }

    /// Collects a conn's values: own first, then also= chains depth first.
    fn collect(
        &'a self,
        idx: usize,
        chain: &mut Vec<usize>,
        out: &mut BTreeMap<&'a str, &'a Val>,
        reported: &mut Vec<String>,
        diags: &mut Diagnostics,
    ) {
        let Some((_, checked)) = self.conns.get(idx) else {
            return;
        };
        chain.push(idx);
        for (k, (v, _)) in &checked.values {
            out.entry(k.as_str()).or_insert(v);
        }
        for (target, pos) in &checked.also {
            // An also= problem is reported once, not for every conn that reaches it.
            match self.index(target) {
                None if !reported.contains(&pos.to_string()) => {
                    reported.push(pos.to_string());
                    let names = self.conns.iter().map(|(s, _)| s.name.as_str());
                    diags.error(
                        pos,
                        format!(
                            "also={target} references an unknown conn{}",
                            did_you_mean(target, names)
                        ),
                    );
                }
                Some(t) if chain.contains(&t) => {
                    let cycle: Vec<usize> =
                        chain.iter().skip_while(|i| **i != t).copied().collect();
                    let mut key: Vec<String> = cycle.iter().map(ToString::to_string).collect();
                    key.sort();
                    let key = format!("cycle {}", key.join(","));
                    if !reported.contains(&key) {
                        reported.push(key);
                        let mut names: Vec<&str> = cycle
                            .iter()
                            .filter_map(|i| self.conns.get(*i).map(|(s, _)| s.name.as_str()))
                            .collect();
                        names.push(target);
                        diags.error(pos, format!("also= cycle: {}", names.join(" -> ")));
                    }
                }
                Some(t) => self.collect(t, chain, out, reported, diags),
                None => {}
            }
        }
        chain.pop();
    }

    fn end(
        &self,
        r: &Resolved<'_>,
        side: &str,
        authby: AuthMethod,
        sec: &Section,
        diags: &mut Diagnostics,
    ) -> End {
        let key = |k: &str| format!("{side}{k}");
        let host = r.host(side).unwrap_or(Host::Any { v6: false });
        let resolved = match &host {
            Host::Name(n) => match self.dns.resolve(n) {
                Ok(addrs) if !addrs.is_empty() => addrs,
                Ok(_) | Err(_) => {
                    diags.warning(
                        &sec.pos,
                        format!(
                            "conn '{}': cannot resolve {side}={n} now; it is looked up again when used",
                            sec.name
                        ),
                    );
                    Vec::new()
                }
            },
            _ => Vec::new(),
        };
        let subnets = r.subnets(&key("subnet")).unwrap_or_default();
        let protoport = match (subnets.protoport, r.protoport(&key("protoport"))) {
            (Some(sel), Some(pp)) if sel != pp => {
                diags.error(
                    &sec.pos,
                    format!(
                        "conn '{}': {side}subnet's selector [{sel}] and {side}protoport={pp} disagree; keep one of them",
                        sec.name
                    ),
                );
                pp
            }
            (sel, pp) => sel.or(pp).unwrap_or_default(),
        };
        End {
            host,
            resolved,
            id: r.id(&key("id")),
            subnets: subnets.nets,
            protoport,
            ikeport: r.port(&key("ikeport")).unwrap_or(500),
            auth: r.auth(&key("auth")).unwrap_or(authby),
            updown: r.text(&key("updown")),
            sourceip: r.sourceips(&key("sourceip")).unwrap_or_default(),
            dns: r.dns(&key("dns")).unwrap_or_default(),
            firewall: r.flag(&key("firewall")).unwrap_or(false),
        }
    }

    fn conn(
        &'a self,
        idx: usize,
        reported: &mut Vec<String>,
        diags: &mut Diagnostics,
    ) -> Option<Conn> {
        let (sec, _) = self.conns.get(idx)?;
        let mut values = BTreeMap::new();
        self.collect(idx, &mut Vec::new(), &mut values, reported, diags);
        for (k, (v, _)) in &self.defaults.values {
            values.entry(k.as_str()).or_insert(v);
        }
        let r = Resolved { values };
        let authby = r.auth("authby").unwrap_or(AuthMethod::Pubkey);
        let left = self.end(&r, "left", authby, sec, diags);
        let right = self.end(&r, "right", authby, sec, diags);
        let conn = Conn {
            name: sec.name.clone(),
            pos: sec.pos.clone(),
            left,
            right,
            ike: r
                .proposals("ike")
                .unwrap_or_else(|| Proposals::default_for(Protocol::Ike)),
            esp: r
                .proposals("esp")
                .unwrap_or_else(|| Proposals::default_for(Protocol::Esp)),
            ah: r.proposals("ah"),
            conn_type: r.conn_type("type").unwrap_or(ConnType::Tunnel),
            auto: r.auto("auto").unwrap_or(Auto::Ignore),
            ikelifetime: r
                .duration("ikelifetime")
                .unwrap_or(Duration::from_secs(3 * 3600)),
            lifetime: r.duration("lifetime").unwrap_or(Duration::from_secs(3600)),
            rekeymargin: r
                .duration("rekeymargin")
                .unwrap_or(Duration::from_secs(9 * 60)),
            rekeyfuzz_percent: r.percent("rekeyfuzz").unwrap_or(100),
            keyingtries: r.tries("keyingtries").unwrap_or(Some(3)),
            rekey: r.flag("rekey").unwrap_or(true),
            reauth: r.flag("reauth").unwrap_or(true),
            dpdaction: r.action("dpdaction").unwrap_or(Action::None),
            dpddelay: r.duration("dpddelay").unwrap_or(Duration::from_secs(30)),
            dpdtimeout: r.duration("dpdtimeout").unwrap_or(Duration::from_secs(150)),
            closeaction: r.action("closeaction").unwrap_or(Action::None),
            mobike: r.flag("mobike").unwrap_or(true),
            fragmentation: r.frag("fragmentation").unwrap_or(Fragmentation::Yes),
            forceencaps: r.flag("forceencaps").unwrap_or(false),
            replay_window: r.number("replay_window"),
            reqid: r.number("reqid"),
            mark: r.mark("mark"),
            mark_in: r.mark("mark_in"),
            mark_out: r.mark("mark_out"),
            inactivity: r.duration("inactivity"),
            lifebytes: r.count("lifebytes"),
            lifepackets: r.count("lifepackets"),
            marginbytes: r.count("marginbytes").unwrap_or(0),
            marginpackets: r.count("marginpackets").unwrap_or(0),
        };
        check_conn(&conn, diags);
        Some(conn)
    }
}

/// Builds the typed configuration from parsed sections.
pub fn build_config(raw: &RawConf, dns: &dyn HostResolver, diags: &mut Diagnostics) -> Config {
    let mut setup = Setup::default();
    let mut defaults = Checked::default();
    let mut conns: Vec<(&Section, Checked)> = Vec::new();
    let mut seen_setup: Option<&Pos> = None;
    for sec in &raw.sections {
        match sec.kind {
            SectionKind::Setup => {
                if let Some(first) = seen_setup {
                    diags.warning(
                        &sec.pos,
                        format!("second 'config setup' section (first at {first}); both are read"),
                    );
                }
                seen_setup = Some(&sec.pos);
                build_setup(sec, &mut setup, diags);
            }
            SectionKind::Ca => diags.warning(
                &sec.pos,
                format!(
                    "ca sections are not supported; 'ca {}' is ignored",
                    sec.name
                ),
            ),
            SectionKind::Conn if sec.name == "%default" => {
                let checked = check_conn_section(sec, diags);
                for (pos_also, pos) in &checked.also {
                    diags.error(
                        pos,
                        format!("also={pos_also} is not allowed in conn %default"),
                    );
                }
                defaults.values.extend(checked.values);
            }
            SectionKind::Conn => {
                if let Some((first, _)) = conns.iter().find(|(s, _)| s.name == sec.name) {
                    diags.error(
                        &sec.pos,
                        format!(
                            "duplicate conn '{}' (first defined at {})",
                            sec.name, first.pos
                        ),
                    );
                    continue;
                }
                let checked = check_conn_section(sec, diags);
                conns.push((sec, checked));
            }
        }
    }
    let builder = Builder {
        conns,
        defaults,
        dns,
    };
    let mut reported = Vec::new();
    let conns = (0..builder.conns.len())
        .filter_map(|i| builder.conn(i, &mut reported, diags))
        .collect();
    Config { setup, conns }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::config::conn::{NoDns, Side, resolve_local_side};
    use crate::config::parse::parse_conf_str;
    use crate::config::source::MemResolver;

    fn build(text: &str) -> (Config, Vec<String>) {
        let (raw, mut d) = parse_conf_str("t", text, &MemResolver::default());
        let c = build_config(&raw, &NoDns, &mut d);
        (c, d.items.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn documented_defaults() {
        let (c, d) = build("conn a\n  left=10.0.0.1\n  right=10.0.0.2\n");
        assert!(d.is_empty(), "{d:?}");
        let a = c.conn("a").unwrap();
        assert_eq!(a.ikelifetime, Duration::from_secs(3 * 3600));
        assert_eq!(a.lifetime, Duration::from_secs(3600));
        assert_eq!(a.rekeymargin, Duration::from_secs(540));
        assert_eq!(a.rekeyfuzz_percent, 100);
        assert_eq!(a.keyingtries, Some(3));
        assert_eq!((a.conn_type, a.auto), (ConnType::Tunnel, Auto::Ignore));
        assert!(a.mobike && a.rekey && a.reauth && !a.forceencaps);
        assert_eq!(
            (a.dpdaction, a.dpddelay),
            (Action::None, Duration::from_secs(30))
        );
        assert_eq!(a.left.auth, AuthMethod::Pubkey);
        assert_eq!(a.left.ikeport, 500);
        assert!(!a.ike.configured && !a.esp.configured);
    }

    #[test]
    fn precedence_own_also_default_and_reset() {
        let (c, d) = build(
            "conn %default\n  ikelifetime=8h\n  lifetime=2h\n  keyingtries=%forever\n  authby=secret\nconn x\n  also=y\n  ikelifetime=1h\n  keylife=\n  auto=add\nconn y\n  also=z\n  left=10.0.0.1\n  ikelifetime=4h\nconn z\n  right=10.0.0.2\n  left=10.9.9.9\n  type=transport\n",
        );
        // Whatever this file still triggers is a warning, not an error.
        assert!(d.iter().all(|m| m.contains(": warning: ")), "{d:?}");
        let x = c.conn("x").unwrap();
        assert_eq!(x.ikelifetime, Duration::from_secs(3600), "own value wins");
        assert_eq!(
            x.lifetime,
            Duration::from_secs(3600),
            "empty value = built-in default"
        );
        assert_eq!(x.keyingtries, None, "%default applies");
        assert_eq!(
            x.left.host,
            Host::Addr("10.0.0.1".parse().unwrap()),
            "nearer also wins"
        );
        assert_eq!(
            x.right.host,
            Host::Addr("10.0.0.2".parse().unwrap()),
            "chained also"
        );
        assert_eq!(x.conn_type, ConnType::Transport);
        assert_eq!(x.left.auth, AuthMethod::Psk);
        assert_eq!(
            c.conn("y").unwrap().ikelifetime,
            Duration::from_secs(4 * 3600)
        );
    }

    #[test]
    fn problems_reported_once() {
        let (_, d) = build(
            "conn %default\n  ikelifetime=forever\nconn a\n  also=c\n  left=10.0.0.1\nconn b\n  also=a\n  right=10.0.0.2\nconn c\n  also=b\n",
        );
        let errors: Vec<&String> = d.iter().filter(|m| m.contains(": error: ")).collect();
        assert_eq!(
            errors,
            [
                "t:2:15: error: invalid duration 'forever' (expected a number with an optional unit s, m, h or d, e.g. 60m)",
                "t:7:8: error: also= cycle: a -> c -> b -> a",
            ]
        );
    }

    #[test]
    fn auth_and_sides() {
        let (c, _) = build(
            "conn a\n  left=%any\n  right=10.0.0.2\n  leftauth=psk\n  authby=pubkey\n  rightid=@peer\n",
        );
        let a = c.conn("a").unwrap();
        assert_eq!(
            (a.left.auth, a.right.auth),
            (AuthMethod::Psk, AuthMethod::Pubkey)
        );
        assert_eq!(a.left.effective_id(), Identity::Any);
        assert_eq!(a.right.effective_id(), Identity::Fqdn("peer".into()));
        assert!(a.left.effective_subnets().is_empty());
        assert_eq!(a.right.effective_subnets()[0].to_string(), "10.0.0.2/32");
        let mine: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(resolve_local_side(a, |ip| ip == mine), Some(Side::Right));
        assert_eq!(resolve_local_side(a, |_| false), Some(Side::Left));
        let (c, _) = build("conn b\n  left=10.0.0.1\n  right=10.0.0.2\n");
        let b = c.conn("b").unwrap();
        assert_eq!(resolve_local_side(b, |_| false), None);
        assert_eq!(resolve_local_side(b, |ip| ip == mine), Some(Side::Right));
    }

    #[test]
    fn dns_names_use_the_resolver() {
        struct One;
        impl HostResolver for One {
            fn resolve(&self, name: &str) -> std::io::Result<Vec<IpAddr>> {
                match name {
                    "gw.example" => Ok(vec!["192.0.2.7".parse().unwrap()]),
                    _ => Err(std::io::ErrorKind::NotFound.into()),
                }
            }
        }
        let (raw, mut d) = parse_conf_str(
            "t",
            "conn a\n  left=gw.example\n  right=x.example\n",
            &MemResolver::default(),
        );
        let c = build_config(&raw, &One, &mut d);
        let a = c.conn("a").unwrap();
        assert_eq!(a.left.addr(), Some("192.0.2.7".parse().unwrap()));
        assert_eq!(a.left.effective_id().to_string(), "192.0.2.7");
        assert_eq!(a.right.addr(), None);
        assert_eq!(d.items.len(), 1);
        assert!(
            d.items[0]
                .message
                .contains("cannot resolve right=x.example")
        );
    }

    #[test]
    fn sourceip_values_and_checks() {
        let (c, d) = build(
            "conn gw\n  left=10.0.0.1\n  right=%any\n  authby=secret\n  auto=add\n  rightsourceip=10.3.0.0/24\nconn rw\n  left=%defaultroute\n  right=10.0.0.1\n  authby=secret\n  leftsourceip=%config\n",
        );
        assert!(d.is_empty(), "{d:?}");
        let gw = c.conn("gw").unwrap();
        assert_eq!(
            gw.right.pools().collect::<Vec<_>>(),
            ["10.3.0.0/24".parse::<ipnet::IpNet>().unwrap()]
        );
        assert_eq!(
            c.conn("rw")
                .unwrap()
                .left
                .requested_vips()
                .collect::<Vec<_>>(),
            [false]
        );
        let (c, d) = build(
            "conn gw\n  left=10.0.0.1\n  right=%any\n  authby=secret\n  auto=add\n  rightsourceip=10.3.0.0/24\n  rightdns=10.1.2.53,2001:db8::53\n  leftdns=%config6\nconn bad\n  left=10.0.0.1\n  right=%any\n  authby=secret\n  auto=add\n  rightdns=ns.example\n",
        );
        assert_eq!(
            d,
            [
                "t:14:12: error: invalid DNS server 'ns.example' (expected an IP address, %config4 or %config6)"
            ]
        );
        let gw = c.conn("gw").unwrap();
        assert_eq!(gw.right.dns_servers().count(), 2);
        assert_eq!(gw.left.requested_dns().collect::<Vec<_>>(), [true]);
        let (_, d) = build(
            "conn a\n  left=10.0.0.1\n  right=10.0.0.2\n  authby=secret\n  auto=add\n  type=transport\n  leftsourceip=%config\n  rightsourceip=%config6\nconn b\n  left=10.0.0.1\n  right=10.0.0.2\n  authby=secret\n  auto=add\n  leftsourceip=%pool\n  rightsourceip=10.3.0.9/24\n",
        );
        assert_eq!(
            d,
            [
                "t:14:16: error: named address pools ('%pool') are not supported; give the pool as ADDRESS/PREFIX",
                "t:15:17: error: subnet '10.3.0.9/24' has host bits set (did you mean '10.3.0.0/24'?)",
                "t:1:6: error: conn 'a': virtual IPs (leftsourceip/rightsourceip) need type=tunnel, not type=transport",
                "t:1:6: error: conn 'a': leftsourceip and rightsourceip both ask for an address (%config); one end asks, the other gives it from a pool",
            ]
        );
    }

    #[test]
    fn ikev1_and_unknown_keywords() {
        let (_, d) = build("conn a\n  keyexchange=ikev1\n  rigthsubnet=10.0.0.0/8\n  leftca=x\n");
        assert_eq!(
            d,
            [
                "t:2:15: error: IKEv1 is not supported (keyexchange=ikev1); use keyexchange=ikev2",
                "t:3:3: error: unknown keyword 'rigthsubnet' (did you mean 'rightsubnet'?)",
                "t:4:3: warning: keyword 'leftca' is not supported and is ignored",
            ]
        );
    }
}
