//! CREATE_CHILD_SA: rekeying CHILD_SAs (RFC 7296 §1.3.3, §2.8) in both roles.
//!
//! * Responder: a request with N(REKEY_SA) naming one of our CHILD_SAs by its outbound SPI is
//!   negotiated like the IKE_AUTH child (proposal, selectors, mode) with fresh nonces, and
//!   with PFS when the initiator sends KEi (we accept any group we implement that the chosen
//!   proposal lists: our own ESP proposals carry no groups). The new child is reported with
//!   [`ChildSaReady::rekeyed_from`](super::ChildSaReady::rekeyed_from); the old one stays
//!   until the peer deletes it. An unknown SPI gets CHILD_SA_NOT_FOUND. Requests without
//!   REKEY_SA for additional CHILD_SAs get NO_ADDITIONAL_SAS; IKE SA rekeys (an SA payload
//!   proposing protocol IKE) are answered by `ike_rekey.rs`.
//! * Initiator ([`super::Endpoint::rekey_child`]): request without PFS, the old child's
//!   selectors and mode; on success the new child is reported and the old one deleted with
//!   an INFORMATIONAL Delete (its ChildSaDeleted comes with the answer). TEMPORARY_FAILURE
//!   (e.g. the peer is rekeying the IKE SA) repeats the request after a random delay; it
//!   follows the children to a new IKE SA. While our own IKE SA rekey is outstanding we
//!   answer a CHILD_SA rekey with TEMPORARY_FAILURE (RFC 7296 §2.25.2).
//! * Simultaneous rekeys of the same CHILD_SA (§2.8.1): each side answers the other's request
//!   while its own is outstanding; when its own completes it compares the lowest nonce of
//!   both exchanges. The exchange with the lower one made a redundant child, which its
//!   initiator deletes (and then leaves the old child to the other side); otherwise it
//!   deletes the old child as usual. Both sides reach the same verdict.

use rand::CryptoRng;

use super::child::{ChildRequest, Keymat, install, negotiate};
use super::error::IkeError;
use super::event::Event;
use super::payloads::{NONCE_LEN, find_notify, first_error, ke, nonce, notify, random, sa_payload};
use super::proposal;
use super::sa::{Ctx, IkeSa, Path, Queued};
use crate::crypto::{DhGroup, DhPrivate};
use crate::kernel::Mode;
use crate::wire::{
    ExchangeType, KePayload, Notify, NotifyType, Payload, ProtocolId, SaPayload, TransformId,
};

/// Our outstanding rekey of one CHILD_SA.
pub(crate) struct RekeyRequest {
    /// The child being rekeyed (our inbound SPI).
    old_spi_in: u32,
    child: ChildRequest,
    ni: Vec<u8>,
    /// The peer rekeyed the same child meanwhile: our inbound SPI of the child it created
    /// and the lowest nonce of its exchange.
    collision: Option<(u32, Vec<u8>)>,
}

fn spi_notify(t: NotifyType, spi: u32) -> Payload {
    Payload::Notify(Notify {
        protocol: ProtocolId::ESP,
        spi: spi.to_be_bytes().to_vec(),
        notify_type: t,
        data: Vec::new(),
    })
}

/// Answer a CREATE_CHILD_SA request `mid` that does not rekey the IKE SA (`established`:
/// not while deleting the IKE SA).
pub(crate) fn respond<R: CryptoRng>(
    sa: &mut IkeSa,
    ctx: &mut Ctx<'_, R>,
    path: Path,
    mid: u32,
    payloads: &[Payload],
    established: bool,
) {
    // While we rekey the IKE SA, its CHILD_SAs wait (RFC 7296 §2.25.2).
    let rekeying_ike = sa.ike_rekey.is_some();
    let answer = match find_notify(payloads, NotifyType::REKEY_SA) {
        Some(n) if established && !rekeying_ike => rekey(sa, ctx, payloads, n),
        Some(_) => vec![notify(NotifyType::TEMPORARY_FAILURE, Vec::new())],
        None => vec![notify(NotifyType::NO_ADDITIONAL_SAS, Vec::new())],
    };
    // An encoding failure leaves the request unanswered; the peer retransmits, then gives up.
    let _ = sa.send_response(ctx, path, ExchangeType::CREATE_CHILD_SA, mid, &answer);
}

/// The PFS group of the peer's KEi if the chosen proposal `number` allows it; `Ok(None)`
/// without KEi when the proposal allows no PFS.
fn pfs_group(payloads: &[Payload], number: u8) -> Result<Option<DhGroup>, IkeError> {
    let offered = sa_payload(payloads).unwrap_or_default();
    let groups = proposal::esp_dh_ids(offered, number);
    match ke(payloads) {
        Some(k) if groups.contains(&k.group.0) => DhGroup::from_id(k.group.0)
            .map(Some)
            .ok_or(IkeError::NoProposalChosen),
        Some(_) => match groups.iter().find_map(|g| DhGroup::from_id(*g)) {
            Some(g) => Err(IkeError::InvalidKePayload { group: g.id() }),
            None => Err(IkeError::NoProposalChosen),
        },
        None if groups.is_empty() || groups.contains(&0) => Ok(None),
        None => Err(IkeError::InvalidMessage("PFS proposal without KE payload")),
    }
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
        Ok(s) if n.protocol == ProtocolId::ESP => {
            sa.children.iter().find(|c| c.spi_out == s).cloned()
        }
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
    match negotiate_rekey(sa, ctx, payloads, &ni, (old.spi_in, old.spi_out)) {
        Ok(v) => v,
        Err(error) => {
            let data = match &error {
                IkeError::InvalidKePayload { group } => group.to_be_bytes().to_vec(),
                _ => Vec::new(),
            };
            let n = error.notify().unwrap_or(NotifyType::NO_PROPOSAL_CHOSEN);
            ctx.out.events.push_back(Event::ChildSaFailed {
                id: sa.id,
                conn: sa.conn.name.clone(),
                error,
            });
            vec![notify(n, data)]
        }
    }
}

fn negotiate_rekey<R: CryptoRng>(
    sa: &mut IkeSa,
    ctx: &mut Ctx<'_, R>,
    payloads: &[Payload],
    ni: &[u8],
    (old_in, old_out): (u32, u32),
) -> Result<Vec<Payload>, IkeError> {
    let offered = sa_payload(payloads).ok_or(IkeError::NoProposalChosen)?;
    let number = proposal::select_esp(offered, &sa.conn.esp_proposals)
        .ok_or(IkeError::NoProposalChosen)?
        .0;
    let group = pfs_group(payloads, number)?;
    let dh: Option<DhPrivate> = group.map(|g| g.generate(ctx.rng));
    let shared = match (&dh, ke(payloads)) {
        (Some(d), Some(k)) => Some(d.agree(&k.data)?),
        _ => None,
    };
    let (child, number) = negotiate(sa, ctx, payloads)?;
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
        rekeyed_from: Some((old_in, old_out)),
    };
    if !install(sa, ctx, child, &km) {
        return Err(IkeError::NoProposalChosen);
    }
    if let Some(old) = sa.children.iter_mut().find(|c| c.spi_in == old_in) {
        old.replaced = true;
    }
    if let Some(r) = sa.rekey.as_mut().filter(|r| r.old_spi_in == old_in) {
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
    let result = ctx
        .spis
        .allocate_esp_spi(sa.local.ip(), sa.remote.ip())
        .map_err(IkeError::from)
        .and_then(|spi_in| {
            let child = ChildRequest::with(spi_in, old.local_ts.clone(), old.remote_ts.clone());
            let ni = random(ctx.rng, NONCE_LEN);
            let mut payloads = vec![spi_notify(NotifyType::REKEY_SA, old_spi_in)];
            if old.mode == Mode::Transport {
                payloads.push(notify(NotifyType::USE_TRANSPORT_MODE, Vec::new()));
            }
            payloads.push(Payload::Sa(SaPayload {
                proposals: proposal::esp_offer(&sa.conn.esp_proposals, spi_in),
            }));
            payloads.push(Payload::Nonce(ni.clone()));
            payloads.push(Payload::TsI(old.local_ts.clone()));
            payloads.push(Payload::TsR(old.remote_ts.clone()));
            sa.send_request(ctx, ExchangeType::CREATE_CHILD_SA, &payloads)?;
            Ok(RekeyRequest {
                old_spi_in,
                child,
                ni,
                collision: None,
            })
        });
    match result {
        Ok(r) => {
            sa.rekey = Some(r);
            sa.in_flight = Some(Queued::RekeyChild(old_spi_in));
            true
        }
        Err(error) => {
            ctx.out.events.push_back(Event::ChildSaFailed {
                id: sa.id,
                conn: sa.conn.name.clone(),
                error,
            });
            false
        }
    }
}

/// Initiator: the answer to our rekey request.
pub(crate) fn on_response<R: CryptoRng>(
    sa: &mut IkeSa,
    ctx: &mut Ctx<'_, R>,
    payloads: &[Payload],
) {
    sa.in_flight = None;
    let Some(req) = sa.rekey.take() else { return };
    let old = sa
        .children
        .iter()
        .find(|c| c.spi_in == req.old_spi_in)
        .map(|c| (c.spi_in, c.spi_out));
    let nr = match (first_error(payloads), nonce(payloads), ke(payloads)) {
        (None, Some(nr), None) => nr.to_vec(),
        (Some(n), _, _) if n.notify_type == NotifyType::TEMPORARY_FAILURE => {
            // The peer is busy, e.g. rekeying the IKE SA (RFC 7296 §2.25): later.
            sa.retry_later(ctx, Queued::RekeyChild(req.old_spi_in));
            return;
        }
        (e, _, _) => {
            let error = match e {
                Some(n) => IkeError::from_peer_notify(n.notify_type, &n.data),
                None => IkeError::InvalidMessage("rekey response lacks Nr or has KEr"),
            };
            ctx.out.events.push_back(Event::ChildSaFailed {
                id: sa.id,
                conn: sa.conn.name.clone(),
                error,
            });
            return;
        }
    };
    let new_in = req.child.spi_in();
    let km = Keymat {
        ni: &req.ni,
        nr: &nr,
        dh: None,
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
