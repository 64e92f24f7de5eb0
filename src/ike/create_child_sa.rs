//! CREATE_CHILD_SA for CHILD_SAs (RFC 7296 §1.3.1, §1.3.3, §2.8, §2.17) in both roles:
//! rekeying one, or creating an additional one over the IKE SA.
//!
//! * Responder: a request with N(REKEY_SA) naming one of our CHILD_SAs by its outbound SPI is
//!   negotiated for that child's conn like the IKE_AUTH child (proposal, selectors, mode)
//!   with fresh nonces; the new child is reported with
//!   [`ChildSaReady::rekeyed_from`](super::ChildSaReady::rekeyed_from), and the old one stays
//!   until the peer deletes it. An unknown SPI gets CHILD_SA_NOT_FOUND. A request without
//!   REKEY_SA creates an additional CHILD_SA for the first conn that may share the IKE SA
//!   (same addresses, identities, PSK and IKE proposal; the IKE SA's own conn first) and
//!   accepts the proposal and selectors; the errors are those of IKE_AUTH's child. IKE SA
//!   rekeys (an SA payload proposing protocol IKE) are answered by `ike_rekey.rs`.
//! * PFS (§2.17: KEYMAT = prf+(SK_d, g^ir (new) | Ni | Nr)): when the initiator sends KEi of
//!   a group the chosen proposal lists, we answer with KEr. If the conn's ESP proposals name
//!   groups (`esp=...-modp2048`), only those are accepted and PFS is required; if they name
//!   none, any group we implement is accepted. As initiator we offer the first group of the
//!   conn's ESP proposals (none: no PFS) and require KEr of it.
//! * Initiator ([`super::Endpoint::rekey_child`], [`super::Endpoint::create_child`]): the
//!   old child's selectors and mode, or the new conn's; on success the new child is
//!   reported, and a rekeyed one is deleted with an INFORMATIONAL Delete (its
//!   ChildSaDeleted comes with the answer). TEMPORARY_FAILURE (e.g. the peer is rekeying
//!   the IKE SA) repeats the request after a random delay; it follows the children to a new
//!   IKE SA. While our own IKE SA rekey is outstanding we answer CHILD_SA requests with
//!   TEMPORARY_FAILURE (RFC 7296 §2.25.2).
//! * Simultaneous rekeys of the same CHILD_SA (§2.8.1): each side answers the other's request
//!   while its own is outstanding; when its own completes it compares the lowest nonce of
//!   both exchanges. The exchange with the lower one made a redundant child, which its
//!   initiator deletes (and then leaves the old child to the other side); otherwise it
//!   deletes the old child as usual. Both sides reach the same verdict.

use rand::CryptoRng;
use std::sync::Arc;

use super::child::{ChildRequest, Keymat, install, negotiate};
use super::conn::ConnSpec;
use super::error::IkeError;
use super::event::Event;
use super::payloads::{NONCE_LEN, find_notify, first_error, ke, nonce, notify, random, sa_payload};
use super::proposal;
use super::sa::{Ctx, IkeSa, Queued};
use crate::crypto::{DhGroup, DhPrivate};
use crate::kernel::{IpsecProto, Mode};
use crate::wire::{ExchangeType, KePayload, Notify, NotifyType, Payload, SaPayload, TransformId};

/// Our outstanding CREATE_CHILD_SA request for one CHILD_SA.
pub(crate) struct RekeyRequest {
    /// The child being rekeyed (our inbound SPI); `None` for an additional CHILD_SA.
    old_spi_in: Option<u32>,
    child: ChildRequest,
    ni: Vec<u8>,
    /// Our PFS key exchange.
    dh: Option<DhPrivate>,
    /// The peer rekeyed the same child meanwhile: our inbound SPI of the child it created
    /// and the lowest nonce of its exchange.
    collision: Option<(u32, Vec<u8>)>,
}

fn spi_notify(t: NotifyType, proto: IpsecProto, spi: u32) -> Payload {
    Payload::Notify(Notify {
        protocol: proposal::protocol_id(proto),
        spi: spi.to_be_bytes().to_vec(),
        notify_type: t,
        data: Vec::new(),
    })
}

/// The answer to a CREATE_CHILD_SA request that does not rekey the IKE SA (`established`:
/// not while deleting the IKE SA).
pub(crate) fn respond<R: CryptoRng>(
    sa: &mut IkeSa,
    ctx: &mut Ctx<'_, R>,
    payloads: &[Payload],
    established: bool,
) -> Vec<Payload> {
    // While we rekey the IKE SA, its CHILD_SAs wait (RFC 7296 §2.25.2).
    let busy = !established || sa.ike_rekey.is_some();
    match find_notify(payloads, NotifyType::REKEY_SA) {
        _ if busy => vec![notify(NotifyType::TEMPORARY_FAILURE, Vec::new())],
        Some(n) => rekey(sa, ctx, payloads, n),
        None => create(sa, ctx, payloads),
    }
}

/// The PFS group of the peer's KEi if the chosen proposal `number` and `conn` allow it;
/// `Ok(None)` without KEi when neither asks for PFS.
fn pfs_group(
    payloads: &[Payload],
    number: u8,
    conn: &ConnSpec,
) -> Result<Option<DhGroup>, IkeError> {
    let offered = sa_payload(payloads).unwrap_or_default();
    let groups = proposal::esp_dh_ids(offered, number);
    let ours: Vec<DhGroup> = conn
        .esp_proposals
        .iter()
        .flat_map(|p| p.dh.iter().copied())
        .collect();
    let acceptable =
        |g: &DhGroup| groups.contains(&g.id()) && (ours.is_empty() || ours.contains(g));
    match ke(payloads) {
        Some(k) => match DhGroup::from_id(k.group.0).filter(acceptable) {
            Some(g) => Ok(Some(g)),
            None => {
                let preferred: Vec<DhGroup> = if ours.is_empty() {
                    groups.iter().filter_map(|g| DhGroup::from_id(*g)).collect()
                } else {
                    ours.clone()
                };
                match preferred.iter().find(|g| acceptable(g)) {
                    Some(g) => Err(IkeError::InvalidKePayload { group: g.id() }),
                    None => Err(IkeError::NoProposalChosen),
                }
            }
        },
        None if !ours.is_empty() => Err(IkeError::NoProposalChosen),
        None if groups.is_empty() || groups.contains(&0) => Ok(None),
        None => Err(IkeError::InvalidMessage("PFS proposal without KE payload")),
    }
}

/// A refusal of a CHILD_SA request: reported as [`Event::ChildSaFailed`], answered with
/// the error's notify.
fn refuse<R>(sa: &IkeSa, ctx: &mut Ctx<'_, R>, conn: &str, error: IkeError) -> Vec<Payload> {
    let data = match &error {
        IkeError::InvalidKePayload { group } => group.to_be_bytes().to_vec(),
        _ => Vec::new(),
    };
    let n = error.notify().unwrap_or(NotifyType::NO_PROPOSAL_CHOSEN);
    ctx.out.events.push_back(Event::ChildSaFailed {
        id: sa.id,
        conn: conn.to_string(),
        error,
    });
    vec![notify(n, data)]
}

/// Responder: rekey the child named by REKEY_SA; returns the response payloads.
fn rekey<R: CryptoRng>(
    sa: &mut IkeSa,
    ctx: &mut Ctx<'_, R>,
    payloads: &[Payload],
    n: &Notify,
) -> Vec<Payload> {
    let spi = <[u8; 4]>::try_from(n.spi.as_slice()).map(u32::from_be_bytes);
    let old = match spi {
        Ok(s) => proposal::child_protocol(n.protocol).and_then(|proto| {
            sa.children
                .iter()
                .find(|c| c.spi_out == s && c.suite.protocol == proto)
                .cloned()
        }),
        _ => None,
    };
    let Some(old) = old else {
        let not_found = Payload::Notify(Notify {
            notify_type: NotifyType::CHILD_SA_NOT_FOUND,
            data: Vec::new(),
            ..n.clone()
        });
        return vec![not_found];
    };
    let Some(ni) = nonce(payloads).map(<[u8]>::to_vec) else {
        return vec![notify(NotifyType::INVALID_SYNTAX, Vec::new())];
    };
    let rekeyed = Some((old.spi_in, old.spi_out));
    match negotiate_child(sa, ctx, payloads, &ni, &old.conn, rekeyed) {
        Ok(v) => v,
        Err(error) => refuse(sa, ctx, &old.conn.name, error),
    }
}

/// Responder: an additional CHILD_SA, for the first conn that may share this IKE SA and
/// accepts the request.
fn create<R: CryptoRng>(
    sa: &mut IkeSa,
    ctx: &mut Ctx<'_, R>,
    payloads: &[Payload],
) -> Vec<Payload> {
    let Some(ni) = nonce(payloads).map(<[u8]>::to_vec) else {
        return vec![notify(NotifyType::INVALID_SYNTAX, Vec::new())];
    };
    let candidates: Vec<Arc<ConnSpec>> = std::iter::once(&sa.conn)
        .chain(ctx.conns.iter().filter(|c| c.name != sa.conn.name))
        .filter(|c| sa.can_carry(c))
        .cloned()
        .collect();
    let mut first_error = None;
    for conn in &candidates {
        match negotiate_child(sa, ctx, payloads, &ni, conn, None) {
            Ok(v) => return v,
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let error = first_error.unwrap_or(IkeError::TsUnacceptable);
    let name = sa.conn.name.clone();
    refuse(sa, ctx, &name, error)
}

/// Responder: negotiate and install a CHILD_SA of `conn` (rekeying `rekeyed`, our old
/// `(spi_in, spi_out)`, if set); returns the response payloads.
fn negotiate_child<R: CryptoRng>(
    sa: &mut IkeSa,
    ctx: &mut Ctx<'_, R>,
    payloads: &[Payload],
    ni: &[u8],
    conn: &Arc<ConnSpec>,
    rekeyed: Option<(u32, u32)>,
) -> Result<Vec<Payload>, IkeError> {
    let offered = sa_payload(payloads).ok_or(IkeError::NoProposalChosen)?;
    let number = proposal::select_esp(offered, &conn.esp_proposals)
        .ok_or(IkeError::NoProposalChosen)?
        .0;
    let group = pfs_group(payloads, number, conn)?;
    let dh: Option<DhPrivate> = group.map(|g| ctx.keys.fresh(g, ctx.rng));
    let shared = match (&dh, ke(payloads)) {
        (Some(d), Some(k)) => Some(d.agree(&k.data)?),
        _ => None,
    };
    let (child, number) = negotiate(sa, conn, ctx, payloads)?;
    let nr = random(ctx.rng, NONCE_LEN);
    let mut answer = child.suite.to_proposal(number, child.spi_in);
    if let Some(g) = group {
        proposal::add_dh(&mut answer, g);
    }
    let mut v = vec![
        Payload::Sa(SaPayload {
            proposals: vec![answer],
        }),
        Payload::Nonce(nr.clone()),
    ];
    if let Some(d) = &dh {
        v.push(Payload::Ke(KePayload {
            group: TransformId(d.group().id()),
            data: d.public_value(),
        }));
    }
    v.push(Payload::TsI(child.remote_ts.clone()));
    v.push(Payload::TsR(child.local_ts.clone()));
    if child.mode == Mode::Transport {
        v.push(notify(NotifyType::USE_TRANSPORT_MODE, Vec::new()));
    }
    let new_in = child.spi_in;
    let km = Keymat {
        ni,
        nr: &nr,
        dh: shared.as_deref().map(Vec::as_slice),
        initiator: false,
        rekeyed_from: rekeyed,
    };
    if !install(sa, ctx, child, &km) {
        return Err(IkeError::NoProposalChosen);
    }
    let Some((old_in, _)) = rekeyed else {
        return Ok(v);
    };
    if let Some(old) = sa.children.iter_mut().find(|c| c.spi_in == old_in) {
        old.replaced = true;
    }
    if let Some(r) = sa.rekey.as_mut().filter(|r| r.old_spi_in == Some(old_in)) {
        r.collision = Some((new_in, ni.min(nr.as_slice()).to_vec()));
    }
    Ok(v)
}

/// Initiator: send the queued rekey of our child `old_spi_in`. Returns false when nothing
/// was sent (the child is gone or already replaced, or the request failed: reported as
/// [`Event::ChildSaFailed`]).
pub(crate) fn send_rekey<R: CryptoRng>(
    sa: &mut IkeSa,
    ctx: &mut Ctx<'_, R>,
    old_spi_in: u32,
) -> bool {
    let Some(old) = sa
        .children
        .iter()
        .find(|c| c.spi_in == old_spi_in && !c.replaced)
        .cloned()
    else {
        return false;
    };
    let child = ctx
        .spis
        .allocate_esp_spi(sa.local.ip(), sa.remote.ip())
        .map(|spi_in| ChildRequest::with(old.conn.clone(), spi_in, old.local_ts, old.remote_ts))
        .map_err(IkeError::from);
    send(sa, ctx, child, Some(old_spi_in), &old.conn.name)
}

/// Initiator: send the queued request for an additional CHILD_SA (the next conn of
/// [`IkeSa::pending_children`]). Returns false when nothing was sent.
pub(crate) fn send_new<R: CryptoRng>(sa: &mut IkeSa, ctx: &mut Ctx<'_, R>) -> bool {
    let Some(conn) = sa
        .rare
        .as_mut()
        .and_then(|r| r.pending_children.pop_front())
    else {
        return false;
    };
    let child = ChildRequest::new(sa, &conn, ctx);
    send(sa, ctx, child, None, &conn.name)
}

/// Send the CREATE_CHILD_SA request for `child` (rekeying our child `old_spi_in`, if set):
/// `[N(REKEY_SA)], [N(USE_TRANSPORT_MODE)], SA, TSi, TSr, Ni, [KEi]`.
fn send<R: CryptoRng>(
    sa: &mut IkeSa,
    ctx: &mut Ctx<'_, R>,
    child: Result<ChildRequest, IkeError>,
    old_spi_in: Option<u32>,
    conn: &str,
) -> bool {
    let result = child.and_then(|child| {
        let ours = &child.conn().esp_proposals;
        let hint = sa
            .rare
            .as_mut()
            .and_then(|r| r.ke_hint.take())
            .filter(|g| proposal::esp_offers_group(ours, *g));
        let group = hint.or_else(|| proposal::esp_pfs_group(ours));
        let dh = group.map(|g| ctx.keys.fresh(g, ctx.rng));
        let ni = random(ctx.rng, NONCE_LEN);
        let mut payloads: Vec<Payload> = old_spi_in
            .map(|spi| {
                let old = sa.children.iter().find(|c| c.spi_in == spi);
                let proto = old.map(|c| c.suite.protocol).unwrap_or_default();
                spi_notify(NotifyType::REKEY_SA, proto, spi)
            })
            .into_iter()
            .collect();
        payloads.extend(child.payloads(group));
        payloads.push(Payload::Nonce(ni.clone()));
        if let Some(d) = &dh {
            payloads.push(Payload::Ke(KePayload {
                group: TransformId(d.group().id()),
                data: d.public_value(),
            }));
        }
        sa.send_request(ctx, ExchangeType::CREATE_CHILD_SA, &payloads)?;
        Ok(RekeyRequest {
            old_spi_in,
            child,
            ni,
            dh,
            collision: None,
        })
    });
    match result {
        Ok(r) => {
            sa.rekey = Some(Box::new(r));
            sa.in_flight = Some(old_spi_in.map_or(Queued::CreateChild, Queued::RekeyChild));
            true
        }
        Err(error) => {
            ctx.out.events.push_back(Event::ChildSaFailed {
                id: sa.id,
                conn: conn.to_string(),
                error,
            });
            false
        }
    }
}

/// The PFS shared secret of a CREATE_CHILD_SA exchange.
type PfsSecret = Option<zeroize::Zeroizing<Vec<u8>>>;

/// Initiator: Nr and the PFS secret of the answer to `req`.
fn answer_keys(req: &RekeyRequest, payloads: &[Payload]) -> Result<(Vec<u8>, PfsSecret), IkeError> {
    if let Some(n) = first_error(payloads) {
        return Err(IkeError::from_peer_notify(n.notify_type, &n.data));
    }
    let nr = nonce(payloads).ok_or(IkeError::InvalidMessage("CREATE_CHILD_SA answer lacks Nr"))?;
    let shared = match (&req.dh, ke(payloads)) {
        (Some(d), Some(k)) if k.group.0 == d.group().id() => Some(d.agree(&k.data)?),
        (None, None) => None,
        _ => {
            return Err(IkeError::InvalidMessage(
                "KEr missing, unasked for or of another group",
            ));
        }
    };
    Ok((nr.to_vec(), shared))
}

/// The request to queue for sending `req` again.
fn again(sa: &mut IkeSa, req: &RekeyRequest) -> Queued {
    match req.old_spi_in {
        Some(spi) => Queued::RekeyChild(spi),
        None => {
            sa.rare_mut()
                .pending_children
                .push_front(req.child.conn().clone());
            Queued::CreateChild
        }
    }
}

/// Initiator: the answer to our CREATE_CHILD_SA request.
pub(crate) fn on_response<R: CryptoRng>(
    sa: &mut IkeSa,
    ctx: &mut Ctx<'_, R>,
    payloads: &[Payload],
) {
    sa.in_flight = None;
    let Some(req) = sa.rekey.take() else { return };
    let old = req
        .old_spi_in
        .and_then(|s| sa.children.iter().find(|c| c.spi_in == s))
        .map(|c| (c.spi_in, c.spi_out));
    let (nr, shared) = match answer_keys(&req, payloads) {
        Ok(k) => k,
        Err(IkeError::PeerError(NotifyType::TEMPORARY_FAILURE)) => {
            // The peer is busy, e.g. rekeying the IKE SA (RFC 7296 §2.25): later.
            let q = again(sa, &req);
            sa.retry_later(ctx, q);
            return;
        }
        Err(IkeError::InvalidKePayload { group })
            if req.dh.as_ref().is_some_and(|d| d.group().id() != group)
                && DhGroup::from_id(group).is_some_and(|g| {
                    proposal::esp_offers_group(&req.child.conn().esp_proposals, g)
                }) =>
        {
            // The peer wants another of our PFS groups: ask again with it, right away.
            sa.rare_mut().ke_hint = DhGroup::from_id(group);
            let q = again(sa, &req);
            sa.queue.push_front(q);
            return;
        }
        Err(error) => {
            ctx.out.events.push_back(Event::ChildSaFailed {
                id: sa.id,
                conn: req.child.conn().name.clone(),
                error,
            });
            return;
        }
    };
    let new_in = req.child.spi_in();
    let km = Keymat {
        ni: &req.ni,
        nr: &nr,
        dh: shared.as_deref().map(Vec::as_slice),
        initiator: true,
        rekeyed_from: old,
    };
    if !req.child.complete(sa, ctx, payloads, &km) {
        return;
    }
    let Some((old_in, _)) = old else { return };
    if let Some(c) = sa.children.iter_mut().find(|c| c.spi_in == old_in) {
        c.replaced = true;
    }
    let ours_redundant = req
        .collision
        .as_ref()
        .is_some_and(|(_, theirs)| req.ni.as_slice().min(nr.as_slice()) < theirs.as_slice());
    // Next in the window: the redundant child of a collision, or else the old one.
    let delete = if ours_redundant { new_in } else { old_in };
    sa.queue.push_front(Queued::DeleteChild(delete));
}
