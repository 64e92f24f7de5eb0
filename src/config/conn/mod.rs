//! Typed connections built from parsed ipsec.conf sections.
//!
//! Each `keyword=value` is validated once, where it is written (so a bad value in
//! `conn %default` or in a section pulled in with `also=` is reported once, at its own
//! position). A conn's effective settings are then looked up in this order: its own section;
//! the sections named by its `also=` keywords, in order, depth first (chains allowed, cycles
//! reported); all `conn %default` sections (a later `%default` overrides an earlier one);
//! finally the ipsec.conf(5) defaults. An empty value (`keyword=`) stops the lookup there and
//! gives the built-in default.
//!
//! Files: the typed model (this file), one keyword value validated into its type
//! (`value.rs`), per-section keyword checks and `config setup` (`section.rs`), `also=` and
//! `%default` inheritance and the defaults (`build.rs`), cross-keyword checks of a built conn
//! (`validate.rs`).

mod build;
mod section;
mod validate;
mod value;

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

use super::diag::Pos;
use super::ident::Identity;
use super::proposal::Proposals;
use super::values::{DnsServer, Host, Mark, ProtoPort, SourceIp};

pub use build::build_config;

/// Resolves DNS names in `left=`/`right=` when the configuration is loaded. The daemon and
/// `ikectl` provide the system resolver; tests use a fixed table.
pub trait HostResolver {
    /// The addresses of `name`. A failure is reported as a warning (the name is looked up
    /// again when used).
    fn resolve(&self, name: &str) -> std::io::Result<Vec<IpAddr>>;
}

/// A resolver that knows no names (for fuzzing and tests).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoDns;

impl HostResolver for NoDns {
    fn resolve(&self, name: &str) -> std::io::Result<Vec<IpAddr>> {
        Err(std::io::Error::other(format!(
            "no resolver available for '{name}'"
        )))
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

impl ConnType {
    /// A shunt (`type=pass` or `type=drop`): policies only, never negotiated.
    pub fn is_shunt(self) -> bool {
        matches!(self, Self::Passthrough | Self::Drop)
    }
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
    /// `leftupdown=`: the script run when a CHILD_SA of this conn comes up or goes down.
    pub updown: Option<String>,
    /// `leftsourceip=`: `%config` (this end asks the peer for an inner address) or address
    /// pools (the peer of this end gets an address from them: a gateway's `rightsourceip`).
    pub sourceip: Vec<SourceIp>,
    /// `leftdns=`: `%config4`/`%config6` (this end asks the peer for DNS servers) or servers
    /// (given to the peer of this end with its virtual IP: a gateway's `rightdns`).
    pub dns: Vec<DnsServer>,
    /// `leftfirewall=yes`: accept forwarded traffic of a CHILD_SA's subnets (nftables).
    pub firewall: bool,
}

impl End {
    /// The address families this end asks the peer for (`%config`, `%config6`).
    pub fn requested_vips(&self) -> impl Iterator<Item = bool> + '_ {
        self.sourceip.iter().filter_map(|s| match s {
            SourceIp::Config { v6 } => Some(*v6),
            SourceIp::Pool(_) => None,
        })
    }

    /// The DNS server families this end asks the peer for (`true`: IPv6).
    pub fn requested_dns(&self) -> impl Iterator<Item = bool> + '_ {
        self.dns.iter().filter_map(|d| match d {
            DnsServer::Request { v6 } => Some(*v6),
            DnsServer::Addr(_) => None,
        })
    }

    /// The DNS servers given to the peer of this end.
    pub fn dns_servers(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.dns.iter().filter_map(|d| match d {
            DnsServer::Addr(a) => Some(*a),
            DnsServer::Request { .. } => None,
        })
    }

    /// The pools this end's addresses come from.
    pub fn pools(&self) -> impl Iterator<Item = ipnet::IpNet> + '_ {
        self.sourceip.iter().filter_map(|s| match s {
            SourceIp::Pool(net) => Some(*net),
            SourceIp::Config { .. } => None,
        })
    }
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
    /// `ah=`: the CHILD_SA uses AH with these proposals instead of ESP (`None`: absent).
    pub ah: Option<Proposals>,
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
    /// `mark=`: the mark of both directions unless `mark_in`/`mark_out` say otherwise.
    pub mark: Option<Mark>,
    /// `mark_in=`: inbound SA, in and fwd policies.
    pub mark_in: Option<Mark>,
    /// `mark_out=`: outbound SA and out policy.
    pub mark_out: Option<Mark>,
    pub inactivity: Option<Duration>,
    /// `lifebytes` / `lifepackets`: hard volume limits of a CHILD_SA (`None` = none).
    pub lifebytes: Option<u64>,
    pub lifepackets: Option<u64>,
    /// `marginbytes` / `marginpackets`: rekey this much before the volume limit.
    pub marginbytes: u64,
    pub marginpackets: u64,
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
