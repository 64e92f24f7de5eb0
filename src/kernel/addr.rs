//! Virtual IP addresses on `lo` through rtnetlink (RTM_NEWADDR / RTM_DELADDR), as a host
//! prefix (/32, /128): what a road warrior's `leftsourceip=%config` installs once the gateway
//! assigned it an address. The messages are small and fixed, so they are written here.

use std::io;
use std::net::IpAddr;

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// `struct nlmsghdr` size.
const NLMSG_HDR_LEN: usize = 16;
/// `struct ifaddrmsg` size.
const IFADDRMSG_LEN: usize = 8;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
/// The loopback interface's index in every network namespace.
const LOOPBACK_IFINDEX: u32 = 1;

/// An rtnetlink socket for address requests.
#[derive(Debug)]
pub(crate) struct RouteSocket {
    sock: Socket,
    seq: u32,
}

/// Why an address request failed: the socket call, or the kernel's errno (positive).
#[derive(Debug)]
pub(crate) enum AddrError {
    Io(io::Error),
    Errno(i32),
}

/// The RTM_NEWADDR (`add`) or RTM_DELADDR message for `addr` as a host prefix on `lo`.
fn address_message(add: bool, addr: IpAddr, seq: u32) -> Vec<u8> {
    let (family, bytes): (u8, Vec<u8>) = match addr {
        IpAddr::V4(a) => (libc::AF_INET as u8, a.octets().to_vec()), // ok: AF_INET is 2
        IpAddr::V6(a) => (libc::AF_INET6 as u8, a.octets().to_vec()), // ok: AF_INET6 is 10
    };
    let prefix = if addr.is_ipv4() { 32 } else { 128 };
    let rta_len = 4 + bytes.len(); // both address lengths are multiples of 4: no padding
    let len = NLMSG_HDR_LEN + IFADDRMSG_LEN + 2 * rta_len;
    let (kind, flags) = if add {
        (
            RTM_NEWADDR,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )
    } else {
        (RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK)
    };
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&u32::try_from(len).unwrap_or(0).to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel
    // ifaddrmsg: family, prefix length, flags, scope (universe), interface index.
    m.extend_from_slice(&[family, prefix, 0, 0]);
    m.extend_from_slice(&LOOPBACK_IFINDEX.to_ne_bytes());
    for kind in [IFA_LOCAL, IFA_ADDRESS] {
        m.extend_from_slice(&u16::try_from(rta_len).unwrap_or(0).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&bytes);
    }
    m
}

/// The errno of the NLMSG_ERROR answering `seq` in `data` (0: ACK), if there is one.
fn ack_errno(data: &[u8], seq: u32) -> Option<i32> {
    let mut rest = data;
    while rest.len() >= NLMSG_HDR_LEN {
        let word = |at: usize| {
            rest.get(at..at + 4)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
        };
        let len = usize::try_from(u32::from_ne_bytes(word(0)?)).ok()?;
        let kind = u16::from_ne_bytes([*rest.get(4)?, *rest.get(5)?]);
        let their_seq = u32::from_ne_bytes(word(8)?);
        if kind == NLMSG_ERROR && their_seq == seq {
            return Some(i32::from_ne_bytes(word(NLMSG_HDR_LEN)?).saturating_abs());
        }
        // Messages are 4-byte aligned.
        let next = len.checked_add(3)? & !3;
        if len < NLMSG_HDR_LEN {
            return None;
        }
        rest = rest.get(next..)?;
    }
    None
}

impl RouteSocket {
    pub(crate) fn open() -> io::Result<Self> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        Ok(Self { sock, seq: 0 })
    }

    /// Adds (`add`) or deletes `addr` on `lo`; waits for the kernel's answer.
    pub(crate) fn address(&mut self, add: bool, addr: IpAddr) -> Result<(), AddrError> {
        self.seq = self.seq.wrapping_add(1);
        let msg = address_message(add, addr, self.seq);
        self.sock.send(&msg, 0).map_err(AddrError::Io)?;
        let mut buf = vec![0u8; 8192];
        loop {
            let n = self
                .sock
                .recv(&mut buf.as_mut_slice(), 0)
                .map_err(AddrError::Io)?;
            match ack_errno(buf.get(..n).unwrap_or_default(), self.seq) {
                Some(0) => return Ok(()),
                Some(errno) => return Err(AddrError::Errno(errno)),
                None => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_address_message_layout_and_acks() {
        let m = address_message(true, "10.3.0.1".parse().unwrap(), 7);
        assert_eq!(m.len(), 16 + 8 + 8 + 8);
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), RTM_NEWADDR);
        assert_eq!(&m[16..20], [2, 32, 0, 0]);
        assert_eq!(u32::from_ne_bytes([m[20], m[21], m[22], m[23]]), 1);
        assert_eq!(&m[28..32], [10, 3, 0, 1]);
        assert_eq!(u16::from_ne_bytes([m[34], m[35]]), IFA_ADDRESS);
        let v6 = address_message(false, "fd00::1".parse().unwrap(), 8);
        assert_eq!(v6.len(), 16 + 8 + 20 + 20);
        assert_eq!(&v6[16..18], [10, 128]);
        // An NLMSG_ERROR for seq 7 with errno -17 (EEXIST), after another message.
        let mut data = Vec::new();
        let other = [
            20u32.to_ne_bytes(),
            [3, 0, 0, 0],
            9u32.to_ne_bytes(),
            [0; 4],
            [0; 4],
        ]
        .concat();
        data.extend_from_slice(&other);
        let mut err = 36u32.to_ne_bytes().to_vec();
        err.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        err.extend_from_slice(&[0, 0]);
        err.extend_from_slice(&7u32.to_ne_bytes());
        err.extend_from_slice(&[0; 4]);
        err.extend_from_slice(&(-17i32).to_ne_bytes());
        err.extend_from_slice(&[0; 16]);
        data.extend_from_slice(&err);
        assert_eq!(ack_errno(&data, 7), Some(17));
        assert_eq!(ack_errno(&data, 8), None);
        assert_eq!(ack_errno(&data[..10], 7), None);
    }
}
