//! IKE_SA_INIT: proposals, KE, nonces, NAT detection, INVALID_KE_PAYLOAD and COOKIE retries
//! (initiator), stateless refusal and half-open SA creation (responder).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use rand::CryptoRng;
use subtle::ConstantTimeEq;

use super::conn::ConnSpec;
use super::error::IkeError;
use super::event::{Event, IkeSaId, InitRefusal, Role};
use super::key_pairs::SharedSecret;
use super::natd;
use super::payloads::{NONCE_LEN, NONCE_RANGE, find_notify, first_error, notify, random};
use super::proposal::{self, IkeSuite};
use super::sa::{
    CachedResponse, Ctx, IkeSa, InitExchange, Path, PendingKeys, RequestPrint, SaKeys, State,
};
use crate::crypto::{DhGroup, DhPrivate, Prf, derive_ike_keys};
use crate::wire::{
    ExchangeType, Header, KePayload, Message, NotifyType, Payload, PayloadType, SaPayload,
    TransformId,
};

/// INVALID_KE_PAYLOAD / COOKIE restarts before giving up.
const MAX_RESTARTS: u8 = 3;

/// What an IKE_SA_INIT response led to.
pub(crate) enum InitOutcome {
    /// The exchange completed; IKE_AUTH starts with this.
    Done(InitExchange),
    /// The state to stay in: still IKE_SA_INIT (a COOKIE or INVALID_KE_PAYLOAD retry, a
    /// duplicate), or failed.
    Stay(State),
}

/// Initiator state: IKE_SA_INIT sent, waiting for the answer.
pub(crate) struct ExpectSaInitResponse {
    dh: DhPrivate,
    ni: Vec<u8>,
    cookie: Option<Vec<u8>>,
    /// The request as sent (signed by our AUTH).
    request: Vec<u8>,
    restarts: u8,
}

fn encode(header: Header, payloads: Vec<Payload>) -> Vec<u8> {
    Message { header, payloads }.encode()
}

/// The KE group to start with: the first group of our first proposal that has one.
fn first_group(conn: &ConnSpec) -> Option<DhGroup> {
    conn.ike_proposals
        .iter()
        .find_map(|p| p.dh.first().copied())
}

/// Create an initiating IKE SA for `conn` and send IKE_SA_INIT.
pub(crate) fn initiate<R: CryptoRng>(
    ctx: &mut Ctx<'_, R>,
    id: IkeSaId,
    conn: &Arc<ConnSpec>,
    spi_i: [u8; 8],
) -> Result<IkeSa, IkeError> {
    let (Some(l), Some(r)) = (conn.local_addr, conn.remote_addr) else {
        return Err(IkeError::CannotInitiate(conn.name.clone()));
    };
    let group = match first_group(conn) {
        Some(g) if !conn.esp_proposals.is_empty() => g,
        _ => return Err(IkeError::NoProposalsConfigured(conn.name.clone())),
    };
    let mut sa = IkeSa::new(
        id,
        conn.clone(),
        Role::Initiator,
        (spi_i, [0; 8]),
        Path {
            local: SocketAddr::new(l, conn.local_port),
            remote: SocketAddr::new(r, conn.remote_port),
        },
    );
    let mut st = ExpectSaInitResponse {
        dh: ctx.keys.fresh(group, ctx.rng),
        ni: random(ctx.rng, NONCE_LEN),
        cookie: None,
        request: Vec::new(),
        restarts: 0,
    };
    st.send(&mut sa, ctx);
    sa.state = State::ExpectSaInitResponse(Box::new(st));
    Ok(sa)
}

impl ExpectSaInitResponse {
    /// (Re)build and send the request (message ID 0).
    fn send<R>(&mut self, sa: &mut IkeSa, ctx: &mut Ctx<'_, R>) {
        let mut payloads = Vec::new();
        if let Some(c) = &self.cookie {
            payloads.push(notify(NotifyType::COOKIE, c.clone()));
        }
        payloads.push(Payload::Sa(SaPayload {
            proposals: proposal::ike_offer(&sa.conn.ike_proposals),
        }));
        payloads.push(Payload::Ke(KePayload {
            group: TransformId(self.dh.group().id()),
            data: self.dh.public_value(),
        }));
        payloads.push(Payload::Nonce(self.ni.clone()));
        payloads.extend(natd::payloads(
            &sa.spi_i,
            &[0; 8],
            sa.local,
            sa.remote,
            sa.conn.force_encaps,
        ));
        self.request = encode(sa.header(ExchangeType::IKE_SA_INIT, 0, false), payloads);
        sa.send_tracked(ctx, 0, ExchangeType::IKE_SA_INIT, self.request.clone());
    }

    /// Handle the IKE_SA_INIT response (plaintext); on success IKE_AUTH starts next.
    pub(crate) fn process<R: CryptoRng>(
        mut self: Box<Self>,
        sa: &mut IkeSa,
        ctx: &mut Ctx<'_, R>,
        path: Path,
        data: &[u8],
        msg: &Message,
    ) -> InitOutcome {
        let payloads = &msg.payloads;
        if let Some(n) = find_notify(payloads, NotifyType::COOKIE) {
            if self.cookie.as_ref() == Some(&n.data) {
                // A duplicate of the refusal we already answered.
                return InitOutcome::Stay(State::ExpectSaInitResponse(self));
            }
            if self.restarts >= MAX_RESTARTS || n.data.is_empty() {
                return InitOutcome::Stay(sa.fail(ctx, IkeError::PeerError(NotifyType::COOKIE)));
            }
            self.restarts += 1; // ok: < MAX_RESTARTS (checked above)
            self.cookie = Some(n.data.clone());
            self.send(sa, ctx);
            return InitOutcome::Stay(State::ExpectSaInitResponse(self));
        }
        if let Some(n) = find_notify(payloads, NotifyType::INVALID_KE_PAYLOAD) {
            let err = IkeError::from_peer_notify(n.notify_type, &n.data);
            let IkeError::InvalidKePayload { group } = err else {
                return InitOutcome::Stay(sa.fail(ctx, err));
            };
            return InitOutcome::Stay(match DhGroup::from_id(group) {
                // A duplicate of the refusal we already followed.
                Some(g) if g == self.dh.group() => State::ExpectSaInitResponse(self),
                Some(g)
                    if proposal::offers_group(&sa.conn.ike_proposals, g)
                        && self.restarts < MAX_RESTARTS =>
                {
                    self.restarts += 1; // ok: < MAX_RESTARTS (match guard)
                    self.dh = ctx.keys.fresh(g, ctx.rng);
                    self.send(sa, ctx);
                    State::ExpectSaInitResponse(self)
                }
                _ => sa.fail(ctx, err),
            });
        }
        if let Some(n) = first_error(payloads) {
            let e = IkeError::from_peer_notify(n.notify_type, &n.data);
            return InitOutcome::Stay(sa.fail(ctx, e));
        }
        match self.accept(sa, path, data, msg, ctx.config.export_keys) {
            Ok(init) => {
                sa.outstanding = None;
                if sa.nat_detected {
                    sa.float_to_natt(ctx.config.natt_port);
                }
                InitOutcome::Done(init)
            }
            Err(e) => InitOutcome::Stay(sa.fail(ctx, e)),
        }
    }

    fn accept(
        &self,
        sa: &mut IkeSa,
        path: Path,
        data: &[u8],
        msg: &Message,
        export_keys: bool,
    ) -> Result<InitExchange, IkeError> {
        let h = &msg.header;
        if h.spi_r == [0; 8] {
            return Err(IkeError::InvalidMessage("zero responder SPI"));
        }
        let parts = InitPayloads::find(&msg.payloads)?;
        let suite = proposal::accept_ike(parts.proposals, &sa.conn.ike_proposals).ok_or(
            IkeError::InvalidMessage("answer is not one of our proposals"),
        )?;
        if suite.dh != self.dh.group() || parts.ke.group.0 != suite.dh.id() {
            return Err(IkeError::InvalidMessage("KE group does not match proposal"));
        }
        let shared = self.dh.agree(&parts.ke.data)?;
        let nr = parts.nonce.to_vec();
        let keys = derive_ike_keys(
            suite.prf,
            suite.encr,
            suite.integ,
            &self.ni,
            &nr,
            &shared,
            &sa.spi_i,
            &h.spi_r,
        )?;
        sa.spi_r = h.spi_r;
        sa.keys = Some(SaKeys::new(suite, &keys, Role::Initiator, export_keys)?);
        let nat = natd::check(&msg.payloads, &h.spi_i, &h.spi_r, path.local, path.remote);
        sa.nat_detected = nat.detected() || sa.conn.force_encaps;
        sa.behind_nat = nat.local_behind || sa.conn.force_encaps;
        sa.next_mid = 1;
        Ok(InitExchange {
            ni: self.ni.clone(),
            nr,
            request: self.request.clone(),
            response: message_bytes(data, h)?,
        })
    }
}

/// The exact bytes of a message (without anything after `header.length`).
fn message_bytes(data: &[u8], h: &Header) -> Result<Vec<u8>, IkeError> {
    usize::try_from(h.length)
        .ok()
        .and_then(|l| data.get(..l))
        .map(<[u8]>::to_vec)
        .ok_or(IkeError::InvalidMessage("length"))
}

/// The SA, KE and Nonce payloads every IKE_SA_INIT message carries.
struct InitPayloads<'a> {
    proposals: &'a [crate::wire::Proposal],
    ke: &'a KePayload,
    nonce: &'a [u8],
}

impl<'a> InitPayloads<'a> {
    fn find(payloads: &'a [Payload]) -> Result<Self, IkeError> {
        let mut sa = None;
        let mut ke = None;
        let mut nonce = None;
        for p in payloads {
            match p {
                Payload::Sa(s) if sa.is_none() => sa = Some(s.proposals.as_slice()),
                Payload::Ke(k) if ke.is_none() => ke = Some(k),
                Payload::Nonce(n) if nonce.is_none() => nonce = Some(n.as_slice()),
                _ => {}
            }
        }
        match (sa, ke, nonce) {
            (Some(proposals), Some(ke), Some(nonce)) if NONCE_RANGE.contains(&nonce.len()) => {
                Ok(Self {
                    proposals,
                    ke,
                    nonce,
                })
            }
            _ => Err(IkeError::InvalidMessage(
                "IKE_SA_INIT lacks SA, KE or Nonce",
            )),
        }
    }
}

/// Conns that may answer a peer at `path`.
fn conn_matches(c: &ConnSpec, path: Path) -> bool {
    c.local_addr.is_none_or(|a| a == path.local.ip())
        && c.remote_addr.is_none_or(|a| a == path.remote.ip())
        && !c.ike_proposals.is_empty()
}

/// Responder's choice for an IKE_SA_INIT request.
enum Choice<'a> {
    Accept(&'a Arc<ConnSpec>, u8, IkeSuite),
    InvalidKe(DhGroup),
    NoProposal(Option<&'a Arc<ConnSpec>>),
}

fn choose<'a>(
    conns: &'a [Arc<ConnSpec>],
    path: Path,
    offered: &[crate::wire::Proposal],
    ke_group: Option<DhGroup>,
) -> Choice<'a> {
    let candidates = || conns.iter().filter(|c| conn_matches(c, path));
    if let Some(g) = ke_group {
        for c in candidates() {
            if let Some((n, s)) = proposal::select_ike(offered, &c.ike_proposals, Some(g)) {
                return Choice::Accept(c, n, s);
            }
        }
    }
    for c in candidates() {
        if let Some((_, s)) = proposal::select_ike(offered, &c.ike_proposals, None) {
            return Choice::InvalidKe(s.dh);
        }
    }
    Choice::NoProposal(candidates().next())
}

/// Stateless error answer to an IKE_SA_INIT request (SPIr zero).
fn refuse<R>(ctx: &mut Ctx<'_, R>, path: Path, req: &Header, n: NotifyType, data: Vec<u8>) {
    let header = Header {
        spi_i: req.spi_i,
        spi_r: [0; 8],
        next_payload: PayloadType(0),
        major: 2,
        minor: 0,
        exchange: ExchangeType::IKE_SA_INIT,
        flags: Header::FLAG_RESPONSE,
        message_id: 0,
        length: 0,
    };
    ctx.out.send(
        path.local,
        path.remote,
        encode(header, vec![notify(n, data)]),
    );
}

/// RFC 7296 §2.5: an IKE_SA_INIT request of a higher major version is dropped and answered,
/// without state, with INVALID_MAJOR_VERSION in a header of the version we speak. Nothing else
/// of a foreign version is answered.
pub(crate) fn refuse_major_version<R>(ctx: &mut Ctx<'_, R>, path: Path, req: &Header) {
    if req.exchange == ExchangeType::IKE_SA_INIT && !req.is_response() && req.spi_i != [0; 8] {
        refuse(
            ctx,
            path,
            req,
            NotifyType::INVALID_MAJOR_VERSION,
            Vec::new(),
        );
    }
}

/// Stateless responder cookie (RFC 7296 §2.6): prf(secret, Ni | IPi | SPIi).
fn cookie(secret: &[u8], nonce: &[u8], peer: IpAddr, spi_i: &[u8; 8]) -> Vec<u8> {
    let mut data = nonce.to_vec();
    match peer {
        IpAddr::V4(a) => data.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => data.extend_from_slice(&a.octets()),
    }
    data.extend_from_slice(spi_i);
    Prf::HmacSha256.prf(secret, &data).to_vec()
}

/// Responder under load: true if the request starts with the cookie we would give it;
/// otherwise answer with that cookie (no state kept) and return false.
pub(crate) fn check_cookie<R>(
    ctx: &mut Ctx<'_, R>,
    path: Path,
    msg: &Message,
    secret: &[u8],
) -> bool {
    let Some(nonce) = msg.payloads.iter().find_map(|p| match p {
        Payload::Nonce(n) => Some(n),
        _ => None,
    }) else {
        return false;
    };
    let want = cookie(secret, nonce, path.remote.ip(), &msg.header.spi_i);
    match msg.payloads.first() {
        Some(Payload::Notify(n))
            if n.notify_type == NotifyType::COOKIE && bool::from(n.data.ct_eq(&want)) =>
        {
            true
        }
        _ => {
            refuse(ctx, path, &msg.header, NotifyType::COOKIE, want);
            false
        }
    }
}

/// A responder's IKE SA keys from the IKE_SA_INIT exchange and its shared secret.
pub(crate) fn responder_keys(
    suite: IkeSuite,
    ni: &[u8],
    nr: &[u8],
    shared: &[u8],
    (spi_i, spi_r): (&[u8; 8], &[u8; 8]),
    export: bool,
) -> Result<SaKeys, IkeError> {
    let keys = derive_ike_keys(
        suite.prf,
        suite.encr,
        suite.integ,
        ni,
        nr,
        shared,
        spi_i,
        spi_r,
    )?;
    SaKeys::new(suite, &keys, Role::Responder, export)
}

/// Responder: answer a new IKE_SA_INIT request; returns the half-open SA if one was created,
/// with what IKE_AUTH needs of this exchange.
pub(crate) fn respond<R: CryptoRng>(
    ctx: &mut Ctx<'_, R>,
    id: IkeSaId,
    spi_r: [u8; 8],
    path: Path,
    data: &[u8],
    msg: &Message,
) -> Option<(IkeSa, InitExchange)> {
    let h = &msg.header;
    if h.message_id != 0 {
        return None;
    }
    let request = message_bytes(data, h).ok()?;
    let refused = |ctx: &mut Ctx<'_, R>, conn: Option<&Arc<ConnSpec>>, reason| {
        ctx.out.events.push_back(Event::InitRefused {
            peer: path.remote,
            conn: conn.map(|c| c.name.clone()),
            reason,
        });
    };
    let Ok(parts) = InitPayloads::find(&msg.payloads) else {
        refused(ctx, None, InitRefusal::InvalidSyntax);
        refuse(ctx, path, h, NotifyType::INVALID_SYNTAX, Vec::new());
        return None;
    };
    let ke_group = DhGroup::from_id(parts.ke.group.0);
    let (conn, number, suite) = match choose(ctx.conns, path, parts.proposals, ke_group) {
        Choice::Accept(c, n, s) => (c.clone(), n, s),
        Choice::InvalidKe(g) => {
            let data = g.id().to_be_bytes().to_vec();
            refuse(ctx, path, h, NotifyType::INVALID_KE_PAYLOAD, data);
            return None;
        }
        Choice::NoProposal(c) => {
            refused(ctx, c, InitRefusal::NoProposal);
            refuse(ctx, path, h, NotifyType::NO_PROPOSAL_CHOSEN, Vec::new());
            return None;
        }
    };
    let bad_ke = |ctx: &mut Ctx<'_, R>| {
        refused(ctx, Some(&conn), InitRefusal::InvalidSyntax);
        refuse(ctx, path, h, NotifyType::INVALID_SYNTAX, Vec::new());
    };
    // Before any DH work, and whether or not the agreement is offloaded.
    if suite.dh.check_public(&parts.ke.data).is_err() {
        bad_ke(ctx);
        return None;
    }
    let dh = ctx
        .keys
        .for_responder(suite.dh, ctx.now, ctx.config.dh_reuse, ctx.rng);
    let public = dh.public_value();
    let ni = parts.nonce.to_vec();
    let nr = random(ctx.rng, NONCE_LEN);
    let (keys, pending) = match ctx.keys.agree(dh, &parts.ke.data) {
        SharedSecret::Now(Ok(shared)) => {
            let spis = (&h.spi_i, &spi_r);
            let keys = responder_keys(suite, &ni, &nr, &shared, spis, ctx.config.export_keys);
            (Some(keys.ok()?), None)
        }
        SharedSecret::Now(Err(_)) => {
            bad_ke(ctx);
            return None;
        }
        // Computed while the response is on its way; collected at IKE_AUTH (an X25519
        // value giving an all-zero result, which only the agreement shows, fails the SA
        // then).
        SharedSecret::Later(agreement) => {
            let (ni, nr) = (ni.clone(), nr.clone());
            let pending = PendingKeys {
                agreement,
                suite,
                ni,
                nr,
            };
            (None, Some(Box::new(pending)))
        }
    };
    let nat = natd::check(&msg.payloads, &h.spi_i, &[0; 8], path.local, path.remote);
    let mut sa = IkeSa::new(id, conn, Role::Responder, (h.spi_i, spi_r), path);
    sa.keys = keys;
    sa.pending_keys = pending;
    sa.peer_mid = 1;
    sa.nat_detected = nat.detected() || sa.conn.force_encaps;
    sa.behind_nat = nat.local_behind || sa.conn.force_encaps;
    sa.half_open_deadline = ctx.now.checked_add(ctx.config.half_open_timeout);
    let mut payloads = vec![
        Payload::Sa(SaPayload {
            proposals: vec![suite.to_proposal(number)],
        }),
        Payload::Ke(KePayload {
            group: TransformId(suite.dh.id()),
            data: public,
        }),
        Payload::Nonce(nr.clone()),
    ];
    if nat.supported {
        payloads.extend(natd::payloads(
            &sa.spi_i,
            &sa.spi_r,
            path.local,
            path.remote,
            sa.conn.force_encaps,
        ));
    }
    let response = encode(sa.header(ExchangeType::IKE_SA_INIT, 0, true), payloads);
    ctx.out.send(path.local, path.remote, response.clone());
    sa.cached_response = Some(CachedResponse {
        mid: 0,
        request: RequestPrint::of(path, &request),
        data: response.clone(),
    });
    let init = InitExchange {
        ni,
        nr,
        request,
        response,
    };
    Some((sa, init))
}
