//! Value syntaxes shared by ipsec.conf keywords: durations, booleans, hosts, subnets,
//! protocol/port selectors, marks. Each parser returns a specific [`ValueError`] on failure;
//! its message is the diagnostic's text.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

/// Why a value is invalid (its `Display` is the diagnostic's message). Fields hold the value
/// as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error(
        "invalid duration '{0}' (expected a number with an optional unit s, m, h or d, e.g. 60m)"
    )]
    Duration(String),
    #[error("invalid value '{0}' (expected 'yes' or 'no')")]
    Bool(String),
    #[error("invalid number '{0}' (expected a non-negative integer)")]
    Number(String),
    #[error("address lists are not supported ('{0}')")]
    AddressList(String),
    #[error("address ranges and subnets are not supported as endpoint ('{0}')")]
    EndpointRange(String),
    #[error("'{0}' is not supported (expected an IP address, a DNS name, %any or %any6)")]
    HostKeyword(String),
    #[error("invalid address '{0}' (expected an IP address, a DNS name, %any or %any6)")]
    Host(String),
    #[error("invalid prefix length '/{prefix}' in subnet '{value}'")]
    PrefixLength { prefix: String, value: String },
    #[error("invalid subnet '{0}' (expected ADDRESS/PREFIX, e.g. 10.1.0.0/16)")]
    Subnet(String),
    #[error("subnet '{value}' has host bits set (did you mean '{network}'?)")]
    HostBits { value: String, network: IpNet },
    #[error(
        "different protocol/port selectors within one subnet list are not supported ('{0}'); use one conn per selector"
    )]
    MixedSubnetSelectors(String),
    #[error(
        "invalid protocol/port selector in '{0}' (expected SUBNET[PROTO/PORT], e.g. 10.1.0.0/16[tcp/22])"
    )]
    SubnetSelector(String),
    #[error("'%dynamic' subnets are not supported yet")]
    DynamicSubnet,
    /// `hint`: a " (did you mean ...?)" suffix or empty.
    #[error("unknown protocol '{proto}' in '{value}'{hint}")]
    Protocol {
        proto: String,
        value: String,
        hint: String,
    },
    #[error("invalid port '{port}' in '{value}' (expected a number, a range LOW-HIGH or %any)")]
    Port { port: String, value: String },
    #[error("a port in '{0}' needs protocol tcp, udp or sctp")]
    PortWithoutProtocol(String),
    #[error("invalid mark '{0}' (expected VALUE[/MASK], decimal or 0x hex)")]
    Mark(String),
    #[error("invalid percentage '{0}' (expected e.g. 100%)")]
    Percent(String),
    #[error(
        "invalid source IP '{0}' (expected %config, %config4, %config6, an address or a pool ADDRESS/PREFIX)"
    )]
    SourceIp(String),
    #[error("named address pools ('{0}') are not supported; give the pool as ADDRESS/PREFIX")]
    NamedPool(String),
    #[error("invalid DNS server '{0}' (expected an IP address, %config4 or %config6)")]
    Dns(String),
}

/// `60`, `30s`, `60m`, `1h`, `2d` (strongSwan time values: an integer with an optional unit;
/// no unit means seconds).
pub fn parse_duration(v: &str) -> Result<Duration, ValueError> {
    let (digits, mult) = match v.char_indices().last() {
        Some((i, 's')) => (v.get(..i), 1),
        Some((i, 'm')) => (v.get(..i), 60),
        Some((i, 'h')) => (v.get(..i), 3600),
        Some((i, 'd')) => (v.get(..i), 86400),
        _ => (Some(v), 1),
    };
    digits
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|d| d.parse::<u64>().ok())
        .and_then(|n| n.checked_mul(mult))
        .map(Duration::from_secs)
        .ok_or_else(|| ValueError::Duration(v.to_owned()))
}

/// Formats a duration the way ipsec.conf writes it, with the largest exact unit.
pub fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "0s".to_owned(),
        s if s % 86400 == 0 => format!("{}d", s / 86400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

pub fn parse_bool(v: &str) -> Result<bool, ValueError> {
    match v {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(ValueError::Bool(v.to_owned())),
    }
}

/// A non-negative integer that fits in `u32`.
pub fn parse_u32(v: &str) -> Result<u32, ValueError> {
    v.parse::<u32>()
        .map_err(|_| ValueError::Number(v.to_owned()))
}

/// A non-negative integer that fits in `u64` (byte and packet counts).
pub fn parse_u64(v: &str) -> Result<u64, ValueError> {
    v.parse::<u64>()
        .map_err(|_| ValueError::Number(v.to_owned()))
}

/// A number in decimal or `0x` hexadecimal.
fn parse_u32_hex(v: &str) -> Option<u32> {
    match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

/// An endpoint address (`left=`/`right=`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    /// `%any` (either family) or `%any6` (IPv6 only).
    Any {
        v6: bool,
    },
    Addr(IpAddr),
    /// A DNS name, resolved when the configuration is loaded.
    Name(String),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any { v6: false } => f.write_str("%any"),
            Self::Any { v6: true } => f.write_str("%any6"),
            Self::Addr(a) => write!(f, "{a}"),
            Self::Name(n) => f.write_str(n),
        }
    }
}

fn valid_dns_name(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 253
        && v.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
        && !v.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

pub fn parse_host(v: &str) -> Result<Host, ValueError> {
    match v {
        "%any" | "%any4" | "%defaultroute" => return Ok(Host::Any { v6: false }),
        "%any6" => return Ok(Host::Any { v6: true }),
        _ => {}
    }
    if let Ok(a) = v.parse::<IpAddr>() {
        return Ok(Host::Addr(a));
    }
    if v.contains(',') {
        return Err(ValueError::AddressList(v.to_owned()));
    }
    let is_range = v
        .split_once('-')
        .is_some_and(|(a, b)| a.parse::<IpAddr>().is_ok() && b.parse::<IpAddr>().is_ok());
    if v.contains('/') || is_range {
        return Err(ValueError::EndpointRange(v.to_owned()));
    }
    if v.starts_with('%') {
        return Err(ValueError::HostKeyword(v.to_owned()));
    }
    if valid_dns_name(v) {
        return Ok(Host::Name(v.to_owned()));
    }
    Err(ValueError::Host(v.to_owned()))
}

/// A subnet; a bare address means a host prefix (/32 or /128). Host bits must be zero.
pub fn parse_subnet(v: &str) -> Result<IpNet, ValueError> {
    if let Ok(a) = v.parse::<IpAddr>() {
        return Ok(IpNet::from(a));
    }
    let net: IpNet = v.parse().map_err(|_| match v.split_once('/') {
        Some((a, p)) if a.parse::<IpAddr>().is_ok() => ValueError::PrefixLength {
            prefix: p.to_owned(),
            value: v.to_owned(),
        },
        _ => ValueError::Subnet(v.to_owned()),
    })?;
    if net.trunc() != net {
        return Err(ValueError::HostBits {
            value: v.to_owned(),
            network: net.trunc(),
        });
    }
    Ok(net)
}

/// A subnet list (`leftsubnet=`) with the protocol/port selector its entries carry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubnetList {
    pub nets: Vec<IpNet>,
    /// `subnet[proto/port]`: the selector written on the entries (the same on each).
    pub protoport: Option<ProtoPort>,
}

/// A comma-separated subnet list (`leftsubnet=10.1.0.0/16,fec0::/16`); each entry may carry a
/// protocol/port selector as in ipsec.conf(5) (`0.0.0.0/0[tcp/22]`, `10.0.0.0/8[udp]`,
/// `[6/80]`, `[%any/53]`), the same on every entry of one list.
pub fn parse_subnets(v: &str) -> Result<SubnetList, ValueError> {
    let mut list = SubnetList::default();
    for (i, s) in v.split(',').map(str::trim).enumerate() {
        let (net, sel) = match s.split_once('[') {
            Some((net, rest)) => {
                let sel = rest
                    .strip_suffix(']')
                    .filter(|sel| !sel.contains(['[', ']']))
                    .ok_or_else(|| ValueError::SubnetSelector(s.to_owned()))?;
                (net, Some(parse_protoport(sel)?))
            }
            None => (s, None),
        };
        if net == "%dynamic" {
            return Err(ValueError::DynamicSubnet);
        }
        list.nets.push(parse_subnet(net)?);
        if i == 0 {
            list.protoport = sel;
        } else if list.protoport != sel {
            return Err(ValueError::MixedSubnetSelectors(v.to_owned()));
        }
    }
    Ok(list)
}

/// `leftprotoport=proto[/port]`: IP protocol (name or number) and port or range.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProtoPort {
    /// `None` = any protocol.
    pub proto: Option<u8>,
    /// Inclusive port range; `None` = any port.
    pub ports: Option<(u16, u16)>,
}

impl fmt::Display for ProtoPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self
            .proto
            .and_then(|p| PROTOCOLS.iter().find(|(_, n)| *n == p))
        {
            Some((name, _)) => f.write_str(name)?,
            None => match self.proto {
                Some(p) => write!(f, "{p}")?,
                None => f.write_str("%any")?,
            },
        }
        match self.ports {
            None => Ok(()),
            Some((a, b)) if a == b => write!(f, "/{a}"),
            Some((a, b)) => write!(f, "/{a}-{b}"),
        }
    }
}

const PROTOCOLS: &[(&str, u8)] = &[
    ("icmp", 1),
    ("tcp", 6),
    ("udp", 17),
    ("gre", 47),
    ("esp", 50),
    ("ah", 51),
    ("ipv6-icmp", 58),
    ("icmpv6", 58),
    ("sctp", 132),
];

const SERVICES: &[(&str, u16)] = &[
    ("ssh", 22),
    ("domain", 53),
    ("http", 80),
    ("https", 443),
    ("isakmp", 500),
    ("ipsec-nat-t", 4500),
];

fn parse_port(p: &str) -> Option<u16> {
    p.parse()
        .ok()
        .or_else(|| SERVICES.iter().find(|(n, _)| *n == p).map(|(_, v)| *v))
}

pub fn parse_protoport(v: &str) -> Result<ProtoPort, ValueError> {
    let (proto_s, port_s) = match v.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (v, None),
    };
    let proto = match proto_s {
        "%any" | "" => None,
        p => Some(
            p.parse::<u8>()
                .ok()
                .or_else(|| PROTOCOLS.iter().find(|(n, _)| *n == p).map(|(_, n)| *n))
                .ok_or_else(|| ValueError::Protocol {
                    proto: p.to_owned(),
                    value: v.to_owned(),
                    hint: super::diag::did_you_mean(p, PROTOCOLS.iter().map(|(n, _)| *n)),
                })?,
        ),
    };
    let ports = match port_s {
        None | Some("%any") => None,
        Some(p) => {
            let range = match p.split_once('-') {
                Some((a, b)) => parse_port(a).zip(parse_port(b)),
                None => parse_port(p).map(|n| (n, n)),
            };
            match range {
                Some((a, b)) if a <= b => Some((a, b)),
                _ => {
                    return Err(ValueError::Port {
                        port: p.to_owned(),
                        value: v.to_owned(),
                    });
                }
            }
        }
    };
    // `%any/53`: any protocol with ports (TCP, UDP, SCTP ... to port 53), as strongSwan reads it.
    if ports.is_some() && !matches!(proto, None | Some(6 | 17 | 132)) {
        return Err(ValueError::PortWithoutProtocol(v.to_owned()));
    }
    Ok(ProtoPort { proto, ports })
}

/// `mark=value[/mask]`; the mask defaults to 0xffffffff.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    pub value: u32,
    pub mask: u32,
}

pub fn parse_mark(v: &str) -> Result<Mark, ValueError> {
    let (val, mask) = match v.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (v, None),
    };
    let value = parse_u32_hex(val);
    let mask = match mask {
        Some(m) => parse_u32_hex(m),
        None => Some(u32::MAX),
    };
    match (value, mask) {
        (Some(value), Some(mask)) => Ok(Mark { value, mask }),
        _ => Err(ValueError::Mark(v.to_owned())),
    }
}

/// The family a `%config` word asks the peer for (`true`: IPv6): `%config`, `%config4`,
/// `%cfg`, `%modeconfig`, `%modecfg` ask for IPv4, `%config6` for IPv6.
fn config_family(s: &str) -> Option<bool> {
    match s {
        "%config" | "%config4" | "%cfg" | "%modeconfig" | "%modecfg" => Some(false),
        "%config6" => Some(true),
        _ => None,
    }
}

/// `%config4` or `%config6`, as [`config_family`] reads it back.
fn config_word(v6: bool) -> &'static str {
    if v6 { "%config6" } else { "%config4" }
}

/// One `leftsourceip=`/`rightsourceip=` entry: ask the peer for an inner address of a family
/// (`%config`, `%config4`, `%modeconfig`, `%cfg`: IPv4; `%config6`: IPv6), or addresses: a
/// pool (`10.3.0.0/24`) given to the peers of this end, a single address being a pool of one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceIp {
    /// Request an address from the peer; `true` for IPv6.
    Config { v6: bool },
    /// Addresses (a host prefix for a single one).
    Pool(IpNet),
}

impl std::fmt::Display for SourceIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Config { v6 } => f.write_str(config_word(*v6)),
            Self::Pool(net) => write!(f, "{net}"),
        }
    }
}

/// A comma-separated `sourceip` list (`%config`, `10.3.0.0/24`, `10.3.0.0/24,fd00:3::/112`).
pub fn parse_sourceips(v: &str) -> Result<Vec<SourceIp>, ValueError> {
    v.split(',')
        .map(str::trim)
        .map(|s| match config_family(s) {
            Some(v6) => Ok(SourceIp::Config { v6 }),
            None if s.starts_with('%') => Err(ValueError::NamedPool(s.to_owned())),
            None if s.contains('/') => parse_subnet(s).map(SourceIp::Pool),
            None => s
                .parse::<IpAddr>()
                .map(|a| SourceIp::Pool(IpNet::from(a)))
                .map_err(|_| ValueError::SourceIp(s.to_owned())),
        })
        .collect()
}

/// One `leftdns=`/`rightdns=` entry: ask the peer for DNS servers of a family (`%config4` and
/// the other `%config` words of `sourceip`; `%config6`), or a DNS server given to the peer of
/// this end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnsServer {
    /// Request DNS servers from the peer; `true` for IPv6.
    Request { v6: bool },
    /// A server address.
    Addr(IpAddr),
}

impl std::fmt::Display for DnsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Request { v6 } => f.write_str(config_word(*v6)),
            Self::Addr(a) => write!(f, "{a}"),
        }
    }
}

/// A comma-separated `dns` list (`8.8.8.8,2001:4860:4860::8888`, `%config4`).
pub fn parse_dns(v: &str) -> Result<Vec<DnsServer>, ValueError> {
    v.split(',')
        .map(str::trim)
        .map(|s| match config_family(s) {
            Some(v6) => Ok(DnsServer::Request { v6 }),
            None => s
                .parse::<IpAddr>()
                .map(DnsServer::Addr)
                .map_err(|_| ValueError::Dns(s.to_owned())),
        })
        .collect()
}

/// `rekeyfuzz=100%` (a percentage, may exceed 100).
pub fn parse_percent(v: &str) -> Result<u32, ValueError> {
    v.strip_suffix('%')
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| ValueError::Percent(v.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sourceips() {
        let pool = |s: &str| SourceIp::Pool(s.parse().unwrap());
        assert_eq!(
            parse_sourceips("%config"),
            Ok(vec![SourceIp::Config { v6: false }])
        );
        assert_eq!(
            parse_sourceips("%modecfg, %config6"),
            Ok(vec![
                SourceIp::Config { v6: false },
                SourceIp::Config { v6: true }
            ])
        );
        assert_eq!(
            parse_sourceips("10.3.0.0/24,fd00:3::/112,10.9.0.9"),
            Ok(vec![
                pool("10.3.0.0/24"),
                pool("fd00:3::/112"),
                pool("10.9.0.9/32")
            ])
        );
        assert_eq!(
            parse_sourceips("%vpnpool").unwrap_err().to_string(),
            "named address pools ('%vpnpool') are not supported; give the pool as ADDRESS/PREFIX"
        );
        assert!(matches!(
            parse_sourceips("10.3.0.1/24"),
            Err(ValueError::HostBits { .. })
        ));
        assert_eq!(
            parse_sourceips("10.3.0.300"),
            Err(ValueError::SourceIp("10.3.0.300".into()))
        );
        assert_eq!(pool("10.3.0.0/24").to_string(), "10.3.0.0/24");
        assert_eq!(SourceIp::Config { v6: false }.to_string(), "%config4");
    }

    #[test]
    fn dns_servers() {
        assert_eq!(
            parse_dns("10.1.2.53, 2001:db8::53,%config6"),
            Ok(vec![
                DnsServer::Addr("10.1.2.53".parse().unwrap()),
                DnsServer::Addr("2001:db8::53".parse().unwrap()),
                DnsServer::Request { v6: true },
            ])
        );
        assert_eq!(
            parse_dns("ns1.example").unwrap_err().to_string(),
            "invalid DNS server 'ns1.example' (expected an IP address, %config4 or %config6)"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("30s").unwrap().as_secs(), 30);
        assert_eq!(parse_duration("60m").unwrap().as_secs(), 3600);
        assert_eq!(parse_duration("1h").unwrap().as_secs(), 3600);
        assert_eq!(parse_duration("2d").unwrap().as_secs(), 172800);
        for bad in ["", "m", "1x", "-1h", "1.5h", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(fmt_duration(Duration::from_secs(10800)), "3h");
        assert_eq!(fmt_duration(Duration::from_secs(540)), "9m");
        assert_eq!(fmt_duration(Duration::from_secs(61)), "61s");
        assert_eq!(fmt_duration(Duration::from_secs(86400)), "1d");
    }

    #[test]
    fn hosts() {
        assert_eq!(parse_host("%any").unwrap(), Host::Any { v6: false });
        assert_eq!(parse_host("%any6").unwrap(), Host::Any { v6: true });
        assert_eq!(parse_host("10.1.0.1").unwrap().to_string(), "10.1.0.1");
        assert_eq!(parse_host("fec0::1").unwrap().to_string(), "fec0::1");
        assert_eq!(
            parse_host("moon.strongswan.org").unwrap(),
            Host::Name("moon.strongswan.org".into())
        );
        assert!(parse_host("10.1.0.256").is_err());
        assert!(parse_host("a,b").is_err());
        assert!(parse_host("10.0.0.0/8").is_err());
        assert!(parse_host("%foo").is_err());
        assert!(parse_host("bad name").is_err());
    }

    #[test]
    fn subnets() {
        let s = parse_subnets("10.1.0.0/16, fec1::/16,10.9.9.9").unwrap();
        assert_eq!(s.nets.len(), 3);
        assert_eq!(s.nets[2].to_string(), "10.9.9.9/32");
        assert_eq!(s.protoport, None);
        assert_eq!(
            parse_subnet("10.1.0.1/16").unwrap_err().to_string(),
            "subnet '10.1.0.1/16' has host bits set (did you mean '10.1.0.0/16'?)"
        );
        assert_eq!(
            parse_subnet("10.1.0.0/33").unwrap_err().to_string(),
            "invalid prefix length '/33' in subnet '10.1.0.0/33'"
        );
        let sel = |v: &str| parse_subnets(v).map(|l| l.protoport.map(|p| p.to_string()));
        assert_eq!(sel("0.0.0.0/0[tcp/22]").unwrap().as_deref(), Some("tcp/22"));
        assert_eq!(sel("10.0.0.0/8[udp]").unwrap().as_deref(), Some("udp"));
        assert_eq!(sel("10.0.0.0/8[6/80]").unwrap().as_deref(), Some("tcp/80"));
        assert_eq!(
            sel("10.0.0.0/8[%any/53]").unwrap().as_deref(),
            Some("%any/53")
        );
        assert_eq!(
            sel("10.1.0.0/16[tcp/22],10.2.0.0/16[tcp/22]")
                .unwrap()
                .as_deref(),
            Some("tcp/22")
        );
        assert_eq!(
            parse_subnets("10.1.0.0/16[tcp/22],10.2.0.0/16"),
            Err(ValueError::MixedSubnetSelectors(
                "10.1.0.0/16[tcp/22],10.2.0.0/16".into()
            ))
        );
        for bad in ["10.0.0.0/8[tcp/22", "10.0.0.0/8[tcp]x", "10.0.0.0/8[[tcp]]"] {
            assert_eq!(
                parse_subnets(bad),
                Err(ValueError::SubnetSelector(bad.into())),
                "{bad}"
            );
        }
        assert!(parse_subnets("10.0.0.0/8[tpc/22]").is_err());
        assert!(parse_subnets("10.0.0.1/8[tcp/22]").is_err());
    }

    #[test]
    fn protoports() {
        assert_eq!(
            parse_protoport("tcp/80").unwrap(),
            ProtoPort {
                proto: Some(6),
                ports: Some((80, 80))
            }
        );
        assert_eq!(
            parse_protoport("17/1000-2000").unwrap().ports,
            Some((1000, 2000))
        );
        assert_eq!(parse_protoport("icmp").unwrap().to_string(), "icmp");
        assert_eq!(parse_protoport("udp/%any").unwrap().to_string(), "udp");
        assert_eq!(parse_protoport("tcp/http").unwrap().to_string(), "tcp/80");
        assert!(
            parse_protoport("tpc/80")
                .unwrap_err()
                .to_string()
                .contains("did you mean 'tcp'")
        );
        assert!(parse_protoport("tcp/99999").is_err());
        assert!(parse_protoport("icmp/5").is_err());
        assert!(parse_protoport("tcp/9-1").is_err());
    }

    #[test]
    fn marks_percent_bool() {
        assert_eq!(
            parse_mark("42").unwrap(),
            Mark {
                value: 42,
                mask: u32::MAX
            }
        );
        assert_eq!(
            parse_mark("0x10/0xff").unwrap(),
            Mark {
                value: 16,
                mask: 255
            }
        );
        assert!(parse_mark("x").is_err());
        assert_eq!(parse_percent("100%").unwrap(), 100);
        assert!(parse_percent("100").is_err());
        assert!(parse_bool("yes").unwrap());
        assert!(parse_bool("true").is_err());
    }
}
