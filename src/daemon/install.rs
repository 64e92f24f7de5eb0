//! From the engine's [`ChildSaReady`] to the kernel's [`ChildSaInstall`] (and trap
//! policies), and the soft lifetime that schedules CHILD_SA rekeying.

use std::net::IpAddr;
use std::time::Duration;

use rand::{Rng, RngExt};

use crate::crypto::{Encr, Integ};
use crate::ike::{ChildDirKeys, ChildSaReady, Mode};
use crate::kernel::{
    self, ChildPolicy, ChildSaInstall, EspCrypto, IntegAlg, Integrity, IpsecProto, KeyBytes,
    Lifetime, Marks, UdpEncap,
};
use crate::wire::TrafficSelector;

/// Why a CHILD_SA cannot be handed to the kernel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstallError {
    /// The negotiated transform has no kernel mapping here.
    #[error("ESP/AH transform {0} cannot be installed")]
    Unsupported(String),
    /// A NAT was detected but the CHILD_SA is AH, which has no UDP encapsulation (RFC 3948
    /// is for ESP) and authenticates the addresses the NAT rewrites.
    #[error("AH cannot pass the NAT detected between the peers (use ESP)")]
    AhThroughNat,
}

/// Kernel form of a traffic selector.
pub fn kernel_ts(ts: &TrafficSelector) -> kernel::TrafficSelector {
    kernel::TrafficSelector {
        start: ts.start_addr,
        end: ts.end_addr,
        proto: ts.ip_protocol,
        port_start: ts.start_port,
        port_end: ts.end_port,
    }
}

fn integ_alg(i: Integ) -> IntegAlg {
    match i {
        Integ::HmacSha1_96 => IntegAlg::HmacSha1_96,
        Integ::HmacSha256_128 => IntegAlg::HmacSha256_128,
        Integ::HmacSha384_192 => IntegAlg::HmacSha384_192,
        Integ::HmacSha512_256 => IntegAlg::HmacSha512_256,
    }
}

fn esp_crypto(
    encr: Option<Encr>,
    integ: Option<Integ>,
    keys: &ChildDirKeys,
) -> Result<EspCrypto, InstallError> {
    let integrity = |i| Integrity {
        alg: integ_alg(i),
        key: KeyBytes::from_slice(&keys.integ),
    };
    match (encr, integ) {
        (None, Some(i)) => Ok(EspCrypto::Ah {
            integ: integrity(i),
        }),
        (Some(Encr::AesGcm16 { .. }), None) => Ok(EspCrypto::AesGcm16 {
            key: KeyBytes::from_slice(&keys.encr),
        }),
        (Some(Encr::AesCbc { .. }), Some(i)) => Ok(EspCrypto::AesCbc {
            key: KeyBytes::from_slice(&keys.encr),
            integ: integrity(i),
        }),
        (e, i) => Err(InstallError::Unsupported(
            e.map(Encr::name)
                .into_iter()
                .chain(i.map(Integ::name))
                .collect::<Vec<_>>()
                .join("/"),
        )),
    }
}

/// Soft expire (the rekey) `margin` + `jitter` before the hard one, but not before half
/// the lifetime.
pub fn lifetime(hard: Duration, margin: Duration, jitter: Duration) -> Lifetime {
    let hard_secs = hard.as_secs();
    let soft_secs = hard_secs
        .saturating_sub(margin.saturating_add(jitter).as_secs())
        .max(hard_secs / 2);
    Lifetime {
        soft_secs,
        hard_secs,
        ..Lifetime::default()
    }
}

/// A conn's `lifebytes`/`lifepackets` and `marginbytes`/`marginpackets`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VolumeLimits {
    /// Hard byte limit (`None`: none).
    pub bytes: Option<u64>,
    /// Hard packet limit (`None`: none).
    pub packets: Option<u64>,
    /// Rekey this many bytes before the limit.
    pub margin_bytes: u64,
    /// Rekey this many packets before the limit.
    pub margin_packets: u64,
}

impl VolumeLimits {
    /// Sets the byte and packet limits of `life`: the hard limit as configured, the soft one
    /// (rekey) the margin plus up to `fuzz_percent` of it earlier, but not before half the
    /// limit — as for the time limits.
    pub fn apply(&self, life: &mut Lifetime, fuzz_percent: u32, rng: &mut impl Rng) {
        (life.soft_bytes, life.hard_bytes) =
            soft_and_hard(self.bytes, self.margin_bytes, fuzz_percent, rng);
        (life.soft_packets, life.hard_packets) =
            soft_and_hard(self.packets, self.margin_packets, fuzz_percent, rng);
    }
}

/// `(soft, hard)` for one volume limit; `(0, 0)` (no limit) without one.
fn soft_and_hard(
    hard: Option<u64>,
    margin: u64,
    fuzz_percent: u32,
    rng: &mut impl Rng,
) -> (u64, u64) {
    let Some(hard) = hard.filter(|h| *h > 0) else {
        return (0, 0);
    };
    let max = u128::from(margin) * u128::from(fuzz_percent) / 100;
    let jitter = rng.random_range(0..=u64::try_from(max).unwrap_or(u64::MAX));
    let soft = hard
        .saturating_sub(margin.saturating_add(jitter))
        .max(hard / 2);
    (soft, hard)
}

/// Random extra rekey margin: up to `fuzz_percent` of `margin` (strongSwan's `rekeyfuzz`).
pub fn rekey_jitter(margin: Duration, fuzz_percent: u32, rng: &mut impl Rng) -> Duration {
    let max = margin.as_secs().saturating_mul(u64::from(fuzz_percent)) / 100;
    Duration::from_secs(rng.random_range(0..=max))
}

/// The kernel request for a negotiated CHILD_SA, with its conn's marks.
pub fn child_install(
    c: &ChildSaReady,
    life: Lifetime,
    encap: Option<UdpEncap>,
    marks: Marks,
) -> Result<ChildSaInstall, InstallError> {
    if c.protocol == IpsecProto::Ah && encap.is_some() {
        return Err(InstallError::AhThroughNat);
    }
    Ok(ChildSaInstall {
        policy: ChildPolicy {
            local: c.local,
            remote: c.remote,
            mode: c.mode,
            proto: c.protocol,
            reqid: c.reqid,
            local_ts: c.local_ts.iter().map(kernel_ts).collect(),
            remote_ts: c.remote_ts.iter().map(kernel_ts).collect(),
            marks,
        },
        spi_in: c.spi_in,
        spi_out: c.spi_out,
        crypto_in: esp_crypto(c.encr, c.integ, &c.keys_in)?,
        crypto_out: esp_crypto(c.encr, c.integ, &c.keys_out)?,
        replay_window: c.replay_window,
        lifetime: life,
        encap,
        defer_outbound: false,
    })
}

/// Trap policies for `auto=route`.
#[allow(clippy::too_many_arguments)]
pub fn trap_policy(
    local: IpAddr,
    remote: IpAddr,
    mode: Mode,
    proto: IpsecProto,
    reqid: u32,
    local_ts: &[TrafficSelector],
    remote_ts: &[TrafficSelector],
    marks: Marks,
) -> ChildPolicy {
    ChildPolicy {
        local,
        remote,
        mode,
        proto,
        reqid,
        local_ts: local_ts.iter().map(kernel_ts).collect(),
        remote_ts: remote_ts.iter().map(kernel_ts).collect(),
        marks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use zeroize::Zeroizing;

    #[test]
    fn volume_limits_rekey_before_the_hard_limit() {
        let mut rng = rand::rngs::ChaCha20Rng::seed_from_u64(1);
        let mut l = Lifetime::default();
        VolumeLimits::default().apply(&mut l, 100, &mut rng);
        assert_eq!(l, Lifetime::default(), "no limits configured");
        let v = VolumeLimits {
            bytes: Some(1_000_000),
            packets: Some(1000),
            margin_bytes: 100_000,
            margin_packets: 0,
        };
        v.apply(&mut l, 0, &mut rng);
        assert_eq!((l.soft_bytes, l.hard_bytes), (900_000, 1_000_000));
        assert_eq!((l.soft_packets, l.hard_packets), (1000, 1000));
        // Fuzz draws up to 100 % of the margin; never before half the limit.
        for _ in 0..50 {
            v.apply(&mut l, 100, &mut rng);
            assert!((800_000..=900_000).contains(&l.soft_bytes), "{l:?}");
        }
        let big = VolumeLimits {
            bytes: Some(100),
            margin_bytes: 90,
            ..v
        };
        big.apply(&mut l, 100, &mut rng);
        assert_eq!((l.soft_bytes, l.hard_bytes), (50, 100));
        assert!(l.validate().is_ok());
    }

    #[test]
    fn lifetimes() {
        let none = Duration::ZERO;
        let l = lifetime(Duration::from_secs(3600), Duration::from_secs(540), none);
        assert_eq!((l.soft_secs, l.hard_secs), (3060, 3600));
        let l = lifetime(Duration::from_secs(60), Duration::from_secs(540), none);
        assert_eq!((l.soft_secs, l.hard_secs), (30, 60));
        let l = lifetime(
            Duration::from_secs(3600),
            Duration::from_secs(540),
            Duration::from_secs(100),
        );
        assert_eq!(l.soft_secs, 2960);
    }

    #[test]
    fn rekey_jitter_stays_within_the_fuzz() {
        let mut rng = rand::rngs::ChaCha20Rng::seed_from_u64(3);
        let margin = Duration::from_secs(540);
        assert_eq!(rekey_jitter(margin, 0, &mut rng), Duration::ZERO);
        let j: Vec<_> = (0..200)
            .map(|_| rekey_jitter(margin, 100, &mut rng))
            .collect();
        assert!(j.iter().all(|d| *d <= margin));
        assert!(j.iter().any(|d| *d != j[0]), "random");
    }

    #[test]
    fn ah_keys_are_integrity_only() {
        let keys = ChildDirKeys {
            encr: Zeroizing::new(vec![]),
            integ: Zeroizing::new(vec![9; 20]),
        };
        let ah = esp_crypto(None, Some(Integ::HmacSha1_96), &keys).unwrap();
        assert_eq!(ah.proto(), IpsecProto::Ah);
        assert_eq!(ah.describe(), "hmac(sha1)/96");
        assert!(matches!(
            esp_crypto(None, None, &keys),
            Err(InstallError::Unsupported(_))
        ));
    }

    #[test]
    fn gcm_needs_no_integ_and_cbc_needs_one() {
        let keys = ChildDirKeys {
            encr: Zeroizing::new(vec![1; 20]),
            integ: Zeroizing::new(vec![]),
        };
        let gcm = Encr::AesGcm16 { key_bits: 128 };
        assert!(matches!(
            esp_crypto(Some(gcm), None, &keys),
            Ok(EspCrypto::AesGcm16 { .. })
        ));
        let cbc = Encr::AesCbc { key_bits: 128 };
        assert!(matches!(
            esp_crypto(Some(cbc), None, &keys),
            Err(InstallError::Unsupported(_))
        ));
    }
}
