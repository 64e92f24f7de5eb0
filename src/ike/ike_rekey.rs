//! CREATE_CHILD_SA rekeying the IKE SA (RFC 7296 §1.3.2, §2.18), both roles.
//!
//! The request carries SA (IKE proposals with the initiator's new SPIi), Ni and KEi; the
//! answer SA (the chosen proposal with the new SPIr), Nr and KEr. A responder selects a
//! proposal as in IKE_SA_INIT (a KE of another acceptable group gets INVALID_KE_PAYLOAD
//! with that group). The new keys are `SKEYSEED = prf_old(SK_d_old, g^ir | Ni | Nr)` and
//! `prf+_new(SKEYSEED, Ni | Nr | SPIi | SPIr)`. The new IKE SA (message IDs from 0, the
//! exchange's initiator is its initiator) takes over every CHILD_SA of the old one and the
//! requests queued about them, reported as [`Event::IkeSaRekeyed`]; the initiator then
//! deletes the old SA, which stays childless until then.
//!
//! * Initiator ([`super::Endpoint::rekey_ike`]): KEi of the old SA's group (if we still
//!   offer it, else our first). TEMPORARY_FAILURE: retried after a random delay; another
//!   error: [`Event::IkeSaRekeyFailed`], the old SA stays. While our request is
//!   outstanding we answer a CHILD_SA rekey with TEMPORARY_FAILURE (§2.25.2).
//! * Responder: TEMPORARY_FAILURE while one of our own requests other than an IKE SA rekey
//!   is outstanding (the peer retries).
//! * Simultaneous rekeys (§2.8.2): each side answers the other's request, so each makes two
//!   new SAs. The exchange holding the lowest of the four nonces made the redundant one:
//!   its initiator deletes that new SA (never reported) and leaves the old SA to the peer;
//!   the other side moves the children to the SA its own exchange made and deletes the old
//!   SA. Both reach the same verdict.

use rand::CryptoRng;

use super::error::IkeError;
use super::event::{Event, IkeSaId, Role};
use super::payloads::{
    NONCE_LEN, NONCE_RANGE, find_notify, first_error, ke, nonce, notify, random, sa_payload,
};
use super::proposal::{self, IkeSuite};
use super::sa::{Born, Ctx, IkeSa, Path, Queued, SaKeys, State};
use crate::crypto::{DhGroup, DhPrivate, derive_ike_keys_from_skeyseed, skeyseed_rekey};
use crate::wire::{
    ExchangeType, KePayload, NotifyType, Payload, Proposal, ProtocolId, SaPayload, TransformId,
};

/// A fresh IKE SA id and SPI the endpoint reserved for a possible rekey.
pub(crate) type Fresh = (IkeSaId, [u8; 8]);

/// Our outstanding rekey of the IKE SA.
pub(crate) struct IkeRekeyRequest {
    /// The new SA's SPIi (ours).
    spi_i: [u8; 8],
    ni: Vec<u8>,
    dh: DhPrivate,
    /// The peer rekeyed the same IKE SA meanwhile: the SA its exchange made and the lowest
    /// nonce of that exchange.
    collision: Option<(IkeSaId, Vec<u8>)>,
}

/// A CREATE_CHILD_SA request that rekeys the IKE SA: it proposes protocol IKE and does not
/// name a CHILD_SA with N(REKEY_SA).
pub(crate) fn is_ike_rekey(payloads: &[Payload]) -> bool {
    find_notify(payloads, NotifyType::REKEY_SA).is_none()
        && sa_payload(payloads).is_some_and(|ps| ps.iter().any(|p| p.protocol == ProtocolId::IKE))
}

/// Initiator: send the queued rekey of `sa`. Returns false when nothing was sent (no keys,
/// or the request failed: reported as [`Event::IkeSaRekeyFailed`]).
pub(crate) fn send_request<R: CryptoRng>(sa: &mut IkeSa, ctx: &mut Ctx<'_, R>) -> bool {
    let Some(keys) = sa.keys.as_ref() else {
        return false;
    };
    let ours = &sa.conn.ike_proposals;
    let hint = sa
        .rare
        .as_mut()
        .and_then(|r| r.ke_hint.take())
        .filter(|g| proposal::offers_group(ours, *g));
    let group = if let Some(g) = hint {
        g
    } else if proposal::offers_group(ours, keys.suite.dh) {
        keys.suite.dh
    } else {
        match ours.iter().find_map(|p| p.dh.first().copied()) {
            Some(g) => g,
            None => {
                let error = IkeError::NoProposalsConfigured(sa.conn.name.clone());
                failed(sa, ctx, error);
                return false;
            }
        }
    };
    let spi_i = ctx.fresh_ike_spi();
    let ni = random(ctx.rng, NONCE_LEN);
    let dh = ctx.keys.fresh(group, ctx.rng);
    let mut offer = proposal::ike_offer(ours);
    for p in &mut offer {
        p.spi = spi_i.to_vec();
    }
    let payloads = [
        Payload::Sa(SaPayload { proposals: offer }),
        Payload::Nonce(ni.clone()),
        Payload::Ke(KePayload {
            group: TransformId(group.id()),
            data: dh.public_value(),
        }),
    ];
    match sa.send_request(ctx, ExchangeType::CREATE_CHILD_SA, &payloads) {
        Ok(()) => {
            sa.ike_rekey = Some(Box::new(IkeRekeyRequest {
                spi_i,
                ni,
                dh,
                collision: None,
            }));
            sa.in_flight = Some(Queued::RekeyIke);
            true
        }
        Err(error) => {
            failed(sa, ctx, error);
            false
        }
    }
}

fn failed<R>(sa: &IkeSa, ctx: &mut Ctx<'_, R>, error: IkeError) {
    ctx.out.events.push_back(Event::IkeSaRekeyFailed {
        id: sa.id,
        conn: sa.conn.name.clone(),
        error,
    });
}

/// Initiator: the answer to our rekey request; `id` is reserved for the new SA, which is
/// returned on success.
pub(crate) fn on_response<R: CryptoRng>(
    sa: &mut IkeSa,
    ctx: &mut Ctx<'_, R>,
    payloads: &[Payload],
    id: IkeSaId,
) -> Option<Born> {
    sa.in_flight = None;
    let req = sa.ike_rekey.take()?;
    let result = match first_error(payloads) {
        Some(n) if n.notify_type == NotifyType::TEMPORARY_FAILURE => {
            sa.retry_later(ctx, Queued::RekeyIke);
            return None;
        }
        Some(n) => Err(IkeError::from_peer_notify(n.notify_type, &n.data)),
        None => complete(sa, ctx, payloads, &req, id),
    };
    if let Err(IkeError::InvalidKePayload { group }) = result
        && let Some(g) = DhGroup::from_id(group)
        && g != req.dh.group()
        && proposal::offers_group(&sa.conn.ike_proposals, g)
    {
        // The peer wants another of our groups: ask again with it, right away.
        sa.rare_mut().ke_hint = Some(g);
        sa.queue.push_front(Queued::RekeyIke);
        return None;
    }
    let mut new = match result {
        Ok(new) => new,
        Err(error) => {
            failed(sa, ctx, error);
            return None;
        }
    };
    let nr = nonce(payloads).unwrap_or_default();
    let lowest = req.ni.as_slice().min(nr);
    match req.collision {
        Some((_, theirs)) if lowest < theirs.as_slice() => {
            // Our exchange made the redundant SA: delete it; the peer deletes the old one.
            new.redundant = true;
            new.queue.push_back(Queued::DeleteIke);
            Some(Born {
                sa: new,
                adopt_from: None,
            })
        }
        collision => {
            sa.hand_over(&mut new);
            sa.queue.push_front(Queued::DeleteIke);
            let adopt_from = collision.map(|(theirs, _)| theirs);
            if adopt_from.is_none() {
                ctx.out.events.push_back(new.rekeyed_event(sa.id));
            }
            Some(Born {
                sa: new,
                adopt_from,
            })
        }
    }
}

/// Initiator: check the answer and derive the new SA (without children yet).
fn complete<R>(
    sa: &IkeSa,
    ctx: &mut Ctx<'_, R>,
    payloads: &[Payload],
    req: &IkeRekeyRequest,
    id: IkeSaId,
) -> Result<IkeSa, IkeError> {
    let [p] = sa_payload(payloads).ok_or(IkeError::InvalidMessage("no SA payload"))? else {
        return Err(IkeError::NoProposalChosen);
    };
    let spi_r = <[u8; 8]>::try_from(p.spi.as_slice())
        .map_err(|_| IkeError::InvalidMessage("IKE SPI of the wrong size"))?;
    let bare = Proposal {
        spi: Vec::new(),
        ..p.clone()
    };
    let suite = proposal::accept_ike(&[bare], &sa.conn.ike_proposals)
        .filter(|s| s.dh == req.dh.group())
        .ok_or(IkeError::NoProposalChosen)?;
    let (Some(nr), Some(ker)) = (
        nonce(payloads).filter(|n| NONCE_RANGE.contains(&n.len())),
        ke(payloads).filter(|k| k.group.0 == suite.dh.id()),
    ) else {
        return Err(IkeError::InvalidMessage("rekey response lacks Nr or KEr"));
    };
    let shared = req.dh.agree(&ker.data)?;
    successor(
        sa,
        ctx,
        (id, Role::Initiator),
        suite,
        &shared,
        (&req.ni, nr),
        (req.spi_i, spi_r),
    )
}

/// The new IKE SA of a rekey of `sa` (established, no children yet): keys from `sa`'s SK_d
/// and the new DH secret.
fn successor<R>(
    sa: &IkeSa,
    ctx: &mut Ctx<'_, R>,
    (id, role): (IkeSaId, Role),
    suite: IkeSuite,
    shared: &[u8],
    (ni, nr): (&[u8], &[u8]),
    (spi_i, spi_r): ([u8; 8], [u8; 8]),
) -> Result<IkeSa, IkeError> {
    let old = sa
        .keys
        .as_ref()
        .ok_or(IkeError::InvalidMessage("no keys yet"))?;
    let seed = skeyseed_rekey(old.suite.prf, &old.sk_d, shared, ni, nr);
    let keys = derive_ike_keys_from_skeyseed(
        suite.prf,
        suite.encr,
        suite.integ,
        &seed,
        ni,
        nr,
        &spi_i,
        &spi_r,
    )?;
    let path = Path {
        local: sa.local,
        remote: sa.remote,
    };
    let mut new = IkeSa::new(id, sa.conn.clone(), role, (spi_i, spi_r), path);
    let mut new_keys = SaKeys::new(suite, &keys, role, ctx.config.export_keys)?;
    // No AUTH payload is made with the keys of a rekeyed IKE SA.
    new_keys.auth = None;
    new.keys = Some(new_keys);
    new.state = State::Established;
    new.remote_id = sa.remote_id.clone();
    new.nat_detected = sa.nat_detected;
    new.behind_nat = sa.behind_nat;
    new.established_at = Some(ctx.now);
    Ok(new)
}

/// Responder: the answer to an IKE SA rekey request on `sa` (`established`: not while
/// deleting the IKE SA), using `fresh` for the new SA, and the new IKE SA (already holding
/// `sa`'s children) on success.
pub(crate) fn respond<R: CryptoRng>(
    sa: &mut IkeSa,
    ctx: &mut Ctx<'_, R>,
    payloads: &[Payload],
    established: bool,
    fresh: Option<Fresh>,
) -> (Vec<Payload>, Option<IkeSa>) {
    match fresh {
        Some(f) if established => answer(sa, ctx, payloads, f),
        _ => (
            vec![notify(NotifyType::TEMPORARY_FAILURE, Vec::new())],
            None,
        ),
    }
}

/// The response payloads to an IKE SA rekey request and, on success, the new IKE SA.
fn answer<R: CryptoRng>(
    sa: &mut IkeSa,
    ctx: &mut Ctx<'_, R>,
    payloads: &[Payload],
    (id, spi_r): Fresh,
) -> (Vec<Payload>, Option<IkeSa>) {
    let refuse = |t: NotifyType, data: Vec<u8>| (vec![notify(t, data)], None);
    let rekeying_too = sa.in_flight == Some(Queued::RekeyIke);
    if (sa.outstanding.is_some() && !rekeying_too) || sa.rekey.is_some() {
        // Our own exchange is in flight (RFC 7296 §2.25): the peer retries later.
        return refuse(NotifyType::TEMPORARY_FAILURE, Vec::new());
    }
    let (Some(ni), Some(ke)) = (
        nonce(payloads).filter(|n| NONCE_RANGE.contains(&n.len())),
        ke(payloads),
    ) else {
        return refuse(NotifyType::INVALID_SYNTAX, Vec::new());
    };
    // Proposals with the peer's new SPIi; selected like IKE_SA_INIT's (SPI-less) ones.
    let offered: Vec<(Proposal, [u8; 8])> = sa_payload(payloads)
        .unwrap_or_default()
        .iter()
        .filter(|p| p.protocol == ProtocolId::IKE)
        .filter_map(|p| {
            let spi = <[u8; 8]>::try_from(p.spi.as_slice()).ok()?;
            let bare = Proposal {
                spi: Vec::new(),
                ..p.clone()
            };
            Some((bare, spi))
        })
        .collect();
    let bare: Vec<Proposal> = offered.iter().map(|(p, _)| p.clone()).collect();
    let ours = &sa.conn.ike_proposals;
    let group = DhGroup::from_id(ke.group.0);
    let Some((number, suite)) = group.and_then(|g| proposal::select_ike(&bare, ours, Some(g)))
    else {
        return match proposal::select_ike(&bare, ours, None) {
            Some((_, s)) => refuse(
                NotifyType::INVALID_KE_PAYLOAD,
                s.dh.id().to_be_bytes().to_vec(),
            ),
            None => refuse(NotifyType::NO_PROPOSAL_CHOSEN, Vec::new()),
        };
    };
    let Some(spi_i) = offered
        .iter()
        .find(|(p, _)| p.number == number)
        .map(|(_, s)| *s)
    else {
        return refuse(NotifyType::NO_PROPOSAL_CHOSEN, Vec::new());
    };
    let dh = ctx.keys.fresh(suite.dh, ctx.rng);
    let Ok(shared) = dh.agree(&ke.data) else {
        return refuse(NotifyType::INVALID_SYNTAX, Vec::new());
    };
    let nr = random(ctx.rng, NONCE_LEN);
    let new = successor(
        sa,
        ctx,
        (id, Role::Responder),
        suite,
        &shared,
        (ni, &nr),
        (spi_i, spi_r),
    );
    let Ok(mut new) = new else {
        return refuse(NotifyType::NO_PROPOSAL_CHOSEN, Vec::new());
    };
    if let Some(ours) = sa.ike_rekey.as_mut() {
        ours.collision = Some((id, ni.min(nr.as_slice()).to_vec()));
    }
    sa.hand_over(&mut new);
    ctx.out.events.push_back(new.rekeyed_event(sa.id));
    let mut answer = suite.to_proposal(number);
    answer.spi = spi_r.to_vec();
    let v = vec![
        Payload::Sa(SaPayload {
            proposals: vec![answer],
        }),
        Payload::Nonce(nr),
        Payload::Ke(KePayload {
            group: TransformId(suite.dh.id()),
            data: dh.public_value(),
        }),
    ];
    (v, Some(new))
}
