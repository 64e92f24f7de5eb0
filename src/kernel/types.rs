//! Plain data handed to a [`KernelIpsec`](super::KernelIpsec) implementation.

use std::fmt;
use std::net::IpAddr;
use std::ops::RangeInclusive;

use ipnet::IpNet;
use zeroize::Zeroizing;

use super::error::KernelError;

/// First reqid of the range reserved for ikev2d (see the module docs: ownership rule).
pub const REQID_MIN: u32 = 0x4b32_0000;
/// Last reqid of the range reserved for ikev2d.
pub const REQID_MAX: u32 = 0x4b32_ffff;

/// Whether `reqid` lies in the range ikev2d reserves for itself.
pub fn is_our_reqid(reqid: u32) -> bool {
    (REQID_MIN..=REQID_MAX).contains(&reqid)
}

/// Range inbound SPIs are allocated from (as strongSwan does).
pub const SPI_RANGE: RangeInclusive<u32> = 0xc000_0000..=0xcfff_ffff;

/// IPsec mode of a CHILD_SA: the crate's one type for it (the engine negotiates it and
/// re-exports it as `ike::Mode`; ipsec.conf's `type=` maps to it in `daemon/conns.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Host to host: the ESP header goes between the IP header and its payload.
    Transport,
    /// Gateway to gateway: the whole inner packet is encapsulated.
    Tunnel,
}

impl fmt::Display for Mode {
    /// strongSwan's spelling in status output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tunnel => "TUNNEL",
            Self::Transport => "TRANSPORT",
        })
    }
}

/// IPsec protocol of a CHILD_SA: the crate's one type for it (the engine negotiates it, the
/// policies' templates and the SAs carry it; ipsec.conf's `esp=`/`ah=` choose it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IpsecProto {
    /// Encapsulating Security Payload (RFC 4303), IP protocol 50.
    #[default]
    Esp,
    /// Authentication Header (RFC 4302), IP protocol 51: integrity only.
    Ah,
}

impl IpsecProto {
    /// IP protocol number (XFRM's `id.proto`, a template's `id.proto`).
    pub fn number(self) -> u8 {
        match self {
            Self::Esp => 50,
            Self::Ah => 51,
        }
    }
}

impl fmt::Display for IpsecProto {
    /// strongSwan's spelling in status output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Esp => "ESP",
            Self::Ah => "AH",
        })
    }
}

/// One traffic selector: an address range, an IP protocol (0 = any) and a port range.
///
/// For ICMP/ICMPv6 the kernel matches type and code in separate fields, so only the full
/// port range (any type and code) is accepted for those protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrafficSelector {
    /// First address of the range.
    pub start: IpAddr,
    /// Last address of the range (same family as `start`).
    pub end: IpAddr,
    /// IP protocol number, 0 for any.
    pub proto: u8,
    /// First port.
    pub port_start: u16,
    /// Last port.
    pub port_end: u16,
}

impl TrafficSelector {
    /// All addresses of `net`, any protocol, any port.
    pub fn from_net(net: IpNet) -> Self {
        Self {
            start: net.network(),
            end: net.broadcast(),
            proto: 0,
            port_start: 0,
            port_end: u16::MAX,
        }
    }

    /// A single address, any protocol, any port.
    pub fn host(addr: IpAddr) -> Self {
        Self {
            start: addr,
            end: addr,
            proto: 0,
            port_start: 0,
            port_end: u16::MAX,
        }
    }

    /// The same addresses restricted to one protocol and a port range.
    pub fn with_proto(self, proto: u8, ports: RangeInclusive<u16>) -> Self {
        Self {
            proto,
            port_start: *ports.start(),
            port_end: *ports.end(),
            ..self
        }
    }
}

impl fmt::Display for TrafficSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)?;
        } else {
            write!(f, "{}-{}", self.start, self.end)?;
        }
        if self.proto != 0 || self.port_start != 0 || self.port_end != u16::MAX {
            write!(f, "[{}/{}-{}]", self.proto, self.port_start, self.port_end)?;
        }
        Ok(())
    }
}

/// Secret key bytes: zeroized on drop, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyBytes(Zeroizing<Vec<u8>>);

impl KeyBytes {
    /// Takes ownership of `bytes` (they are zeroized when this value is dropped).
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Copies `bytes`.
    pub fn from_slice(bytes: &[u8]) -> Self {
        Self::new(bytes.to_vec())
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the key is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The secret bytes; handle with care.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for KeyBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyBytes(<{} bytes redacted>)", self.0.len())
    }
}

/// Integrity algorithms (ESP with AES-CBC, and AH).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IntegAlg {
    /// AUTH_HMAC_SHA1_96.
    HmacSha1_96,
    /// AUTH_HMAC_SHA2_256_128.
    HmacSha256_128,
    /// AUTH_HMAC_SHA2_384_192.
    HmacSha384_192,
    /// AUTH_HMAC_SHA2_512_256.
    HmacSha512_256,
}

impl IntegAlg {
    /// Linux crypto API name.
    pub fn kernel_name(self) -> &'static str {
        match self {
            Self::HmacSha1_96 => "hmac(sha1)",
            Self::HmacSha256_128 => "hmac(sha256)",
            Self::HmacSha384_192 => "hmac(sha384)",
            Self::HmacSha512_256 => "hmac(sha512)",
        }
    }

    /// ICV length in bits (given to the kernel through XFRMA_ALG_AUTH_TRUNC).
    pub fn trunc_bits(self) -> u32 {
        match self {
            Self::HmacSha1_96 => 96,
            Self::HmacSha256_128 => 128,
            Self::HmacSha384_192 => 192,
            Self::HmacSha512_256 => 256,
        }
    }

    /// Key length in bytes (RFC 2404, RFC 4868).
    pub fn key_len(self) -> usize {
        match self {
            Self::HmacSha1_96 => 20,
            Self::HmacSha256_128 => 32,
            Self::HmacSha384_192 => 48,
            Self::HmacSha512_256 => 64,
        }
    }
}

/// Integrity algorithm with its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Integrity {
    /// Algorithm.
    pub alg: IntegAlg,
    /// Key, `alg.key_len()` bytes.
    pub key: KeyBytes,
}

/// ESP transform of one SA with its keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EspCrypto {
    /// ENCR_AES_GCM_16 (RFC 4106), 128-bit ICV. `key` is the AES key followed by the 4-byte
    /// salt: 20, 28 or 36 bytes.
    AesGcm16 {
        /// AES key ‖ salt.
        key: KeyBytes,
    },
    /// ENCR_AES_CBC (RFC 3602) with an HMAC integrity algorithm. `key` is 16, 24 or 32 bytes.
    AesCbc {
        /// AES key.
        key: KeyBytes,
        /// Integrity algorithm and key.
        integ: Integrity,
    },
    /// AH (RFC 4302): an HMAC integrity algorithm only, installed with protocol 51.
    Ah {
        /// Integrity algorithm and key.
        integ: Integrity,
    },
}

/// Kernel name of the AES-GCM-16 AEAD.
pub(crate) const GCM_NAME: &str = "rfc4106(gcm(aes))";
/// Kernel name of AES-CBC.
pub(crate) const CBC_NAME: &str = "cbc(aes)";
/// ICV length of AES-GCM-16, bits.
pub(crate) const GCM_ICV_BITS: u32 = 128;

impl EspCrypto {
    /// Checks key lengths.
    pub fn validate(&self) -> Result<(), KernelError> {
        match self {
            Self::AesGcm16 { key } => {
                if ![20, 28, 36].contains(&key.len()) {
                    return Err(KernelError::InvalidKeyLength {
                        alg: GCM_NAME,
                        len: key.len(),
                    });
                }
            }
            Self::AesCbc { key, integ } => {
                if ![16, 24, 32].contains(&key.len()) {
                    return Err(KernelError::InvalidKeyLength {
                        alg: CBC_NAME,
                        len: key.len(),
                    });
                }
                integ.validate()?;
            }
            Self::Ah { integ } => integ.validate()?,
        }
        Ok(())
    }

    /// The IPsec protocol these transforms are for.
    pub fn proto(&self) -> IpsecProto {
        match self {
            Self::AesGcm16 { .. } | Self::AesCbc { .. } => IpsecProto::Esp,
            Self::Ah { .. } => IpsecProto::Ah,
        }
    }

    /// Human-readable algorithm names, e.g. `cbc(aes)+hmac(sha256)/128` (no key material).
    pub fn describe(&self) -> String {
        match self {
            Self::AesGcm16 { .. } => format!("{GCM_NAME}/{GCM_ICV_BITS}"),
            Self::AesCbc { integ, .. } => format!(
                "{CBC_NAME}+{}/{}",
                integ.alg.kernel_name(),
                integ.alg.trunc_bits()
            ),
            Self::Ah { integ } => {
                format!("{}/{}", integ.alg.kernel_name(), integ.alg.trunc_bits())
            }
        }
    }
}

impl Integrity {
    fn validate(&self) -> Result<(), KernelError> {
        if self.key.len() != self.alg.key_len() {
            return Err(KernelError::InvalidKeyLength {
                alg: self.alg.kernel_name(),
                len: self.key.len(),
            });
        }
        Ok(())
    }
}

/// SA lifetimes; 0 means "no limit" for every field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lifetime {
    /// Soft limit in seconds since installation (kernel sends a soft EXPIRE: rekey).
    pub soft_secs: u64,
    /// Hard limit in seconds (kernel deletes the SA and sends a hard EXPIRE).
    pub hard_secs: u64,
    /// Soft byte limit.
    pub soft_bytes: u64,
    /// Hard byte limit.
    pub hard_bytes: u64,
    /// Soft packet limit.
    pub soft_packets: u64,
    /// Hard packet limit.
    pub hard_packets: u64,
}

impl Lifetime {
    /// Checks that no soft limit exceeds its hard limit.
    pub fn validate(&self) -> Result<(), KernelError> {
        for (what, soft, hard) in [
            ("seconds", self.soft_secs, self.hard_secs),
            ("bytes", self.soft_bytes, self.hard_bytes),
            ("packets", self.soft_packets, self.hard_packets),
        ] {
            if hard != 0 && soft > hard {
                return Err(KernelError::InvalidLifetime { what, soft, hard });
            }
        }
        Ok(())
    }
}

/// UDP encapsulation (NAT-T, RFC 3948) ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UdpEncap {
    /// Our port (normally 4500).
    pub local_port: u16,
    /// The peer's port.
    pub remote_port: u16,
}

/// An XFRM mark (XFRMA_MARK, ipsec.conf's `mark=`): an SA or policy applies only to packets
/// whose mark ANDed with `mask` equals `value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mark {
    /// Value compared with the packet's mark under `mask`.
    pub value: u32,
    /// Mask applied to the packet's mark.
    pub mask: u32,
}

impl fmt::Display for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mark {:#x}/{:#x}", self.value, self.mask)
    }
}

/// The marks of a CHILD_SA or shunt (`mark_in`, `mark_out`): `inbound` goes on the inbound SA
/// and the in and fwd policies, `outbound` on the outbound SA and the out policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Marks {
    /// Inbound SA, in and fwd policies.
    pub inbound: Option<Mark>,
    /// Outbound SA, out policy.
    pub outbound: Option<Mark>,
}

/// What a shunt (`type=pass` / `type=drop`) does with the traffic its policies match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShuntAction {
    /// Let it through in clear, whatever IPsec policy it also matches (no template).
    Pass,
    /// Discard it (XFRM action block).
    Drop,
}

impl fmt::Display for ShuntAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pass => "pass",
            Self::Drop => "drop",
        })
    }
}

/// The policies of a shunt conn: out, in and fwd (both ways) for every pair of local and
/// remote selectors, preferred over every CHILD_SA and trap policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShuntPolicy {
    /// Pass or drop.
    pub action: ShuntAction,
    /// The key of its bookkeeping (the conn's reqid; must be in `REQID_MIN..=REQID_MAX`,
    /// shared with the trap of the same reqid: a conn has one or the other).
    pub reqid: u32,
    /// Our side's traffic selectors.
    pub local_ts: Vec<TrafficSelector>,
    /// The peer's traffic selectors.
    pub remote_ts: Vec<TrafficSelector>,
    /// Marks of the policies.
    pub marks: Marks,
}

/// What a CHILD_SA's policies (and a trap for `auto=route`) are made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildPolicy {
    /// Our IKE/ESP address.
    pub local: IpAddr,
    /// The peer's IKE/ESP address.
    pub remote: IpAddr,
    /// Transport or tunnel.
    pub mode: Mode,
    /// ESP or AH: the protocol of the policies' templates (and of the SAs).
    pub proto: IpsecProto,
    /// Request id tying policies to SAs; must be in `REQID_MIN..=REQID_MAX`.
    pub reqid: u32,
    /// Our side's traffic selectors.
    pub local_ts: Vec<TrafficSelector>,
    /// The peer's traffic selectors.
    pub remote_ts: Vec<TrafficSelector>,
    /// Marks of the SAs and policies (`mark=`, `mark_in=`, `mark_out=`).
    pub marks: Marks,
}

/// Everything needed to install one CHILD_SA (an inbound and an outbound ESP or AH SA plus
/// policies out, in and, in tunnel mode, fwd). The transforms' protocol
/// ([`EspCrypto::proto`]) must be the policy's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSaInstall {
    /// Addresses, mode, reqid and traffic selectors.
    pub policy: ChildPolicy,
    /// SPI of the inbound SA (chosen by us, in [`SPI_RANGE`]).
    pub spi_in: u32,
    /// SPI of the outbound SA (chosen by the peer).
    pub spi_out: u32,
    /// Transform and keys of the inbound SA.
    pub crypto_in: EspCrypto,
    /// Transform and keys of the outbound SA.
    pub crypto_out: EspCrypto,
    /// Anti-replay window of the inbound SA in packets (0 disables replay protection).
    pub replay_window: u32,
    /// Lifetimes of both SAs.
    pub lifetime: Lifetime,
    /// NAT-T UDP encapsulation, if a NAT was detected.
    pub encap: Option<UdpEncap>,
    /// Install only the inbound SA (and the policies) now; the outbound SA waits for
    /// [`KernelIpsec::activate_outbound`](super::KernelIpsec::activate_outbound). The responder
    /// of a CHILD_SA rekey uses it: the kernel sends on the newest SA at once, and the peer
    /// installs its inbound SA only when our response arrives.
    pub defer_outbound: bool,
}

/// Handle of an installed CHILD_SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChildId {
    /// reqid shared by the SAs and policies.
    pub reqid: u32,
    /// Inbound SPI.
    pub spi_in: u32,
    /// Outbound SPI.
    pub spi_out: u32,
}

impl fmt::Display for ChildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CHILD_SA reqid {:#x} in {:#010x} out {:#010x}",
            self.reqid, self.spi_in, self.spi_out
        )
    }
}

/// Traffic counters of one SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Bytes processed.
    pub bytes: u64,
    /// Packets processed.
    pub packets: u64,
}

/// Traffic counters of a CHILD_SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChildCounters {
    /// Inbound SA.
    pub inbound: Counters,
    /// Outbound SA.
    pub outbound: Counters,
}

/// What `flush_ours` removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlushReport {
    /// SAs deleted.
    pub sas: usize,
    /// Policies deleted.
    pub policies: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_debug_is_redacted() {
        let k = KeyBytes::from_slice(&[0xab; 20]);
        let s = format!("{:?}", EspCrypto::AesGcm16 { key: k });
        assert!(s.contains("20 bytes redacted"), "{s}");
        assert!(!s.contains("ab") && !s.contains("171"), "{s}");
    }

    #[test]
    fn key_lengths_are_checked() {
        let gcm = |n| EspCrypto::AesGcm16 {
            key: KeyBytes::new(vec![0; n]),
        };
        assert!(gcm(20).validate().is_ok());
        assert!(gcm(36).validate().is_ok());
        assert!(matches!(
            gcm(16).validate(),
            Err(KernelError::InvalidKeyLength { len: 16, .. })
        ));
        let cbc = |k, alg: IntegAlg, i| EspCrypto::AesCbc {
            key: KeyBytes::new(vec![0; k]),
            integ: Integrity {
                alg,
                key: KeyBytes::new(vec![0; i]),
            },
        };
        assert!(cbc(16, IntegAlg::HmacSha256_128, 32).validate().is_ok());
        assert!(cbc(32, IntegAlg::HmacSha1_96, 20).validate().is_ok());
        assert!(cbc(20, IntegAlg::HmacSha256_128, 32).validate().is_err());
        assert!(cbc(16, IntegAlg::HmacSha512_256, 32).validate().is_err());
    }

    #[test]
    fn integ_table() {
        assert_eq!(IntegAlg::HmacSha256_128.trunc_bits(), 128);
        assert_eq!(IntegAlg::HmacSha384_192.trunc_bits(), 192);
        assert_eq!(IntegAlg::HmacSha512_256.trunc_bits(), 256);
        assert_eq!(IntegAlg::HmacSha1_96.trunc_bits(), 96);
        assert_eq!(IntegAlg::HmacSha1_96.kernel_name(), "hmac(sha1)");
    }

    #[test]
    fn lifetimes_are_checked() {
        assert!(Lifetime::default().validate().is_ok());
        let ok = Lifetime {
            soft_secs: 10,
            hard_secs: 20,
            ..Lifetime::default()
        };
        assert!(ok.validate().is_ok());
        let bad = Lifetime {
            soft_secs: 30,
            hard_secs: 20,
            ..Lifetime::default()
        };
        assert!(matches!(
            bad.validate(),
            Err(KernelError::InvalidLifetime {
                what: "seconds",
                ..
            })
        ));
    }

    #[test]
    fn reqid_range() {
        assert!(is_our_reqid(REQID_MIN));
        assert!(is_our_reqid(REQID_MAX));
        assert!(!is_our_reqid(REQID_MIN - 1));
        assert!(!is_our_reqid(1));
    }
}
