//! INFORMATIONAL: Delete of the IKE SA or of CHILD_SAs, liveness checks, in both directions.

use rand::CryptoRng;

use super::child::ChildSa;
use super::event::Event;
use super::payloads::delete_child_payload;
use super::proposal::child_protocol;
use super::sa::{Ctx, IkeSa, Path, Queued, State};
use crate::kernel::IpsecProto;
use crate::wire::{ExchangeType, Payload, ProtocolId};

/// Remove the first CHILD_SA matching `pred` and report it; returns our inbound SPI.
fn remove_child<R>(
    sa: &mut IkeSa,
    ctx: &mut Ctx<'_, R>,
    pred: impl Fn(&ChildSa) -> bool,
) -> Option<u32> {
    let i = sa.children.iter().position(pred)?;
    let c = sa.children.remove(i);
    ctx.out.events.push_back(Event::ChildSaDeleted {
        id: sa.id,
        conn: c.conn.name.clone(),
        spi_in: c.spi_in,
        spi_out: c.spi_out,
    });
    Some(c.spi_in)
}

/// Answer the peer's INFORMATIONAL request `mid`.
pub(crate) fn respond<R: CryptoRng>(
    sa: &mut IkeSa,
    ctx: &mut Ctx<'_, R>,
    path: Path,
    mid: u32,
    payloads: &[Payload],
    state: State,
) -> State {
    let deletes = payloads.iter().filter_map(|p| match p {
        Payload::Delete(d) => Some(d),
        _ => None,
    });
    // Our inbound SPIs of the deleted children, per protocol.
    let mut ours: Vec<(IpsecProto, Vec<u32>)> = Vec::new();
    let mut delete_ike = false;
    for d in deletes {
        if d.protocol == ProtocolId::IKE {
            delete_ike = true;
        } else if let Some(proto) = child_protocol(d.protocol) {
            for spi in &d.spis {
                let Ok(b) = <[u8; 4]>::try_from(spi.as_slice()) else {
                    continue;
                };
                let spi_out = u32::from_be_bytes(b);
                let gone = remove_child(sa, ctx, |c| {
                    c.spi_out == spi_out && c.suite.protocol == proto
                });
                if let Some(spi_in) = gone {
                    match ours.iter_mut().find(|(p, _)| *p == proto) {
                        Some((_, spis)) => spis.push(spi_in),
                        None => ours.push((proto, vec![spi_in])),
                    }
                }
            }
        }
    }
    let answer: Vec<Payload> = if delete_ike {
        Vec::new()
    } else {
        ours.iter()
            .map(|(proto, spis)| delete_child_payload(*proto, spis))
            .collect()
    };
    // Unanswerable only if encoding fails; the peer then retransmits and gives up.
    let _ = sa.send_response(ctx, path, ExchangeType::INFORMATIONAL, mid, &answer);
    if delete_ike {
        sa.deleted(ctx, true)
    } else {
        state
    }
}

/// The peer answered our INFORMATIONAL request.
pub(crate) fn on_response<R>(sa: &mut IkeSa, ctx: &mut Ctx<'_, R>, state: State) -> State {
    match sa.in_flight.take() {
        Some(Queued::DeleteIke) => sa.deleted(ctx, false),
        Some(Queued::DeleteChild(spi_in)) => {
            // The peer's answer names its inbound SPI of the same pair; ours identifies it.
            remove_child(sa, ctx, |c| c.spi_in == spi_in);
            state
        }
        // Rekey answers arrive as CREATE_CHILD_SA (create_child_sa::on_response).
        Some(Queued::Liveness | Queued::RekeyChild(_) | Queued::RekeyIke | Queued::CreateChild)
        | None => state,
    }
}
