//! The kernel objects a CHILD_SA or trap turns into: SA and policy specifications that a
//! backend (XFRM netlink or the in-memory one) executes.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::error::KernelError;
use super::types::{
    ChildPolicy, ChildSaInstall, EspCrypto, IpsecProto, Lifetime, Mode, TrafficSelector,
    is_our_reqid,
};

/// At most this many policies per CHILD_SA (selector ranges can expand to many prefixes).
const MAX_POLICIES: usize = 1024;

/// Base priority of our policies; more specific selectors get smaller (= preferred) values.
const PRIORITY_BASE: u32 = 200_000;

/// Policy direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dir {
    /// Inbound, to this host.
    In,
    /// Outbound, from this host.
    Out,
    /// Forwarded through this host (tunnel mode).
    Fwd,
}

/// A kernel selector: prefixes, protocol and port/mask pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Selector {
    /// Source prefix.
    pub src: IpNet,
    /// Destination prefix.
    pub dst: IpNet,
    /// IP protocol, 0 for any.
    pub proto: u8,
    /// Source port (compared under `sport_mask`).
    pub sport: u16,
    /// Source port mask, 0 for any.
    pub sport_mask: u16,
    /// Destination port.
    pub dport: u16,
    /// Destination port mask, 0 for any.
    pub dport_mask: u16,
}

impl Selector {
    /// Host-to-host selector, any protocol and port.
    pub fn hosts(src: IpAddr, dst: IpAddr) -> Self {
        Self {
            src: IpNet::from(src),
            dst: IpNet::from(dst),
            proto: 0,
            sport: 0,
            sport_mask: 0,
            dport: 0,
            dport_mask: 0,
        }
    }

    fn priority(&self) -> u32 {
        let prefixes = u32::from(self.src.prefix_len()) + u32::from(self.dst.prefix_len());
        let score = prefixes * 4
            + u32::from(self.proto != 0) * 2
            + u32::from(self.sport_mask != 0)
            + u32::from(self.dport_mask != 0);
        PRIORITY_BASE - score
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.src)?;
        if self.sport_mask != 0 {
            write!(f, ":{}/{:#x}", self.sport, self.sport_mask)?;
        }
        write!(f, " -> {}", self.dst)?;
        if self.dport_mask != 0 {
            write!(f, ":{}/{:#x}", self.dport, self.dport_mask)?;
        }
        if self.proto != 0 {
            write!(f, " proto {}", self.proto)?;
        }
        Ok(())
    }
}

/// Identity of a policy in the kernel: direction and selector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PolicyKey {
    /// Direction.
    pub dir: Dir,
    /// Selector.
    pub sel: Selector,
}

impl fmt::Display for PolicyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.dir, self.sel)
    }
}

/// The single ESP or AH template of a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Template {
    /// Outer source address.
    pub src: IpAddr,
    /// Outer destination address.
    pub dst: IpAddr,
    /// reqid binding the policy to SAs.
    pub reqid: u32,
    /// Mode.
    pub mode: Mode,
    /// ESP or AH.
    pub proto: IpsecProto,
}

/// A policy to install.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PolicySpec {
    /// Direction and selector.
    pub key: PolicyKey,
    /// Priority (smaller wins).
    pub priority: u32,
    /// Template.
    pub tmpl: Template,
}

/// Identity of an SA in the kernel (with its protocol, which the SA's transforms give).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SaId {
    /// Destination address.
    pub dst: IpAddr,
    /// SPI.
    pub spi: u32,
}

/// An ESP or AH SA to install (the protocol is `crypto.proto()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaSpec<'a> {
    /// Destination and SPI.
    pub id: SaId,
    /// Source address.
    pub src: IpAddr,
    /// reqid.
    pub reqid: u32,
    /// Mode.
    pub mode: Mode,
    /// Transform and keys.
    pub crypto: &'a EspCrypto,
    /// Replay window in packets (0 for outbound SAs).
    pub replay_window: u32,
    /// Lifetimes.
    pub lifetime: Lifetime,
    /// UDP encapsulation as (source port, destination port) of the ESP packets.
    pub encap: Option<(u16, u16)>,
    /// SA selector (transport mode: the two hosts; tunnel mode: none).
    pub selector: Option<Selector>,
}

impl ChildSaInstall {
    /// The inbound and outbound SA specifications, after validating keys and lifetimes.
    pub(crate) fn sa_specs(&self) -> Result<(SaSpec<'_>, SaSpec<'_>), KernelError> {
        self.crypto_in.validate()?;
        self.crypto_out.validate()?;
        for crypto in [&self.crypto_in, &self.crypto_out] {
            if crypto.proto() != self.policy.proto {
                return Err(KernelError::ProtoMismatch {
                    sa: crypto.proto(),
                    policy: self.policy.proto,
                });
            }
        }
        self.lifetime.validate()?;
        let p = &self.policy;
        check_common(p)?;
        let transport = p.mode == Mode::Transport;
        let sa_in = SaSpec {
            id: SaId {
                dst: p.local,
                spi: self.spi_in,
            },
            src: p.remote,
            reqid: p.reqid,
            mode: p.mode,
            crypto: &self.crypto_in,
            replay_window: self.replay_window,
            lifetime: self.lifetime,
            encap: self.encap.map(|e| (e.remote_port, e.local_port)),
            selector: transport.then(|| Selector::hosts(p.remote, p.local)),
        };
        let sa_out = SaSpec {
            id: SaId {
                dst: p.remote,
                spi: self.spi_out,
            },
            src: p.local,
            reqid: p.reqid,
            mode: p.mode,
            crypto: &self.crypto_out,
            replay_window: 0,
            lifetime: self.lifetime,
            encap: self.encap.map(|e| (e.local_port, e.remote_port)),
            selector: transport.then(|| Selector::hosts(p.local, p.remote)),
        };
        Ok((sa_in, sa_out))
    }
}

fn check_common(p: &ChildPolicy) -> Result<(), KernelError> {
    if !is_our_reqid(p.reqid) {
        return Err(KernelError::ReqidNotOurs { reqid: p.reqid });
    }
    if p.local.is_ipv4() != p.remote.is_ipv4() {
        return Err(KernelError::InvalidSelector {
            reason: format!("addresses {} and {} differ in family", p.local, p.remote),
        });
    }
    Ok(())
}

/// One traffic selector expanded into kernel-expressible pieces.
struct Expanded {
    nets: Vec<IpNet>,
    proto: u8,
    ports: Vec<(u16, u16)>,
}

fn bad(reason: String) -> KernelError {
    KernelError::InvalidSelector { reason }
}

fn expand(ts: &TrafficSelector) -> Result<Expanded, KernelError> {
    let full_ports = ts.port_start == 0 && ts.port_end == u16::MAX;
    if ts.port_start > ts.port_end {
        return Err(bad(format!("{ts}: empty port range")));
    }
    if !full_ports
        && matches!(
            i32::from(ts.proto),
            0 | libc::IPPROTO_ICMP | libc::IPPROTO_ICMPV6
        )
    {
        return Err(bad(format!(
            "{ts}: port ranges are only supported with a port-based protocol"
        )));
    }
    let nets = match (ts.start, ts.end) {
        (IpAddr::V4(a), IpAddr::V4(b)) if a <= b => {
            ranges(u128::from(u32::from(a)), u128::from(u32::from(b)), 32)
                .into_iter()
                .map(|(v, len)| {
                    let addr = Ipv4Addr::from(u32::try_from(v).unwrap_or(u32::MAX));
                    Ipv4Net::new(addr, len).map(IpNet::V4)
                })
                .collect::<Result<Vec<_>, _>>()
        }
        (IpAddr::V6(a), IpAddr::V6(b)) if a <= b => ranges(u128::from(a), u128::from(b), 128)
            .into_iter()
            .map(|(v, len)| Ipv6Net::new(Ipv6Addr::from(v), len).map(IpNet::V6))
            .collect::<Result<Vec<_>, _>>(),
        _ => return Err(bad(format!("{ts}: invalid address range"))),
    }
    .map_err(|e| bad(format!("{ts}: {e}")))?;
    let ports = ranges(u128::from(ts.port_start), u128::from(ts.port_end), 16)
        .into_iter()
        .map(|(v, len)| {
            let value = u16::try_from(v).unwrap_or(u16::MAX);
            let mask = u16::MAX.checked_shl(16 - u32::from(len)).unwrap_or(0); // ok: len <= 16
            (value, mask)
        })
        .collect();
    Ok(Expanded {
        nets,
        proto: ts.proto,
        ports,
    })
}

/// Splits `start..=end` within a `bits`-wide space into aligned prefixes `(value, prefix_len)`.
fn ranges(start: u128, end: u128, bits: u8) -> Vec<(u128, u8)> {
    let mut out = Vec::new();
    let mut cur = start;
    while cur <= end {
        // Largest aligned block starting at `cur` that stays within `end`.
        let mut k = u32::from(bits).min(cur.trailing_zeros());
        let low_mask = |k: u32| 1u128.checked_shl(k).map_or(u128::MAX, |b| b - 1);
        while k > 0 && (cur | low_mask(k)) > end {
            k -= 1;
        }
        let last = cur | low_mask(k);
        out.push((cur, bits - u8::try_from(k).unwrap_or(bits))); // ok: k <= bits
        match last.checked_add(1) {
            Some(next) => cur = next,
            None => break,
        }
    }
    out
}

/// The policies of a CHILD_SA or trap: out, in and (tunnel mode) fwd for every pair of
/// local and remote selectors with the same family and compatible protocols.
pub(crate) fn policy_specs(p: &ChildPolicy) -> Result<Vec<PolicySpec>, KernelError> {
    check_common(p)?;
    let locals = p
        .local_ts
        .iter()
        .map(expand)
        .collect::<Result<Vec<_>, _>>()?;
    let remotes = p
        .remote_ts
        .iter()
        .map(expand)
        .collect::<Result<Vec<_>, _>>()?;
    let tmpl_out = Template {
        src: p.local,
        dst: p.remote,
        reqid: p.reqid,
        mode: p.mode,
        proto: p.proto,
    };
    let tmpl_in = Template {
        src: p.remote,
        dst: p.local,
        ..tmpl_out
    };
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut push = |spec: PolicySpec| -> Result<(), KernelError> {
        if seen.insert(spec.key) {
            if out.len() >= MAX_POLICIES {
                return Err(bad(format!("more than {MAX_POLICIES} policies needed")));
            }
            out.push(spec);
        }
        Ok(())
    };
    for l in &locals {
        for r in &remotes {
            let proto = match (l.proto, r.proto) {
                (a, b) if a == b => a,
                (0, b) => b,
                (a, 0) => a,
                _ => continue,
            };
            for ln in &l.nets {
                for rn in &r.nets {
                    if ln.addr().is_ipv4() != rn.addr().is_ipv4() {
                        continue;
                    }
                    for &(lp, lm) in &l.ports {
                        for &(rp, rm) in &r.ports {
                            let sel_out = Selector {
                                src: *ln,
                                dst: *rn,
                                proto,
                                sport: lp,
                                sport_mask: lm,
                                dport: rp,
                                dport_mask: rm,
                            };
                            let sel_in = Selector {
                                src: *rn,
                                dst: *ln,
                                proto,
                                sport: rp,
                                sport_mask: rm,
                                dport: lp,
                                dport_mask: lm,
                            };
                            let mut dirs =
                                vec![(Dir::Out, sel_out, tmpl_out), (Dir::In, sel_in, tmpl_in)];
                            if p.mode == Mode::Tunnel {
                                dirs.push((Dir::Fwd, sel_in, tmpl_in));
                            }
                            for (dir, sel, tmpl) in dirs {
                                push(PolicySpec {
                                    key: PolicyKey { dir, sel },
                                    priority: sel.priority(),
                                    tmpl,
                                })?;
                            }
                        }
                    }
                }
            }
        }
    }
    if out.is_empty() {
        return Err(bad(format!(
            "no pair of local {:?} and remote {:?} selectors shares family and protocol",
            p.local_ts, p.remote_ts
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::types::{REQID_MIN, TrafficSelector};

    fn policy(mode: Mode, l: Vec<TrafficSelector>, r: Vec<TrafficSelector>) -> ChildPolicy {
        ChildPolicy {
            local: "10.0.0.1".parse().unwrap(),
            remote: "10.0.0.2".parse().unwrap(),
            mode,
            proto: IpsecProto::Esp,
            reqid: REQID_MIN + 1,
            local_ts: l,
            remote_ts: r,
        }
    }

    fn host(s: &str) -> TrafficSelector {
        TrafficSelector::host(s.parse().unwrap())
    }

    #[test]
    fn prefix_split() {
        assert_eq!(ranges(0, u128::from(u32::MAX), 32), vec![(0, 0)]);
        assert_eq!(ranges(5, 5, 32), vec![(5, 32)]);
        // 10.0.0.1 - 10.0.0.6 = .1/32 .2/31 .4/31 .6/32
        let base = u128::from(u32::from(Ipv4Addr::new(10, 0, 0, 0)));
        assert_eq!(
            ranges(base + 1, base + 6, 32),
            vec![
                (base + 1, 32),
                (base + 2, 31),
                (base + 4, 31),
                (base + 6, 32)
            ]
        );
        assert_eq!(ranges(0, u128::MAX, 128), vec![(0, 0)]);
        assert_eq!(ranges(u128::MAX, u128::MAX, 128), vec![(u128::MAX, 128)]);
    }

    #[test]
    fn port_split() {
        let ts = host("10.0.0.1").with_proto(6, 80..=80);
        assert_eq!(expand(&ts).unwrap().ports, vec![(80, 0xffff)]);
        let ts = host("10.0.0.1").with_proto(6, 1024..=2047);
        assert_eq!(expand(&ts).unwrap().ports, vec![(1024, 0xfc00)]);
        let ts = host("10.0.0.1");
        assert_eq!(expand(&ts).unwrap().ports, vec![(0, 0)]);
    }

    #[test]
    fn host_to_host_transport() {
        let p = policy(
            Mode::Transport,
            vec![host("10.0.0.1")],
            vec![host("10.0.0.2")],
        );
        let specs = policy_specs(&p).unwrap();
        assert_eq!(specs.len(), 2);
        let out = specs.iter().find(|s| s.key.dir == Dir::Out).unwrap();
        assert_eq!(out.key.sel.src, "10.0.0.1/32".parse::<IpNet>().unwrap());
        assert_eq!(out.key.sel.dst, "10.0.0.2/32".parse::<IpNet>().unwrap());
        assert_eq!(out.tmpl.src, p.local);
        assert_eq!(out.tmpl.dst, p.remote);
        let inb = specs.iter().find(|s| s.key.dir == Dir::In).unwrap();
        assert_eq!(inb.key.sel.src, out.key.sel.dst);
        assert_eq!(inb.tmpl.src, p.remote);
        assert_eq!(out.priority, PRIORITY_BASE - 64 * 4);
    }

    #[test]
    fn tunnel_adds_fwd_and_skips_mismatches() {
        let l = vec![
            TrafficSelector::from_net("10.1.0.0/16".parse().unwrap()),
            TrafficSelector::host("fd00::1".parse().unwrap()),
        ];
        let r = vec![
            TrafficSelector::from_net("10.2.0.0/16".parse().unwrap()).with_proto(6, 443..=443),
        ];
        let specs = policy_specs(&policy(Mode::Tunnel, l, r)).unwrap();
        assert_eq!(specs.len(), 3);
        let fwd = specs.iter().find(|s| s.key.dir == Dir::Fwd).unwrap();
        assert_eq!(fwd.key.sel.proto, 6);
        assert_eq!(fwd.key.sel.sport, 443);
        assert_eq!(fwd.key.sel.sport_mask, 0xffff);
        assert_eq!(fwd.key.sel.dport_mask, 0);
    }

    #[test]
    fn rejects_unusable_selectors() {
        let p = policy(
            Mode::Transport,
            vec![host("10.0.0.1").with_proto(6, 0..=u16::MAX)],
            vec![host("10.0.0.2").with_proto(17, 0..=u16::MAX)],
        );
        assert!(matches!(
            policy_specs(&p),
            Err(KernelError::InvalidSelector { .. })
        ));
        let p = policy(
            Mode::Transport,
            vec![host("10.0.0.1").with_proto(1, 8..=8)],
            vec![host("10.0.0.2")],
        );
        assert!(policy_specs(&p).is_err());
        let mut p = policy(
            Mode::Transport,
            vec![host("10.0.0.1")],
            vec![host("10.0.0.2")],
        );
        p.reqid = 7;
        assert_eq!(
            policy_specs(&p),
            Err(KernelError::ReqidNotOurs { reqid: 7 })
        );
    }
}
