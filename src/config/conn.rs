//! Typed connections built from parsed ipsec.conf sections.
//!
//! Each `keyword=value` is validated once, where it is written (so a bad value in
//! `conn %default` or in a section pulled in with `also=` is reported once, at its own
//! position). A conn's effective settings are then looked up in this order: its own section;
//! the sections named by its `also=` keywords, in order, depth first (chains allowed, cycles
//! reported); all `conn %default` sections (a later `%default` overrides an earlier one);
//! finally the ipsec.conf(5) defaults. An empty value (`keyword=`) stops the lookup there and
//! gives the built-in default.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

use super::diag::{Diagnostics, Pos, did_you_mean};
use super::ident::{Identity, parse_identity};
use super::keywords::{self, Support, ValueKind};
use super::parse::{RawConf, Section, SectionKind, Setting};
use super::proposal::{Proposals, Protocol, parse_proposals};
use super::values::{
    Host, Mark, ProtoPort, parse_bool, parse_duration, parse_host, parse_mark, parse_percent,
    parse_protoport, parse_subnets, parse_u32,
};

/// Resolves DNS names in `left=`/`right=` when the configuration is loaded. The daemon and
/// `ikectl` provide the system resolver; tests use a fixed table.
pub trait HostResolver {
    fn resolve(&self, name: &str) -> Result<Vec<IpAddr>, String>;
}

/// A resolver that knows no names (for fuzzing and tests).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoDns;

impl HostResolver for NoDns {
    fn resolve(&self, name: &str) -> Result<Vec<IpAddr>, String> {
        Err(format!("no resolver available for '{name}'"))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    Psk,
    Pubkey,
    Eap,
    Xauth,
    Never,
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Psk => "psk",
            Self::Pubkey => "pubkey",
            Self::Eap => "eap",
            Self::Xauth => "xauth",
            Self::Never => "never",
        })
    }
}

/// `type=`: a CHILD_SA mode or a shunt. The daemon maps tunnel/transport to the CHILD_SA
/// mode (`kernel::Mode`, the engine's too) in `daemon/conns.rs` and refuses the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnType {
    Tunnel,
    Transport,
    Passthrough,
    Drop,
}

impl fmt::Display for ConnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tunnel => "tunnel",
            Self::Transport => "transport",
            Self::Passthrough => "passthrough",
            Self::Drop => "drop",
        })
    }
}

/// `auto=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auto {
    Ignore,
    Add,
    Start,
    Route,
}

impl fmt::Display for Auto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ignore => "ignore",
            Self::Add => "add",
            Self::Start => "start",
            Self::Route => "route",
        })
    }
}

/// `dpdaction=` / `closeaction=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    None,
    Clear,
    Hold,
    Restart,
}

/// `fragmentation=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fragmentation {
    Yes,
    Accept,
    Force,
    No,
}

/// `config setup` `uniqueids=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UniqueIds {
    Yes,
    No,
    Never,
    Replace,
    Keep,
}

/// One side (`left*` or `right*`) of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct End {
    pub host: Host,
    /// Addresses of `host` when it is a DNS name, resolved at load time.
    pub resolved: Vec<IpAddr>,
    /// `leftid=`; `None` means "derived from the address" ([`End::effective_id`]).
    pub id: Option<Identity>,
    /// `leftsubnet=`; empty means the host's own address ([`End::effective_subnets`]).
    pub subnets: Vec<IpNet>,
    pub protoport: ProtoPort,
    pub ikeport: u16,
    pub auth: AuthMethod,
    pub updown: Option<String>,
}

impl End {
    /// The concrete address, if known (`%any` has none).
    pub fn addr(&self) -> Option<IpAddr> {
        match &self.host {
            Host::Addr(a) => Some(*a),
            Host::Name(_) => self.resolved.first().copied(),
            Host::Any { .. } => None,
        }
    }

    /// The configured identity, or the address identity (`%any` when there is no address).
    pub fn effective_id(&self) -> Identity {
        match (&self.id, self.addr()) {
            (Some(id), _) => id.clone(),
            (None, Some(a)) => Identity::from_addr(a),
            (None, None) => Identity::Any,
        }
    }

    /// The configured subnets, or the host prefix of the address (empty = dynamic).
    pub fn effective_subnets(&self) -> Vec<IpNet> {
        if self.subnets.is_empty() {
            self.addr().map(IpNet::from).into_iter().collect()
        } else {
            self.subnets.clone()
        }
    }
}

/// A connection (`conn NAME`) with all inheritance and defaults applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conn {
    pub name: String,
    /// Where `conn NAME` is written.
    pub pos: Pos,
    pub left: End,
    pub right: End,
    pub ike: Proposals,
    pub esp: Proposals,
    /// `type=`.
    pub conn_type: ConnType,
    pub auto: Auto,
    pub ikelifetime: Duration,
    pub lifetime: Duration,
    pub rekeymargin: Duration,
    pub rekeyfuzz_percent: u32,
    /// `None` = `%forever`.
    pub keyingtries: Option<u32>,
    pub rekey: bool,
    pub reauth: bool,
    pub dpdaction: Action,
    pub dpddelay: Duration,
    pub dpdtimeout: Duration,
    pub closeaction: Action,
    pub mobike: bool,
    pub fragmentation: Fragmentation,
    pub forceencaps: bool,
    pub replay_window: Option<u32>,
    pub reqid: Option<u32>,
    pub mark: Option<Mark>,
    pub inactivity: Option<Duration>,
}

/// `config setup`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setup {
    pub charondebug: Option<String>,
    pub uniqueids: UniqueIds,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            charondebug: None,
            uniqueids: UniqueIds::Yes,
        }
    }
}

/// The whole typed ipsec.conf.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    pub setup: Setup,
    pub conns: Vec<Conn>,
}

impl Config {
    pub fn conn(&self, name: &str) -> Option<&Conn> {
        self.conns.iter().find(|c| c.name == name)
    }
}

/// Which side of a conn is this host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Left,
    Right,
}

/// strongSwan's rule for the local side: `left` if its address is one of this host's
/// addresses, else `right` if its address is; otherwise `left` if it is `%any` (a responder
/// listening on any address), else `right` if it is `%any`. `None` when neither side can be
/// this host.
pub fn resolve_local_side(conn: &Conn, is_local_addr: impl Fn(IpAddr) -> bool) -> Option<Side> {
    let local = |e: &End| match &e.host {
        Host::Addr(a) => is_local_addr(*a),
        Host::Name(_) => e.resolved.iter().any(|a| is_local_addr(*a)),
        Host::Any { .. } => false,
    };
    let any = |e: &End| matches!(e.host, Host::Any { .. });
    if local(&conn.left) {
        Some(Side::Left)
    } else if local(&conn.right) {
        Some(Side::Right)
    } else if any(&conn.left) {
        Some(Side::Left)
    } else if any(&conn.right) {
        Some(Side::Right)
    } else {
        None
    }
}

/// A validated keyword value.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Val {
    /// `keyword=` (reset to default).
    Unset,
    Host(Host),
    Id(Identity),
    Subnets(Vec<IpNet>),
    ProtoPort(ProtoPort),
    Port(u16),
    Auth(AuthMethod),
    Proposals(Proposals),
    ConnType(ConnType),
    Auto(Auto),
    Duration(Duration),
    Percent(u32),
    Tries(Option<u32>),
    Bool(bool),
    Action(Action),
    Fragmentation(Fragmentation),
    U32(u32),
    Mark(Mark),
    Text(String),
    UniqueIds(UniqueIds),
    Ignored,
}

fn choice<T: Copy>(v: &str, options: &[(&str, T)], what: &str) -> Result<T, String> {
    options
        .iter()
        .find(|(n, _)| *n == v)
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
            format!(
                "invalid {what} '{v}' (expected {}){}",
                names.join(", "),
                did_you_mean(v, names.iter().copied())
            )
        })
}

fn parse_auth(v: &str) -> Result<AuthMethod, String> {
    match v {
        "psk" | "secret" => Ok(AuthMethod::Psk),
        "pubkey" | "rsa" | "ecdsa" | "bliss" => Ok(AuthMethod::Pubkey),
        "never" => Ok(AuthMethod::Never),
        _ if v.starts_with("rsa-") || v.starts_with("ecdsa-") => Ok(AuthMethod::Pubkey),
        _ if v.starts_with("eap") => Ok(AuthMethod::Eap),
        _ if v.starts_with("xauth") => Ok(AuthMethod::Xauth),
        _ => Err(format!(
            "invalid authentication method '{v}' (expected psk, pubkey, eap or xauth){}",
            did_you_mean(v, ["psk", "pubkey", "eap", "xauth"])
        )),
    }
}

fn convert(kind: ValueKind, v: &str) -> Result<Val, String> {
    if v.is_empty() {
        return Ok(Val::Unset);
    }
    Ok(match kind {
        ValueKind::Host => Val::Host(parse_host(v)?),
        ValueKind::Id => Val::Id(parse_identity(v)?),
        ValueKind::Subnets => Val::Subnets(parse_subnets(v)?),
        ValueKind::ProtoPort => Val::ProtoPort(parse_protoport(v)?),
        ValueKind::Port => Val::Port(
            v.parse()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("invalid port '{v}' (expected 1-65535)"))?,
        ),
        ValueKind::AuthBy => Val::Auth(match v {
            "secret" | "psk" => AuthMethod::Psk,
            "pubkey" | "rsasig" | "ecdsasig" => AuthMethod::Pubkey,
            "never" => AuthMethod::Never,
            "xauthpsk" | "xauthrsasig" => {
                return Err(format!("authby={v} is IKEv1 only; IKEv1 is not supported"));
            }
            _ => {
                return Err(format!(
                    "invalid authby '{v}' (expected secret, psk, pubkey, rsasig, ecdsasig or never){}",
                    did_you_mean(
                        v,
                        ["secret", "psk", "pubkey", "rsasig", "ecdsasig", "never"]
                    )
                ));
            }
        }),
        ValueKind::Auth => Val::Auth(parse_auth(v)?),
        ValueKind::KeyExchange => match v {
            "ikev2" | "ike" => Val::Ignored,
            "ikev1" => {
                return Err(
                    "IKEv1 is not supported (keyexchange=ikev1); use keyexchange=ikev2".to_owned(),
                );
            }
            _ => {
                return Err(format!(
                    "invalid keyexchange '{v}' (expected ike or ikev2){}",
                    did_you_mean(v, ["ike", "ikev2", "ikev1"])
                ));
            }
        },
        ValueKind::Ike => Val::Proposals(parse_proposals(Protocol::Ike, v)?),
        ValueKind::Esp => Val::Proposals(parse_proposals(Protocol::Esp, v)?),
        ValueKind::ConnType => Val::ConnType(match v {
            "transport_proxy" => {
                return Err("type=transport_proxy is not supported".to_owned());
            }
            _ => choice(
                v,
                &[
                    ("tunnel", ConnType::Tunnel),
                    ("transport", ConnType::Transport),
                    ("passthrough", ConnType::Passthrough),
                    ("pass", ConnType::Passthrough),
                    ("drop", ConnType::Drop),
                    ("reject", ConnType::Drop),
                ],
                "type",
            )?,
        }),
        ValueKind::Auto => Val::Auto(choice(
            v,
            &[
                ("ignore", Auto::Ignore),
                ("add", Auto::Add),
                ("start", Auto::Start),
                ("route", Auto::Route),
            ],
            "auto",
        )?),
        ValueKind::Duration => Val::Duration(parse_duration(v)?),
        ValueKind::Percent => Val::Percent(parse_percent(v)?),
        ValueKind::Tries => Val::Tries(match v {
            "%forever" => None,
            n => Some(parse_u32(n).map_err(|_| {
                format!("invalid keyingtries '{n}' (expected a number or %forever)")
            })?)
            .filter(|n| *n != 0),
        }),
        ValueKind::Bool => Val::Bool(parse_bool(v)?),
        ValueKind::Action => Val::Action(choice(
            v,
            &[
                ("none", Action::None),
                ("clear", Action::Clear),
                ("hold", Action::Hold),
                ("restart", Action::Restart),
            ],
            "action",
        )?),
        ValueKind::Fragmentation => Val::Fragmentation(choice(
            v,
            &[
                ("yes", Fragmentation::Yes),
                ("accept", Fragmentation::Accept),
                ("force", Fragmentation::Force),
                ("no", Fragmentation::No),
            ],
            "fragmentation",
        )?),
        ValueKind::U32 => Val::U32(parse_u32(v)?),
        ValueKind::Mark => Val::Mark(parse_mark(v)?),
        ValueKind::Text => Val::Text(v.to_owned()),
        ValueKind::UniqueIds => Val::UniqueIds(choice(
            v,
            &[
                ("yes", UniqueIds::Yes),
                ("no", UniqueIds::No),
                ("never", UniqueIds::Never),
                ("replace", UniqueIds::Replace),
                ("keep", UniqueIds::Keep),
            ],
            "uniqueids",
        )?),
        ValueKind::Also | ValueKind::Unchecked => Val::Ignored,
    })
}

/// Validated settings of one section: canonical key → (value, position of the keyword).
#[derive(Clone, Debug, Default)]
struct Checked {
    values: BTreeMap<String, (Val, Pos)>,
    also: Vec<(String, Pos)>,
}

fn support_warning(diags: &mut Diagnostics, s: &Setting, support: Support) {
    match support {
        Support::Acted => {}
        Support::NotActed => diags.warning(
            &s.key_pos,
            format!("keyword '{}' is accepted but not acted on yet", s.key),
        ),
        Support::Unsupported => diags.warning(
            &s.key_pos,
            format!("keyword '{}' is not supported and is ignored", s.key),
        ),
    }
}

fn check_conn_section(sec: &Section, diags: &mut Diagnostics) -> Checked {
    let mut out = Checked::default();
    let names = keywords::conn_keywords();
    for s in &sec.settings {
        let Some((canon, kind, support)) = keywords::conn_keyword(&s.key) else {
            let hint = did_you_mean(&s.key, names.iter().map(String::as_str));
            let where_ = if keywords::setup_keyword(&s.key).is_some() {
                " (it belongs in 'config setup')"
            } else {
                ""
            };
            diags.error(
                &s.key_pos,
                format!("unknown keyword '{}'{hint}{where_}", s.key),
            );
            continue;
        };
        if kind == ValueKind::Also {
            if s.value.is_empty() {
                diags.error(&s.value_pos, "also= needs a conn name");
            } else {
                out.also.push((s.value.clone(), s.value_pos.clone()));
            }
            continue;
        }
        support_warning(diags, s, support);
        match convert(kind, &s.value) {
            Ok(v) => {
                if let Some((_, prev)) = out.values.get(&canon) {
                    diags.warning(
                        &s.key_pos,
                        format!(
                            "'{}' set again (first at line {}); the last value wins",
                            s.key, prev.line
                        ),
                    );
                }
                out.values.insert(canon, (v, s.key_pos.clone()));
            }
            Err(msg) => diags.error(&s.value_pos, msg),
        }
    }
    out
}

fn build_setup(sec: &Section, setup: &mut Setup, diags: &mut Diagnostics) {
    let names = keywords::setup_keywords();
    for s in &sec.settings {
        let Some((kind, support)) = keywords::setup_keyword(&s.key) else {
            let hint = did_you_mean(&s.key, names.iter().map(String::as_str));
            let where_ = if keywords::conn_keyword(&s.key).is_some() {
                " (it belongs in a conn section)"
            } else {
                ""
            };
            diags.error(
                &s.key_pos,
                format!("unknown keyword '{}' in config setup{hint}{where_}", s.key),
            );
            continue;
        };
        support_warning(diags, s, support);
        match convert(kind, &s.value) {
            Ok(Val::Text(t)) => setup.charondebug = Some(t),
            Ok(Val::UniqueIds(u)) => setup.uniqueids = u,
            Ok(_) => {}
            Err(msg) => diags.error(&s.value_pos, msg),
        }
    }
}

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
    getter!(subnets, Subnets, Vec<IpNet>);
    getter!(protoport, ProtoPort, ProtoPort);
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
        End {
            host,
            resolved,
            id: r.id(&key("id")),
            subnets: r.subnets(&key("subnet")).unwrap_or_default(),
            protoport: r.protoport(&key("protoport")).unwrap_or_default(),
            ikeport: r.port(&key("ikeport")).unwrap_or(500),
            auth: r.auth(&key("auth")).unwrap_or(authby),
            updown: r.text(&key("updown")),
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
            inactivity: r.duration("inactivity"),
        };
        check_conn(&conn, diags);
        Some(conn)
    }
}

/// Cross-keyword checks of a loaded conn, reported at its `conn NAME` line.
fn check_conn(c: &Conn, diags: &mut Diagnostics) {
    if c.auto == Auto::Ignore {
        return;
    }
    let pos = &c.pos;
    let name = &c.name;
    for (side, end) in [("left", &c.left), ("right", &c.right)] {
        if end.auth != AuthMethod::Psk {
            diags.error(
                pos,
                format!(
                    "conn '{name}': {side}auth is {}; only psk authentication is supported (set authby=secret)",
                    end.auth
                ),
            );
        }
    }
    if matches!(c.left.host, Host::Any { .. }) && matches!(c.right.host, Host::Any { .. }) {
        diags.error(pos, format!("conn '{name}': left and right are both %any"));
    }
    if matches!(c.conn_type, ConnType::Passthrough | ConnType::Drop) {
        diags.warning(
            pos,
            format!(
                "conn '{name}': type={} is accepted but not acted on yet",
                c.conn_type
            ),
        );
    }
    if c.rekeymargin >= c.lifetime || c.rekeymargin >= c.ikelifetime {
        diags.warning(
            pos,
            format!("conn '{name}': rekeymargin is not smaller than lifetime/ikelifetime"),
        );
    }
    if c.lifetime > Duration::from_secs(86400) {
        diags.warning(
            pos,
            format!("conn '{name}': lifetime above the 24h maximum"),
        );
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
    use super::*;
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
        // ikelifetime and keyingtries are parsed but not acted on yet: warnings only.
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
            fn resolve(&self, name: &str) -> Result<Vec<IpAddr>, String> {
                match name {
                    "gw.example" => Ok(vec!["192.0.2.7".parse().unwrap()]),
                    _ => Err("nope".into()),
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
    fn ikev1_and_unknown_keywords() {
        let (_, d) = build(
            "conn a\n  keyexchange=ikev1\n  rigthsubnet=10.0.0.0/8\n  leftupdown=/bin/true\n",
        );
        assert_eq!(
            d,
            [
                "t:2:15: error: IKEv1 is not supported (keyexchange=ikev1); use keyexchange=ikev2",
                "t:3:3: error: unknown keyword 'rigthsubnet' (did you mean 'rightsubnet'?)",
                "t:4:3: warning: keyword 'leftupdown' is accepted but not acted on yet",
            ]
        );
    }
}
