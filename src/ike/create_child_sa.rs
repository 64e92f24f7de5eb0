//! CREATE_CHILD_SA: not supported yet; every request is answered with NO_ADDITIONAL_SAS
//! (RFC 7296 §1.3), which leaves the IKE SA and its CHILD_SAs untouched.

use rand::CryptoRng;

use super::child::notify;
use super::sa::{Ctx, IkeSa, Path};
use crate::wire::{ExchangeType, NotifyType};

/// Answer a CREATE_CHILD_SA request `mid`.
pub(crate) fn respond<R: CryptoRng>(sa: &mut IkeSa, ctx: &mut Ctx<'_, R>, path: Path, mid: u32) {
    let n = notify(NotifyType::NO_ADDITIONAL_SAS, Vec::new());
    // An encoding failure leaves the request unanswered; the peer retransmits, then gives up.
    let _ = sa.send_response(ctx, path, ExchangeType::CREATE_CHILD_SA, mid, &[n]);
}
