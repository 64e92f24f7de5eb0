//! CREATE_CHILD_SA rekeying the IKE SA, responder side (RFC 7296 §1.3.2, §2.18).
//!
//! The request carries SA (IKE proposals with the peer's new SPIi), Ni and KEi. We select a
//! proposal as in IKE_SA_INIT (a KE of another acceptable group gets INVALID_KE_PAYLOAD
//! with that group), allocate the new SPIr and answer SA, Nr, KEr. The new keys are
//! `SKEYSEED = prf_old(SK_d_old, g^ir | Ni | Nr)` and `prf+_new(SKEYSEED, Ni | Nr | SPIi |
//! SPIr)`. The new IKE SA (the peer is its initiator, message IDs start at 0) takes over
//! every CHILD_SA of the old one; the old SA stays, childless, until it is deleted.

use rand::CryptoRng;

use super::event::{Event, IkeSaId, Role};
use super::payloads::{NONCE_LEN, NONCE_RANGE, find_notify, ke, nonce, notify, random, sa_payload};
use super::proposal;
use super::sa::{Ctx, IkeSa, Path, SaKeys, State};
use crate::crypto::{DhGroup, derive_ike_keys_from_skeyseed, skeyseed_rekey};
use crate::wire::{
    ExchangeType, KePayload, NotifyType, Payload, Proposal, ProtocolId, SaPayload, TransformId,
};

/// A fresh IKE SA id and SPI the endpoint reserved for a possible rekey.
pub(crate) type Fresh = (IkeSaId, [u8; 8]);

/// A CREATE_CHILD_SA request that rekeys the IKE SA: it proposes protocol IKE and does not
/// name a CHILD_SA with N(REKEY_SA).
pub(crate) fn is_ike_rekey(payloads: &[Payload]) -> bool {
    find_notify(payloads, NotifyType::REKEY_SA).is_none()
        && sa_payload(payloads).is_some_and(|ps| ps.iter().any(|p| p.protocol == ProtocolId::IKE))
}

/// Answer the IKE SA rekey request `mid` on `sa` (`established`: not while deleting the IKE
/// SA), using `fresh` for the new SA. Returns the new IKE SA (already holding `sa`'s
/// children) on success.
pub(crate) fn respond<R: CryptoRng>(
    sa: &mut IkeSa,
    ctx: &mut Ctx<'_, R>,
    path: Path,
    mid: u32,
    payloads: &[Payload],
    established: bool,
    fresh: Option<Fresh>,
) -> Option<IkeSa> {
    let (answer, born) = match fresh {
        Some(f) if established => answer(sa, ctx, payloads, f),
        _ => (
            vec![notify(NotifyType::TEMPORARY_FAILURE, Vec::new())],
            None,
        ),
    };
    // An encoding failure leaves the request unanswered; the peer retransmits, then gives up.
    let _ = sa.send_response(ctx, path, ExchangeType::CREATE_CHILD_SA, mid, &answer);
    born
}

/// The response payloads to an IKE SA rekey request and, on success, the new IKE SA.
fn answer<R: CryptoRng>(
    sa: &mut IkeSa,
    ctx: &mut Ctx<'_, R>,
    payloads: &[Payload],
    (id, spi_r): Fresh,
) -> (Vec<Payload>, Option<IkeSa>) {
    let refuse = |t: NotifyType, data: Vec<u8>| (vec![notify(t, data)], None);
    if sa.outstanding.is_some() || sa.rekey.is_some() {
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
    let dh = suite.dh.generate(ctx.rng);
    let Ok(shared) = dh.agree(&ke.data) else {
        return refuse(NotifyType::INVALID_SYNTAX, Vec::new());
    };
    let nr = random(ctx.rng, NONCE_LEN);
    let Some(old) = sa.keys.as_ref() else {
        return refuse(NotifyType::TEMPORARY_FAILURE, Vec::new());
    };
    let seed = skeyseed_rekey(old.suite.prf, &old.sk_d, &shared, ni, &nr);
    let keys = derive_ike_keys_from_skeyseed(
        suite.prf,
        suite.encr,
        suite.integ,
        &seed,
        ni,
        &nr,
        &spi_i,
        &spi_r,
    )
    .map_err(Into::into)
    .and_then(|k| SaKeys::new(suite, k, Role::Responder, ctx.config.export_keys));
    let Ok(keys) = keys else {
        return refuse(NotifyType::NO_PROPOSAL_CHOSEN, Vec::new());
    };
    let path = Path {
        local: sa.local,
        remote: sa.remote,
    };
    let mut new = IkeSa::new(id, sa.conn.clone(), Role::Responder, (spi_i, spi_r), path);
    new.state = State::Established;
    new.remote_id = sa.remote_id.clone();
    new.nat_detected = sa.nat_detected;
    new.established_at = Some(ctx.now);
    new.children = std::mem::take(&mut sa.children);
    ctx.out.events.push_back(Event::IkeSaRekeyed {
        old: sa.id,
        new: id,
        conn: sa.conn.name.clone(),
        spi_i,
        spi_r,
        proposal: suite.name(),
        exported_keys: keys.exported.clone().map(Box::new),
    });
    new.keys = Some(keys);
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
