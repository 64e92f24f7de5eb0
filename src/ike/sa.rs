//! One IKE SA: identity, keys, message-ID bookkeeping, the current state, and the shared
//! send/receive machinery the per-exchange modules build on.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{CryptoRng, RngExt};
use zeroize::Zeroizing;

use super::child::ChildSa;
use super::conn::{ConnSpec, EndpointConfig, SpiAllocator};
use super::error::IkeError;
use super::event::{
    ChildSaStatus, Event, IkeSaExportedKeys, IkeSaId, IkeSaState, IkeSaStatus, Role, Transmit,
};
use super::ike_auth::{ExpectAuthRequest, ExpectAuthResponse};
use super::ike_rekey::Fresh;
use super::ike_sa_init::{ExpectSaInitResponse, InitOutcome};
use super::payloads::{delete_child_payload, delete_ike_payload, has_notify};
use super::proposal::IkeSuite;
use super::sk;
use super::timer::{Expiry, Outstanding};
use crate::config::ident::IdMatch;
use crate::crypto::{DhGroup, IkeKeys, SkCrypto};
use crate::wire::{
    ExchangeType, Header, Identification, Message, NotifyType, Payload, PayloadType,
};

/// Queued effects for the caller.
#[derive(Debug, Default)]
pub(crate) struct Output {
    pub(crate) transmits: VecDeque<Transmit>,
    pub(crate) events: VecDeque<Event>,
    /// Requests for a cached response that were not its request's retransmission.
    pub(crate) replays_refused: u64,
}

impl Output {
    pub(crate) fn send(&mut self, local: SocketAddr, remote: SocketAddr, data: Vec<u8>) {
        self.transmits.push_back(Transmit {
            local,
            remote,
            data,
        });
    }
}

/// Where a datagram arrived (`local`) and where it came from (`remote`); responses go back
/// along the same path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Path {
    pub(crate) local: SocketAddr,
    pub(crate) remote: SocketAddr,
}

/// What an SA handler needs from the endpoint.
pub(crate) struct Ctx<'a, R> {
    pub(crate) now: Instant,
    pub(crate) rng: &'a mut R,
    /// Diffie-Hellman key pairs (made ahead of time when a source has them ready).
    pub(crate) keys: &'a mut super::key_pairs::KeyPairs,
    pub(crate) spis: &'a mut (dyn SpiAllocator + Send),
    pub(crate) config: &'a EndpointConfig,
    pub(crate) conns: &'a [Arc<ConnSpec>],
    pub(crate) out: &'a mut Output,
    /// Our IKE SPIs in use (the endpoint's demultiplexing table).
    pub(crate) ike_spis: &'a HashMap<[u8; 8], IkeSaId>,
    /// The responder's virtual IP pools.
    pub(crate) pools: &'a mut super::pool::AddressPools,
}

impl<R: CryptoRng> Ctx<'_, R> {
    /// A fresh, non-zero IKE SPI not used by any of our SAs (for the new SA of a rekey).
    pub(crate) fn fresh_ike_spi(&mut self) -> [u8; 8] {
        loop {
            let mut spi = [0u8; 8];
            self.rng.fill_bytes(&mut spi);
            if spi != [0; 8] && !self.ike_spis.contains_key(&spi) {
                return spi;
            }
        }
    }
}

/// A new IKE SA made by a rekey, for the endpoint to insert.
pub(crate) struct Born {
    pub(crate) sa: IkeSa,
    /// Simultaneous IKE SA rekeys (RFC 7296 §2.8.2) that this one won: the children went to
    /// the SA of the peer's exchange (this SA's id), and move on to `sa` now.
    pub(crate) adopt_from: Option<IkeSaId>,
}

/// Shortest wait before retrying a request the peer answered with TEMPORARY_FAILURE (RFC
/// 7296 §2.25: not immediately, so that the peer can finish what it was doing).
const RETRY_MIN: Duration = Duration::from_secs(2);
/// Up to this much longer, at random, so that two colliding peers do not collide again.
const RETRY_JITTER_MS: u64 = 8000;
/// A peer that keeps answering TEMPORARY_FAILURE this long is out of sync with us: the IKE
/// SA is closed (RFC 7296 §2.25: "after several minutes").
const TEMPORARY_FAILURE_LIMIT: Duration = Duration::from_secs(300);

/// What IKE_SA_INIT left for IKE_AUTH.
pub(crate) struct InitExchange {
    pub(crate) ni: Vec<u8>,
    pub(crate) nr: Vec<u8>,
    /// The IKE_SA_INIT request as sent.
    pub(crate) request: Vec<u8>,
    /// The IKE_SA_INIT response as sent.
    pub(crate) response: Vec<u8>,
}

/// A responder's IKE SA keys whose DH shared secret is being computed elsewhere
/// ([`super::DhOffload`]): what derives them once it is there.
pub(crate) struct PendingKeys {
    pub(crate) agreement: Box<dyn super::Agreement>,
    pub(crate) suite: IkeSuite,
    pub(crate) ni: Vec<u8>,
    pub(crate) nr: Vec<u8>,
}

impl std::fmt::Debug for PendingKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingKeys")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

/// The keys of the AUTH payloads, needed only until IKE_AUTH is done.
pub(crate) struct AuthKeys {
    pub(crate) sk_pi: Zeroizing<Vec<u8>>,
    pub(crate) sk_pr: Zeroizing<Vec<u8>>,
}

/// Keys and transforms of an IKE SA after IKE_SA_INIT.
pub(crate) struct SaKeys {
    pub(crate) suite: IkeSuite,
    pub(crate) sk_d: Zeroizing<Vec<u8>>,
    /// SK_pi and SK_pr, until IKE_AUTH is done (boxed: gone then; an IKE SA made by a rekey
    /// has none).
    pub(crate) auth: Option<Box<AuthKeys>>,
    /// Protects what we send.
    pub(crate) out: SkCrypto,
    /// Opens what we receive.
    pub(crate) inb: SkCrypto,
    /// A copy for the debugging key log ([`EndpointConfig::export_keys`]).
    pub(crate) exported: Option<Box<IkeSaExportedKeys>>,
}

impl SaKeys {
    /// Split the IKE key material according to our role; keep a copy of the SK_e/SK_a keys
    /// when `export` ([`EndpointConfig::export_keys`]).
    pub(crate) fn new(
        suite: IkeSuite,
        keys: &IkeKeys,
        role: Role,
        export: bool,
    ) -> Result<Self, IkeError> {
        let ci = SkCrypto::new(suite.encr, suite.integ, &keys.sk_ei, &keys.sk_ai)?;
        let cr = SkCrypto::new(suite.encr, suite.integ, &keys.sk_er, &keys.sk_ar)?;
        let (out, inb) = match role {
            Role::Initiator => (ci, cr),
            Role::Responder => (cr, ci),
        };
        Ok(Self {
            suite,
            sk_d: keys.sk_d.clone(),
            auth: Some(Box::new(AuthKeys {
                sk_pi: keys.sk_pi.clone(),
                sk_pr: keys.sk_pr.clone(),
            })),
            out,
            inb,
            exported: export.then(|| {
                Box::new(IkeSaExportedKeys {
                    encr: suite.encr,
                    integ: suite.integ,
                    sk_ei: keys.sk_ei.clone(),
                    sk_er: keys.sk_er.clone(),
                    sk_ai: keys.sk_ai.clone(),
                    sk_ar: keys.sk_ar.clone(),
                })
            }),
        })
    }
}

/// Requests waiting for the window (one outstanding request at a time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Queued {
    /// Delete one CHILD_SA (our inbound SPI).
    DeleteChild(u32),
    /// Delete the IKE SA.
    DeleteIke,
    /// Empty INFORMATIONAL (liveness check).
    Liveness,
    /// CREATE_CHILD_SA rekeying one CHILD_SA (our inbound SPI).
    RekeyChild(u32),
    /// CREATE_CHILD_SA rekeying the IKE SA.
    RekeyIke,
    /// CREATE_CHILD_SA for an additional CHILD_SA (the next of [`IkeSa::pending_children`]).
    CreateChild,
}

impl Queued {
    /// A request about CHILD_SAs, which follows them to the new IKE SA of a rekey.
    fn concerns_children(self) -> bool {
        matches!(
            self,
            Self::DeleteChild(_) | Self::RekeyChild(_) | Self::CreateChild
        )
    }
}

/// The state of an IKE SA; each exchange module owns its states.
pub(crate) enum State {
    /// Initiator, IKE_SA_INIT sent.
    ExpectSaInitResponse(Box<ExpectSaInitResponse>),
    /// Initiator, IKE_AUTH sent.
    ExpectAuthResponse(Box<ExpectAuthResponse>),
    /// Responder, IKE_SA_INIT answered.
    ExpectAuthRequest(Box<ExpectAuthRequest>),
    /// Both sides authenticated.
    Established,
    /// Our Delete(IKE) is outstanding.
    Deleting,
    /// Gone; the endpoint removes it.
    Dead,
}

/// A response we sent, kept to answer retransmitted requests.
pub(crate) struct CachedResponse {
    pub(crate) mid: u32,
    /// The request answered: where it came from and a digest of its bytes.
    pub(crate) request: RequestPrint,
    pub(crate) data: Vec<u8>,
}

impl CachedResponse {
    /// Whether `data` from `path` is a retransmission of the request this answers: the same
    /// source and the same bytes (RFC 7296 §2.1 retransmits the request unchanged). Anything
    /// else naming the SA's SPIs and message ID, e.g. a forged 28-byte header from another
    /// address, is not answered, so the cache cannot reflect traffic at third parties.
    pub(crate) fn answers(&self, path: Path, data: &[u8]) -> bool {
        self.request == RequestPrint::of(path, data)
    }
}

/// The SHA-256 digest of a request's source address and bytes (32 bytes kept instead of
/// the request and its source).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RequestPrint {
    digest: [u8; 32],
}

impl RequestPrint {
    pub(crate) fn of(path: Path, data: &[u8]) -> Self {
        use sha2::Digest;
        let from = path.remote;
        let ip = match from.ip() {
            std::net::IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
            std::net::IpAddr::V6(a) => a.octets(),
        };
        let mut h = sha2::Sha256::new();
        h.update([u8::from(from.is_ipv4())]);
        h.update(ip);
        h.update(from.port().to_be_bytes());
        h.update(data);
        Self {
            digest: h.finalize().into(),
        }
    }
}

/// What few IKE SAs use, boxed in [`IkeSa::rare`] so that the others do not carry it
/// (~170 bytes each).
#[derive(Default)]
pub(crate) struct Rare {
    /// Conns of additional CHILD_SAs to request, one per queued [`Queued::CreateChild`].
    pub(crate) pending_children: VecDeque<Arc<ConnSpec>>,
    /// The group a peer asked for with INVALID_KE_PAYLOAD, for our next CREATE_CHILD_SA
    /// request (if the conn offers it).
    pub(crate) ke_hint: Option<DhGroup>,
    /// Since when the peer answers our requests with TEMPORARY_FAILURE only.
    pub(crate) busy_since: Option<Instant>,
    /// A request the peer answered with TEMPORARY_FAILURE, queued again at that instant.
    pub(crate) retry: Option<(Instant, Queued)>,
    /// Responder: a newer IKE SA of the same peer, from the same address, replaced this one
    /// under `uniqueids=yes|replace`; the peer is probably reauthenticating make-before-break
    /// and deletes this SA itself once the new CHILD_SAs are in. If it has not by then, we
    /// delete it.
    pub(crate) replaced_delete_at: Option<Instant>,
    /// Initiator: the virtual IPs the peer assigned us in its CFG_REPLY.
    pub(crate) virtual_ips: Vec<std::net::IpAddr>,
    /// Responder: the addresses leased to the peer from our pools, released when the SA goes.
    pub(crate) leases: Vec<(ipnet::IpNet, std::net::IpAddr)>,
    /// Initiator: the DNS servers in the peer's CFG_REPLY (when we asked for them).
    pub(crate) dns_servers: Vec<std::net::IpAddr>,
}

/// What [`IkeSa::rare`] reads when an SA has none.
static NO_RARE: Rare = Rare {
    pending_children: VecDeque::new(),
    ke_hint: None,
    busy_since: None,
    retry: None,
    replaced_delete_at: None,
    virtual_ips: Vec::new(),
    leases: Vec::new(),
    dns_servers: Vec::new(),
};

/// One IKE SA.
pub(crate) struct IkeSa {
    pub(crate) id: IkeSaId,
    pub(crate) conn: Arc<ConnSpec>,
    pub(crate) role: Role,
    pub(crate) spi_i: [u8; 8],
    pub(crate) spi_r: [u8; 8],
    pub(crate) local: SocketAddr,
    pub(crate) remote: SocketAddr,
    pub(crate) state: State,
    pub(crate) keys: Option<SaKeys>,
    /// Responder: `keys` while their DH shared secret is computed elsewhere.
    pub(crate) pending_keys: Option<Box<PendingKeys>>,
    /// Message ID of our next request.
    pub(crate) next_mid: u32,
    /// Message ID we expect on the peer's next request.
    pub(crate) peer_mid: u32,
    /// Boxed: there only while a request of ours is outstanding.
    pub(crate) outstanding: Option<Box<Outstanding>>,
    pub(crate) cached_response: Option<CachedResponse>,
    /// The peer's request being answered, for the response cache (boxed: there only until
    /// the response is sent).
    pub(crate) peer_request: Option<Box<RequestPrint>>,
    pub(crate) queue: VecDeque<Queued>,
    /// The queued request currently outstanding.
    pub(crate) in_flight: Option<Queued>,
    /// Our outstanding CHILD_SA rekey request.
    pub(crate) rekey: Option<Box<super::create_child_sa::RekeyRequest>>,
    /// Our outstanding IKE SA rekey request.
    pub(crate) ike_rekey: Option<Box<super::ike_rekey::IkeRekeyRequest>>,
    /// The redundant SA of simultaneous IKE SA rekeys (RFC 7296 §2.8.2): never reported,
    /// deleted right away, and its deletion is not reported either.
    pub(crate) redundant: bool,
    pub(crate) children: Vec<ChildSa>,
    pub(crate) nat_detected: bool,
    /// We are behind a NAT (our address was translated) or encapsulation is forced: NAT
    /// keepalives keep the mapping open.
    pub(crate) behind_nat: bool,
    pub(crate) remote_id: Option<Identification>,
    pub(crate) established_at: Option<Instant>,
    /// When an authentic message from the peer (request or response) last arrived.
    pub(crate) last_received: Option<Instant>,
    /// Responder only: drop the SA if IKE_AUTH has not completed by then.
    pub(crate) half_open_deadline: Option<Instant>,
    /// Initiator: send INITIAL_CONTACT in IKE_AUTH (no other SA of this conn existed).
    /// Responder: the authenticated peer sent INITIAL_CONTACT; the endpoint then forgets the
    /// peer's older IKE SAs and clears the flag.
    pub(crate) initial_contact: bool,
    /// Responder: IKE_AUTH has just authenticated the peer; the endpoint applies
    /// [`EndpointConfig::unique_ids`](super::EndpointConfig::unique_ids) and clears it.
    pub(crate) authenticated: bool,
    /// What few IKE SAs use (see [`IkeSa::rare`]).
    pub(crate) rare: Option<Box<Rare>>,
}

impl IkeSa {
    /// The SA's rarely used fields (empty ones when it has none).
    pub(crate) fn rare(&self) -> &Rare {
        self.rare.as_deref().unwrap_or(&NO_RARE)
    }

    /// The SA's rarely used fields, made when first written.
    pub(crate) fn rare_mut(&mut self) -> &mut Rare {
        self.rare.get_or_insert_default()
    }

    /// Derives the keys left pending at IKE_SA_INIT, waiting for their shared secret if it
    /// is still being computed. False when the peer's public value was refused: the SA has
    /// failed then.
    pub(crate) fn finish_keys<R: CryptoRng>(&mut self, ctx: &mut Ctx<'_, R>) -> bool {
        let Some(p) = self.pending_keys.take() else {
            return true;
        };
        let keys = p
            .agreement
            .wait()
            .map_err(IkeError::Crypto)
            .and_then(|shared| {
                super::ike_sa_init::responder_keys(
                    p.suite,
                    &p.ni,
                    &p.nr,
                    &shared,
                    (&self.spi_i, &self.spi_r),
                    ctx.config.export_keys,
                )
            });
        match keys {
            Ok(k) => {
                self.keys = Some(k);
                true
            }
            Err(e) => {
                self.state = self.fail(ctx, e);
                false
            }
        }
    }

    /// A fresh SA: no keys, message IDs 0, nothing outstanding; the caller sets the state.
    pub(crate) fn new(
        id: IkeSaId,
        conn: Arc<ConnSpec>,
        role: Role,
        (spi_i, spi_r): ([u8; 8], [u8; 8]),
        path: Path,
    ) -> Self {
        Self {
            id,
            conn,
            role,
            spi_i,
            spi_r,
            local: path.local,
            remote: path.remote,
            state: State::Dead,
            keys: None,
            pending_keys: None,
            next_mid: 0,
            peer_mid: 0,
            outstanding: None,
            cached_response: None,
            peer_request: None,
            queue: VecDeque::new(),
            in_flight: None,
            rekey: None,
            ike_rekey: None,
            redundant: false,
            children: Vec::new(),
            nat_detected: false,
            behind_nat: false,
            remote_id: None,
            established_at: None,
            last_received: None,
            half_open_deadline: None,
            rare: None,
            initial_contact: false,
            authenticated: false,
        }
    }

    /// Our own SPI (the one the endpoint demultiplexes on).
    pub(crate) fn local_spi(&self) -> [u8; 8] {
        match self.role {
            Role::Initiator => self.spi_i,
            Role::Responder => self.spi_r,
        }
    }

    /// Initiator with a NAT on the path (RFC 7296 §2.23, RFC 3948): every later message goes
    /// from our NAT-T port to the peer's, 4500 when it listens on 500 (else the same port as
    /// ours, as when both ends use a non-standard pair).
    pub(crate) fn float_to_natt(&mut self, natt_port: u16) {
        if self.local.port() == natt_port {
            return;
        }
        let remote_port = if self.remote.port() == 500 {
            4500
        } else {
            natt_port
        };
        self.local.set_port(natt_port);
        self.remote.set_port(remote_port);
    }

    pub(crate) fn is_dead(&self) -> bool {
        matches!(self.state, State::Dead)
    }

    pub(crate) fn is_half_open(&self) -> bool {
        matches!(self.state, State::ExpectAuthRequest(_))
    }

    /// A header for a message of ours.
    pub(crate) fn header(&self, exchange: ExchangeType, mid: u32, response: bool) -> Header {
        let mut flags = 0;
        if self.role == Role::Initiator {
            flags |= Header::FLAG_INITIATOR;
        }
        if response {
            flags |= Header::FLAG_RESPONSE;
        }
        Header {
            spi_i: self.spi_i,
            spi_r: self.spi_r,
            next_payload: PayloadType(0),
            major: 2,
            minor: 0,
            exchange,
            flags,
            message_id: mid,
            length: 0,
        }
    }

    fn seal<R: CryptoRng>(
        &self,
        rng: &mut R,
        hdr: &Header,
        payloads: &[Payload],
    ) -> Result<Vec<u8>, IkeError> {
        let keys = self
            .keys
            .as_ref()
            .ok_or(IkeError::InvalidMessage("no keys yet"))?;
        sk::seal(hdr, payloads, &keys.out, rng)
    }

    /// Send an encrypted request and start its retransmission timer.
    pub(crate) fn send_request<R: CryptoRng>(
        &mut self,
        ctx: &mut Ctx<'_, R>,
        exchange: ExchangeType,
        payloads: &[Payload],
    ) -> Result<(), IkeError> {
        let mid = self.next_mid;
        let hdr = self.header(exchange, mid, false);
        let data = self.seal(ctx.rng, &hdr, payloads)?;
        self.next_mid = mid.wrapping_add(1);
        self.send_tracked(ctx, mid, exchange, data);
        Ok(())
    }

    /// Transmit a request (plain or sealed) and track it for retransmission.
    pub(crate) fn send_tracked<R>(
        &mut self,
        ctx: &mut Ctx<'_, R>,
        mid: u32,
        exchange: ExchangeType,
        data: Vec<u8>,
    ) {
        ctx.out.send(self.local, self.remote, data.clone());
        self.outstanding = Some(Box::new(Outstanding::new(
            ctx.now,
            &ctx.config.retransmit,
            mid,
            exchange,
            data,
        )));
    }

    /// Send an encrypted request once, without waiting for an answer (best-effort
    /// notification of a peer we are about to forget).
    pub(crate) fn send_unreliable<R: CryptoRng>(
        &mut self,
        ctx: &mut Ctx<'_, R>,
        exchange: ExchangeType,
        payloads: &[Payload],
    ) {
        let hdr = self.header(exchange, self.next_mid, false);
        if let Ok(data) = self.seal(ctx.rng, &hdr, payloads) {
            self.next_mid = self.next_mid.wrapping_add(1);
            ctx.out.send(self.local, self.remote, data);
        }
    }

    /// Send an encrypted response to the peer's request `mid` back along `path`, and cache
    /// it for retransmitted requests.
    pub(crate) fn send_response<R: CryptoRng>(
        &mut self,
        ctx: &mut Ctx<'_, R>,
        path: Path,
        exchange: ExchangeType,
        mid: u32,
        payloads: &[Payload],
    ) -> Result<(), IkeError> {
        let hdr = self.header(exchange, mid, true);
        let data = self.seal(ctx.rng, &hdr, payloads)?;
        ctx.out.send(path.local, path.remote, data.clone());
        // Not the print of any request: a response without one answers no retransmission.
        let request = self
            .peer_request
            .take()
            .map_or(RequestPrint { digest: [0; 32] }, |r| *r);
        self.cached_response = Some(CachedResponse { mid, request, data });
        self.peer_mid = mid.wrapping_add(1);
        Ok(())
    }

    /// Open the SK payload of a message for this SA.
    pub(crate) fn open(&self, data: &[u8], msg: &Message) -> Result<Vec<Payload>, sk::OpenError> {
        let keys = self.keys.as_ref().ok_or(sk::OpenError::NotEncrypted)?;
        sk::open(data, msg, &keys.inb)
    }

    /// Setup failed: report it; the returned state (dead) makes the endpoint forget the SA.
    #[must_use]
    pub(crate) fn fail<R>(&mut self, ctx: &mut Ctx<'_, R>, error: IkeError) -> State {
        ctx.out.events.push_back(Event::IkeSaFailed {
            id: self.id,
            conn: Some(self.conn.name.clone()),
            error,
        });
        self.outstanding = None;
        State::Dead
    }

    /// Report every CHILD_SA deleted, then the IKE SA; the returned state is dead.
    #[must_use]
    pub(crate) fn deleted<R>(&mut self, ctx: &mut Ctx<'_, R>, by_peer: bool) -> State {
        self.report_deleted(ctx.out, by_peer, None)
    }

    /// The peer lost this SA (INITIAL_CONTACT on a newer one): report it deleted by the peer.
    #[must_use]
    pub(crate) fn forget(&mut self, out: &mut Output) -> State {
        self.report_deleted(out, true, None)
    }

    fn report_deleted(
        &mut self,
        out: &mut Output,
        by_peer: bool,
        error: Option<IkeError>,
    ) -> State {
        for c in self.children.drain(..) {
            out.events.push_back(Event::ChildSaDeleted {
                id: self.id,
                conn: c.conn.name.clone(),
                spi_in: c.spi_in,
                spi_out: c.spi_out,
            });
        }
        if !self.redundant {
            out.events.push_back(Event::IkeSaDeleted {
                id: self.id,
                conn: self.conn.name.clone(),
                by_peer,
                error,
            });
        }
        self.outstanding = None;
        State::Dead
    }

    /// A request from the peer (any SA state after IKE_SA_INIT; always encrypted). `fresh`
    /// (id and SPI reserved by the endpoint) serves an IKE SA rekey, whose new SA is returned.
    pub(crate) fn on_request<R: CryptoRng>(
        &mut self,
        ctx: &mut Ctx<'_, R>,
        path: Path,
        data: &[u8],
        msg: &Message,
        fresh: Option<Fresh>,
    ) -> Option<IkeSa> {
        let mid = msg.header.message_id;
        if let Some(c) = &self.cached_response
            && c.mid == mid
            && mid.wrapping_add(1) == self.peer_mid
        {
            if c.answers(path, data) {
                ctx.out.send(path.local, path.remote, c.data.clone());
            } else {
                ctx.out.replays_refused += 1;
            }
            return None;
        }
        if mid != self.peer_mid {
            return None;
        }
        self.peer_request = Some(Box::new(RequestPrint::of(path, data)));
        let payloads = match self.open(data, msg) {
            Ok(p) => p,
            Err(sk::OpenError::Inner(e)) => {
                // Authentic but unparsable: tell the peer (RFC 7296 §2.5 / §3.10.1).
                let n = super::payloads::notify(e.notify(), Vec::new());
                let _ = self.send_response(ctx, path, msg.header.exchange, mid, &[n]);
                return None;
            }
            Err(_) => return None,
        };
        self.last_received = Some(ctx.now);
        if self.role == Role::Responder {
            // The responder follows the peer (e.g. its move to port 4500).
            let from = self.remote;
            self.local = path.local;
            self.remote = path.remote;
            if from != path.remote && self.nat_detected && !self.children.is_empty() {
                ctx.out.events.push_back(Event::PeerMoved {
                    id: self.id,
                    conn: self.conn.name.clone(),
                    from,
                    to: path.remote,
                });
            }
        }
        let exchange = msg.header.exchange;
        let mut born = None;
        let state = std::mem::replace(&mut self.state, State::Dead);
        self.state = match state {
            State::ExpectAuthRequest(st) if exchange == ExchangeType::IKE_AUTH => {
                (*st).process(self, ctx, path, mid, &payloads)
            }
            s @ (State::Established | State::Deleting)
                if exchange == ExchangeType::INFORMATIONAL =>
            {
                super::informational::respond(self, ctx, path, mid, &payloads, s)
            }
            s @ (State::Established | State::Deleting)
                if exchange == ExchangeType::CREATE_CHILD_SA =>
            {
                let established = matches!(s, State::Established);
                let answer = if super::ike_rekey::is_ike_rekey(&payloads) {
                    let (answer, new) =
                        super::ike_rekey::respond(self, ctx, &payloads, established, fresh);
                    born = new;
                    answer
                } else {
                    super::create_child_sa::respond(self, ctx, &payloads, established)
                };
                // An encoding failure leaves the request unanswered; the peer retransmits,
                // then gives up.
                let _ = self.send_response(ctx, path, ExchangeType::CREATE_CHILD_SA, mid, &answer);
                s
            }
            s => s,
        };
        born
    }

    /// A response to our outstanding request. `fresh` is the id the endpoint reserved for
    /// the new SA of an IKE SA rekey, which is returned.
    pub(crate) fn on_response<R: CryptoRng>(
        &mut self,
        ctx: &mut Ctx<'_, R>,
        path: Path,
        data: &[u8],
        msg: &Message,
        fresh: IkeSaId,
    ) -> Option<Born> {
        let out = self.outstanding.as_ref()?;
        if out.mid != msg.header.message_id || out.exchange != msg.header.exchange {
            return None;
        }
        let state = std::mem::replace(&mut self.state, State::Dead);
        if let State::ExpectSaInitResponse(st) = state {
            self.state = match st.process(self, ctx, path, data, msg) {
                InitOutcome::Done(init) => super::ike_auth::start(self, ctx, init),
                InitOutcome::Stay(state) => state,
            };
            return None;
        }
        let Ok(payloads) = self.open(data, msg) else {
            self.state = state;
            return None;
        };
        self.last_received = Some(ctx.now);
        self.outstanding = None;
        if !has_notify(&payloads, NotifyType::TEMPORARY_FAILURE)
            && let Some(rare) = self.rare.as_mut()
        {
            rare.busy_since = None;
        }
        let mut born = None;
        self.state = match state {
            State::ExpectAuthResponse(st) => (*st).process(self, ctx, &payloads),
            s @ (State::Established | State::Deleting)
                if self.in_flight == Some(Queued::RekeyIke) =>
            {
                born = super::ike_rekey::on_response(self, ctx, &payloads, fresh);
                s
            }
            s @ (State::Established | State::Deleting)
                if msg.header.exchange == ExchangeType::CREATE_CHILD_SA =>
            {
                super::create_child_sa::on_response(self, ctx, &payloads);
                s
            }
            s @ (State::Established | State::Deleting) => {
                super::informational::on_response(self, ctx, s)
            }
            s => s,
        };
        born
    }

    /// Earliest instant at which [`IkeSa::on_timeout`] has work.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        [
            self.outstanding.as_ref().map(|o| o.deadline()),
            self.half_open_deadline,
            self.rare().retry.map(|(at, _)| at),
            self.rare().replaced_delete_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Queue `q` again after a random delay (the peer answered TEMPORARY_FAILURE), or, if
    /// the peer has answered nothing else for [`TEMPORARY_FAILURE_LIMIT`], close the SA.
    pub(crate) fn retry_later<R: CryptoRng>(&mut self, ctx: &mut Ctx<'_, R>, q: Queued) {
        let since = *self.rare_mut().busy_since.get_or_insert(ctx.now);
        if ctx.now.saturating_duration_since(since) >= TEMPORARY_FAILURE_LIMIT {
            self.queue.push_front(Queued::DeleteIke);
            return;
        }
        let jitter = Duration::from_millis(ctx.rng.random_range(0..=RETRY_JITTER_MS));
        self.rare_mut().retry = Some((ctx.now + RETRY_MIN + jitter, q));
    }

    /// Hand the CHILD_SAs and the requests about them over to `new`, the successor of this
    /// IKE SA after a rekey.
    pub(crate) fn hand_over(&mut self, new: &mut IkeSa) {
        new.children.append(&mut self.children);
        // A pending rekey of this SA is moot now.
        let (moved, kept): (VecDeque<Queued>, VecDeque<Queued>) = self
            .queue
            .drain(..)
            .filter(|q| *q != Queued::RekeyIke)
            .partition(|q| q.concerns_children());
        new.queue.extend(moved);
        self.queue = kept;
        let Some(old) = self.rare.as_deref_mut() else {
            return;
        };
        let retry = match old.retry.take() {
            Some(r) if r.1.concerns_children() => Some(r),
            Some((_, Queued::RekeyIke)) | None => None,
            kept => {
                old.retry = kept;
                None
            }
        };
        if retry.is_none()
            && old.pending_children.is_empty()
            && old.virtual_ips.is_empty()
            && old.leases.is_empty()
            && old.dns_servers.is_empty()
        {
            return;
        }
        let rare = new.rare_mut();
        rare.pending_children.append(&mut old.pending_children);
        rare.virtual_ips.append(&mut old.virtual_ips);
        rare.leases.append(&mut old.leases);
        rare.dns_servers.append(&mut old.dns_servers);
        if retry.is_some() {
            rare.retry = retry;
        }
    }

    /// Whether a CHILD_SA of `conn` may ride this IKE SA: same addresses, identities (the
    /// peer's matching `conn`'s remote ID) and PSK for them, and the negotiated IKE proposal
    /// is one `conn` allows.
    pub(crate) fn can_carry(&self, conn: &ConnSpec) -> bool {
        let local_id = self.conn.local_id_at(self.local.ip());
        let (peer_id_ok, same_key) = match &self.remote_id {
            Some(peer) => {
                let key = self.conn.psk.get(&local_id, Some(peer));
                (
                    conn.remote_id_match(peer) != IdMatch::None,
                    key.is_some() && conn.psk.get(&local_id, Some(peer)) == key,
                )
            }
            None => (false, false),
        };
        conn.local_id_at(self.local.ip()) == local_id
            && peer_id_ok
            && same_key
            && conn.local_addr.is_none_or(|a| a == self.local.ip())
            && conn.remote_addr.is_none_or(|a| a == self.remote.ip())
            && self
                .keys
                .as_ref()
                .is_some_and(|k| k.suite.allowed(&conn.ike_proposals))
    }

    /// [`Event::IkeSaRekeyed`] for this new SA, the successor of `old`.
    pub(crate) fn rekeyed_event(&self, old: IkeSaId) -> Event {
        Event::IkeSaRekeyed {
            old,
            new: self.id,
            conn: self.conn.name.clone(),
            spi_i: self.spi_i,
            spi_r: self.spi_r,
            proposal: self
                .keys
                .as_ref()
                .map(|k| k.suite.name())
                .unwrap_or_default(),
            exported_keys: self.keys.as_ref().and_then(|k| k.exported.clone()),
        }
    }

    /// Retransmit, give up, retry, or expire a half-open SA.
    pub(crate) fn on_timeout<R: CryptoRng>(&mut self, ctx: &mut Ctx<'_, R>) {
        if self.half_open_deadline.is_some_and(|d| ctx.now >= d) && self.is_half_open() {
            self.state = self.fail(ctx, IkeError::HalfOpenTimeout);
            return;
        }
        if self
            .rare
            .as_mut()
            .and_then(|r| r.replaced_delete_at.take_if(|at| *at <= ctx.now))
            .is_some()
            && !self.queue.contains(&Queued::DeleteIke)
        {
            self.queue.push_back(Queued::DeleteIke);
        }
        if let Some((_, q)) = self
            .rare
            .as_mut()
            .and_then(|r| r.retry.take_if(|(at, _)| *at <= ctx.now))
            && !self.queue.contains(&q)
        {
            self.queue.push_front(q);
        }
        let Some(out) = self.outstanding.as_mut() else {
            return;
        };
        match out.expire(ctx.now, &ctx.config.retransmit) {
            None => {}
            Some(Expiry::Retransmit) => {
                ctx.out.send(self.local, self.remote, out.datagram.clone());
                ctx.out.events.push_back(Event::Retransmit {
                    id: self.id,
                    conn: self.conn.name.clone(),
                    remote: self.remote,
                    attempt: out.retransmits(),
                    of: ctx.config.retransmit.tries,
                    next_in: out.deadline().saturating_duration_since(ctx.now),
                });
            }
            Some(Expiry::GiveUp { tries }) => {
                let error = IkeError::PeerNotResponding { tries };
                self.state = match self.state {
                    State::Established | State::Deleting => {
                        self.report_deleted(ctx.out, false, Some(error))
                    }
                    _ => self.fail(ctx, error),
                };
            }
        }
    }

    /// Send the next queued request if the window is free.
    pub(crate) fn pump<R: CryptoRng>(&mut self, ctx: &mut Ctx<'_, R>) {
        if self.outstanding.is_some() || !matches!(self.state, State::Established) {
            return;
        }
        while let Some(q) = self.queue.pop_front() {
            if self.send_queued(ctx, q) {
                break;
            }
        }
    }

    /// The protocol (ESP or AH) of our CHILD_SA with inbound SPI `spi_in`; for one we never
    /// installed (a refused answer), the protocol this SA's conn proposes.
    fn child_protocol(&self, spi_in: u32) -> crate::kernel::IpsecProto {
        self.children
            .iter()
            .find(|c| c.spi_in == spi_in)
            .map_or_else(|| self.conn.child_protocol(), |c| c.suite.protocol)
    }

    /// Send a queued request (the window is free and the SA is established). Returns false
    /// if the request turned out to be moot (a rekey of a CHILD_SA that is gone or replaced).
    fn send_queued<R: CryptoRng>(&mut self, ctx: &mut Ctx<'_, R>, q: Queued) -> bool {
        let payloads = match q {
            Queued::RekeyChild(spi) => return super::create_child_sa::send_rekey(self, ctx, spi),
            Queued::RekeyIke => return super::ike_rekey::send_request(self, ctx),
            Queued::CreateChild => return super::create_child_sa::send_new(self, ctx),
            Queued::DeleteChild(spi) => {
                vec![delete_child_payload(self.child_protocol(spi), &[spi])]
            }
            Queued::DeleteIke => vec![delete_ike_payload()],
            Queued::Liveness => Vec::new(),
        };
        match self.send_request(ctx, ExchangeType::INFORMATIONAL, &payloads) {
            Ok(()) => {
                self.in_flight = Some(q);
                if q == Queued::DeleteIke {
                    self.state = State::Deleting;
                }
            }
            Err(_) if q == Queued::DeleteIke => self.state = self.deleted(ctx, false),
            Err(_) => {}
        }
        true
    }

    /// Public snapshot.
    pub(crate) fn status(&self) -> IkeSaStatus {
        let state = match self.state {
            State::ExpectSaInitResponse(_) => IkeSaState::Connecting,
            State::ExpectAuthResponse(_) | State::ExpectAuthRequest(_) => {
                IkeSaState::Authenticating
            }
            State::Established => IkeSaState::Established,
            State::Deleting | State::Dead => IkeSaState::Deleting,
        };
        IkeSaStatus {
            id: self.id,
            conn: self.conn.name.clone(),
            state,
            role: self.role,
            spi_i: self.spi_i,
            spi_r: self.spi_r,
            local: self.local,
            remote: self.remote,
            local_id: self.conn.local_id_at(self.local.ip()),
            remote_id: self.remote_id.clone(),
            proposal: self
                .keys
                .as_ref()
                .map(|k| k.suite)
                .or(self.pending_keys.as_ref().map(|p| p.suite))
                .map(|s| s.name()),
            established_at: self.established_at,
            last_received: self.last_received,
            nat_detected: self.nat_detected,
            behind_nat: self.behind_nat,
            virtual_ips: self.rare().virtual_ips.clone(),
            peer_virtual_ips: self.rare().leases.iter().map(|(_, a)| *a).collect(),
            dns_servers: self.rare().dns_servers.clone(),
            children: self
                .children
                .iter()
                .map(|c| ChildSaStatus {
                    spi_in: c.spi_in,
                    spi_out: c.spi_out,
                    mode: c.mode,
                    local_ts: c.local_ts.clone(),
                    remote_ts: c.remote_ts.clone(),
                    algorithms: c.suite.name(),
                    replaced: c.replaced,
                })
                .collect(),
        }
    }
}
