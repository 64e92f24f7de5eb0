//! Flood mode (`--flood-secs`), for the lab's DoS tests (issue 14): IKE_SA_INIT requests at
//! fixed rates, built by ikev2d's own engine, and never anything after IKE_SA_INIT.
//!
//! - From the real `--local` address (`--cookie-rate` per second): each request is a fresh
//!   initiation of the engine, which answers a COOKIE challenge by sending the request again
//!   with the cookie, as a real initiator does; so this address holds half-open SAs
//!   legitimately. IKE_SA_INIT responses are counted, not answered (no IKE_AUTH), so the
//!   half-open SAs stay until the responder expires them.
//! - From random addresses of `--spoof-from` (`--spoof-rate` per second): one engine-built
//!   request, sent again and again with a fresh random SPIi from a random source address of the
//!   range; these never answer anything. They are sent with IP_PKTINFO from a socket bound to
//!   `0.0.0.0:--spoof-port`, so the flooding host must own the range (`ip route add local RANGE
//!   dev lo`) and the responder route it back there: the responder's answers to the spoofed
//!   sources are then counted here instead of leaving the lab.
//!
//! Lab only: it refuses to run unless the environment has `IKEV2D_FLOOD_LAB=1` (set by the lab
//! scenario, never by default) and every address it would use (responder, real source, spoofed
//! range) is private (RFC 1918) or loopback IPv4.

use std::io::IoSlice;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use ikev2d::ike::{ConnSpec, Endpoint, EndpointConfig, RandomSpis, Transmit};
use ikev2d::wire::{ExchangeType, Message, NotifyType, Payload};
use ipnet::Ipv4Net;
use rand::rngs::ChaCha20Rng;
use rand::{Rng, RngExt, SeedableRng};
use socket2::{Domain, MsgHdr, Protocol, SockAddr, SockRef, Socket, Type};
use tokio::net::UdpSocket;

/// The environment variable the lab sets to allow a flood.
pub const LAB_ENV: &str = "IKEV2D_FLOOD_LAB";

/// How long replies are still counted after the last request.
const LINGER: Duration = Duration::from_secs(1);

/// How often requests go out (each time as many as the rates say are due).
const TICK: Duration = Duration::from_millis(10);

/// The engine that initiates is replaced this often (the one before stays to take COOKIE
/// challenges to its requests), so that abandoned initiations do not pile up.
const GENERATION: Duration = Duration::from_secs(5);

/// The flood's options (`ikev2d-bench --flood-secs S ...`).
#[derive(clap::Args, Debug)]
pub struct FloodArgs {
    /// Flood instead of a benchmark run: send IKE_SA_INIT requests for this many seconds
    /// (lab only: needs IKEV2D_FLOOD_LAB=1 and private addresses).
    #[arg(long, value_name = "SECONDS")]
    pub flood_secs: Option<f64>,
    /// Flood: requests per second from --local that answer COOKIE challenges.
    #[arg(long, default_value_t = 0)]
    pub cookie_rate: u32,
    /// Flood: requests per second from random addresses of --spoof-from, which answer nothing.
    #[arg(long, default_value_t = 0)]
    pub spoof_rate: u32,
    /// Flood: the spoofed source range (the flooding host must own it: a `local` route).
    #[arg(long)]
    pub spoof_from: Option<Ipv4Net>,
    /// Flood: the spoofed requests' source port.
    #[arg(long, default_value_t = 5000)]
    pub spoof_port: u16,
}

/// What one kind of source sent and got back.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    /// New IKE_SA_INIT requests.
    pub sent: u64,
    /// COOKIE challenges received.
    pub cookies: u64,
    /// IKE_SA_INIT responses received (a half-open SA on the responder each).
    pub responses: u64,
    /// Any other reply (an error notification, something unparsable).
    pub other: u64,
    /// Datagrams the socket refused to send.
    pub send_errors: u64,
}

impl Tally {
    fn count(&mut self, reply: Reply) {
        match reply {
            Reply::Cookie => self.cookies += 1,
            Reply::Response => self.responses += 1,
            Reply::Other => self.other += 1,
        }
    }
}

/// The flood's result, printed as one line of `key=value` pairs.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Report {
    /// The flood's length as asked.
    pub secs: f64,
    /// From the first request to the last reply counted, as measured.
    pub wall_secs: f64,
    pub real: Tally,
    /// Requests the real source sent again with the cookie.
    pub real_cookie_answers: u64,
    pub spoofed: Tally,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "flood secs={:.1} wall_secs={:.1}",
            self.secs, self.wall_secs
        )?;
        for (name, t) in [("real", &self.real), ("spoofed", &self.spoofed)] {
            write!(
                f,
                " {name}_sent={} {name}_cookies={} {name}_responses={} {name}_other={} \
                 {name}_send_errors={}",
                t.sent, t.cookies, t.responses, t.other, t.send_errors
            )?;
        }
        write!(f, " real_cookie_answers={}", self.real_cookie_answers)
    }
}

/// What a datagram from the responder was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    Cookie,
    Response,
    Other,
}

fn classify(data: &[u8]) -> Reply {
    let Ok(msg) = Message::parse(data) else {
        return Reply::Other;
    };
    let h = &msg.header;
    if h.exchange != ExchangeType::IKE_SA_INIT || !h.is_response() {
        return Reply::Other;
    }
    match msg.payloads.first() {
        Some(Payload::Notify(n)) if n.notify_type == NotifyType::COOKIE => Reply::Cookie,
        _ if msg.payloads.iter().any(|p| matches!(p, Payload::Sa(_))) => Reply::Response,
        _ => Reply::Other,
    }
}

/// Private (RFC 1918) or loopback IPv4: the only places a flood may go or claim to come from.
fn lab_address(a: IpAddr) -> bool {
    matches!(a, IpAddr::V4(v4) if v4.is_private() || v4.is_loopback())
}

/// Refuses a flood outside the lab: the lab's variable must be set and every address private.
fn lab_only(
    lab_env: Option<&str>,
    remote: IpAddr,
    local: IpAddr,
    spoof: Option<Ipv4Net>,
) -> Result<(), String> {
    if lab_env != Some("1") {
        return Err(format!(
            "refusing to flood: {LAB_ENV}=1 is not set (lab only)"
        ));
    }
    // Both ends of a CIDR block in private (or loopback) space put all of it in one such block.
    let spoof_ends = spoof
        .into_iter()
        .flat_map(|n| [n.network(), n.broadcast()])
        .map(IpAddr::V4);
    for a in [remote, local].into_iter().chain(spoof_ends) {
        if !lab_address(a) {
            return Err(format!(
                "refusing to flood: {a} is not a private or loopback IPv4 address"
            ));
        }
    }
    Ok(())
}

/// The IP_PKTINFO control message that makes a datagram leave from `src` (Linux layout: a
/// `cmsghdr` then an `in_pktinfo` { ifindex, spec_dst, addr }, padded to CMSG_SPACE).
fn pktinfo(src: Ipv4Addr) -> Vec<u8> {
    const HDR: usize = std::mem::size_of::<libc::cmsghdr>();
    const DATA: usize = 12; // in_pktinfo
    let align = |n: usize| n.next_multiple_of(std::mem::size_of::<usize>());
    let mut buf = Vec::with_capacity(align(HDR) + align(DATA));
    buf.extend_from_slice(&(align(HDR) + DATA).to_ne_bytes()); // cmsg_len = CMSG_LEN
    buf.extend_from_slice(&libc::IPPROTO_IP.to_ne_bytes());
    buf.extend_from_slice(&libc::IP_PKTINFO.to_ne_bytes());
    buf.resize(align(HDR), 0);
    buf.extend_from_slice(&0i32.to_ne_bytes()); // any interface
    buf.extend_from_slice(&src.octets()); // ipi_spec_dst: the source address
    buf.extend_from_slice(&[0; 4]);
    buf.resize(align(HDR) + align(DATA), 0);
    buf
}

/// A random address of `net` (not its network or broadcast address when it has others).
fn random_host(net: Ipv4Net, rng: &mut impl Rng) -> Ipv4Addr {
    let base = u32::from(net.network());
    let size = 1u64 << (32 - u32::from(net.prefix_len()));
    let offset = if size > 2 {
        rng.random_range(1..size - 1)
    } else {
        rng.random_range(0..size)
    };
    // offset < size <= 2^32, so it fits, and base + offset stays inside the network.
    Ipv4Addr::from(base.wrapping_add(u32::try_from(offset).unwrap_or(0)))
}

fn endpoint(template: &ConnSpec, port: u16) -> Endpoint<ChaCha20Rng> {
    let spis = RandomSpis::new(ChaCha20Rng::from_rng(&mut rand::rng()), 0x100..=0x0fff_ffff);
    let mut ep = Endpoint::new(
        EndpointConfig {
            natt_port: port,
            ..EndpointConfig::default()
        },
        ChaCha20Rng::from_rng(&mut rand::rng()),
        Box::new(spis),
    );
    let mut conn = template.clone();
    conn.local_port = port;
    ep.set_conns(vec![conn]);
    ep
}

/// The real source: engines that initiate and answer COOKIE challenges.
struct Real {
    sock: UdpSocket,
    conn: String,
    local: SocketAddr,
    template: ConnSpec,
    current: Endpoint<ChaCha20Rng>,
    previous: Endpoint<ChaCha20Rng>,
    born: Instant,
    tally: Tally,
    cookie_answers: u64,
}

impl Real {
    async fn new(local: IpAddr, template: &ConnSpec) -> Result<Self, String> {
        let sock = UdpSocket::bind(SocketAddr::new(local, 0))
            .await
            .map_err(|e| format!("bind {local}: {e}"))?;
        let local = sock.local_addr().map_err(|e| format!("local_addr: {e}"))?;
        Ok(Self {
            sock,
            conn: template.name.clone(),
            local,
            template: template.clone(),
            current: endpoint(template, local.port()),
            previous: endpoint(template, local.port()),
            born: Instant::now(),
            tally: Tally::default(),
            cookie_answers: 0,
        })
    }

    async fn initiate(&mut self, now: Instant) {
        if now.duration_since(self.born) >= GENERATION {
            let fresh = endpoint(&self.template, self.local.port());
            self.previous = std::mem::replace(&mut self.current, fresh);
            self.born = now;
        }
        if self.current.initiate(now, &self.conn).is_ok() {
            self.tally.sent += 1;
        } else {
            self.tally.send_errors += 1;
        }
        self.flush(false).await;
    }

    async fn receive(&mut self, from: SocketAddr, data: &[u8]) {
        let reply = classify(data);
        self.tally.count(reply);
        // Only challenges go back to the engines (a response would start IKE_AUTH); the
        // engine that did not send the request ignores it.
        if reply == Reply::Cookie {
            let now = Instant::now();
            self.current.handle_datagram(now, self.local, from, data);
            self.previous.handle_datagram(now, self.local, from, data);
            self.flush(true).await;
        }
    }

    /// Sends what the engines have to send (`answers`: these are requests with a cookie).
    async fn flush(&mut self, answers: bool) {
        for ep in [&mut self.current, &mut self.previous] {
            while let Some(Transmit { remote, data, .. }) = ep.poll_transmit() {
                match self.sock.send_to(&data, remote).await {
                    Ok(_) if answers => self.cookie_answers += 1,
                    Ok(_) => {}
                    Err(_) => self.tally.send_errors += 1,
                }
            }
            // Nothing here waits for an event; drain them so they do not pile up.
            while ep.poll_event().is_some() {}
        }
    }
}

/// The spoofed sources: one request with fresh SPIs from random addresses.
struct Spoofed {
    sock: UdpSocket,
    net: Ipv4Net,
    remote: SocketAddr,
    request: Vec<u8>,
    rng: ChaCha20Rng,
    tally: Tally,
}

impl Spoofed {
    fn new(
        net: Ipv4Net,
        port: u16,
        remote: SocketAddr,
        template: &ConnSpec,
    ) -> Result<Self, String> {
        let mut ep = endpoint(template, port);
        ep.initiate(Instant::now(), &template.name)
            .map_err(|e| format!("initiate: {e}"))?;
        let request = ep
            .poll_transmit()
            .map(|t| t.data)
            .ok_or("the engine sent no IKE_SA_INIT request")?;
        let sock = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
            .map_err(|e| format!("socket: {e}"))?;
        let bind = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port));
        sock.bind(&bind.into())
            .map_err(|e| format!("bind {bind}: {e}"))?;
        sock.set_nonblocking(true)
            .map_err(|e| format!("nonblocking: {e}"))?;
        let sock = UdpSocket::from_std(sock.into()).map_err(|e| format!("socket: {e}"))?;
        Ok(Self {
            sock,
            net,
            remote,
            request,
            rng: ChaCha20Rng::from_rng(&mut rand::rng()),
            tally: Tally::default(),
        })
    }

    fn send(&mut self) {
        let src = random_host(self.net, &mut self.rng);
        // SPIi is the first 8 bytes of the IKE header.
        if let Some(spi) = self.request.get_mut(..8) {
            self.rng.fill_bytes(spi);
        }
        let control = pktinfo(src);
        let to = SockAddr::from(self.remote);
        let bufs = [IoSlice::new(&self.request)];
        let msg = MsgHdr::new()
            .with_addr(&to)
            .with_buffers(&bufs)
            .with_control(&control);
        match SockRef::from(&self.sock).sendmsg(&msg, 0) {
            Ok(_) => self.tally.sent += 1,
            Err(_) => self.tally.send_errors += 1,
        }
    }
}

/// A datagram from `sock`, or never without one.
async fn recv(sock: Option<&UdpSocket>, buf: &mut [u8]) -> std::io::Result<usize> {
    match sock {
        Some(s) => s.recv(buf).await,
        None => std::future::pending().await,
    }
}

/// Runs the flood against `remote` from `local` (and the spoofed range) and reports.
pub async fn run(
    args: &FloodArgs,
    secs: f64,
    remote: SocketAddr,
    local: IpAddr,
    template: &ConnSpec,
) -> Result<Report, String> {
    lab_only(
        std::env::var(LAB_ENV).ok().as_deref(),
        remote.ip(),
        local,
        args.spoof_from,
    )?;
    let length = Duration::try_from_secs_f64(secs).map_err(|e| format!("--flood-secs: {e}"))?;
    let mut spoof = match (args.spoof_rate, args.spoof_from) {
        (0, _) => None,
        (_, Some(net)) => Some(Spoofed::new(net, args.spoof_port, remote, template)?),
        (_, None) => return Err("--spoof-rate needs --spoof-from".into()),
    };
    let mut real = Real::new(local, template).await?;
    let (mut buf, mut spoof_buf) = (vec![0u8; 65536], vec![0u8; 65536]);
    let start = Instant::now();
    let (stop, end) = (start + length, start + length + LINGER);
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                let elapsed = now.min(stop).duration_since(start).as_secs_f64();
                let due = |rate: u32| (f64::from(rate) * elapsed) as u64;
                while real.tally.sent + real.tally.send_errors < due(args.cookie_rate) {
                    real.initiate(now).await;
                }
                if let Some(s) = spoof.as_mut() {
                    while s.tally.sent + s.tally.send_errors < due(args.spoof_rate) {
                        s.send();
                    }
                }
            }
            r = real.sock.recv_from(&mut buf) => {
                if let Ok((len, from)) = r {
                    real.receive(from, buf.get(..len).unwrap_or_default()).await;
                }
            }
            r = recv(spoof.as_ref().map(|s| &s.sock), &mut spoof_buf) => {
                if let (Ok(len), Some(s)) = (r, spoof.as_mut()) {
                    s.tally.count(classify(spoof_buf.get(..len).unwrap_or_default()));
                }
            }
        }
    }
    Ok(Report {
        secs: length.as_secs_f64(),
        wall_secs: start.elapsed().as_secs_f64(),
        real: real.tally,
        real_cookie_answers: real.cookie_answers,
        spoofed: spoof.map(|s| s.tally).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floods_only_inside_the_lab() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let net = |s: &str| Some(s.parse::<Ipv4Net>().unwrap());
        let (remote, local) = (ip("10.1.0.2"), ip("10.1.2.2"));
        assert!(lab_only(Some("1"), remote, local, net("10.99.0.0/16")).is_ok());
        assert!(lab_only(Some("1"), ip("127.0.0.1"), ip("127.0.1.1"), None).is_ok());
        // No lab variable, or not "1".
        assert!(lab_only(None, remote, local, None).is_err());
        assert!(lab_only(Some("yes"), remote, local, None).is_err());
        // A public responder, source or spoofed range; IPv6.
        assert!(lab_only(Some("1"), ip("192.0.2.1"), local, None).is_err());
        assert!(lab_only(Some("1"), remote, ip("8.8.8.8"), None).is_err());
        assert!(lab_only(Some("1"), remote, local, net("10.0.0.0/7")).is_err());
        assert!(lab_only(Some("1"), remote, local, net("198.51.100.0/24")).is_err());
        assert!(lab_only(Some("1"), ip("fd00::1"), local, None).is_err());
    }

    fn message(exchange: ExchangeType, flags: u8, payloads: Vec<Payload>) -> Vec<u8> {
        use ikev2d::wire::{Header, PayloadType};
        Message {
            header: Header {
                spi_i: [1; 8],
                spi_r: [0; 8],
                next_payload: PayloadType::NONE,
                major: 2,
                minor: 0,
                exchange,
                flags,
                message_id: 0,
                length: 0,
            },
            payloads,
        }
        .encode()
    }

    fn notify(notify_type: NotifyType) -> Payload {
        Payload::Notify(ikev2d::wire::Notify {
            protocol: ikev2d::wire::ProtocolId(0),
            spi: Vec::new(),
            notify_type,
            data: vec![7; 32],
        })
    }

    #[test]
    fn replies_are_told_apart() {
        use ikev2d::wire::{Header, SaPayload};
        let (init, resp) = (ExchangeType::IKE_SA_INIT, Header::FLAG_RESPONSE);
        let sa = || Payload::Sa(SaPayload { proposals: vec![] });
        let cookie = message(init, resp, vec![notify(NotifyType::COOKIE)]);
        assert_eq!(classify(&cookie), Reply::Cookie);
        let response = message(init, resp, vec![sa(), Payload::Nonce(vec![1; 32])]);
        assert_eq!(classify(&response), Reply::Response);
        for other in [
            message(init, resp, vec![notify(NotifyType::NO_PROPOSAL_CHOSEN)]),
            // A request, another exchange, garbage.
            message(
                init,
                Header::FLAG_INITIATOR,
                vec![notify(NotifyType::COOKIE)],
            ),
            message(ExchangeType::IKE_AUTH, resp, vec![sa()]),
            vec![0; 10],
        ] {
            assert_eq!(classify(&other), Reply::Other);
        }
    }

    #[test]
    fn pktinfo_is_one_cmsg_naming_the_source() {
        let c = pktinfo(Ipv4Addr::new(10, 99, 1, 2));
        let word = std::mem::size_of::<usize>();
        let hdr = std::mem::size_of::<libc::cmsghdr>();
        assert_eq!(c.len(), hdr + 16);
        let len = usize::from_ne_bytes(c[..word].try_into().unwrap());
        assert_eq!(len, hdr + 12);
        assert_eq!(c[word..word + 4], libc::IPPROTO_IP.to_ne_bytes());
        assert_eq!(c[word + 4..word + 8], libc::IP_PKTINFO.to_ne_bytes());
        assert_eq!(c[hdr..hdr + 4], [0; 4]);
        assert_eq!(c[hdr + 4..hdr + 8], [10, 99, 1, 2]);
    }

    #[test]
    fn random_hosts_stay_inside_the_range() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let net: Ipv4Net = "10.99.0.0/16".parse().unwrap();
        let hosts: std::collections::HashSet<_> =
            (0..1000).map(|_| random_host(net, &mut rng)).collect();
        assert!(hosts.len() > 900, "{}", hosts.len());
        for h in &hosts {
            assert!(net.contains(h) && *h != net.network() && *h != net.broadcast());
        }
        let one: Ipv4Net = "10.99.0.7/32".parse().unwrap();
        assert_eq!(random_host(one, &mut rng), Ipv4Addr::new(10, 99, 0, 7));
    }
}
