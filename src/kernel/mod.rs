//! Kernel IPsec interface: a trait, its XFRM netlink implementation and an in-memory one.
//!
//! - [`KernelIpsec`] is the one owner of ikev2d's kernel state (installed CHILD_SAs, their
//!   reference-counted policies, traps); it is synchronous, so the daemon keeps it on a worker
//!   thread and sends it [`KernelOp`]s (values decided by the daemon's sans-IO supervisor).
//!   Implementations: [`XfrmKernel`] (XFRM netlink), [`MemKernel`] (in memory, with failure
//!   injection, for tests) and [`NoneKernel`] (the `--kernel none` mode: everything is
//!   negotiated and reported, nothing reaches the kernel, only SA ids are kept). All are
//!   [`Ipsec`] over an [`XfrmBackend`] of primitive operations.
//! - [`EventSocket`] delivers ACQUIRE and EXPIRE as [`KernelEvent`]s.
//! - [`bypass_socket`] and [`set_udp_encap`] set up the IKE sockets.
//!
//! # What is ours
//!
//! ikev2d owns exactly the SAs and policies whose **reqid lies in
//! [`REQID_MIN`]`..=`[`REQID_MAX`]** (`0x4b320000`–`0x4b32ffff`): an SA by its own reqid, a
//! policy by the reqid of its template; and the template-less in/out/fwd policies (shunts,
//! `type=pass|drop`) whose priority lies in the shunt band (148972–150000), below every
//! CHILD_SA policy's so that a shunt wins. Every install is checked against that range
//! ([`KernelError::ReqidNotOurs`]), and [`KernelIpsec::flush_ours`] (run at start and at stop)
//! deletes those objects and nothing else — policies of another IKE daemon, manual `ip xfrm`
//! entries with other reqids and per-socket policies are left alone.
//!
//! # Install and removal
//!
//! A CHILD_SA is installed as: inbound SA (its SPI was chosen by the IKE engine; one the kernel
//! already has is [`KernelError::Exists`], a collision the daemon treats as a failed install), outbound SA, then policies out + in (+ fwd in tunnel mode)
//! for each pair of traffic selectors. If any step fails, the steps already done are undone in
//! reverse order; a failure while undoing is reported as [`KernelError::Rollback`].
//! Policies are reference-counted: a trap (`auto=route`) and the CHILD_SA it triggered, or an
//! old and a rekeyed CHILD_SA, share the same kernel policy, which is removed with its last
//! holder. Removing an SA the kernel already deleted (hard expiry) is not an error.
//!
//! Algorithms: AES-GCM-16 is `rfc4106(gcm(aes))` with key ‖ 4-byte salt and a 128-bit ICV;
//! AES-CBC is `cbc(aes)` with `hmac(sha256|sha384|sha512)` truncated to 128/192/256 bits or
//! `hmac(sha1)` to 96 bits, always through XFRMA_ALG_AUTH_TRUNC (plain XFRMA_ALG_AUTH would
//! give SHA-256 the kernel's 96-bit default).

mod addr;
mod error;
mod events;
mod ipsec;
mod mem;
mod netlink;
mod none;
mod ops;
mod sockopt;
mod spec;
mod types;
mod xfrm;

pub use error::{KernelError, Target};
pub use events::{EventSocket, Flow, KernelEvent};
pub use ipsec::{Ipsec, XfrmBackend};
pub use mem::{MemBackend, MemKernel, MemOp, MemSa};
pub use none::{NoneBackend, NoneKernel};
pub use ops::{KernelOp, KernelOutput};
pub use sockopt::{SocketFamily, bypass_socket, set_udp_encap};
pub use spec::{Dir, PolicyAction, PolicyKey, PolicySpec, SaId, SaSpec, Selector, Template};
pub use types::{
    ChildCounters, ChildId, ChildPolicy, ChildSaInstall, Counters, EspCrypto, FlushReport,
    IntegAlg, Integrity, IpsecProto, KeyBytes, Lifetime, Mark, Marks, Mode, REQID_MAX, REQID_MIN,
    SPI_RANGE, ShuntAction, ShuntPolicy, TrafficSelector, UdpEncap, is_our_reqid,
};
pub use xfrm::{NetlinkBackend, XfrmKernel};

/// The kernel operations the daemon needs.
pub trait KernelIpsec {
    /// Installs both SAs and the policies of a CHILD_SA; all or nothing.
    fn install_child(&mut self, child: &ChildSaInstall) -> Result<ChildId, KernelError>;

    /// Installs the outbound SA of a CHILD_SA installed with
    /// [`ChildSaInstall::defer_outbound`]; a no-op when it is in already.
    fn activate_outbound(&mut self, id: ChildId) -> Result<(), KernelError>;

    /// Removes a CHILD_SA's SAs and releases its policies.
    fn remove_child(&mut self, id: ChildId) -> Result<(), KernelError>;

    /// Byte and packet counters of both SAs of a CHILD_SA.
    fn child_counters(&mut self, id: ChildId) -> Result<ChildCounters, KernelError>;

    /// Installs trap policies (`auto=route`): traffic matching them makes the kernel send an
    /// ACQUIRE for `trap.reqid` (see [`EventSocket`]). One trap per reqid.
    fn install_trap(&mut self, trap: &ChildPolicy) -> Result<(), KernelError>;

    /// Installs the policies of a shunt (`type=pass|drop`), preferred over every CHILD_SA and
    /// trap policy. A reqid has one trap or one shunt.
    fn install_shunt(&mut self, shunt: &ShuntPolicy) -> Result<(), KernelError>;

    /// Removes the trap or shunt policies of `reqid`.
    fn remove_trap(&mut self, reqid: u32) -> Result<(), KernelError>;

    /// Deletes every SA and policy that is ours (see the module docs), including leftovers of
    /// a previous run, and forgets all bookkeeping.
    fn flush_ours(&mut self) -> Result<FlushReport, KernelError>;

    /// Adds a virtual IP (assigned by the peer) to `lo` as a host prefix. An address the host
    /// already has is left alone (and not removed later).
    fn add_virtual_ip(&mut self, addr: std::net::IpAddr) -> Result<(), KernelError>;

    /// Removes a virtual IP this kernel added; others are left alone.
    fn remove_virtual_ip(&mut self, addr: std::net::IpAddr) -> Result<(), KernelError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_can_move_to_a_kernel_thread() {
        fn boxed(k: impl KernelIpsec + Send + 'static) -> Box<dyn KernelIpsec + Send> {
            Box::new(k)
        }
        fn send<T: Send>() {}
        send::<XfrmKernel>();
        send::<EventSocket>();
        let mut k = boxed(MemKernel::new());
        assert_eq!(k.flush_ours(), Ok(FlushReport::default()));
    }
}
