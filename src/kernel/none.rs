//! The `--kernel none` backend: negotiate, report, install nothing. It keeps only what a
//! kernel would refuse on — the ids of the SAs "installed" — so an inbound SPI collision is
//! still [`KernelError::Exists`]; policies and addresses are taken and forgotten (the
//! [`Ipsec`] layer above keeps their reference counts as for XFRM). Unlike [`super::MemBackend`]
//! it records no specs: nothing reads them outside tests, and they cost ~1.6 KiB per CHILD_SA.

use std::collections::HashSet;
use std::net::IpAddr;

use super::error::{KernelError, Target};
use super::ipsec::{Ipsec, XfrmBackend};
use super::spec::{PolicyKey, PolicySpec, SaId, SaSpec};
use super::types::{Counters, FlushReport, IpsecProto, Mark};

/// The SA ids in use (as in [`super::MemBackend`], one SA per destination and SPI).
#[derive(Debug, Default)]
pub struct NoneBackend {
    sas: HashSet<SaId>,
}

fn not_found(id: SaId) -> KernelError {
    KernelError::NotFound {
        target: Target::Sa {
            dst: id.dst,
            spi: id.spi,
        },
    }
}

impl XfrmBackend for NoneBackend {
    fn add_sa(&mut self, sa: &SaSpec<'_>) -> Result<(), KernelError> {
        if self.sas.insert(sa.id) {
            Ok(())
        } else {
            Err(KernelError::Exists {
                target: Target::Sa {
                    dst: sa.id.dst,
                    spi: sa.id.spi,
                },
            })
        }
    }

    fn del_sa(
        &mut self,
        id: SaId,
        _proto: IpsecProto,
        _mark: Option<Mark>,
    ) -> Result<(), KernelError> {
        if self.sas.remove(&id) {
            Ok(())
        } else {
            Err(not_found(id))
        }
    }

    fn sa_counters(
        &mut self,
        id: SaId,
        _proto: IpsecProto,
        _mark: Option<Mark>,
    ) -> Result<Counters, KernelError> {
        if self.sas.contains(&id) {
            Ok(Counters::default())
        } else {
            Err(not_found(id))
        }
    }

    fn put_policy(&mut self, _spec: &PolicySpec, _replace: bool) -> Result<(), KernelError> {
        Ok(())
    }

    fn del_policy(&mut self, _key: &PolicyKey) -> Result<(), KernelError> {
        Ok(())
    }

    fn flush_ours(&mut self) -> Result<FlushReport, KernelError> {
        let sas = self.sas.len();
        self.sas.clear();
        Ok(FlushReport { sas, policies: 0 })
    }

    fn add_address(&mut self, _addr: IpAddr) -> Result<(), KernelError> {
        Ok(())
    }

    fn del_address(&mut self, _addr: IpAddr) -> Result<(), KernelError> {
        Ok(())
    }
}

/// The `--kernel none` kernel.
pub type NoneKernel = Ipsec<NoneBackend>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::KernelIpsec;
    use crate::kernel::types::{
        ChildPolicy, ChildSaInstall, EspCrypto, KeyBytes, Lifetime, Marks, Mode, REQID_MIN,
        TrafficSelector,
    };

    fn child(spi_in: u32, spi_out: u32) -> ChildSaInstall {
        let (l, r): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let crypto = EspCrypto::AesGcm16 {
            key: KeyBytes::new(vec![1; 20]),
        };
        ChildSaInstall {
            policy: ChildPolicy {
                local: l,
                remote: r,
                mode: Mode::Tunnel,
                proto: IpsecProto::Esp,
                reqid: REQID_MIN,
                local_ts: vec![TrafficSelector::host(l)],
                remote_ts: vec![TrafficSelector::host(r)],
                marks: Marks::default(),
            },
            spi_in,
            spi_out,
            crypto_in: crypto.clone(),
            crypto_out: crypto,
            replay_window: 32,
            lifetime: Lifetime::default(),
            encap: None,
            defer_outbound: false,
        }
    }

    #[test]
    fn refuses_an_inbound_spi_in_use_and_forgets_removed_children() {
        let mut k = NoneKernel::new();
        let a = k.install_child(&child(0xc000_0001, 0x11)).unwrap();
        assert_eq!(k.child_counters(a).unwrap().inbound, Counters::default());
        // Another CHILD_SA (other outbound SPI) with the same inbound SPI: refused.
        let err = k.install_child(&child(0xc000_0001, 0x22)).unwrap_err();
        assert!(matches!(err, KernelError::Exists { .. }), "{err:?}");
        k.remove_child(a).unwrap();
        assert!(k.child_counters(a).is_err());
        let b = k.install_child(&child(0xc000_0001, 0x22)).unwrap();
        assert_eq!(k.flush_ours().unwrap().sas, 2);
        assert!(k.child_counters(b).is_err());
    }
}
