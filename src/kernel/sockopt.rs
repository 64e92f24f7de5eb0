//! Socket options on the IKE sockets: per-socket bypass policies and NAT-T decapsulation.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_packet_core::Emitable;
use netlink_packet_xfrm::{self as x, UserPolicyInfo, XFRM_USER_POLICY_INFO_LEN};

use super::error::{KernelError, Target};

/// Address family of an IKE socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketFamily {
    /// AF_INET socket.
    V4,
    /// AF_INET6 socket.
    V6,
}

/// Installs per-socket ALLOW policies (in and out) on an IKE socket so that IPsec policies
/// (e.g. a host-to-host transport policy) never capture IKE's own packets. They disappear
/// with the socket.
pub fn bypass_socket(fd: BorrowedFd<'_>, family: SocketFamily) -> Result<(), KernelError> {
    let (level, name, what, af) = match family {
        SocketFamily::V4 => (
            libc::IPPROTO_IP,
            libc::IP_XFRM_POLICY,
            "IP_XFRM_POLICY",
            x::AF_INET,
        ),
        SocketFamily::V6 => (
            libc::IPPROTO_IPV6,
            libc::IPV6_XFRM_POLICY,
            "IPV6_XFRM_POLICY",
            x::AF_INET6,
        ),
    };
    for direction in [x::XFRM_POLICY_IN, x::XFRM_POLICY_OUT] {
        let mut info = UserPolicyInfo {
            direction,
            action: x::XFRM_POLICY_ALLOW,
            ..UserPolicyInfo::default()
        };
        info.selector.family = af;
        let mut raw = [0u8; XFRM_USER_POLICY_INFO_LEN];
        info.emit(&mut raw);
        setsockopt_bytes(fd, level, name, &raw)
            .map_err(|e| KernelError::io(Target::Socket(what), &e))?;
    }
    Ok(())
}

/// Marks the NAT-T socket (UDP 4500) for ESP-in-UDP decapsulation (`UDP_ENCAP_ESPINUDP`).
pub fn set_udp_encap(fd: BorrowedFd<'_>) -> Result<(), KernelError> {
    let value = libc::c_int::from(x::UDP_ENCAP_ESPINUDP);
    setsockopt_bytes(fd, libc::SOL_UDP, libc::UDP_ENCAP, &value.to_ne_bytes())
        .map_err(|e| KernelError::io(Target::Socket("UDP_ENCAP"), &e))
}

/// `setsockopt` with an option value given as bytes.
#[allow(unsafe_code)]
fn setsockopt_bytes(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: &[u8],
) -> io::Result<()> {
    let len = libc::socklen_t::try_from(value.len())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `fd` is an open descriptor for the whole call (it is borrowed); `value` is a
    // live slice of `len` initialised bytes that the kernel only reads (copies) during the call,
    // so alignment and lifetime requirements are met.
    let rc = unsafe { libc::setsockopt(fd.as_raw_fd(), level, name, value.as_ptr().cast(), len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
