//! From the engine's [`ChildSaReady`] to the kernel's [`ChildSaInstall`], and the SPI
//! allocators handed to the engine.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;

use crate::crypto::{Encr, Integ};
use crate::ike::{ChildDirKeys, ChildSaReady, Mode, SpiAllocator, SpiError};
use crate::kernel::{
    self, ChildPolicy, ChildSaInstall, EspCrypto, IntegAlg, Integrity, KernelIpsec, KeyBytes,
    Lifetime, REQID_MIN, SPI_RANGE, UdpEncap,
};
use crate::wire::TrafficSelector;

/// The kernel shared between the driver and the engine's SPI allocator.
pub type SharedKernel = Arc<Mutex<Box<dyn KernelIpsec + Send>>>;

/// Why a CHILD_SA cannot be handed to the kernel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstallError {
    /// The negotiated transform has no kernel mapping here.
    #[error("ESP transform {0} cannot be installed")]
    Unsupported(String),
    /// The kernel refused.
    #[error("kernel: {0}")]
    Kernel(#[from] kernel::KernelError),
    /// The kernel lock is poisoned (a previous kernel call panicked).
    #[error("kernel state lost (lock poisoned)")]
    Poisoned,
}

/// SPIs from the kernel (XFRM_MSG_ALLOCSPI: a larval SA reserves the SPI).
pub struct KernelSpis(pub SharedKernel);

impl SpiAllocator for KernelSpis {
    fn allocate_esp_spi(&mut self, local: IpAddr, remote: IpAddr) -> Result<u32, SpiError> {
        let mut k = self
            .0
            .lock()
            .map_err(|_| SpiError("kernel lock poisoned".into()))?;
        // Larval SAs carry REQID_MIN; the installed SA gets the conn's reqid (UPDSA).
        k.alloc_spi(remote, local, REQID_MIN)
            .map_err(|e| SpiError(e.to_string()))
    }
}

/// Random SPIs in the kernel's range (`--kernel none`: nothing reaches a kernel).
pub struct RandomSpis<R>(pub R);

impl<R: Rng> SpiAllocator for RandomSpis<R> {
    fn allocate_esp_spi(&mut self, _local: IpAddr, _remote: IpAddr) -> Result<u32, SpiError> {
        let span = SPI_RANGE.end() - SPI_RANGE.start();
        Ok(SPI_RANGE.start() + self.0.next_u32() % span)
    }
}

fn kernel_mode(m: Mode) -> kernel::Mode {
    match m {
        Mode::Tunnel => kernel::Mode::Tunnel,
        Mode::Transport => kernel::Mode::Transport,
    }
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

fn integ_alg(i: Integ) -> Result<IntegAlg, InstallError> {
    match i {
        Integ::HmacSha1_96 => Ok(IntegAlg::HmacSha1_96),
        Integ::HmacSha256_128 => Ok(IntegAlg::HmacSha256_128),
        Integ::HmacSha384_192 => Ok(IntegAlg::HmacSha384_192),
        Integ::HmacSha512_256 => Ok(IntegAlg::HmacSha512_256),
        #[allow(unreachable_patterns)]
        other => Err(InstallError::Unsupported(other.name().to_string())),
    }
}

fn esp_crypto(
    encr: Encr,
    integ: Option<Integ>,
    keys: &ChildDirKeys,
) -> Result<EspCrypto, InstallError> {
    match (encr, integ) {
        (Encr::AesGcm16 { .. }, None) => Ok(EspCrypto::AesGcm16 {
            key: KeyBytes::from_slice(&keys.encr),
        }),
        (Encr::AesCbc { .. }, Some(i)) => Ok(EspCrypto::AesCbc {
            key: KeyBytes::from_slice(&keys.encr),
            integ: Integrity {
                alg: integ_alg(i)?,
                key: KeyBytes::from_slice(&keys.integ),
            },
        }),
        (e, i) => Err(InstallError::Unsupported(match i {
            Some(i) => format!("{}/{}", e.name(), i.name()),
            None => e.name().to_string(),
        })),
    }
}

/// Soft expire `margin` before the hard one (at least half the lifetime).
pub fn lifetime(hard: Duration, margin: Duration) -> Lifetime {
    let hard_secs = hard.as_secs();
    let soft_secs = hard_secs
        .saturating_sub(margin.as_secs())
        .max(hard_secs / 2);
    Lifetime {
        soft_secs,
        hard_secs,
        ..Lifetime::default()
    }
}

/// The kernel request for a negotiated CHILD_SA.
pub fn child_install(
    c: &ChildSaReady,
    reqid: u32,
    life: Lifetime,
    encap: Option<UdpEncap>,
) -> Result<ChildSaInstall, InstallError> {
    Ok(ChildSaInstall {
        policy: ChildPolicy {
            local: c.local,
            remote: c.remote,
            mode: kernel_mode(c.mode),
            reqid,
            local_ts: c.local_ts.iter().map(kernel_ts).collect(),
            remote_ts: c.remote_ts.iter().map(kernel_ts).collect(),
        },
        spi_in: c.spi_in,
        spi_out: c.spi_out,
        crypto_in: esp_crypto(c.encr, c.integ, &c.keys_in)?,
        crypto_out: esp_crypto(c.encr, c.integ, &c.keys_out)?,
        replay_window: c.replay_window,
        lifetime: life,
        encap,
    })
}

/// Trap policies for `auto=route`.
pub fn trap_policy(
    local: IpAddr,
    remote: IpAddr,
    mode: Mode,
    reqid: u32,
    local_ts: &[TrafficSelector],
    remote_ts: &[TrafficSelector],
) -> ChildPolicy {
    ChildPolicy {
        local,
        remote,
        mode: kernel_mode(mode),
        reqid,
        local_ts: local_ts.iter().map(kernel_ts).collect(),
        remote_ts: remote_ts.iter().map(kernel_ts).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use zeroize::Zeroizing;

    #[test]
    fn random_spis_are_in_range() {
        let mut a = RandomSpis(rand::rngs::ChaCha20Rng::seed_from_u64(7));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..100 {
            assert!(SPI_RANGE.contains(&a.allocate_esp_spi(ip, ip).unwrap()));
        }
    }

    #[test]
    fn lifetimes() {
        let l = lifetime(Duration::from_secs(3600), Duration::from_secs(540));
        assert_eq!((l.soft_secs, l.hard_secs), (3060, 3600));
        let l = lifetime(Duration::from_secs(60), Duration::from_secs(540));
        assert_eq!((l.soft_secs, l.hard_secs), (30, 60));
    }

    #[test]
    fn gcm_needs_no_integ_and_cbc_needs_one() {
        let keys = ChildDirKeys {
            encr: Zeroizing::new(vec![1; 20]),
            integ: Zeroizing::new(vec![]),
        };
        let gcm = Encr::AesGcm16 { key_bits: 128 };
        assert!(matches!(
            esp_crypto(gcm, None, &keys),
            Ok(EspCrypto::AesGcm16 { .. })
        ));
        let cbc = Encr::AesCbc { key_bits: 128 };
        assert!(matches!(
            esp_crypto(cbc, None, &keys),
            Err(InstallError::Unsupported(_))
        ));
    }
}
