//! Configuration payload (RFC 7296 §3.15): a CFG_REQUEST from a client asking for an inner
//! address (and DNS servers), the CFG_REPLY carrying them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::codec::Reader;
use super::{CfgType, ConfigAttrType, WireError};

/// Configuration payload body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigPayload {
    pub cfg_type: CfgType,
    pub attributes: Vec<ConfigAttribute>,
}

/// One configuration attribute (§3.15.1). The reserved R bit is ignored on input and written as
/// zero, so `attr_type` is the 15-bit type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigAttribute {
    pub attr_type: ConfigAttrType,
    pub value: Vec<u8>,
}

impl ConfigAttribute {
    /// An attribute without a value: what a CFG_REQUEST asks for.
    pub fn request(attr_type: ConfigAttrType) -> Self {
        Self {
            attr_type,
            value: Vec::new(),
        }
    }

    /// INTERNAL_IP4_ADDRESS or INTERNAL_IP6_ADDRESS carrying `addr` (IPv6 with prefix length
    /// 128, as a single address is given out).
    pub fn address(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(a) => Self {
                attr_type: ConfigAttrType::INTERNAL_IP4_ADDRESS,
                value: a.octets().to_vec(),
            },
            IpAddr::V6(a) => {
                let mut value = a.octets().to_vec();
                value.push(128);
                Self {
                    attr_type: ConfigAttrType::INTERNAL_IP6_ADDRESS,
                    value,
                }
            }
        }
    }

    /// The address an INTERNAL_IP4/6_ADDRESS or INTERNAL_IP4/6_DNS attribute carries: `None`
    /// for other types, for an empty value (a request) and for a value of the wrong length.
    pub fn ip(&self) -> Option<IpAddr> {
        let v4 = || <[u8; 4]>::try_from(self.value.as_slice()).ok();
        let v6 = |v: &[u8]| <[u8; 16]>::try_from(v).ok();
        match self.attr_type {
            ConfigAttrType::INTERNAL_IP4_ADDRESS | ConfigAttrType::INTERNAL_IP4_DNS => {
                v4().map(|a| IpAddr::V4(Ipv4Addr::from(a)))
            }
            // Address ‖ prefix length (§3.15.1).
            ConfigAttrType::INTERNAL_IP6_ADDRESS if self.value.len() == 17 => self
                .value
                .get(..16)
                .and_then(v6)
                .map(|a| IpAddr::V6(Ipv6Addr::from(a))),
            ConfigAttrType::INTERNAL_IP6_DNS => {
                v6(&self.value).map(|a| IpAddr::V6(Ipv6Addr::from(a)))
            }
            _ => None,
        }
    }
}

impl ConfigPayload {
    /// R bit of an attribute's type field.
    const RESERVED_BIT: u16 = 0x8000;

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let what = "Configuration payload";
        let cfg_type = CfgType(r.u8(what)?);
        r.reserved::<3>(what)?;
        let mut attributes = Vec::new();
        while !r.is_empty() {
            let what = "configuration attribute";
            let attr_type = ConfigAttrType(r.u16(what)? & !Self::RESERVED_BIT);
            let len = r.u16(what)?;
            let value = r.take(usize::from(len), "configuration attribute value")?;
            attributes.push(ConfigAttribute {
                attr_type,
                value: value.to_vec(),
            });
        }
        Ok(Self {
            cfg_type,
            attributes,
        })
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[self.cfg_type.0, 0, 0, 0]);
        for a in &self.attributes {
            let value = a.value.get(..usize::from(u16::MAX)).unwrap_or(&a.value);
            let len = u16::try_from(value.len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&(a.attr_type.0 & !Self::RESERVED_BIT).to_be_bytes());
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<ConfigPayload, WireError> {
        ConfigPayload::read(&mut Reader::new(bytes))
    }

    fn encode(cp: &ConfigPayload) -> Vec<u8> {
        let mut out = Vec::new();
        cp.write(&mut out);
        out
    }

    #[test]
    fn request_layout() {
        // CFG_REQUEST, RESERVED; INTERNAL_IP4_ADDRESS (len 0); INTERNAL_IP4_DNS (len 0).
        let bytes = [1, 0, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0];
        let cp = parse(&bytes).unwrap();
        assert_eq!(cp.cfg_type, CfgType::CFG_REQUEST);
        assert_eq!(
            cp.attributes,
            [
                ConfigAttribute::request(ConfigAttrType::INTERNAL_IP4_ADDRESS),
                ConfigAttribute::request(ConfigAttrType::INTERNAL_IP4_DNS),
            ]
        );
        assert_eq!(cp.attributes[0].ip(), None, "a request carries no address");
        assert_eq!(encode(&cp), bytes);
    }

    #[test]
    fn reply_addresses_round_trip() {
        let v4: IpAddr = "10.3.0.1".parse().unwrap();
        let v6: IpAddr = "2001:db8:3::1".parse().unwrap();
        let dns: IpAddr = "10.1.2.53".parse().unwrap();
        let cp = ConfigPayload {
            cfg_type: CfgType::CFG_REPLY,
            attributes: vec![
                ConfigAttribute::address(v4),
                ConfigAttribute::address(v6),
                ConfigAttribute {
                    attr_type: ConfigAttrType::INTERNAL_IP4_DNS,
                    value: vec![10, 1, 2, 53],
                },
            ],
        };
        let bytes = encode(&cp);
        assert_eq!(&bytes[..12], [2, 0, 0, 0, 0, 1, 0, 4, 10, 3, 0, 1]);
        // INTERNAL_IP6_ADDRESS: 16 address bytes and the prefix length.
        assert_eq!(&bytes[12..16], [0, 8, 0, 17]);
        assert_eq!(bytes[32], 128);
        let back = parse(&bytes).unwrap();
        assert_eq!(back, cp);
        let ips: Vec<_> = back
            .attributes
            .iter()
            .filter_map(ConfigAttribute::ip)
            .collect();
        assert_eq!(ips, [v4, v6, dns]);
    }

    #[test]
    fn reserved_bits_ignored_and_bad_input_refused() {
        // R bit set on the attribute type, reserved octets non-zero: both ignored.
        let cp = parse(&[2, 9, 9, 9, 0x80, 1, 0, 4, 10, 3, 0, 7]).unwrap();
        assert_eq!(
            cp.attributes[0].attr_type,
            ConfigAttrType::INTERNAL_IP4_ADDRESS
        );
        assert_eq!(cp.attributes[0].ip(), Some("10.3.0.7".parse().unwrap()));
        assert_eq!(encode(&cp), [2, 0, 0, 0, 0, 1, 0, 4, 10, 3, 0, 7]);
        // A wrong-length address is no address; truncated input is an error.
        let odd = parse(&[2, 0, 0, 0, 0, 1, 0, 3, 10, 3, 0]).unwrap();
        assert_eq!(odd.attributes[0].ip(), None);
        assert!(parse(&[2, 0, 0]).is_err());
        assert!(parse(&[2, 0, 0, 0, 0, 1, 0, 4, 10]).is_err());
        assert!(parse(&[2, 0, 0, 0, 0, 1, 0]).is_err());
    }
}
