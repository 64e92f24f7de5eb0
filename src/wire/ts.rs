//! Traffic Selector payloads (RFC 7296 §3.13).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;

use ipnet::IpNet;

use super::codec::{Reader, with_len16};
use super::{TsType, WireError};

/// One traffic selector of type TS_IPV4_ADDR_RANGE or TS_IPV6_ADDR_RANGE.
///
/// A TSi/TSr payload that contains a selector of any other type is kept as
/// [`super::Payload::Unknown`] (with its payload type TSI/TSR and the raw body), so it still
/// round-trips byte-exactly but offers nothing to narrow against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrafficSelector {
    /// Must agree with the address family of `start_addr` and `end_addr` (the constructors ensure it).
    pub ts_type: TsType,
    /// IP protocol number, 0 = any.
    pub ip_protocol: u8,
    pub start_port: u16,
    pub end_port: u16,
    pub start_addr: IpAddr,
    pub end_addr: IpAddr,
}

/// One parsed selector substructure.
enum ReadTs {
    Known(TrafficSelector),
    /// Well-formed substructure of a type this crate does not model.
    Other,
}

const IPV4_RANGE_LEN: u16 = 16;
const IPV6_RANGE_LEN: u16 = 40;

impl TrafficSelector {
    /// All IPv4 addresses, all protocols and ports.
    pub fn any_v4() -> Self {
        Self::any(Ipv4Addr::UNSPECIFIED.into(), Ipv4Addr::BROADCAST.into())
    }

    /// All IPv6 addresses, all protocols and ports.
    pub fn any_v6() -> Self {
        Self::any(
            Ipv6Addr::UNSPECIFIED.into(),
            Ipv6Addr::from(u128::MAX).into(),
        )
    }

    fn any(start_addr: IpAddr, end_addr: IpAddr) -> Self {
        let ts_type = if start_addr.is_ipv4() {
            TsType::IPV4_ADDR_RANGE
        } else {
            TsType::IPV6_ADDR_RANGE
        };
        TrafficSelector {
            ts_type,
            ip_protocol: 0,
            start_port: 0,
            end_port: u16::MAX,
            start_addr,
            end_addr,
        }
    }

    /// The address range of `net` (host bits ignored) with the given protocol (0 = any) and ports.
    pub fn from_subnet(net: IpNet, ip_protocol: u8, ports: RangeInclusive<u16>) -> Self {
        let ts_type = match net {
            IpNet::V4(_) => TsType::IPV4_ADDR_RANGE,
            IpNet::V6(_) => TsType::IPV6_ADDR_RANGE,
        };
        TrafficSelector {
            ts_type,
            ip_protocol,
            start_port: *ports.start(),
            end_port: *ports.end(),
            start_addr: net.network(),
            end_addr: net.broadcast(),
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<ReadTs, WireError> {
        let what = "traffic selector";
        let ts_type = TsType(r.u8(what)?);
        let ip_protocol = r.u8(what)?;
        let len = r.u16(what)?;
        let expected = match ts_type {
            TsType::IPV4_ADDR_RANGE => IPV4_RANGE_LEN,
            TsType::IPV6_ADDR_RANGE => IPV6_RANGE_LEN,
            _ => {
                let body_len = len.checked_sub(4).ok_or(WireError::BadLength {
                    what,
                    length: usize::from(len),
                })?;
                r.take(usize::from(body_len), what)?;
                return Ok(ReadTs::Other);
            }
        };
        if len != expected {
            return Err(WireError::BadLength {
                what,
                length: usize::from(len),
            });
        }
        let start_port = r.u16(what)?;
        let end_port = r.u16(what)?;
        let (start_addr, end_addr) = if ts_type == TsType::IPV4_ADDR_RANGE {
            (
                IpAddr::from(r.array::<4>(what)?),
                IpAddr::from(r.array::<4>(what)?),
            )
        } else {
            (
                IpAddr::from(r.array::<16>(what)?),
                IpAddr::from(r.array::<16>(what)?),
            )
        };
        Ok(ReadTs::Known(TrafficSelector {
            ts_type,
            ip_protocol,
            start_port,
            end_port,
            start_addr,
            end_addr,
        }))
    }

    fn write(&self, out: &mut Vec<u8>) {
        with_len16(
            out,
            |out| out.extend_from_slice(&[self.ts_type.0, self.ip_protocol]),
            |out| {
                out.extend_from_slice(&self.start_port.to_be_bytes());
                out.extend_from_slice(&self.end_port.to_be_bytes());
                for addr in [self.start_addr, self.end_addr] {
                    match addr {
                        IpAddr::V4(v4) => out.extend_from_slice(&v4.octets()),
                        IpAddr::V6(v6) => out.extend_from_slice(&v6.octets()),
                    }
                }
            },
        );
    }
}

/// Reads a TSi/TSr payload body. `Ok(None)`: well-formed, but some selector has a type this crate
/// does not model.
pub(crate) fn read_ts_payload(
    r: &mut Reader<'_>,
) -> Result<Option<Vec<TrafficSelector>>, WireError> {
    let what = "TS payload";
    let count = r.u8(what)?;
    r.reserved::<3>("TS payload RESERVED")?;
    let mut selectors = Vec::with_capacity(usize::from(count));
    let mut all_known = true;
    for _ in 0..count {
        match TrafficSelector::read(r)? {
            ReadTs::Known(ts) => selectors.push(ts),
            ReadTs::Other => all_known = false,
        }
    }
    r.expect_end(what)?;
    Ok(all_known.then_some(selectors))
}

/// Writes a TSi/TSr payload body (at most 255 selectors: the count is one octet).
pub(crate) fn write_ts_payload(selectors: &[TrafficSelector], out: &mut Vec<u8>) {
    let selectors = selectors.get(..usize::from(u8::MAX)).unwrap_or(selectors);
    let count = u8::try_from(selectors.len()).unwrap_or(u8::MAX);
    out.extend_from_slice(&[count, 0, 0, 0]);
    for ts in selectors {
        ts.write(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(selectors: &[TrafficSelector]) -> Vec<u8> {
        let mut out = Vec::new();
        write_ts_payload(selectors, &mut out);
        out
    }

    fn read(bytes: &[u8]) -> Result<Option<Vec<TrafficSelector>>, WireError> {
        read_ts_payload(&mut Reader::new(bytes))
    }

    #[rustfmt::skip]
    const V4_TCP_HTTPS: [u8; 20] = [
        1, 0, 0, 0, // one selector
        7, 6, 0, 16, 1, 0xbb, 1, 0xbb, // IPv4 range, TCP, length 16, port 443-443
        10, 1, 0, 0, 10, 1, 0, 255,
    ];

    #[test]
    fn ipv4_range_rfc_layout() {
        let ts = TrafficSelector::from_subnet("10.1.0.77/24".parse().unwrap(), 6, 443..=443);
        assert_eq!(ts.start_addr, IpAddr::from([10, 1, 0, 0]));
        assert_eq!(ts.end_addr, IpAddr::from([10, 1, 0, 255]));
        assert_eq!(write(&[ts]), V4_TCP_HTTPS);
        assert_eq!(read(&V4_TCP_HTTPS).unwrap(), Some(vec![ts]));
    }

    #[test]
    fn any_selectors_and_ipv6() {
        let v4 = TrafficSelector::any_v4();
        assert_eq!(
            (v4.ts_type, v4.ip_protocol, v4.start_port, v4.end_port),
            (TsType::IPV4_ADDR_RANGE, 0, 0, 65535)
        );
        assert_eq!(v4.end_addr, IpAddr::from([255; 4]));
        let v6 = TrafficSelector::any_v6();
        assert_eq!(
            v6,
            TrafficSelector::from_subnet("::/0".parse().unwrap(), 0, 0..=65535)
        );
        let bytes = write(&[v4, v6]);
        assert_eq!(bytes.len(), 4 + 16 + 40);
        assert_eq!(bytes[20..24], [8, 0, 0, 40]);
        assert_eq!(read(&bytes).unwrap(), Some(vec![v4, v6]));
        assert_eq!(read(&[0, 0, 0, 0]).unwrap(), Some(vec![]));
    }

    #[test]
    fn unknown_selector_type_makes_the_payload_opaque() {
        // A known selector followed by a type-10 (security label) selector of 6 bytes.
        let mut bytes = V4_TCP_HTTPS.to_vec();
        bytes[0] = 2;
        bytes.extend_from_slice(&[10, 0, 0, 6, 0xab, 0xcd]);
        assert_eq!(read(&bytes).unwrap(), None);
        // The unknown selector's length is still checked.
        bytes[23] = 3;
        assert_eq!(
            read(&bytes),
            Err(WireError::BadLength {
                what: "traffic selector",
                length: 3
            })
        );
        bytes[23] = 7;
        assert_eq!(
            read(&bytes),
            Err(WireError::Truncated {
                what: "traffic selector"
            })
        );
    }

    #[test]
    fn reserved_octets_are_ignored_and_written_as_zero() {
        let mut bytes = V4_TCP_HTTPS;
        bytes[1..4].copy_from_slice(&[0xff, 1, 0x80]);
        let ts = read(&bytes).unwrap();
        assert_eq!(ts, read(&V4_TCP_HTTPS).unwrap());
        assert_eq!(write(&ts.unwrap()), V4_TCP_HTTPS);
    }

    #[test]
    fn malformed_ts_payloads() {
        let with = |i: usize, v: u8| {
            let mut b = V4_TCP_HTTPS;
            b[i] = v;
            read(&b)
        };
        assert_eq!(
            with(0, 2),
            Err(WireError::Truncated {
                what: "traffic selector"
            })
        );
        assert_eq!(
            with(0, 0),
            Err(WireError::TrailingData { what: "TS payload" })
        );
        assert_eq!(
            with(7, 40),
            Err(WireError::BadLength {
                what: "traffic selector",
                length: 40
            })
        );
        assert_eq!(
            with(4, 8),
            Err(WireError::BadLength {
                what: "traffic selector",
                length: 16
            })
        );
        for n in 0..V4_TCP_HTTPS.len() {
            assert!(read(&V4_TCP_HTTPS[..n]).is_err(), "prefix {n} accepted");
        }
    }
}
