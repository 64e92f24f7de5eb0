//! Sans-IO IKEv2 engine: IKE_SA_INIT, IKE_AUTH with PSK, the first CHILD_SA, INFORMATIONAL
//! (Delete, liveness), CREATE_CHILD_SA (both roles) rekeying CHILD_SAs and the IKE SA and
//! adding CHILD_SAs, with PFS. No sockets, clock, global RNG or kernel: the
//! caller feeds datagrams, commands and the current time, and drains datagrams, events and the
//! next deadline (quinn-proto style).
//!
//! # Driving an [`Endpoint`]
//!
//! ```text
//! Endpoint::new(config: EndpointConfig, rng: R /* R: rand::CryptoRng */,
//!               spis: Box<dyn SpiAllocator + Send>) -> Endpoint<R>
//! fn set_conns(&mut self, conns: Vec<ConnSpec>)             // reload; existing SAs keep their copy
//! fn set_config(&mut self, config: EndpointConfig)          // reload of the daemon settings
//! fn initiate(&mut self, now: Instant, conn: &str) -> Result<IkeSaId, IkeError>
//! fn handle_datagram(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, data: &[u8])
//! fn handle_timeout(&mut self, now: Instant)                // call when poll_timeout() has passed
//! fn poll_transmit(&mut self) -> Option<Transmit>           // Transmit { local, remote, data }
//! fn poll_timeout(&self) -> Option<Instant>
//! fn poll_event(&mut self) -> Option<Event>
//! fn delete_ike_sa(&mut self, now: Instant, id: IkeSaId) -> Result<(), IkeError>
//! fn delete_conn(&mut self, now: Instant, conn: &str) -> usize
//! fn check_liveness(&mut self, now: Instant, id: IkeSaId) -> Result<(), IkeError>   // DPD
//! fn rekey_child(&mut self, now: Instant, id: IkeSaId, spi_in: u32) -> Result<(), IkeError>
//! fn rekey_ike(&mut self, now: Instant, id: IkeSaId) -> Result<(), IkeError>
//! fn create_child(&mut self, now: Instant, id: IkeSaId, conn: &str) -> Result<(), IkeError>
//! fn delete_child(&mut self, now: Instant, id: IkeSaId, spi_in: u32) -> Result<(), IkeError>
//! fn ike_sas(&self) -> Vec<IkeSaStatus>
//! fn leases(&self) -> Vec<PoolLease>                       // virtual IPs given from pools
//! ```
//!
//! After every `initiate` / `handle_datagram` / `handle_timeout` / `delete_*` call, drain
//! `poll_transmit` and `poll_event`, then sleep until `poll_timeout`.
//!
//! * Datagrams are IKE messages without the non-ESP marker (the daemon strips/prepends it
//!   on port 4500). A request is answered from the `local` address it arrived at to the
//!   `remote` it came from; a responder IKE SA follows the peer's address/port. The initiator
//!   sends from `ConnSpec::local_addr:local_port` to `remote_addr:remote_port`.
//! * Events: [`Event::IkeSaEstablished`], [`Event::IkeSaFailed`] (never established; also
//!   on AUTH failure), [`Event::InitRefused`] (a new IKE_SA_INIT refused, challenged with a
//!   COOKIE or dropped, naming the peer), [`Event::Retransmit`], [`Event::PeerMoved`],
//!   [`Event::ChildSaReady`] (everything XFRM needs), [`Event::ChildSaFailed`] (IKE SA stays
//!   up), [`Event::ChildSaDeleted`] (remove from the kernel), [`Event::IkeSaRekeyed`],
//!   [`Event::IkeSaRekeyFailed`], [`Event::IkeSaDeleted`] (after the ChildSaDeleted events
//!   of its children).
//! * `delete_ike_sa` on an established SA sends INFORMATIONAL Delete(IKE) and reports
//!   ChildSaDeleted…+IkeSaDeleted{by_peer:false} when answered or when retransmits give up;
//!   on an SA still being set up it drops it (best-effort Delete if keys exist) and reports
//!   `IkeSaFailed { error: IkeError::DeletedLocally }`.
//! * Retransmission: [`RetransmitPolicy`] (default 4 s × 1.8ⁿ, 5 retransmits, give up at
//!   ≈165 s → `IkeSaFailed { error: PeerNotResponding { tries: 5 } }`, or on an established
//!   SA — a liveness check, a rekey, a Delete — ChildSaDeleted… and `IkeSaDeleted { error:
//!   Some(PeerNotResponding { tries: 5 }) }`). A request answered TEMPORARY_FAILURE is
//!   repeated 2–10 s later (random); after 5 minutes of nothing else the IKE SA is deleted.
//!   A request answered INVALID_KE_PAYLOAD is repeated once with the asked-for group.
//! * Responder: half-open SAs are bounded by [`EndpointConfig::max_half_open`], need a
//!   COOKIE from [`EndpointConfig::cookie_threshold`] on, and expire after
//!   [`EndpointConfig::half_open_timeout`]; retransmitted requests get the cached
//!   response.
//! * CREATE_CHILD_SA for CHILD_SAs in both roles (`create_child_sa.rs`): rekeys
//!   ([`Endpoint::rekey_child`]; the new child's [`ChildSaReady::rekeyed_from`] names the
//!   old pair, which is deleted next by the rekey's initiator; simultaneous rekeys resolved
//!   by the lowest nonce, RFC 7296 §2.8.1) and additional CHILD_SAs of another conn with the
//!   same peer ([`Endpoint::create_child`]; a responder picks the conn by the selectors).
//!   Each CHILD_SA belongs to its own conn (`ChildSaReady::conn`). PFS with the groups of
//!   the conn's ESP proposals ([`EspProposal::dh`]), both roles.
//! * IKE SA rekey in both roles (`ike_rekey.rs`, RFC 7296 §2.18; [`Endpoint::rekey_ike`]):
//!   the new IKE SA (new id, message IDs from 0) takes over every CHILD_SA of the old one
//!   (no kernel change), reported as [`Event::IkeSaRekeyed`]; the old SA stays, childless,
//!   until its initiator deletes it (its IkeSaDeleted comes without ChildSaDeleted).
//!   Simultaneous IKE SA rekeys: the exchange with the lowest nonce made the redundant SA,
//!   which its initiator deletes unreported (§2.8.2). Collisions with other exchanges get
//!   TEMPORARY_FAILURE (§2.25.2), except a Delete, which wins.
//! * Reauthentication (make-before-break) is the caller's: `initiate` again while the old
//!   SA is up (no INITIAL_CONTACT then), `delete_ike_sa` the old one once the new is ready.
//! * INITIAL_CONTACT: the initiator sends it when no other IKE SA of the conn exists; a
//!   responder receiving it reports the peer's older SAs of the same conn and identity deleted
//!   (`ChildSaDeleted`…, `IkeSaDeleted { by_peer: true }`) before the new SA's events.
//! * NAT: NAT_DETECTION_* both ways, reported as `nat_detected`; with a NAT (or
//!   `force_encaps`, which fakes our NAT_DETECTION_SOURCE_IP) the initiator floats to
//!   [`EndpointConfig::natt_port`] after IKE_SA_INIT, and a responder follows a peer whose
//!   NAT mapping changed ([`Event::PeerMoved`]). With a NAT
//!   in the way and no configured peer selectors, the responder takes the initiator's proposed
//!   host selectors as its dynamic ones.
//! * Virtual IPs (RFC 7296 §3.15): a conn with [`ConnSpec::request_vips`] sends CP(CFG_REQUEST)
//!   in IKE_AUTH and reports the assigned addresses (`IkeSaEstablished::virtual_ips`); a
//!   responder conn with [`ConnSpec::pools`] leases per peer identity from pools the endpoint
//!   owns ([`Endpoint::leases`]), narrows the peer's selector to the lease, releases it when the
//!   IKE SA goes, and answers INTERNAL_ADDRESS_FAILURE (no first CHILD_SA) when the pool is full.
//! * Initiating requires `local_addr` and `remote_addr` in the [`ConnSpec`].
//!
//! # Types
//!
//! The public types ([`ConnSpec`], [`EndpointConfig`], [`Event`], [`ChildSaReady`],
//! [`IkeSaStatus`], [`IkeError`], ...) document their fields where they are defined.

mod child;
mod conn;
mod create_child_sa;
mod error;
mod event;
mod ike_auth;
mod ike_rekey;
mod ike_sa_init;
mod informational;
mod key_pairs;
mod natd;
mod payloads;
mod pool;
mod proposal;
mod psk;
mod sa;
mod sk;
mod timer;
mod ts;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::CryptoRng;

/// The CHILD_SA mode is the kernel layer's plain data type, so no conversion is needed between
/// the engine's events and an install.
pub use crate::kernel::{IpsecProto, Mode};
pub use conn::{
    ConnSpec, EndpointConfig, EspProposal, IkeProposal, RandomSpis, SpiAllocator, UniqueIds,
};
pub use error::{IkeError, SpiError};
pub use event::{
    ChildDirKeys, ChildSaReady, ChildSaStatus, Event, IkeSaExportedKeys, IkeSaId, IkeSaState,
    IkeSaStatus, InitRefusal, Role, Transmit,
};
pub use key_pairs::{Agreement, DhOffload};
pub use pool::PoolLease;
pub use psk::{PskLookup, Psks};
pub use timer::RetransmitPolicy;
pub(crate) use ts::configured_or_host;

use crate::wire::{ExchangeType, Header, Message, WireError};
use sa::{Born, Ctx, IkeSa, Output, Path, Queued, State};

/// How long a responder lets a peer delete, itself, an IKE SA it has just replaced from the
/// same address (make-before-break reauthentication) before deleting it under `uniqueids`.
pub const REAUTH_GRACE: Duration = Duration::from_secs(10);

/// A handler context borrowing the endpoint's shared parts (field-wise, so that an SA of
/// `sas` can be borrowed at the same time).
macro_rules! ctx {
    ($ep:ident, $now:expr) => {
        Ctx {
            now: $now,
            rng: &mut $ep.rng,
            keys: &mut $ep.keys,
            spis: $ep.spis.as_mut(),
            config: &$ep.config,
            conns: &$ep.conns,
            out: &mut $ep.out,
            ike_spis: &$ep.by_spi,
            pools: &mut $ep.pools,
        }
    };
}

/// Owns all IKE SAs of this host and demultiplexes datagrams to them by SPI.
pub struct Endpoint<R> {
    config: EndpointConfig,
    rng: R,
    spis: Box<dyn SpiAllocator + Send>,
    keys: key_pairs::KeyPairs,
    conns: Vec<Arc<ConnSpec>>,
    /// Boxed: a B-tree node holds many slots, half of them empty after inserts in id order.
    sas: BTreeMap<IkeSaId, Box<IkeSa>>,
    /// Our own SPI (SPIi when we initiated, SPIr when we responded) → SA.
    by_spi: HashMap<[u8; 8], IkeSaId>,
    /// Responder SAs by (SPIi, peer address), to recognise retransmitted IKE_SA_INIT requests.
    by_init: HashMap<([u8; 8], SocketAddr), IkeSaId>,
    next_id: u64,
    out: Output,
    /// Key of the stateless IKE_SA_INIT cookies.
    cookie_secret: zeroize::Zeroizing<Vec<u8>>,
    /// Half-open responder SAs, counted as they come and go (no scan per request).
    half_open: HalfOpen,
    stats: ResponderStats,
    /// What each SA is filed under in the indexes below, as of its last change (boxed: a big
    /// table's free slots then cost a pointer each).
    filed: HashMap<IkeSaId, Box<Filed>>,
    /// SAs by their next deadline: `poll_timeout` and `handle_timeout` look only at the front.
    deadlines: BTreeSet<(Instant, IkeSaId)>,
    /// SAs by a digest of (conn, authenticated peer identity), for INITIAL_CONTACT: in id
    /// order, a vector (usually of one) rather than a set (a B-tree node holds eleven). A
    /// digest, not a copy of the names per SA; a lookup checks each SA's own conn and peer.
    by_peer: HashMap<u64, Vec<IkeSaId>>,
    /// Keys the `by_peer` digest (per endpoint, so that peers cannot aim at one list).
    peer_digest: std::hash::RandomState,
    /// How many IKE SAs each conn has (whether an initiate sends INITIAL_CONTACT).
    per_conn: HashMap<String, usize>,
    /// The IKE SA holding each CHILD_SA, by inbound SPI.
    by_child: HashMap<u32, IkeSaId>,
    /// Virtual IP pools (`rightsourceip`) and their leases.
    pools: pool::AddressPools,
}

/// The index entries of one SA, so that they can be removed when it changes or goes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Filed {
    deadline: Option<Instant>,
    /// The `by_peer` digest of its conn and authenticated peer identity.
    peer: Option<u64>,
    conn: String,
    /// The `by_init` key it was inserted under (responder SAs).
    init: Option<([u8; 8], SocketAddr)>,
    /// Inbound SPIs of its CHILD_SAs.
    children: Vec<u32>,
}

/// What the responder refused or challenged since start, for `ikectl status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResponderStats {
    /// Half-open responder IKE SAs now.
    pub half_open: usize,
    /// COOKIE challenges sent.
    pub cookies_sent: u64,
    /// IKE_SA_INIT requests dropped: too many half-open SAs of that address.
    pub dropped_per_ip: u64,
    /// IKE_SA_INIT requests dropped: too many half-open SAs in all.
    pub dropped_total: u64,
    /// Requests that named an SA and message ID but were not a retransmission of the
    /// request answered (other source or other bytes): not answered from the cache.
    pub replays_refused: u64,
}

/// Half-open responder SAs by SA and by peer address.
#[derive(Debug, Default)]
struct HalfOpen {
    by_sa: HashMap<IkeSaId, IpAddr>,
    by_ip: HashMap<IpAddr, usize>,
}

impl HalfOpen {
    fn total(&self) -> usize {
        self.by_sa.len()
    }

    fn of(&self, ip: IpAddr) -> usize {
        self.by_ip.get(&ip).copied().unwrap_or(0)
    }

    /// Records whether SA `id` is half-open now (`Some(peer address)`) or not.
    fn set(&mut self, id: IkeSaId, now: Option<IpAddr>) {
        match (self.by_sa.get(&id).copied(), now) {
            (None, Some(ip)) => {
                self.by_sa.insert(id, ip);
                *self.by_ip.entry(ip).or_default() += 1;
            }
            (Some(ip), None) => {
                self.by_sa.remove(&id);
                if let Some(n) = self.by_ip.get_mut(&ip) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.by_ip.remove(&ip);
                    }
                }
            }
            _ => {}
        }
    }
}

impl<R> std::fmt::Debug for Endpoint<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("conns", &self.conns.len())
            .field("ike_sas", &self.sas.len())
            .finish_non_exhaustive()
    }
}

impl<R: CryptoRng> Endpoint<R> {
    /// A new endpoint without conns.
    pub fn new(config: EndpointConfig, mut rng: R, spis: Box<dyn SpiAllocator + Send>) -> Self {
        let mut cookie_secret = zeroize::Zeroizing::new(vec![0u8; 32]);
        rng.fill_bytes(&mut cookie_secret);
        Self {
            cookie_secret,
            config,
            rng,
            spis,
            keys: key_pairs::KeyPairs::default(),
            conns: Vec::new(),
            sas: BTreeMap::new(),
            by_spi: HashMap::new(),
            by_init: HashMap::new(),
            next_id: 1,
            out: Output::default(),
            half_open: HalfOpen::default(),
            stats: ResponderStats::default(),
            filed: HashMap::new(),
            deadlines: BTreeSet::new(),
            by_peer: HashMap::new(),
            peer_digest: std::hash::RandomState::new(),
            pools: pool::AddressPools::default(),
            per_conn: HashMap::new(),
            by_child: HashMap::new(),
        }
    }

    /// Replace the endpoint's settings (a reload): retransmissions, half-open limits and
    /// cookies follow the new values from now on, for existing SAs too.
    pub fn set_config(&mut self, config: EndpointConfig) {
        self.config = config;
    }

    /// Hand Diffie-Hellman work to `offload` (e.g. threads on other cores): key pairs are
    /// taken from it whenever it has one ready (else the endpoint makes its own), and a
    /// responder's IKE_SA_INIT shared secret is computed by it and collected when the IKE
    /// SA's keys are first needed.
    pub fn set_dh_offload(&mut self, offload: Box<dyn DhOffload>) {
        self.keys.set_source(offload);
    }

    /// Replace the conn definitions. Existing IKE SAs keep the definition they started with.
    pub fn set_conns(&mut self, conns: Vec<ConnSpec>) {
        self.conns = conns.into_iter().map(Arc::new).collect();
    }

    fn alloc_id(&mut self) -> IkeSaId {
        let id = IkeSaId(self.next_id);
        self.next_id = self.next_id.wrapping_add(1);
        id
    }

    /// A fresh, non-zero IKE SPI not used by any of our SAs.
    fn alloc_spi(&mut self) -> [u8; 8] {
        loop {
            let mut spi = [0u8; 8];
            self.rng.fill_bytes(&mut spi);
            if spi != [0; 8] && !self.by_spi.contains_key(&spi) {
                return spi;
            }
        }
    }

    fn insert(&mut self, sa: IkeSa) {
        let init = (sa.role == Role::Responder).then_some((sa.spi_i, sa.remote));
        if let Some(key) = init {
            self.by_init.insert(key, sa.id);
        }
        self.by_spi.insert(sa.local_spi(), sa.id);
        let id = sa.id;
        self.sas.insert(id, Box::new(sa));
        self.reindex(id, init);
    }

    /// Brings every index in line with SA `id` after it changed, was inserted (`init`: its
    /// `by_init` key) or went away. Each SA change runs through here, so no request, timer
    /// or INITIAL_CONTACT has to scan all SAs.
    fn reindex(&mut self, id: IkeSaId, init: Option<([u8; 8], SocketAddr)>) {
        let old = self.filed.remove(&id);
        let new = self.sas.get(&id).map(|sa| Filed {
            deadline: sa.next_deadline(),
            peer: sa
                .remote_id
                .as_ref()
                .map(|peer| self.peer_digest.hash_one((sa.conn.name.as_str(), peer))),
            conn: sa.conn.name.clone(),
            init: init.or_else(|| old.as_ref().and_then(|o| o.init)),
            children: sa.children.iter().map(|c| c.spi_in).collect(),
        });
        self.half_open.set(
            id,
            self.sas
                .get(&id)
                .filter(|sa| sa.is_half_open())
                .map(|sa| sa.remote.ip()),
        );
        if old.as_deref() == new.as_ref() {
            if let Some(f) = old {
                self.filed.insert(id, f);
            }
            return;
        }
        if let Some(o) = old.map(|o| *o) {
            if let Some(d) = o.deadline {
                self.deadlines.remove(&(d, id));
            }
            if let Some(key) = o.peer
                && let Some(set) = self.by_peer.get_mut(&key)
            {
                set.retain(|&s| s != id);
                if set.is_empty() {
                    self.by_peer.remove(&key);
                }
            }
            for spi in &o.children {
                // A rekeyed IKE SA's CHILD_SAs may already be filed under its successor.
                if self.by_child.get(spi) == Some(&id) {
                    self.by_child.remove(spi);
                }
            }
            if let Some(n) = self.per_conn.get_mut(&o.conn) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.per_conn.remove(&o.conn);
                }
            }
            if new.is_none()
                && let Some(key) = o.init
                && self.by_init.get(&key) == Some(&id)
            {
                self.by_init.remove(&key);
            }
        }
        if let Some(f) = new {
            if let Some(d) = f.deadline {
                self.deadlines.insert((d, id));
            }
            if let Some(key) = f.peer {
                let set = self
                    .by_peer
                    .entry(key)
                    .or_insert_with(|| Vec::with_capacity(1));
                if let Err(at) = set.binary_search(&id) {
                    set.insert(at, id);
                }
            }
            *self.per_conn.entry(f.conn.clone()).or_default() += 1;
            for spi in &f.children {
                self.by_child.insert(*spi, id);
            }
            self.filed.insert(id, Box::new(f));
        }
    }

    fn remove_if_dead(&mut self, id: IkeSaId) {
        if self.sas.get(&id).is_some_and(|sa| sa.is_dead())
            && let Some(sa) = self.sas.remove(&id)
        {
            self.by_spi.remove(&sa.local_spi());
            for (net, addr) in sa.rare.map(|r| r.leases).unwrap_or_default() {
                self.pools.release(net, addr);
            }
        }
        self.reindex(id, None);
    }

    /// Run `f` on one SA with a handler context, then send queued requests and reap it if dead.
    fn with_sa(&mut self, now: Instant, id: IkeSaId, f: impl FnOnce(&mut IkeSa, &mut Ctx<'_, R>)) {
        let Some(sa) = self.sas.get_mut(&id) else {
            return;
        };
        let mut ctx = ctx!(self, now);
        if sa.finish_keys(&mut ctx) {
            f(sa, &mut ctx);
        }
        sa.pump(&mut ctx);
        self.stats.replays_refused += ctx.out.replays_refused;
        ctx.out.replays_refused = 0;
        self.remove_if_dead(id);
    }

    /// A copy of the conn named `name`.
    fn conn_spec(&self, name: &str) -> Result<Arc<ConnSpec>, IkeError> {
        self.conns
            .iter()
            .find(|c| c.name == name)
            .cloned()
            .ok_or_else(|| IkeError::UnknownConn(name.to_string()))
    }

    /// Start an IKE SA (and its CHILD_SA) for `conn`.
    pub fn initiate(&mut self, now: Instant, conn: &str) -> Result<IkeSaId, IkeError> {
        let spec = self.conn_spec(conn)?;
        self.start(now, spec)
    }

    /// Start an IKE SA of `conn` to `remote`: for a conn without a fixed peer (`right=%any`),
    /// whose trap policy's ACQUIRE named the destination.
    pub fn initiate_to(
        &mut self,
        now: Instant,
        conn: &str,
        remote: IpAddr,
    ) -> Result<IkeSaId, IkeError> {
        let spec = self.conn_spec(conn)?;
        if spec.remote_addr.is_some_and(|a| a != remote) {
            return Err(IkeError::CannotInitiate(spec.name.clone()));
        }
        // This IKE SA's own copy of the conn, with the peer filled in.
        let mut own = ConnSpec::clone(&spec);
        own.remote_addr = Some(remote);
        self.start(now, Arc::new(own))
    }

    fn start(&mut self, now: Instant, spec: Arc<ConnSpec>) -> Result<IkeSaId, IkeError> {
        let id = self.alloc_id();
        let spi = self.alloc_spi();
        let mut ctx = ctx!(self, now);
        let mut sa = ike_sa_init::initiate(&mut ctx, id, &spec, spi)?;
        sa.initial_contact = !self.per_conn.contains_key(&spec.name);
        self.insert(sa);
        Ok(id)
    }

    /// Feed one received IKE message (`local` = where it arrived, `remote` = its source).
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) {
        let path = Path { local, remote };
        let msg = match Message::parse(data) {
            Ok(msg) => msg,
            Err(WireError::InvalidMajorVersion(major)) if major > Header::MAJOR_VERSION => {
                if let Ok(h) = Header::parse(data) {
                    ike_sa_init::refuse_major_version(&mut ctx!(self, now), path, &h);
                }
                return;
            }
            Err(_) => return,
        };
        let h = &msg.header;
        if h.exchange == ExchangeType::IKE_SA_INIT && !h.is_response() {
            // SPIi 0 is not a valid initiator SPI (RFC 7296 §3.1): no state for it.
            if h.spi_r == [0; 8] && h.spi_i != [0; 8] {
                self.on_sa_init_request(now, path, data, &msg);
            }
            return;
        }
        // The original initiator sets the I flag; our SPI is the other side's counterpart.
        let (our_spi, our_role) = if h.is_initiator() {
            (h.spi_r, Role::Responder)
        } else {
            (h.spi_i, Role::Initiator)
        };
        let Some(&id) = self.by_spi.get(&our_spi) else {
            return;
        };
        let Some(sa) = self.sas.get(&id) else { return };
        let known_r = sa.spi_r == [0; 8] || sa.spi_r == h.spi_r;
        if sa.role != our_role || sa.spi_i != h.spi_i || !known_r {
            return;
        }
        // Reserved for an IKE SA rekey (the id is only used up when the rekey succeeds).
        let fresh = (h.exchange == ExchangeType::CREATE_CHILD_SA && !h.is_response())
            .then(|| (IkeSaId(self.next_id), self.alloc_spi()));
        // For the new SA when our IKE SA rekey is answered.
        let fresh_id = IkeSaId(self.next_id);
        let mark = self.out.events.len();
        let mut born = None;
        self.with_sa(now, id, |sa, ctx| {
            born = if msg.header.is_response() {
                sa.on_response(ctx, path, data, &msg, fresh_id)
            } else {
                sa.on_request(ctx, path, data, &msg, fresh).map(|sa| Born {
                    sa,
                    adopt_from: None,
                })
            };
        });
        if let Some(b) = born {
            self.born(now, b);
        }
        self.on_authenticated(now, id, mark);
    }

    /// Take in the new SA of an IKE SA rekey (its id was reserved as the next one).
    fn born(&mut self, now: Instant, mut b: Born) {
        self.alloc_id();
        if let Some(from) = b.adopt_from
            && let Some(old) = self.sas.get_mut(&from)
        {
            old.hand_over(&mut b.sa);
            self.out.events.push_back(b.sa.rekeyed_event(from));
            self.reindex(from, None);
        }
        let id = b.sa.id;
        self.insert(b.sa);
        // Send what it has queued (the Delete of a redundant SA).
        self.with_sa(now, id, |_, _| {});
    }

    /// Responder SA `id` has just authenticated its peer. With INITIAL_CONTACT the peer lost
    /// its state, so its other IKE SAs (same conn and identity) are gone without notice: they
    /// are forgotten (unless `uniqueids=never`), their deletion events reported before the new
    /// SA's (inserted at event index `mark`). Without it, `uniqueids=yes|replace` deletes the
    /// older SAs with a Delete to the peer, and `keep` deletes the new one instead.
    fn on_authenticated(&mut self, now: Instant, id: IkeSaId, mark: usize) {
        let Some(sa) = self.sas.get_mut(&id) else {
            return;
        };
        if sa.role != Role::Responder || !std::mem::take(&mut sa.authenticated) {
            return;
        }
        let contact = std::mem::take(&mut sa.initial_contact);
        let Some(peer) = sa.remote_id.clone() else {
            return;
        };
        let (conn, from) = (sa.conn.name.clone(), sa.remote.ip());
        let key = self.peer_digest.hash_one((conn.as_str(), &peer));
        let same_peer = |s: &IkeSa| s.conn.name == conn && s.remote_id.as_ref() == Some(&peer);
        let others: Vec<IkeSaId> = self
            .by_peer
            .get(&key)
            .into_iter()
            .flatten()
            .copied()
            .filter(|&s| s != id && self.sas.get(&s).is_some_and(|s| same_peer(s)))
            .collect();
        if others.is_empty() {
            return;
        }
        match (self.config.unique_ids, contact) {
            (UniqueIds::Never, _) | (UniqueIds::No, false) => {}
            (_, true) => {
                let mut gone = Output::default();
                for old in others {
                    if let Some(sa) = self.sas.get_mut(&old) {
                        sa.state = sa.forget(&mut gone);
                    }
                    self.remove_if_dead(old);
                }
                for (i, e) in gone.events.into_iter().enumerate() {
                    self.out.events.insert(mark + i, e);
                }
            }
            (UniqueIds::Yes | UniqueIds::Replace, false) => {
                // Reported before the new SA's establishment and CHILD_SA, so the daemon
                // knows the new CHILD_SA replaces the old SA's when it installs it.
                let mut at = mark;
                for old in others {
                    let Some(o) = self.sas.get_mut(&old) else {
                        continue;
                    };
                    // From the same address this is most likely a make-before-break
                    // reauthentication: the peer deletes the old SA itself once its new
                    // CHILD_SAs are installed; deleting it now would race with that.
                    let grace = if o.remote.ip() == from {
                        o.rare_mut().replaced_delete_at = Some(now + REAUTH_GRACE);
                        self.reindex(old, None);
                        REAUTH_GRACE
                    } else {
                        let _ = self.delete_ike_sa(now, old);
                        Duration::ZERO
                    };
                    self.out.events.insert(
                        at,
                        Event::DuplicateIkeSa {
                            old,
                            new: id,
                            conn: conn.clone(),
                            delete_in: grace,
                        },
                    );
                    at += 1;
                }
            }
            (UniqueIds::Keep, false) => {
                let _ = self.delete_ike_sa(now, id);
            }
        }
    }

    /// A new IKE_SA_INIT request. In order: a retransmission is answered from the cache (same
    /// source and bytes only); under load (many half-open SAs in all, or from this address) the
    /// request must echo a stateless COOKIE; only then the per-address and total caps apply, so
    /// spoofed floods never reach the caps and one address that answers cookies holds at most
    /// `max_half_open_per_ip` of them.
    fn on_sa_init_request(&mut self, now: Instant, path: Path, data: &[u8], msg: &Message) {
        if let Some(id) = self.by_init.get(&(msg.header.spi_i, path.remote)) {
            // Retransmission: answer from the cache while IKE_AUTH has not moved on.
            if let Some(sa) = self.sas.get(id)
                && let Some(c) = sa.cached_response.as_ref().filter(|c| c.mid == 0)
            {
                if c.answers(path, data) {
                    self.out.send(path.local, path.remote, c.data.clone());
                } else {
                    self.stats.replays_refused += 1;
                }
            }
            return;
        }
        let peer = path.remote.ip();
        let (total, of_peer) = (self.half_open.total(), self.half_open.of(peer));
        let id = IkeSaId(self.next_id);
        let mut ctx = ctx!(self, now);
        let refused = |out: &mut Output, reason| {
            out.events.push_back(Event::InitRefused {
                peer: path.remote,
                conn: None,
                reason,
            });
        };
        if (total >= self.config.cookie_threshold || of_peer >= self.config.cookie_threshold_ip)
            && !ike_sa_init::check_cookie(&mut ctx, path, msg, &self.cookie_secret)
        {
            self.stats.cookies_sent += 1;
            refused(&mut self.out, InitRefusal::Cookie);
            return;
        }
        if of_peer >= self.config.max_half_open_per_ip {
            self.stats.dropped_per_ip += 1;
            refused(&mut self.out, InitRefusal::TooManyFromPeer);
            return;
        }
        if total >= self.config.max_half_open {
            self.stats.dropped_total += 1;
            refused(&mut self.out, InitRefusal::TooMany);
            return;
        }
        let spi_r = self.alloc_spi();
        let mut ctx = ctx!(self, now);
        if let Some((mut sa, init)) = ike_sa_init::respond(&mut ctx, id, spi_r, path, data, msg) {
            self.alloc_id();
            sa.state = State::ExpectAuthRequest(Box::new(ike_auth::ExpectAuthRequest::new(init)));
            self.insert(sa);
        }
    }

    /// The responder's refusals and challenges so far, and the half-open SAs now.
    #[must_use]
    pub fn responder_stats(&self) -> ResponderStats {
        ResponderStats {
            half_open: self.half_open.total(),
            ..self.stats
        }
    }

    /// Retransmit, give up, expire half-open SAs: everything due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.keys.forget_reused(now, self.config.dh_reuse);
        let due: Vec<IkeSaId> = self
            .deadlines
            .iter()
            .take_while(|(d, _)| *d <= now)
            .map(|(_, id)| *id)
            .collect();
        for id in due {
            // A half-open SA timing out needs no keys: its shared secret, if still being
            // computed elsewhere, is dropped rather than waited for.
            if let Some(sa) = self.sas.get_mut(&id)
                && sa.half_open_deadline.is_some_and(|d| now >= d)
            {
                sa.pending_keys = None;
            }
            self.with_sa(now, id, |sa, ctx| sa.on_timeout(ctx));
        }
    }

    /// Next datagram to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.transmits.pop_front()
    }

    /// When [`Endpoint::handle_timeout`] must be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let next = self.deadlines.first().map(|(d, _)| *d);
        // The index must agree with the SAs; checked in tests and fuzzing (O(n) there only).
        debug_assert_eq!(
            next,
            self.sas.values().filter_map(|sa| sa.next_deadline()).min(),
            "deadline index out of date"
        );
        // A reused key pair is forgotten when its time is up, even with nothing else to do.
        let forget = self.keys.reuse_ends(self.config.dh_reuse);
        next.into_iter().chain(forget).min()
    }

    /// Next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.out.events.pop_front()
    }

    /// Delete an IKE SA (and its CHILD_SAs); see the module docs for the events.
    pub fn delete_ike_sa(&mut self, now: Instant, id: IkeSaId) -> Result<(), IkeError> {
        if !self.sas.contains_key(&id) {
            return Err(IkeError::UnknownSa(id.0));
        }
        self.with_sa(now, id, |sa, ctx| match sa.state {
            State::Established => {
                if !sa.queue.contains(&Queued::DeleteIke) {
                    sa.queue.push_back(Queued::DeleteIke);
                }
            }
            State::Deleting | State::Dead => {}
            _ => {
                if sa.keys.is_some() {
                    let del = payloads::delete_ike_payload();
                    sa.send_unreliable(ctx, ExchangeType::INFORMATIONAL, &[del]);
                }
                sa.state = sa.fail(ctx, IkeError::DeletedLocally);
            }
        });
        Ok(())
    }

    /// Send an empty INFORMATIONAL (liveness check, DPD) on an established IKE SA. If the
    /// retransmits give up, the SA is reported deleted (ChildSaDeleted…, IkeSaDeleted
    /// { by_peer: false }). A no-op on SAs that are not established.
    pub fn check_liveness(&mut self, now: Instant, id: IkeSaId) -> Result<(), IkeError> {
        if !self.sas.contains_key(&id) {
            return Err(IkeError::UnknownSa(id.0));
        }
        self.with_sa(now, id, |sa, _| {
            if matches!(sa.state, State::Established) && !sa.queue.contains(&Queued::Liveness) {
                sa.queue.push_back(Queued::Liveness);
            }
        });
        Ok(())
    }

    /// Rekey IKE SA `id` (RFC 7296 §2.18; the daemon calls this on `ikelifetime`): a
    /// CREATE_CHILD_SA request, sent when the window is free. On success
    /// [`Event::IkeSaRekeyed`] (the new SA holds every CHILD_SA), then the old SA is deleted
    /// ([`Event::IkeSaDeleted`] without ChildSaDeleted). If the peer answers
    /// TEMPORARY_FAILURE the request is repeated after a few random seconds; other refusals
    /// give [`Event::IkeSaRekeyFailed`] and the old SA stays. A no-op on an SA that is not
    /// established or whose rekey is already queued or outstanding.
    pub fn rekey_ike(&mut self, now: Instant, id: IkeSaId) -> Result<(), IkeError> {
        if !self.sas.contains_key(&id) {
            return Err(IkeError::UnknownSa(id.0));
        }
        self.with_sa(now, id, |sa, _| {
            let q = Queued::RekeyIke;
            let pending = sa.in_flight == Some(q)
                || sa.queue.contains(&q)
                || sa.rare().retry.is_some_and(|(_, r)| r == q);
            if matches!(sa.state, State::Established) && !pending {
                sa.queue.push_back(q);
            }
        });
        Ok(())
    }

    /// Rekey the CHILD_SA with inbound SPI `spi_in` of IKE SA `id` (the daemon calls this on
    /// the kernel's soft expire): CREATE_CHILD_SA with REKEY_SA, sent when the window is
    /// free. On success [`Event::ChildSaReady`] with `rekeyed_from` = the old pair, then the
    /// old child is deleted (INFORMATIONAL) and reported [`Event::ChildSaDeleted`]; on
    /// failure [`Event::ChildSaFailed`] and the old child stays. A no-op for a child that is
    /// already being rekeyed or was replaced (e.g. the peer rekeyed it first).
    pub fn rekey_child(&mut self, now: Instant, id: IkeSaId, spi_in: u32) -> Result<(), IkeError> {
        self.queue_child_request(now, id, spi_in, Queued::RekeyChild(spi_in))
    }

    /// Add a CHILD_SA of `conn` over the established IKE SA `id` to the same peer
    /// (CREATE_CHILD_SA, RFC 7296 §1.3.1), sent when the window is free: `conn` must share
    /// the SA's addresses, identities, PSK and allow its IKE proposal
    /// ([`IkeError::ForeignConn`] otherwise). [`Event::ChildSaReady`] or
    /// [`Event::ChildSaFailed`] follows. With PFS groups in the conn's ESP proposals the
    /// request carries KEi. A no-op on an SA that is not established.
    pub fn create_child(&mut self, now: Instant, id: IkeSaId, conn: &str) -> Result<(), IkeError> {
        let spec = self.conn_spec(conn)?;
        let sa = self.sas.get(&id).ok_or(IkeError::UnknownSa(id.0))?;
        if !sa.can_carry(&spec) {
            return Err(IkeError::ForeignConn(spec.name.clone(), id.0));
        }
        self.with_sa(now, id, |sa, _| {
            if matches!(sa.state, State::Established) {
                sa.rare_mut().pending_children.push_back(spec);
                sa.queue.push_back(Queued::CreateChild);
            }
        });
        Ok(())
    }

    /// Delete the CHILD_SA with inbound SPI `spi_in` of IKE SA `id` (INFORMATIONAL Delete);
    /// [`Event::ChildSaDeleted`] follows the answer.
    pub fn delete_child(&mut self, now: Instant, id: IkeSaId, spi_in: u32) -> Result<(), IkeError> {
        self.queue_child_request(now, id, spi_in, Queued::DeleteChild(spi_in))
    }

    fn queue_child_request(
        &mut self,
        now: Instant,
        id: IkeSaId,
        spi_in: u32,
        q: Queued,
    ) -> Result<(), IkeError> {
        let sa = self.sas.get(&id).ok_or(IkeError::UnknownSa(id.0))?;
        if !sa.children.iter().any(|c| c.spi_in == spi_in) {
            return Err(IkeError::UnknownChild(spi_in));
        }
        self.with_sa(now, id, |sa, _| {
            if matches!(sa.state, State::Established)
                && sa.in_flight != Some(q)
                && !sa.queue.contains(&q)
            {
                sa.queue.push_back(q);
            }
        });
        Ok(())
    }

    /// Delete every IKE SA of `conn`; returns how many.
    pub fn delete_conn(&mut self, now: Instant, conn: &str) -> usize {
        let ids: Vec<IkeSaId> = self
            .sas
            .values()
            .filter(|sa| sa.conn.name == conn)
            .map(|sa| sa.id)
            .collect();
        ids.iter()
            .filter(|id| self.delete_ike_sa(now, **id).is_ok())
            .count()
    }

    /// The state of one IKE SA (no snapshot of the others).
    #[must_use]
    pub fn ike_sa(&self, id: IkeSaId) -> Option<IkeSaStatus> {
        self.sas.get(&id).map(|sa| sa.status())
    }

    /// Which IKE SA holds the CHILD_SA with inbound SPI `spi_in`, and whether a rekey replaced
    /// it (from an index: no scan of the SAs).
    #[must_use]
    pub fn child_owner(&self, spi_in: u32) -> Option<(IkeSaId, bool)> {
        let found = self.by_child.get(&spi_in).and_then(|id| {
            let sa = self.sas.get(id)?;
            let c = sa.children.iter().find(|c| c.spi_in == spi_in)?;
            Some((sa.id, c.replaced))
        });
        // The index must agree with the SAs; checked in tests and fuzzing (O(n) there only).
        debug_assert_eq!(
            found,
            self.sas.values().find_map(|sa| {
                sa.children
                    .iter()
                    .find(|c| c.spi_in == spi_in)
                    .map(|c| (sa.id, c.replaced))
            }),
            "CHILD_SA index out of date"
        );
        found
    }

    /// How many IKE SAs there are (in any state).
    #[must_use]
    pub fn ike_sa_count(&self) -> usize {
        self.sas.len()
    }

    /// Whether IKE SA `id` exists.
    #[must_use]
    pub fn has_ike_sa(&self, id: IkeSaId) -> bool {
        self.sas.contains_key(&id)
    }

    /// Whether `conn` has an IKE SA (in any state).
    #[must_use]
    pub fn conn_has_sas(&self, conn: &str) -> bool {
        self.per_conn.contains_key(conn)
    }

    /// Status of the IKE SAs `offset`, `offset + 1`, … (at most `limit`), in id order, made
    /// one at a time as the caller goes: a page of [`Endpoint::ike_sas`] (or all of them)
    /// without a snapshot of every SA at once.
    pub fn ike_sa_page(
        &self,
        offset: usize,
        limit: usize,
    ) -> impl Iterator<Item = IkeSaStatus> + '_ {
        self.sas
            .values()
            .skip(offset)
            .take(limit)
            .map(|sa| sa.status())
    }

    /// Status of every IKE SA, by id.
    pub fn ike_sas(&self) -> Vec<IkeSaStatus> {
        self.sas.values().map(|sa| sa.status()).collect()
    }

    /// The virtual IP leases of every pool (`rightsourceip`), online or kept for their owner.
    pub fn leases(&self) -> Vec<PoolLease> {
        self.pools.leases()
    }
}
