//! Traffic-selector narrowing (RFC 7296 §2.9): the responder answers with the intersection
//! of what was proposed and what it is configured for; the initiator checks the answer is
//! inside what it proposed.

use std::net::IpAddr;

use crate::wire::{TrafficSelector, TsType};

/// The whole-host selector of `addr` (all protocols and ports): the default when a conn has
/// no subnet, and the transport-mode selector.
pub(crate) fn host(addr: IpAddr) -> TrafficSelector {
    TrafficSelector {
        ts_type: ts_type_of(addr),
        ip_protocol: 0,
        start_port: 0,
        end_port: u16::MAX,
        start_addr: addr,
        end_addr: addr,
    }
}

fn ts_type_of(addr: IpAddr) -> TsType {
    match addr {
        IpAddr::V4(_) => TsType::IPV4_ADDR_RANGE,
        IpAddr::V6(_) => TsType::IPV6_ADDR_RANGE,
    }
}

/// Configured selectors, or the host selector of `addr` when none are configured.
pub(crate) fn configured_or_host(ts: &[TrafficSelector], addr: IpAddr) -> Vec<TrafficSelector> {
    if ts.is_empty() {
        vec![host(addr)]
    } else {
        ts.to_vec()
    }
}

/// A selector we understand: address-range type matching its address family, ordered bounds,
/// and a port range only with a protocol that has ports. RFC 7296 §3.13.1 requires 0-65535 for
/// protocol 0; ICMP's "ports" (type/code, RFC 4301) have no kernel selector here. Anything else
/// would be agreed with the peer and then fail to install, so it is refused in negotiation.
fn well_formed(t: &TrafficSelector) -> bool {
    let family_ok = matches!(
        (t.start_addr, t.end_addr),
        (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_))
    ) && t.ts_type == ts_type_of(t.start_addr);
    let all_ports = t.start_port == 0 && t.end_port == u16::MAX;
    let has_ports = !matches!(t.ip_protocol, 0 | IPPROTO_ICMP | IPPROTO_ICMPV6);
    family_ok
        && t.start_addr <= t.end_addr
        && t.start_port <= t.end_port
        && (all_ports || has_ports)
}

/// IANA protocol numbers whose selectors carry no ports.
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_ICMPV6: u8 = 58;

/// Intersection of two selectors, if not empty.
pub(crate) fn intersect(a: &TrafficSelector, b: &TrafficSelector) -> Option<TrafficSelector> {
    if !well_formed(a) || !well_formed(b) || a.ts_type != b.ts_type {
        return None;
    }
    let ip_protocol = match (a.ip_protocol, b.ip_protocol) {
        (0, p) | (p, 0) => p,
        (p, q) if p == q => p,
        _ => return None,
    };
    let start_port = a.start_port.max(b.start_port);
    let end_port = a.end_port.min(b.end_port);
    let start_addr = a.start_addr.max(b.start_addr);
    let end_addr = a.end_addr.min(b.end_addr);
    (start_port <= end_port && start_addr <= end_addr).then_some(TrafficSelector {
        ts_type: a.ts_type,
        ip_protocol,
        start_port,
        end_port,
        start_addr,
        end_addr,
    })
}

/// Responder: every non-empty intersection of a configured selector with a proposed one,
/// in configured order, without duplicates. Empty = TS_UNACCEPTABLE.
pub(crate) fn narrow(
    proposed: &[TrafficSelector],
    configured: &[TrafficSelector],
) -> Vec<TrafficSelector> {
    let mut out: Vec<TrafficSelector> = Vec::new();
    for c in configured {
        for p in proposed {
            if let Some(t) = intersect(c, p)
                && !out.contains(&t)
            {
                out.push(t);
            }
        }
    }
    // Kept for the CHILD_SA's life: no spare capacity.
    out.shrink_to_fit();
    out
}

/// `inner` lies entirely inside `outer`.
fn is_subset(inner: &TrafficSelector, outer: &TrafficSelector) -> bool {
    intersect(inner, outer).as_ref() == Some(inner)
}

/// Initiator: the answer is non-empty and each selector lies inside one we proposed.
pub(crate) fn acceptable_answer(answer: &[TrafficSelector], proposed: &[TrafficSelector]) -> bool {
    !answer.is_empty()
        && answer
            .iter()
            .all(|a| proposed.iter().any(|p| is_subset(a, p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(a: &str, b: &str, proto: u8, ports: (u16, u16)) -> TrafficSelector {
        let s: IpAddr = a.parse().unwrap();
        TrafficSelector {
            ts_type: ts_type_of(s),
            ip_protocol: proto,
            start_port: ports.0,
            end_port: ports.1,
            start_addr: s,
            end_addr: b.parse().unwrap(),
        }
    }

    #[test]
    fn narrows_to_the_common_part() {
        let proposed = [range("10.0.0.0", "10.255.255.255", 0, (0, 65535))];
        let configured = [range("10.1.0.0", "10.1.255.255", 6, (443, 443))];
        let n = narrow(&proposed, &configured);
        assert_eq!(n, vec![range("10.1.0.0", "10.1.255.255", 6, (443, 443))]);
        assert!(acceptable_answer(&n, &proposed));
        assert!(!acceptable_answer(&proposed, &n));
        assert!(!acceptable_answer(&[], &proposed));
    }

    #[test]
    fn disjoint_protocols_families_and_ranges() {
        let tcp = range("10.0.0.0", "10.0.0.255", 6, (0, 65535));
        let udp = range("10.0.0.0", "10.0.0.255", 17, (0, 65535));
        let v6 = range("2001:db8::", "2001:db8::ffff", 0, (0, 65535));
        let far = range("10.9.0.0", "10.9.0.255", 0, (0, 65535));
        assert_eq!(intersect(&tcp, &udp), None);
        assert_eq!(intersect(&tcp, &v6), None);
        assert_eq!(intersect(&tcp, &far), None);
        assert!(narrow(std::slice::from_ref(&tcp), &[udp, v6, far]).is_empty());
        // Protocol 0 (any) with a port range is malformed (RFC 7296 §3.13.1), and ICMP
        // type ranges have no kernel selector: both are refused, never agreed then failed.
        let any = range("10.0.0.0", "10.0.0.255", 0, (0, 65535));
        let any_ports = range("10.0.0.0", "10.0.0.255", 0, (1000, 2000));
        let icmp_echo = range("10.0.0.0", "10.0.0.255", 1, (8 << 8, 8 << 8));
        assert_eq!(intersect(&any, &any_ports), None);
        assert_eq!(intersect(&any, &icmp_echo), None);
        let icmp_all = range("10.0.0.0", "10.0.0.255", 1, (0, 65535));
        assert_eq!(intersect(&any, &icmp_all), Some(icmp_all));
        let reversed = range("10.0.0.9", "10.0.0.1", 0, (0, 65535));
        assert_eq!(intersect(&reversed, &tcp), None);
    }

    #[test]
    fn host_default_and_multiple() {
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(configured_or_host(&[], a), vec![host(a)]);
        let wide = range("0.0.0.0", "255.255.255.255", 0, (0, 65535));
        let n = narrow(&[host(a), wide], std::slice::from_ref(&wide));
        assert_eq!(n, vec![host(a), wide]);
    }
}
