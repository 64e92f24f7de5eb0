//! ACQUIRE and EXPIRE notifications from the kernel.

use std::collections::VecDeque;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsFd, BorrowedFd};

use netlink_packet_core::NetlinkPayload;
use netlink_packet_xfrm::{self as x, XfrmAttrs, XfrmMessage};

use super::error::{KernelError, Target};
use super::netlink::{NlError, NlSocket};
use super::spec::SaId;
use super::types::is_our_reqid;
use super::xfrm::ip_of;

/// The packet that triggered an ACQUIRE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP protocol (0 if unknown).
    pub proto: u8,
    /// Source port (ICMP: type).
    pub sport: u16,
    /// Destination port (ICMP: code).
    pub dport: u16,
}

/// An event about one of ikev2d's policies or SAs (reqid in the reserved range; events
/// about other reqids are dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelEvent {
    /// Traffic hit a trap policy without SA: negotiate a CHILD_SA for `reqid`.
    Acquire {
        /// reqid of the trap policy's template.
        reqid: u32,
        /// Our address (template source).
        local: IpAddr,
        /// The peer's address (template destination).
        remote: IpAddr,
        /// The packet that triggered it.
        flow: Flow,
        /// Kernel index of the policy.
        policy_index: u32,
    },
    /// An SA reached a lifetime: soft → rekey wanted; hard → the kernel deleted the SA.
    Expire {
        /// reqid of the SA.
        reqid: u32,
        /// The SA (destination, SPI).
        sa: SaId,
        /// Hard (SA gone) or soft (rekey) expiry.
        hard: bool,
    },
}

/// A netlink socket subscribed to XFRMNLGRP_ACQUIRE and XFRMNLGRP_EXPIRE.
///
/// Blocking by default (`recv_event`, for a dedicated thread); for tokio, call
/// `set_nonblocking(true)`, wrap the fd ([`AsFd`]) in `tokio::io::unix::AsyncFd` and call
/// `try_recv_event` when readable.
#[derive(Debug)]
pub struct EventSocket {
    nl: NlSocket,
    pending: VecDeque<KernelEvent>,
}

fn events_error(e: NlError) -> KernelError {
    match e {
        NlError::Io(io) if io.raw_os_error() == Some(libc::ENOBUFS) => KernelError::EventsLost,
        NlError::Io(io) => KernelError::io(Target::Events, &io),
        NlError::Errno(errno) => KernelError::Os {
            target: Target::Events,
            errno,
        },
        NlError::Decode(reason) => KernelError::Protocol {
            target: Target::Events,
            reason,
        },
    }
}

impl EventSocket {
    /// Opens and subscribes.
    pub fn open() -> Result<Self, KernelError> {
        let nl = NlSocket::subscribe(&[x::XFRMNLGRP_ACQUIRE, x::XFRMNLGRP_EXPIRE])
            .map_err(|e| KernelError::io(Target::Events, &e))?;
        Ok(Self {
            nl,
            pending: VecDeque::new(),
        })
    }

    /// Switches the socket between blocking and non-blocking mode.
    pub fn set_nonblocking(&self, nonblocking: bool) -> Result<(), KernelError> {
        self.nl
            .set_nonblocking(nonblocking)
            .map_err(|e| KernelError::io(Target::Events, &e))
    }

    /// Waits for the next event (blocking socket).
    pub fn recv_event(&mut self) -> Result<KernelEvent, KernelError> {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                return Ok(ev);
            }
            self.fill()?;
        }
    }

    /// The next event if one is available (non-blocking socket), `None` when it would block.
    pub fn try_recv_event(&mut self) -> Result<Option<KernelEvent>, KernelError> {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                return Ok(Some(ev));
            }
            match self.fill() {
                Err(KernelError::Os { errno, .. })
                    if io::Error::from_raw_os_error(errno).kind() == io::ErrorKind::WouldBlock =>
                {
                    return Ok(None);
                }
                other => other?,
            }
        }
    }

    fn fill(&mut self) -> Result<(), KernelError> {
        for msg in self.nl.recv_datagram().map_err(events_error)? {
            if let NetlinkPayload::InnerMessage(m) = msg.payload {
                self.pending
                    .extend(decode(&m).filter(|ev| is_our_reqid(ev.reqid())));
            }
        }
        Ok(())
    }
}

impl AsFd for EventSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.nl.as_fd()
    }
}

impl KernelEvent {
    /// reqid the event is about.
    pub fn reqid(&self) -> u32 {
        match self {
            Self::Acquire { reqid, .. } | Self::Expire { reqid, .. } => *reqid,
        }
    }
}

fn decode(m: &XfrmMessage) -> Option<KernelEvent> {
    match m {
        XfrmMessage::Acquire(a) => {
            let tmpl = a.nlas.iter().find_map(|n| match n {
                XfrmAttrs::Template(ts) => ts.first().copied(),
                _ => None,
            })?;
            let sel = &a.acquire.selector;
            Some(KernelEvent::Acquire {
                reqid: tmpl.reqid,
                local: ip_of(&a.acquire.saddr, tmpl.family)?,
                remote: ip_of(&a.acquire.id.daddr, tmpl.family)?,
                flow: Flow {
                    src: ip_of(&sel.saddr, sel.family)?,
                    dst: ip_of(&sel.daddr, sel.family)?,
                    proto: sel.proto,
                    sport: sel.sport,
                    dport: sel.dport,
                },
                policy_index: a.acquire.policy.index,
            })
        }
        XfrmMessage::Expire(e) => {
            let st = &e.expire.state;
            Some(KernelEvent::Expire {
                reqid: st.reqid,
                sa: SaId {
                    dst: ip_of(&st.id.daddr, st.family)?,
                    spi: st.id.spi,
                },
                hard: e.expire.hard != 0,
            })
        }
        _ => None,
    }
}
