//! The kernel objects a CHILD_SA or trap turns into: SA and policy specifications that a
//! backend (XFRM netlink or the in-memory one) executes.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::error::KernelError;
use super::types::{
    ChildPolicy, ChildSaInstall, EspCrypto, IpsecProto, Lifetime, Mark, Marks, Mode, ShuntAction,
    ShuntPolicy, TrafficSelector, is_our_reqid,
};

/// At most this many policies per CHILD_SA (selector ranges can expand to many prefixes).
const MAX_POLICIES: usize = 1024;

/// Base priority of our CHILD_SA and trap policies; more specific selectors get smaller
/// (= preferred) values.
const PRIORITY_BASE: u32 = 200_000;

/// Base priority of shunt policies (`type=pass|drop`): below every CHILD_SA and trap policy's,
/// so a shunt wins over a tunnel covering the same traffic, as strongSwan's shunts do.
const SHUNT_PRIORITY_BASE: u32 = 150_000;

/// The most a selector's specificity takes off a base (two /128 prefixes, protocol, ports).
const MAX_SCORE: u32 = 256 * 4 + 2 + 1 + 1;

/// Priorities of shunt policies. A shunt policy has no template, hence no reqid: a
/// template-less in/out/fwd policy with a priority in this band is how
/// [`super::KernelIpsec::flush_ours`] recognises ours.
pub(crate) const SHUNT_PRIORITIES: RangeInclusive<u32> =
    SHUNT_PRIORITY_BASE - MAX_SCORE..=SHUNT_PRIORITY_BASE;

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

    fn priority(&self, base: u32) -> u32 {
        let prefixes = u32::from(self.src.prefix_len()) + u32::from(self.dst.prefix_len());
        let score = prefixes * 4
            + u32::from(self.proto != 0) * 2
            + u32::from(self.sport_mask != 0)
            + u32::from(self.dport_mask != 0);
        base - score // ok: score <= MAX_SCORE < base
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

/// Identity of a policy in the kernel: direction, selector and mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PolicyKey {
    /// Direction.
    pub dir: Dir,
    /// Selector.
    pub sel: Selector,
    /// Mark (`None`: none, matching every packet).
    pub mark: Option<Mark>,
}

impl fmt::Display for PolicyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.dir, self.sel)?;
        if let Some(m) = self.mark {
            write!(f, " {m}")?;
        }
        Ok(())
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

/// What a policy does with the packets it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyAction {
    /// Protect them with the SAs of the template (a CHILD_SA's or trap's policy).
    Ipsec(Template),
    /// A shunt: let them through (action allow, no template) or discard them (action block).
    Shunt(ShuntAction),
}

/// A policy to install.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PolicySpec {
    /// Direction, selector and mark.
    pub key: PolicyKey,
    /// Priority (smaller wins).
    pub priority: u32,
    /// Template or shunt.
    pub action: PolicyAction,
}

impl PolicySpec {
    /// The template of an IPsec policy (`None` for a shunt).
    pub fn template(&self) -> Option<&Template> {
        match &self.action {
            PolicyAction::Ipsec(t) => Some(t),
            PolicyAction::Shunt(_) => None,
        }
    }

    /// Whether ikev2d owns this policy (see the module docs of [`super`] and
    /// [`SHUNT_PRIORITIES`]).
    pub(crate) fn is_ours(&self) -> bool {
        match &self.action {
            PolicyAction::Ipsec(t) => is_our_reqid(t.reqid),
            PolicyAction::Shunt(_) => SHUNT_PRIORITIES.contains(&self.priority),
        }
    }
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
    /// Mark (`None`: none).
    pub mark: Option<Mark>,
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
            mark: p.marks.inbound,
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
            mark: p.marks.outbound,
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

/// The outbound (local to remote) and inbound selectors for every pair of local and remote
/// selectors with the same family and compatible protocols.
fn selector_pairs(
    local_ts: &[TrafficSelector],
    remote_ts: &[TrafficSelector],
) -> Result<Vec<(Selector, Selector)>, KernelError> {
    let locals = local_ts.iter().map(expand).collect::<Result<Vec<_>, _>>()?;
    let remotes = remote_ts
        .iter()
        .map(expand)
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::new();
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
                            if out.len() >= MAX_POLICIES {
                                return Err(bad(format!(
                                    "more than {MAX_POLICIES} policies needed"
                                )));
                            }
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
                            out.push((sel_out, sel_in));
                        }
                    }
                }
            }
        }
    }
    if out.is_empty() {
        return Err(bad(format!(
            "no pair of local {local_ts:?} and remote {remote_ts:?} selectors shares family and protocol"
        )));
    }
    Ok(out)
}

/// The policy specs of `pairs` in the directions `dirs` gives for each pair, without
/// duplicates.
fn specs(
    pairs: &[(Selector, Selector)],
    dirs: impl Fn(Selector, Selector) -> Vec<(Dir, Selector, PolicyAction)>,
    base: u32,
    marks: Marks,
) -> Result<Vec<PolicySpec>, KernelError> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for &(sel_out, sel_in) in pairs {
        for (dir, sel, action) in dirs(sel_out, sel_in) {
            let mark = match dir {
                Dir::Out => marks.outbound,
                Dir::In | Dir::Fwd => marks.inbound,
            };
            let key = PolicyKey { dir, sel, mark };
            if seen.insert(key) {
                if out.len() >= MAX_POLICIES {
                    return Err(bad(format!("more than {MAX_POLICIES} policies needed")));
                }
                out.push(PolicySpec {
                    key,
                    priority: sel.priority(base),
                    action,
                });
            }
        }
    }
    Ok(out)
}

/// The policies of a CHILD_SA or trap: out, in and (tunnel mode) fwd for every pair of
/// local and remote selectors with the same family and compatible protocols.
pub(crate) fn policy_specs(p: &ChildPolicy) -> Result<Vec<PolicySpec>, KernelError> {
    check_common(p)?;
    let pairs = selector_pairs(&p.local_ts, &p.remote_ts)?;
    let tmpl_out = PolicyAction::Ipsec(Template {
        src: p.local,
        dst: p.remote,
        reqid: p.reqid,
        mode: p.mode,
        proto: p.proto,
    });
    let tmpl_in = PolicyAction::Ipsec(Template {
        src: p.remote,
        dst: p.local,
        reqid: p.reqid,
        mode: p.mode,
        proto: p.proto,
    });
    let tunnel = p.mode == Mode::Tunnel;
    specs(
        &pairs,
        |sel_out, sel_in| {
            let mut dirs = vec![(Dir::Out, sel_out, tmpl_out), (Dir::In, sel_in, tmpl_in)];
            if tunnel {
                dirs.push((Dir::Fwd, sel_in, tmpl_in));
            }
            dirs
        },
        PRIORITY_BASE,
        p.marks,
    )
}

/// The policies of a shunt: out and in, and fwd both ways (traffic routed through this host
/// between the selectors), with the shunt's action and a shunt priority.
pub(crate) fn shunt_specs(s: &ShuntPolicy) -> Result<Vec<PolicySpec>, KernelError> {
    if !is_our_reqid(s.reqid) {
        return Err(KernelError::ReqidNotOurs { reqid: s.reqid });
    }
    let pairs = selector_pairs(&s.local_ts, &s.remote_ts)?;
    let action = PolicyAction::Shunt(s.action);
    specs(
        &pairs,
        |sel_out, sel_in| {
            vec![
                (Dir::Out, sel_out, action),
                (Dir::In, sel_in, action),
                (Dir::Fwd, sel_in, action),
                (Dir::Fwd, sel_out, action),
            ]
        },
        SHUNT_PRIORITY_BASE,
        s.marks,
    )
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
            marks: Marks::default(),
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
        let tmpl = out.template().unwrap();
        assert_eq!((tmpl.src, tmpl.dst), (p.local, p.remote));
        let inb = specs.iter().find(|s| s.key.dir == Dir::In).unwrap();
        assert_eq!(inb.key.sel.src, out.key.sel.dst);
        assert_eq!(inb.template().unwrap().src, p.remote);
        assert!(specs.iter().all(|s| s.is_ours() && s.key.mark.is_none()));
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

    fn mark(value: u32) -> Mark {
        Mark {
            value,
            mask: u32::MAX,
        }
    }

    #[test]
    fn marks_go_on_policies_and_sas_by_direction() {
        let mut p = policy(
            Mode::Tunnel,
            vec![TrafficSelector::from_net("10.1.0.0/16".parse().unwrap())],
            vec![TrafficSelector::from_net("10.2.0.0/16".parse().unwrap())],
        );
        p.marks = Marks {
            inbound: Some(mark(1)),
            outbound: Some(mark(2)),
        };
        for s in policy_specs(&p).unwrap() {
            let want = if s.key.dir == Dir::Out { 2 } else { 1 };
            assert_eq!(s.key.mark, Some(mark(want)), "{}", s.key);
        }
        // Two conns differing only by mark have distinct policy keys.
        let unmarked = policy(Mode::Tunnel, p.local_ts.clone(), p.remote_ts.clone());
        let a: HashSet<PolicyKey> = policy_specs(&p).unwrap().iter().map(|s| s.key).collect();
        let b: HashSet<PolicyKey> = policy_specs(&unmarked)
            .unwrap()
            .iter()
            .map(|s| s.key)
            .collect();
        assert_eq!((a.len(), b.len()), (3, 3));
        assert!(a.is_disjoint(&b));
        let install = ChildSaInstall {
            policy: p,
            spi_in: 0xc000_0001,
            spi_out: 0xc000_0002,
            crypto_in: EspCrypto::AesGcm16 {
                key: crate::kernel::KeyBytes::new(vec![1; 20]),
            },
            crypto_out: EspCrypto::AesGcm16 {
                key: crate::kernel::KeyBytes::new(vec![2; 20]),
            },
            replay_window: 32,
            lifetime: Lifetime::default(),
            encap: None,
            defer_outbound: false,
        };
        let (sa_in, sa_out) = install.sa_specs().unwrap();
        assert_eq!((sa_in.mark, sa_out.mark), (Some(mark(1)), Some(mark(2))));
    }

    #[test]
    fn ssh_pass_shunt_bypasses_with_a_preferred_priority() {
        // leftsubnet=0.0.0.0/0[tcp/22], rightsubnet=0.0.0.0/0: SSH to this host and its answers.
        let any = TrafficSelector::from_net("0.0.0.0/0".parse().unwrap());
        let shunt = ShuntPolicy {
            action: ShuntAction::Pass,
            reqid: REQID_MIN + 3,
            local_ts: vec![any.with_proto(6, 22..=22)],
            remote_ts: vec![any],
            marks: Marks::default(),
        };
        let specs = shunt_specs(&shunt).unwrap();
        assert_eq!(specs.len(), 4);
        let find = |dir, sport: u16, dport: u16| {
            specs
                .iter()
                .find(|s| s.key.dir == dir && s.key.sel.sport == sport && s.key.sel.dport == dport)
                .unwrap_or_else(|| panic!("{dir} {sport} {dport}: {specs:?}"))
        };
        let out = find(Dir::Out, 22, 0);
        assert_eq!((out.key.sel.proto, out.key.sel.sport_mask), (6, 0xffff));
        let inb = find(Dir::In, 0, 22);
        assert_eq!(
            (inb.key.sel.dport_mask, inb.key.sel.sport_mask),
            (0xffff, 0)
        );
        find(Dir::Fwd, 0, 22);
        find(Dir::Fwd, 22, 0);
        let tunnel = policy_specs(&policy(Mode::Tunnel, vec![any], vec![any])).unwrap();
        let worst_tunnel = tunnel.iter().map(|s| s.priority).min().unwrap();
        for s in &specs {
            assert_eq!(s.action, PolicyAction::Shunt(ShuntAction::Pass));
            assert!(s.template().is_none() && s.is_ours());
            assert!(
                s.priority < worst_tunnel,
                "{} !< {worst_tunnel}",
                s.priority
            );
        }
        // A template-less policy outside the band is not ours.
        let mut foreign = specs[0];
        foreign.priority = 0;
        assert!(!foreign.is_ours());
        let drop = ShuntPolicy {
            action: ShuntAction::Drop,
            reqid: 9,
            ..shunt
        };
        assert_eq!(
            shunt_specs(&drop),
            Err(KernelError::ReqidNotOurs { reqid: 9 })
        );
    }
}
