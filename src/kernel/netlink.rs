//! A synchronous XFRM netlink socket: one request at a time, answers matched by sequence
//! number, key material scrubbed from every buffer and message it handled.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use netlink_packet_core::{NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
use netlink_packet_xfrm::{XfrmAttrs, XfrmMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_XFRM};
use zeroize::{Zeroize, Zeroizing};

/// Receive buffer size; the kernel sizes dump chunks to fit it.
const RECV_BUF: usize = 64 * 1024;
/// Size of `struct nlmsghdr`.
const NLMSG_HDR_LEN: usize = 16;

/// Failure of one netlink exchange.
#[derive(Debug)]
pub(crate) enum NlError {
    /// The socket call failed.
    Io(io::Error),
    /// The kernel refused the request with this (positive) errno.
    Errno(i32),
    /// The answer could not be decoded.
    Decode(String),
}

/// Zeroizes key material held by a message (requests we built, answers the kernel sent).
pub(crate) fn scrub(msg: &mut XfrmMessage) {
    let nlas = match msg {
        XfrmMessage::AddSa(m) | XfrmMessage::UpdateSa(m) => &mut m.nlas,
        _ => return,
    };
    for nla in nlas {
        match nla {
            XfrmAttrs::EncryptionAlg(a) | XfrmAttrs::AuthenticationAlg(a) => a.alg_key.zeroize(),
            XfrmAttrs::AuthenticationAlgTrunc(a) => a.alg_key.zeroize(),
            XfrmAttrs::EncryptionAlgAead(a) => a.alg_key.zeroize(),
            _ => {}
        }
    }
}

/// A NETLINK_XFRM socket.
pub(crate) struct NlSocket {
    sock: Socket,
    seq: u32,
    buf: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for NlSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NlSocket").field("seq", &self.seq).finish()
    }
}

impl NlSocket {
    /// A socket for requests to the kernel.
    pub(crate) fn open() -> io::Result<Self> {
        let mut sock = Socket::new(NETLINK_XFRM)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        Ok(Self::wrap(sock))
    }

    /// A socket subscribed to multicast `groups` (XFRMNLGRP_*).
    pub(crate) fn subscribe(groups: &[u32]) -> io::Result<Self> {
        let mut sock = Socket::new(NETLINK_XFRM)?;
        sock.bind_auto()?;
        for &group in groups {
            sock.add_membership(group)?;
        }
        Ok(Self::wrap(sock))
    }

    fn wrap(sock: Socket) -> Self {
        Self {
            sock,
            seq: 0,
            buf: Zeroizing::new(vec![0; RECV_BUF]),
        }
    }

    /// Switches blocking mode.
    pub(crate) fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.sock.set_non_blocking(nonblocking)
    }

    /// Sends `msg` and collects the answers until the ACK (or, with `dump`, until DONE).
    pub(crate) fn request(
        &mut self,
        msg: XfrmMessage,
        dump: bool,
    ) -> Result<Vec<XfrmMessage>, NlError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut nl = NetlinkMessage::from(msg);
        nl.header.flags = NLM_F_REQUEST | if dump { NLM_F_DUMP } else { NLM_F_ACK };
        nl.header.sequence_number = seq;
        nl.finalize();
        let mut bytes = Zeroizing::new(vec![0; nl.buffer_len()]);
        nl.serialize(&mut bytes);
        if let NetlinkPayload::InnerMessage(m) = &mut nl.payload {
            scrub(m);
        }
        self.sock.send(&bytes, 0).map_err(NlError::Io)?;
        let mut answers = Vec::new();
        loop {
            for m in self.recv_datagram()? {
                if m.header.sequence_number != seq {
                    continue;
                }
                match m.payload {
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(answers),
                            Some(code) => Err(NlError::Errno(code.get().saturating_abs())),
                        };
                    }
                    NetlinkPayload::Done(_) => return Ok(answers),
                    NetlinkPayload::InnerMessage(inner) => answers.push(inner),
                    _ => {}
                }
            }
        }
    }

    /// Receives one datagram and decodes every netlink message in it.
    pub(crate) fn recv_datagram(&mut self) -> Result<Vec<NetlinkMessage<XfrmMessage>>, NlError> {
        let n = self
            .sock
            .recv(&mut self.buf.as_mut_slice(), libc::MSG_TRUNC)
            .map_err(NlError::Io)?;
        let result = parse_all(self.buf.get(..n).ok_or_else(|| {
            NlError::Decode(format!(
                "datagram of {n} bytes exceeds the {RECV_BUF}-byte buffer"
            ))
        })?);
        if let Some(used) = self.buf.get_mut(..n) {
            used.zeroize();
        }
        result
    }
}

fn parse_all(data: &[u8]) -> Result<Vec<NetlinkMessage<XfrmMessage>>, NlError> {
    let mut out = Vec::new();
    let mut rest = data;
    while rest.len() >= NLMSG_HDR_LEN {
        let len = rest
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_ne_bytes)
            .and_then(|l| usize::try_from(l).ok())
            .unwrap_or(0);
        let msg_bytes = rest
            .get(..len)
            .filter(|_| len >= NLMSG_HDR_LEN)
            .ok_or_else(|| NlError::Decode(format!("bad netlink message length {len}")))?;
        let mut msg = NetlinkMessage::<XfrmMessage>::deserialize(msg_bytes)
            .map_err(|e| NlError::Decode(e.to_string()))?;
        if let NetlinkPayload::InnerMessage(m) = &mut msg.payload {
            scrub(m);
        }
        out.push(msg);
        let aligned = len.checked_add(3).map_or(len, |l| l & !3);
        rest = rest.get(aligned..).unwrap_or_default();
    }
    Ok(out)
}

impl AsFd for NlSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}
