//! Decrypted payloads on an established IKE SA: the fuzz input becomes the plaintext payload
//! chain of an authentic, correctly encrypted message (sealed with the keys the endpoints
//! export), sent to either side as a new request (INFORMATIONAL, CREATE_CHILD_SA, or any
//! exchange octet), so Delete, Notify, rekey and new-CHILD_SA handling see arbitrary content.
//!
//! Input: [selector, first payload type, exchange, inner payload bytes...]; selector bit 0
//! picks the receiver (responder or initiator), bit 1 sends the message twice.
#![no_main]

mod common;

use std::sync::OnceLock;
use std::time::Instant;

use common::{From, I, R, addr, handshake, seal, settle};
use ikev2d::wire::{ExchangeType, PayloadType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    static T0: OnceLock<Instant> = OnceLock::new();
    let now = *T0.get_or_init(Instant::now);
    let [sel, first, exchange, inner @ ..] = data else {
        return;
    };
    let Some(mut hs) = handshake(now, true) else {
        return;
    };
    let to_initiator = sel & 1 == 1;
    let (from, mid) = if to_initiator {
        // The responder's first request of its own uses message ID 0.
        (From::Responder, 0)
    } else {
        // The initiator used 0 (IKE_SA_INIT) and 1 (IKE_AUTH).
        (From::Initiator, 2)
    };
    let Some(msg) = seal(
        &hs,
        from,
        ExchangeType(*exchange),
        false,
        mid,
        PayloadType(*first),
        inner,
    ) else {
        return;
    };
    let times = if sel & 2 != 0 { 2 } else { 1 };
    for _ in 0..times {
        if to_initiator {
            hs.i.handle_datagram(now, addr(I), addr(R), &msg);
        } else {
            hs.r.handle_datagram(now, addr(R), addr(I), &msg);
        }
    }
    settle(&mut hs.i, now);
    settle(&mut hs.r, now);
});
