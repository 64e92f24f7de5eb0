//! Virtual IP address pools of a responder (`rightsourceip=10.3.0.0/24`): addresses leased per
//! client identity. A client gets back the address it had (while online, every IKE SA of
//! that identity shares it; after its last IKE SA is gone the address stays reserved for it
//! until the pool has no never-used address left, then the oldest-numbered offline lease is
//! reassigned). Pure data owned by the [`Endpoint`](super::Endpoint): no I/O.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::wire::Identification;

/// One lease, for `ikectl status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolLease {
    /// The pool (`rightsourceip`).
    pub pool: IpNet,
    /// The leased address.
    pub address: IpAddr,
    /// Who it is leased to.
    pub identity: Identification,
    /// How many IKE SAs of that identity use it now (0: offline, kept for it).
    pub online: u32,
}

/// Every pool of the endpoint, created on first use, keyed by its prefix (conns naming the
/// same prefix share it).
#[derive(Debug, Default)]
pub(crate) struct AddressPools {
    pools: BTreeMap<IpNet, Pool>,
}

#[derive(Debug)]
struct Pool {
    /// Offset of the next never-used address from the first usable one.
    next: u128,
    /// The leases: owner and how many IKE SAs use the address.
    leases: BTreeMap<IpAddr, (Identification, u32)>,
}

/// The first usable address of `net` as a number and how many there are: the network and
/// (IPv4) broadcast addresses are left out unless the prefix is too small to have hosts.
fn usable(net: IpNet) -> (u128, u128) {
    let (first, last, v4) = match net {
        IpNet::V4(n) => (
            u128::from(u32::from(n.network())),
            u128::from(u32::from(n.broadcast())),
            true,
        ),
        IpNet::V6(n) => (u128::from(n.network()), u128::from(n.broadcast()), false),
    };
    let span = last - first; // ok: broadcast >= network
    match span {
        0 | 1 => (first, span + 1),
        // Without the network address, and the broadcast address of IPv4.
        _ if v4 => (first + 1, span - 1),
        _ => (first + 1, span),
    }
}

fn addr_at(net: IpNet, n: u128) -> Option<IpAddr> {
    match net {
        IpNet::V4(_) => u32::try_from(n).ok().map(|v| IpAddr::from(v.to_be_bytes())),
        IpNet::V6(_) => Some(IpAddr::from(n.to_be_bytes())),
    }
}

impl AddressPools {
    /// An address of `net` for `id`: the one it already has, a never-used one, or an offline
    /// lease of another identity; `None` when every address is online.
    pub(crate) fn lease(&mut self, net: IpNet, id: &Identification) -> Option<IpAddr> {
        let pool = self.pools.entry(net).or_insert_with(|| Pool {
            next: 0,
            leases: BTreeMap::new(),
        });
        if let Some((addr, (_, online))) = pool.leases.iter_mut().find(|(_, (o, _))| o == id) {
            *online += 1;
            return Some(*addr);
        }
        let (first, count) = usable(net);
        if pool.next < count
            && let Some(addr) = addr_at(net, first + pool.next)
        {
            pool.next += 1;
            pool.leases.insert(addr, (id.clone(), 1));
            return Some(addr);
        }
        let (addr, lease) = pool.leases.iter_mut().find(|(_, (_, n))| *n == 0)?;
        *lease = (id.clone(), 1);
        Some(*addr)
    }

    /// One IKE SA stopped using `addr` of `net`.
    pub(crate) fn release(&mut self, net: IpNet, addr: IpAddr) {
        if let Some((_, online)) = self
            .pools
            .get_mut(&net)
            .and_then(|p| p.leases.get_mut(&addr))
        {
            *online = online.saturating_sub(1);
        }
    }

    /// Every lease, by pool and address.
    pub(crate) fn leases(&self) -> Vec<PoolLease> {
        self.pools
            .iter()
            .flat_map(|(net, pool)| {
                pool.leases.iter().map(|(addr, (id, online))| PoolLease {
                    pool: *net,
                    address: *addr,
                    identity: id.clone(),
                    online: *online,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn usable_ranges() {
        assert_eq!(usable(net("10.3.0.0/24")), (0x0a03_0001, 254));
        assert_eq!(usable(net("10.3.0.7/32")), (0x0a03_0007, 1));
        assert_eq!(usable(net("10.3.0.6/31")), (0x0a03_0006, 2));
        assert_eq!(usable(net("10.3.0.4/30")), (0x0a03_0005, 2));
        assert_eq!(usable(net("fd00::/126")).1, 3);
    }

    #[test]
    fn same_identity_same_address_offline_leases_reused_last() {
        let mut p = AddressPools::default();
        let pool = net("10.3.0.0/30");
        let (a, b, c) = (
            Identification::fqdn("a"),
            Identification::fqdn("b"),
            Identification::fqdn("c"),
        );
        assert_eq!(p.lease(pool, &a), Some(ip("10.3.0.1")));
        assert_eq!(
            p.lease(pool, &a),
            Some(ip("10.3.0.1")),
            "shared while online"
        );
        assert_eq!(p.lease(pool, &b), Some(ip("10.3.0.2")));
        assert_eq!(p.lease(pool, &c), None, "both online: exhausted");
        p.release(pool, ip("10.3.0.2"));
        // b is offline: its address is still b's ...
        assert_eq!(p.lease(pool, &b), Some(ip("10.3.0.2")));
        p.release(pool, ip("10.3.0.2"));
        // ... until someone else needs it.
        assert_eq!(p.lease(pool, &c), Some(ip("10.3.0.2")));
        assert_eq!(p.lease(pool, &b), None);
        let leases = p.leases();
        assert_eq!(leases.len(), 2);
        assert_eq!((leases[0].identity.clone(), leases[0].online), (a, 2));
        assert_eq!((leases[1].identity.clone(), leases[1].online), (c, 1));
        // IPv6 pools hand out from the first address after the prefix.
        let v6 = net("fd00:3::/120");
        assert_eq!(
            p.lease(v6, &Identification::fqdn("a")),
            Some(ip("fd00:3::1"))
        );
    }
}
