//! Kernel operations as values: the daemon's policy layer decides them, whoever owns the
//! [`KernelIpsec`] (a worker thread, or a test harness) applies them in order and hands the
//! [`KernelOutput`] back.

use super::KernelIpsec;
use super::error::KernelError;
use super::types::{ChildCounters, ChildId, ChildPolicy, ChildSaInstall, FlushReport, ShuntPolicy};

/// One operation on the kernel's IPsec state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelOp {
    /// [`KernelIpsec::install_child`].
    InstallChild(Box<ChildSaInstall>),
    /// [`KernelIpsec::activate_outbound`].
    ActivateOutbound(ChildId),
    /// [`KernelIpsec::remove_child`].
    RemoveChild(ChildId),
    /// [`KernelIpsec::install_trap`].
    InstallTrap(ChildPolicy),
    /// [`KernelIpsec::install_shunt`].
    InstallShunt(ShuntPolicy),
    /// [`KernelIpsec::remove_trap`] of this reqid (a trap or a shunt).
    RemoveTrap(u32),
    /// [`KernelIpsec::child_counters`] of each CHILD_SA.
    Counters(Vec<ChildId>),
    /// [`KernelIpsec::flush_ours`].
    Flush,
    /// [`KernelIpsec::add_virtual_ip`].
    AddVirtualIp(std::net::IpAddr),
    /// [`KernelIpsec::remove_virtual_ip`].
    RemoveVirtualIp(std::net::IpAddr),
}

/// The result of a successful [`KernelOp`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelOutput {
    /// The CHILD_SA is installed.
    Installed(ChildId),
    /// Removal or trap installation done.
    Done,
    /// Counters, one result per requested CHILD_SA, in order.
    Counters(Vec<Result<ChildCounters, KernelError>>),
    /// What the flush removed.
    Flushed(FlushReport),
}

impl KernelOp {
    /// Applies the operation.
    pub fn apply(self, k: &mut dyn KernelIpsec) -> Result<KernelOutput, KernelError> {
        match self {
            Self::InstallChild(c) => k.install_child(&c).map(KernelOutput::Installed),
            Self::ActivateOutbound(id) => k.activate_outbound(id).map(|()| KernelOutput::Done),
            Self::RemoveChild(id) => k.remove_child(id).map(|()| KernelOutput::Done),
            Self::InstallTrap(p) => k.install_trap(&p).map(|()| KernelOutput::Done),
            Self::InstallShunt(s) => k.install_shunt(&s).map(|()| KernelOutput::Done),
            Self::RemoveTrap(reqid) => k.remove_trap(reqid).map(|()| KernelOutput::Done),
            Self::Counters(ids) => Ok(KernelOutput::Counters(
                ids.into_iter().map(|id| k.child_counters(id)).collect(),
            )),
            Self::Flush => k.flush_ours().map(KernelOutput::Flushed),
            Self::AddVirtualIp(a) => k.add_virtual_ip(a).map(|()| KernelOutput::Done),
            Self::RemoveVirtualIp(a) => k.remove_virtual_ip(a).map(|()| KernelOutput::Done),
        }
    }
}
