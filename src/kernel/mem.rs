//! In-memory backend: records SAs and policies, can inject failures. Used by daemon and
//! protocol tests (`--kernel none` is [`super::NoneKernel`], which records no specs).

use std::collections::HashMap;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::error::{KernelError, Target};
use super::ipsec::{Ipsec, XfrmBackend};
use super::spec::{PolicyKey, PolicySpec, SaId, SaSpec};
use super::types::{Counters, FlushReport, IpsecProto, Lifetime, Mark, Mode, is_our_reqid};

/// An SA as recorded by [`MemBackend`] (algorithm names only, no keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemSa {
    /// Source address.
    pub src: IpAddr,
    /// reqid.
    pub reqid: u32,
    /// ESP or AH.
    pub proto: IpsecProto,
    /// Mode (`None` for an SPI reservation that has no SA yet).
    pub mode: Option<Mode>,
    /// Algorithms, e.g. `rfc4106(gcm(aes))/128` (empty for a reservation).
    pub algs: String,
    /// Replay window.
    pub replay_window: u32,
    /// Lifetimes.
    pub lifetime: Lifetime,
    /// UDP encapsulation ports.
    pub encap: Option<(u16, u16)>,
    /// Mark.
    pub mark: Option<Mark>,
    /// Counters reported by `child_counters` (set them with [`MemBackend::set_counters`]).
    pub counters: Counters,
}

/// Backend operations, for failure injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemOp {
    /// `add_sa`.
    AddSa,
    /// `del_sa`.
    DelSa,
    /// `sa_counters`.
    Counters,
    /// `put_policy`.
    PutPolicy,
    /// `del_policy`.
    DelPolicy,
    /// `flush_ours`.
    Flush,
    /// `add_address`.
    AddAddress,
}

/// In-memory SA and policy tables.
#[derive(Debug, Default)]
pub struct MemBackend {
    sas: BTreeMap<SaId, MemSa>,
    policies: HashMap<PolicyKey, PolicySpec>,
    /// Addresses on `lo`.
    addresses: BTreeSet<IpAddr>,
    /// Pending failures: operation, successes still to let through, error to return.
    failures: Vec<(MemOp, usize, KernelError)>,
}

impl MemBackend {
    /// The addresses on `lo` (virtual IPs).
    pub fn addresses(&self) -> &BTreeSet<IpAddr> {
        &self.addresses
    }

    /// The recorded SAs (including SPI reservations).
    pub fn sas(&self) -> &BTreeMap<SaId, MemSa> {
        &self.sas
    }

    /// The recorded policies.
    pub fn policies(&self) -> &HashMap<PolicyKey, PolicySpec> {
        &self.policies
    }

    /// Makes the `skip + 1`-th next call of `op` fail with `err` (once).
    pub fn inject(&mut self, op: MemOp, skip: usize, err: KernelError) {
        self.failures.push((op, skip, err));
    }

    /// Sets the counters of an SA.
    pub fn set_counters(&mut self, id: SaId, counters: Counters) -> Result<(), KernelError> {
        let sa = self.sas.get_mut(&id).ok_or(KernelError::NotFound {
            target: Target::Sa {
                dst: id.dst,
                spi: id.spi,
            },
        })?;
        sa.counters = counters;
        Ok(())
    }

    fn check(&mut self, op: MemOp) -> Result<(), KernelError> {
        let Some(pos) = self.failures.iter().position(|(o, _, _)| *o == op) else {
            return Ok(());
        };
        match self.failures.get_mut(pos) {
            Some((_, skip, _)) if *skip > 0 => {
                *skip -= 1;
                Ok(())
            }
            _ => Err(self.failures.remove(pos).2),
        }
    }
}

fn sa_target(id: SaId) -> Target {
    Target::Sa {
        dst: id.dst,
        spi: id.spi,
    }
}

impl XfrmBackend for MemBackend {
    fn add_address(&mut self, addr: IpAddr) -> Result<(), KernelError> {
        self.check(MemOp::AddAddress)?;
        if self.addresses.insert(addr) {
            Ok(())
        } else {
            Err(KernelError::Exists {
                target: Target::Address(addr),
            })
        }
    }

    fn del_address(&mut self, addr: IpAddr) -> Result<(), KernelError> {
        if self.addresses.remove(&addr) {
            Ok(())
        } else {
            Err(KernelError::NotFound {
                target: Target::Address(addr),
            })
        }
    }

    fn add_sa(&mut self, sa: &SaSpec<'_>) -> Result<(), KernelError> {
        self.check(MemOp::AddSa)?;
        if self.sas.contains_key(&sa.id) {
            return Err(KernelError::Exists {
                target: sa_target(sa.id),
            });
        }
        self.sas.insert(
            sa.id,
            MemSa {
                src: sa.src,
                reqid: sa.reqid,
                proto: sa.crypto.proto(),
                mode: Some(sa.mode),
                algs: sa.crypto.describe(),
                replay_window: sa.replay_window,
                lifetime: sa.lifetime,
                encap: sa.encap,
                mark: sa.mark,
                counters: Counters::default(),
            },
        );
        Ok(())
    }

    fn del_sa(
        &mut self,
        id: SaId,
        proto: IpsecProto,
        mark: Option<Mark>,
    ) -> Result<(), KernelError> {
        self.check(MemOp::DelSa)?;
        if self
            .sas
            .get(&id)
            .is_none_or(|sa| sa.proto != proto || sa.mark != mark)
        {
            return Err(KernelError::NotFound {
                target: sa_target(id),
            });
        }
        self.sas.remove(&id);
        Ok(())
    }

    fn sa_counters(
        &mut self,
        id: SaId,
        proto: IpsecProto,
        mark: Option<Mark>,
    ) -> Result<Counters, KernelError> {
        self.check(MemOp::Counters)?;
        self.sas
            .get(&id)
            .filter(|sa| sa.proto == proto && sa.mark == mark)
            .map(|sa| sa.counters)
            .ok_or(KernelError::NotFound {
                target: sa_target(id),
            })
    }

    fn put_policy(&mut self, spec: &PolicySpec, replace: bool) -> Result<(), KernelError> {
        self.check(MemOp::PutPolicy)?;
        let exists = self.policies.contains_key(&spec.key);
        let target = Target::Policy(Box::new(spec.key));
        match (exists, replace) {
            (true, false) => Err(KernelError::Exists { target }),
            (false, true) => Err(KernelError::NotFound { target }),
            _ => {
                self.policies.insert(spec.key, *spec);
                Ok(())
            }
        }
    }

    fn del_policy(&mut self, key: &PolicyKey) -> Result<(), KernelError> {
        self.check(MemOp::DelPolicy)?;
        self.policies
            .remove(key)
            .map(|_| ())
            .ok_or(KernelError::NotFound {
                target: Target::Policy(Box::new(*key)),
            })
    }

    fn flush_ours(&mut self) -> Result<FlushReport, KernelError> {
        self.check(MemOp::Flush)?;
        let (sas, policies) = (self.sas.len(), self.policies.len());
        self.sas.retain(|_, sa| !is_our_reqid(sa.reqid));
        self.policies.retain(|_, p| !p.is_ours());
        Ok(FlushReport {
            sas: sas - self.sas.len(),                // ok: retain only removes
            policies: policies - self.policies.len(), // ok: retain only removes
        })
    }
}

/// The in-memory kernel.
pub type MemKernel = Ipsec<MemBackend>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::KernelIpsec;
    use crate::kernel::spec::Dir;
    use crate::kernel::types::{
        ChildPolicy, ChildSaInstall, EspCrypto, IntegAlg, Integrity, KeyBytes, Marks, REQID_MIN,
        ShuntAction, ShuntPolicy, TrafficSelector,
    };

    const L: &str = "10.0.0.1";
    const R: &str = "10.0.0.2";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn policy(reqid: u32) -> ChildPolicy {
        ChildPolicy {
            local: ip(L),
            remote: ip(R),
            mode: Mode::Transport,
            proto: IpsecProto::Esp,
            reqid,
            local_ts: vec![TrafficSelector::host(ip(L))],
            remote_ts: vec![TrafficSelector::host(ip(R))],
            marks: Marks::default(),
        }
    }

    fn child(k: &mut MemKernel, reqid: u32, spi_out: u32) -> ChildSaInstall {
        // A fresh inbound SPI: one above every SA recorded so far.
        let spi_in = k
            .backend()
            .sas()
            .keys()
            .map(|id| id.spi + 1)
            .fold(0xc000_0100, u32::max);
        ChildSaInstall {
            policy: policy(reqid),
            spi_in,
            spi_out,
            crypto_in: EspCrypto::AesGcm16 {
                key: KeyBytes::new(vec![1; 20]),
            },
            crypto_out: EspCrypto::AesCbc {
                key: KeyBytes::new(vec![2; 16]),
                integ: Integrity {
                    alg: IntegAlg::HmacSha256_128,
                    key: KeyBytes::new(vec![3; 32]),
                },
            },
            replay_window: 32,
            lifetime: Lifetime {
                soft_secs: 3000,
                hard_secs: 3600,
                ..Lifetime::default()
            },
            encap: None,
            defer_outbound: false,
        }
    }

    #[test]
    fn ah_child_installs_ah_sas_and_ah_templates() {
        let mut k = MemKernel::new();
        let mut c = child(&mut k, REQID_MIN, 0x1234);
        let ah = |b| EspCrypto::Ah {
            integ: Integrity {
                alg: IntegAlg::HmacSha1_96,
                key: KeyBytes::new(vec![b; 20]),
            },
        };
        c.crypto_in = ah(4);
        c.crypto_out = ah(5);
        // AH transforms under ESP policies (or the reverse) are refused before anything is
        // installed.
        assert_eq!(
            k.install_child(&c),
            Err(KernelError::ProtoMismatch {
                sa: IpsecProto::Ah,
                policy: IpsecProto::Esp
            })
        );
        assert!(k.backend().sas().is_empty());
        c.policy.proto = IpsecProto::Ah;
        let id = k.install_child(&c).unwrap();
        let b = k.backend();
        for sa in b.sas().values() {
            assert_eq!(
                (sa.proto, sa.algs.as_str()),
                (IpsecProto::Ah, "hmac(sha1)/96")
            );
        }
        assert_eq!(b.sas().len(), 2);
        assert!(
            b.policies()
                .values()
                .all(|p| p.template().unwrap().proto == IpsecProto::Ah)
        );
        assert_eq!(b.policies().len(), 2);
        // Deleting or reading an SA names its protocol: ESP finds nothing here.
        let sa_out = SaId {
            dst: ip(R),
            spi: 0x1234,
        };
        assert!(
            k.backend_mut()
                .sa_counters(sa_out, IpsecProto::Esp, None)
                .is_err()
        );
        assert!(
            k.backend_mut()
                .sa_counters(sa_out, IpsecProto::Ah, None)
                .is_ok()
        );
        k.child_counters(id).unwrap();
        k.remove_child(id).unwrap();
        assert!(k.backend().sas().is_empty() && k.backend().policies().is_empty());
    }

    #[test]
    fn deferred_outbound_sa_comes_with_activate() {
        let mut k = MemKernel::new();
        let first = child(&mut k, REQID_MIN, 0x1234);
        let old = k.install_child(&first).unwrap();
        let mut c = child(&mut k, REQID_MIN, 0x5678);
        c.defer_outbound = true;
        let id = k.install_child(&c).unwrap();
        let out_spis = |k: &MemKernel| -> Vec<u32> {
            let mut v: Vec<u32> = k
                .backend()
                .sas()
                .keys()
                .filter(|sa| sa.dst == ip(R))
                .map(|sa| sa.spi)
                .collect();
            v.sort_unstable();
            v
        };
        // Inbound SA and the shared policies now; the new outbound SA not yet.
        assert!(k.backend().sas().keys().any(|sa| sa.spi == c.spi_in));
        assert_eq!(out_spis(&k), vec![0x1234]);
        assert_eq!(k.child_counters(id).unwrap().outbound, Counters::default());
        k.activate_outbound(id).unwrap();
        assert_eq!(out_spis(&k), vec![0x1234, 0x5678]);
        // Twice is harmless; removal takes both SAs of each child.
        k.activate_outbound(id).unwrap();
        k.remove_child(old).unwrap();
        k.remove_child(id).unwrap();
        assert!(k.backend().sas().is_empty() && k.backend().policies().is_empty());
        // A child removed while its outbound SA waits leaves nothing either.
        let mut c = child(&mut k, REQID_MIN, 0x9abc);
        c.defer_outbound = true;
        let id = k.install_child(&c).unwrap();
        k.remove_child(id).unwrap();
        assert!(k.backend().sas().is_empty() && k.backend().policies().is_empty());
    }

    #[test]
    fn install_and_remove() {
        let mut k = MemKernel::new();
        let c = child(&mut k, REQID_MIN, 0x1234);
        let id = k.install_child(&c).unwrap();
        let b = k.backend();
        assert_eq!(b.sas().len(), 2);
        let sa_in = &b.sas()[&SaId {
            dst: ip(L),
            spi: c.spi_in,
        }];
        assert_eq!(sa_in.algs, "rfc4106(gcm(aes))/128");
        assert_eq!(sa_in.replay_window, 32);
        assert_eq!(sa_in.mode, Some(Mode::Transport));
        let sa_out = &b.sas()[&SaId {
            dst: ip(R),
            spi: 0x1234,
        }];
        assert_eq!(sa_out.algs, "cbc(aes)+hmac(sha256)/128");
        assert_eq!(sa_out.replay_window, 0);
        assert_eq!(b.policies().len(), 2);
        assert_eq!(
            k.install_child(&c),
            Err(KernelError::Exists {
                target: Target::Child(id)
            })
        );
        k.backend_mut()
            .set_counters(
                SaId {
                    dst: ip(R),
                    spi: 0x1234,
                },
                Counters {
                    bytes: 84,
                    packets: 1,
                },
            )
            .unwrap();
        let counters = k.child_counters(id).unwrap();
        assert_eq!(counters.outbound.packets, 1);
        assert_eq!(counters.inbound.packets, 0);
        k.remove_child(id).unwrap();
        assert!(k.backend().sas().is_empty());
        assert!(k.backend().policies().is_empty());
        assert!(k.remove_child(id).unwrap_err().is_not_found());
    }

    #[test]
    fn failed_install_leaves_nothing() {
        for (op, skip) in [
            (MemOp::AddSa, 0),
            (MemOp::AddSa, 1),
            (MemOp::PutPolicy, 0),
            (MemOp::PutPolicy, 1),
        ] {
            let mut k = MemKernel::new();
            let c = child(&mut k, REQID_MIN, 0x1234);
            let before = k.backend().sas().clone();
            let err = KernelError::NoEsp {
                target: Target::SaTable,
            };
            k.backend_mut().inject(op, skip, err.clone());
            assert_eq!(k.install_child(&c), Err(err), "{op:?} {skip}");
            let after = k.backend().sas();
            assert!(
                after.len() <= before.len() && after.keys().all(|id| before.contains_key(id)),
                "{op:?} {skip}: {after:?}"
            );
            assert!(k.backend().policies().is_empty(), "{op:?} {skip}");
            assert_eq!(k.children().count(), 0);
        }
    }

    #[test]
    fn failed_rollback_is_reported() {
        let mut k = MemKernel::new();
        let c = child(&mut k, REQID_MIN, 0x1234);
        let cause = KernelError::NoEsp {
            target: Target::SaTable,
        };
        let undo_err = KernelError::Os {
            target: Target::SaTable,
            errno: libc::EPERM,
        };
        k.backend_mut().inject(MemOp::PutPolicy, 0, cause.clone());
        k.backend_mut().inject(MemOp::DelSa, 0, undo_err.clone());
        assert_eq!(
            k.install_child(&c),
            Err(KernelError::Rollback {
                cause: Box::new(cause),
                failures: vec![undo_err]
            })
        );
    }

    #[test]
    fn trap_and_child_share_policies() {
        let mut k = MemKernel::new();
        let reqid = REQID_MIN + 5;
        k.install_trap(&policy(reqid)).unwrap();
        assert_eq!(k.backend().policies().len(), 2);
        let c = child(&mut k, reqid, 0x99);
        let id = k.install_child(&c).unwrap();
        assert_eq!(k.backend().policies().len(), 2);
        k.remove_child(id).unwrap();
        // The trap still holds its policies.
        assert_eq!(k.backend().policies().len(), 2);
        assert!(k.backend().policies().keys().any(|p| p.dir == Dir::Out));
        k.remove_trap(reqid).unwrap();
        assert!(k.backend().policies().is_empty());
    }

    #[test]
    fn flush_removes_only_ours() {
        let mut k = MemKernel::new();
        let c = child(&mut k, REQID_MIN + 1, 0x77);
        k.install_child(&c).unwrap();
        let foreign_crypto = EspCrypto::AesGcm16 {
            key: KeyBytes::new(vec![0; 20]),
        };
        let foreign = SaSpec {
            id: SaId {
                dst: ip(R),
                spi: 0x55,
            },
            src: ip(L),
            reqid: 1,
            mode: Mode::Transport,
            crypto: &foreign_crypto,
            replay_window: 0,
            lifetime: Lifetime::default(),
            encap: None,
            selector: None,
            mark: None,
        };
        k.backend_mut().add_sa(&foreign).unwrap();
        let report = k.flush_ours().unwrap();
        assert_eq!(
            report,
            FlushReport {
                sas: 2,
                policies: 2
            }
        );
        assert_eq!(k.backend().sas().len(), 1);
        assert_eq!(k.children().count(), 0);
    }

    #[test]
    fn rejects_foreign_reqid_and_bad_keys() {
        let mut k = MemKernel::new();
        let foreign = child(&mut k, 5, 1);
        assert_eq!(
            k.install_child(&foreign),
            Err(KernelError::ReqidNotOurs { reqid: 5 })
        );
        let mut c = child(&mut k, REQID_MIN, 1);
        c.crypto_out = EspCrypto::AesGcm16 {
            key: KeyBytes::new(vec![0; 3]),
        };
        assert!(matches!(
            k.install_child(&c),
            Err(KernelError::InvalidKeyLength { len: 3, .. })
        ));
        assert!(k.backend().policies().is_empty());
    }

    #[test]
    fn a_colliding_inbound_spi_is_refused_and_leaves_nothing() {
        let mut k = MemKernel::new();
        let first = child(&mut k, REQID_MIN, 1);
        k.install_child(&first).unwrap();
        let mut second = child(&mut k, REQID_MIN + 1, 2);
        second.spi_in = first.spi_in;
        second.policy.local_ts = vec![TrafficSelector::host(ip("10.9.9.9"))];
        assert!(matches!(
            k.install_child(&second),
            Err(KernelError::Exists { .. })
        ));
        assert_eq!(k.backend().sas().len(), 2);
        assert_eq!(k.children().count(), 1);
    }

    #[test]
    fn shunt_policies_win_and_go_with_down_and_flush() {
        let mut k = MemKernel::new();
        let any = TrafficSelector::from_net("0.0.0.0/0".parse().unwrap());
        let shunt = ShuntPolicy {
            action: ShuntAction::Drop,
            reqid: REQID_MIN + 7,
            local_ts: vec![any],
            remote_ts: vec![any.with_proto(17, 53..=53)],
            marks: Marks::default(),
        };
        k.install_shunt(&shunt).unwrap();
        // in, out and the two fwd policies.
        assert_eq!(k.backend().policies().len(), 4);
        assert!(matches!(
            k.install_shunt(&shunt),
            Err(KernelError::Exists { .. })
        ));
        k.remove_trap(shunt.reqid).unwrap();
        assert!(k.backend().policies().is_empty());
        // A shunt left by a previous run (no bookkeeping here) is flushed with a child.
        k.install_shunt(&shunt).unwrap();
        let c = child(&mut k, REQID_MIN + 1, 0x77);
        k.install_child(&c).unwrap();
        let mut fresh = MemKernel::with_backend(std::mem::take(k.backend_mut()));
        assert_eq!(
            fresh.flush_ours().unwrap(),
            FlushReport {
                sas: 2,
                policies: 6
            }
        );
        assert!(fresh.backend().policies().is_empty());
    }

    #[test]
    fn marked_sas_are_found_by_their_mark() {
        let mut k = MemKernel::new();
        let mut c = child(&mut k, REQID_MIN, 0x1234);
        let m = |value| Some(Mark { value, mask: 0xff });
        c.policy.marks = Marks {
            inbound: m(1),
            outbound: m(2),
        };
        let id = k.install_child(&c).unwrap();
        let sa_out = SaId {
            dst: ip(R),
            spi: 0x1234,
        };
        assert_eq!(k.backend().sas()[&sa_out].mark, m(2));
        assert!(
            k.backend_mut()
                .sa_counters(sa_out, IpsecProto::Esp, None)
                .is_err()
        );
        k.child_counters(id).unwrap();
        k.remove_child(id).unwrap();
        assert!(k.backend().sas().is_empty() && k.backend().policies().is_empty());
    }
}
