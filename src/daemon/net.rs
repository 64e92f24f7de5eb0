//! UDP sockets for IKE on the IKE port (500) and the NAT-T port (4500).
//!
//! Addressing strategy: one socket per (local address, port) for every local address a conn
//! names, so that answers leave from the address the request came to without IP_PKTINFO (which
//! would need `recvmsg` control-message parsing). Only when some conn accepts any local address
//! (`left=%any`) are wildcard sockets (`0.0.0.0` and `[::]`, v6only) bound as a fallback, with
//! SO_REUSEADDR so that the specific sockets can coexist with them; for a datagram received on
//! a wildcard socket the local address is recovered by a route lookup (a connected probe
//! socket), which is what the kernel would pick as the source of the answer.
//!
//! On the NAT-T port every IKE message carries the 4-byte non-ESP marker (zero); datagrams with
//! a non-zero marker are ESP (the kernel consumes them when UDP_ENCAP is set on the socket) and
//! one-byte 0xff datagrams are NAT keepalives: both are ignored here.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// The non-ESP marker in front of IKE messages on the NAT-T port (RFC 3948).
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];

/// The payload of a NAT keepalive (RFC 3948 §2.3).
pub const NAT_KEEPALIVE: u8 = 0xff;

/// Largest datagram read.
const MAX_DATAGRAM: usize = 65_535;

/// Socket errors.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A socket could not be bound.
    #[error("cannot bind UDP {addr}: {source}")]
    Bind {
        /// Address and port.
        addr: SocketAddr,
        /// Cause.
        source: io::Error,
    },
    /// No socket can send from this address.
    #[error("no socket bound for local address {0}")]
    NoSocket(SocketAddr),
    /// A kernel socket option (IPsec bypass, UDP encapsulation) could not be set.
    #[error("socket {addr}: {source}")]
    SockOpt {
        /// Address and port.
        addr: SocketAddr,
        /// Cause.
        source: crate::kernel::KernelError,
    },
    /// Sending failed.
    #[error("sending {len} bytes {local} -> {remote}: {source}")]
    Send {
        /// Source.
        local: SocketAddr,
        /// Destination.
        remote: SocketAddr,
        /// Datagram length.
        len: usize,
        /// Cause.
        source: io::Error,
    },
}

/// One received IKE message (marker already stripped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// Where it arrived (specific address, port).
    pub local: SocketAddr,
    /// Where it came from.
    pub remote: SocketAddr,
    /// The IKE message.
    pub data: Vec<u8>,
}

#[derive(Debug)]
struct Bound {
    addr: SocketAddr,
    sock: Arc<UdpSocket>,
}

/// The daemon's IKE sockets.
#[derive(Debug)]
pub struct Net {
    ports: [u16; 2],
    natt_port: u16,
    reuse: bool,
    kernel_sockopts: bool,
    bound: Vec<Bound>,
    tx: mpsc::Sender<Datagram>,
}

impl Net {
    /// An empty socket set delivering received datagrams to `tx`. `wildcard` binds the
    /// fallback sockets (see the module docs). `kernel_sockopts` sets per-socket IPsec bypass
    /// policies on every socket (so that IKE never goes through ESP) and UDP_ENCAP on the
    /// NAT-T sockets (so that the kernel takes ESP-in-UDP).
    pub fn new(
        port: u16,
        natt_port: u16,
        wildcard: bool,
        kernel_sockopts: bool,
        tx: mpsc::Sender<Datagram>,
    ) -> Result<Self, NetError> {
        let mut net = Self {
            ports: [port, natt_port],
            natt_port,
            reuse: wildcard,
            kernel_sockopts,
            bound: Vec::new(),
            tx,
        };
        if wildcard {
            net.add_address(IpAddr::V4(Ipv4Addr::UNSPECIFIED))?;
            net.add_address(IpAddr::V6(Ipv6Addr::UNSPECIFIED))?;
        }
        Ok(net)
    }

    /// Binds both ports on `ip` unless already bound, and starts receiving on them.
    pub fn add_address(&mut self, ip: IpAddr) -> Result<(), NetError> {
        for port in self.ports {
            let addr = SocketAddr::new(ip, port);
            if self.bound.iter().any(|b| b.addr == addr) {
                continue;
            }
            let sock = Arc::new(bind_udp(addr, self.reuse)?);
            let natt = port == self.natt_port;
            if self.kernel_sockopts {
                set_kernel_sockopts(&sock, addr, natt)?;
            }
            tracing::info!(target: "net", "listening on {addr}{}", if natt { " (NAT-T)" } else { "" });
            tokio::spawn(receive(Arc::clone(&sock), addr, natt, self.tx.clone()));
            self.bound.push(Bound { addr, sock });
        }
        Ok(())
    }

    /// Sends an IKE message from `local` to `remote`, adding the non-ESP marker on the NAT-T
    /// port.
    pub async fn send(
        &self,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) -> Result<(), NetError> {
        let sock = self.socket_for(local).ok_or(NetError::NoSocket(local))?;
        let framed;
        let payload = if local.port() == self.natt_port {
            framed = [NON_ESP_MARKER.as_slice(), data].concat();
            framed.as_slice()
        } else {
            data
        };
        sock.send_to(payload, remote)
            .await
            .map(|_| ())
            .map_err(|source| NetError::Send {
                local,
                remote,
                len: payload.len(),
                source,
            })
    }

    /// Sends a NAT keepalive (RFC 3948 §2.3: the one byte 0xff, no marker) from `local`,
    /// which must be a NAT-T address.
    pub async fn send_keepalive(
        &self,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<(), NetError> {
        let sock = self.socket_for(local).ok_or(NetError::NoSocket(local))?;
        sock.send_to(&[NAT_KEEPALIVE], remote)
            .await
            .map(|_| ())
            .map_err(|source| NetError::Send {
                local,
                remote,
                len: 1,
                source,
            })
    }

    fn socket_for(&self, local: SocketAddr) -> Option<&UdpSocket> {
        let exact = self.bound.iter().find(|b| b.addr == local);
        let wildcard = || {
            self.bound.iter().find(|b| {
                b.addr.port() == local.port()
                    && b.addr.ip().is_unspecified()
                    && b.addr.is_ipv4() == local.is_ipv4()
            })
        };
        exact.or_else(wildcard).map(|b| b.sock.as_ref())
    }
}

fn set_kernel_sockopts(sock: &UdpSocket, addr: SocketAddr, natt: bool) -> Result<(), NetError> {
    use crate::kernel::{SocketFamily, bypass_socket, set_udp_encap};
    use std::os::fd::AsFd;
    let err = |source| NetError::SockOpt { addr, source };
    let family = if addr.is_ipv4() {
        SocketFamily::V4
    } else {
        SocketFamily::V6
    };
    bypass_socket(sock.as_fd(), family).map_err(err)?;
    if natt {
        set_udp_encap(sock.as_fd()).map_err(err)?;
    }
    Ok(())
}

/// Whether `ip` is an address of this host (binding to it succeeds).
pub fn is_local_address(ip: IpAddr) -> bool {
    std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

fn bind_udp(addr: SocketAddr, reuse: bool) -> Result<UdpSocket, NetError> {
    let err = |source| NetError::Bind { addr, source };
    let sock =
        Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(err)?;
    if addr.is_ipv6() {
        sock.set_only_v6(true).map_err(err)?;
    }
    sock.set_reuse_address(reuse).map_err(err)?;
    sock.set_nonblocking(true).map_err(err)?;
    sock.bind(&addr.into()).map_err(err)?;
    UdpSocket::from_std(sock.into()).map_err(err)
}

/// The source address the kernel would use towards `remote` (for wildcard sockets, and
/// `left=%defaultroute`/`%any` conns with a fixed peer).
pub fn route_source(remote: SocketAddr) -> Option<IpAddr> {
    let any = if remote.is_ipv4() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    };
    let probe = std::net::UdpSocket::bind(SocketAddr::new(any, 0)).ok()?;
    probe.connect(remote).ok()?;
    probe.local_addr().ok().map(|a| a.ip())
}

/// Strips the non-ESP marker of a NAT-T datagram; `None` for ESP and keepalives.
fn strip_marker(data: &[u8]) -> Option<&[u8]> {
    match data.split_first_chunk::<4>() {
        Some((marker, rest)) if *marker == NON_ESP_MARKER => Some(rest),
        _ => None,
    }
}

async fn receive(sock: Arc<UdpSocket>, addr: SocketAddr, natt: bool, tx: mpsc::Sender<Datagram>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (len, remote) = match sock.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(target: "net", "receive on {addr}: {e}");
                continue;
            }
        };
        let Some(data) = buf.get(..len) else { continue };
        let data = if natt {
            match strip_marker(data) {
                Some(ike) => ike,
                None => {
                    tracing::trace!(target: "net", "ignoring {len}-byte non-IKE datagram from {remote} on {addr}");
                    continue;
                }
            }
        } else {
            data
        };
        let local = if addr.ip().is_unspecified() {
            match route_source(remote) {
                Some(ip) => SocketAddr::new(ip, addr.port()),
                None => addr,
            }
        } else {
            addr
        };
        tracing::debug!(target: "net", "received {} bytes from {remote} to {local}", data.len());
        let dgram = Datagram {
            local,
            remote,
            data: data.to_vec(),
        };
        if tx.send(dgram).await.is_err() {
            return; // the driver is gone
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_handling() {
        assert_eq!(strip_marker(&[0, 0, 0, 0, 1, 2]), Some(&[1u8, 2][..]));
        assert_eq!(strip_marker(&[0, 0, 0, 1, 1, 2]), None); // ESP (SPI)
        assert_eq!(strip_marker(&[NAT_KEEPALIVE]), None);
        assert_eq!(strip_marker(&[]), None);
    }

    #[test]
    fn loopback_is_local() {
        assert!(is_local_address(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert!(!is_local_address("192.0.2.77".parse().unwrap()));
    }

    /// A Net on one free loopback port used as both IKE and NAT-T port (a single socket, with
    /// the non-ESP marker), and that address.
    fn loopback_net(tx: mpsc::Sender<Datagram>) -> (Net, SocketAddr) {
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        let mut net = Net::new(port, port, false, false, tx).unwrap();
        net.add_address(IpAddr::V4(Ipv4Addr::LOCALHOST)).unwrap();
        (net, SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
    }

    #[tokio::test(flavor = "current_thread")]
    async fn natt_round_trip_adds_and_strips_marker() {
        let (tx, mut rx) = mpsc::channel(4);
        let (net, local) = loopback_net(tx);
        net.send(local, local, b"ike").await.unwrap();
        let got = rx.recv().await.unwrap();
        assert_eq!(got.data, b"ike");
        assert_eq!(got.local, local);
        assert_eq!(got.remote, local);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn keepalive_is_one_byte_without_marker() {
        let (tx, _rx) = mpsc::channel(4);
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let (net, local) = loopback_net(tx);
        net.send_keepalive(local, peer.local_addr().unwrap())
            .await
            .unwrap();
        let mut buf = [0u8; 8];
        let (n, from) = peer.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&[0xffu8][..], local));
    }
}
