//! From the engine's [`ChildSaReady`] to the kernel's [`ChildSaInstall`], and the SPI
//! allocators handed to the engine.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, RngExt};

use crate::crypto::{Encr, Integ};
use crate::ike::{ChildDirKeys, ChildSaReady, Mode, SpiAllocator, SpiError};
use crate::kernel::{
    self, ChildCounters, ChildId, ChildPolicy, ChildSaInstall, EspCrypto, FlushReport, IntegAlg,
    Integrity, KernelError, KernelIpsec, KeyBytes, Lifetime, MemKernel, REQID_MIN, SPI_RANGE, SaId,
    UdpEncap, XfrmBackend, XfrmKernel,
};
use crate::wire::TrafficSelector;

/// The kernel shared between the driver and the engine's SPI allocator.
pub type SharedKernel = Arc<Mutex<Kernel>>;

enum Backend {
    Xfrm(XfrmKernel),
    Mem(MemKernel),
}

/// The daemon's kernel: XFRM or in memory (`--kernel none`), plus the SPIs reserved (larval
/// SAs) for negotiations that have not installed their CHILD_SA yet, so that a failed
/// negotiation leaves nothing behind.
pub struct Kernel {
    backend: Backend,
    larval: HashSet<SaId>,
}

impl Kernel {
    /// XFRM netlink.
    pub fn xfrm() -> Result<Self, KernelError> {
        Ok(Self::with(Backend::Xfrm(XfrmKernel::open()?)))
    }

    /// In memory: negotiated CHILD_SAs are recorded, nothing reaches the kernel.
    pub fn none() -> Self {
        Self::with(Backend::Mem(MemKernel::new()))
    }

    fn with(backend: Backend) -> Self {
        Self {
            backend,
            larval: HashSet::new(),
        }
    }

    fn ipsec(&mut self) -> &mut dyn KernelIpsec {
        match &mut self.backend {
            Backend::Xfrm(k) => k,
            Backend::Mem(k) => k,
        }
    }

    /// Deletes the larval SAs of SPIs reserved but not installed (after a failed
    /// negotiation). A concurrent negotiation whose reservation goes too still installs:
    /// its inbound SA is then added instead of updated. Returns how many were deleted.
    pub fn release_reserved_spis(&mut self) -> usize {
        let mut n = 0;
        for id in std::mem::take(&mut self.larval) {
            let r = match &mut self.backend {
                Backend::Xfrm(k) => k.backend_mut().del_sa(id),
                Backend::Mem(k) => k.backend_mut().del_sa(id),
            };
            match r {
                Ok(()) => n += 1,
                Err(e) if e.is_not_found() => {}
                Err(e) => tracing::warn!(target: "kernel", "releasing SPI {:08x}: {e}", id.spi),
            }
        }
        n
    }
}

impl KernelIpsec for Kernel {
    fn alloc_spi(&mut self, src: IpAddr, dst: IpAddr, reqid: u32) -> Result<u32, KernelError> {
        let spi = self.ipsec().alloc_spi(src, dst, reqid)?;
        self.larval.insert(SaId { dst, spi });
        Ok(spi)
    }

    fn install_child(&mut self, child: &ChildSaInstall) -> Result<ChildId, KernelError> {
        self.larval.remove(&SaId {
            dst: child.policy.local,
            spi: child.spi_in,
        });
        self.ipsec().install_child(child)
    }

    fn remove_child(&mut self, id: ChildId) -> Result<(), KernelError> {
        self.ipsec().remove_child(id)
    }

    fn child_counters(&mut self, id: ChildId) -> Result<ChildCounters, KernelError> {
        self.ipsec().child_counters(id)
    }

    fn install_trap(&mut self, trap: &ChildPolicy) -> Result<(), KernelError> {
        self.ipsec().install_trap(trap)
    }

    fn remove_trap(&mut self, reqid: u32) -> Result<(), KernelError> {
        self.ipsec().remove_trap(reqid)
    }

    fn flush_ours(&mut self) -> Result<FlushReport, KernelError> {
        self.larval.clear();
        self.ipsec().flush_ours()
    }
}

/// Why a CHILD_SA cannot be handed to the kernel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstallError {
    /// The negotiated transform has no kernel mapping here.
    #[error("ESP transform {0} cannot be installed")]
    Unsupported(String),
    /// The kernel refused.
    #[error("kernel: {0}")]
    Kernel(#[from] KernelError),
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
        let span = SPI_RANGE.end() - SPI_RANGE.start(); // ok: constant, end > start
        Ok(SPI_RANGE.start() + self.0.next_u32() % span) // ok: < end, span != 0
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

fn integ_alg(i: Integ) -> IntegAlg {
    match i {
        Integ::HmacSha1_96 => IntegAlg::HmacSha1_96,
        Integ::HmacSha256_128 => IntegAlg::HmacSha256_128,
        Integ::HmacSha384_192 => IntegAlg::HmacSha384_192,
        Integ::HmacSha512_256 => IntegAlg::HmacSha512_256,
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
                alg: integ_alg(i),
                key: KeyBytes::from_slice(&keys.integ),
            },
        }),
        (e, i) => Err(InstallError::Unsupported(match i {
            Some(i) => format!("{}/{}", e.name(), i.name()),
            None => e.name().to_string(),
        })),
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

/// Random extra rekey margin: up to `fuzz_percent` of `margin` (strongSwan's `rekeyfuzz`).
pub fn rekey_jitter(margin: Duration, fuzz_percent: u32, rng: &mut impl Rng) -> Duration {
    let max = margin.as_secs().saturating_mul(u64::from(fuzz_percent)) / 100;
    Duration::from_secs(rng.random_range(0..=max))
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
            mode: c.mode,
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
        mode,
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
    fn failed_negotiations_release_their_spis() {
        let mut k = Kernel::none();
        let (l, r): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let a = k.alloc_spi(r, l, REQID_MIN).unwrap();
        let b = k.alloc_spi(r, l, REQID_MIN).unwrap();
        assert_ne!(a, b);
        let larval = |k: &Kernel| match &k.backend {
            Backend::Mem(m) => m.backend().sas().len(),
            Backend::Xfrm(_) => unreachable!(),
        };
        assert_eq!(larval(&k), 2);
        assert_eq!(k.release_reserved_spis(), 2);
        assert_eq!(larval(&k), 0);
        assert_eq!(k.release_reserved_spis(), 0);
    }

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
