//! The initiator fed responses to its own requests: a plaintext IKE_SA_INIT response with the
//! live SPIi (selector bit 0 clear), or an authentic, correctly encrypted IKE_AUTH response
//! whose payload chain is the fuzz input (bit 0 set), sealed with the responder's exported
//! keys in place of the genuine answer. Then timers run out (retransmit, give up).
//!
//! Input: [selector, first payload type, rest...].
#![no_main]

mod common;

use std::sync::OnceLock;
use std::time::Instant;

use common::{From, I, R, addr, conn, endpoint, handshake, seal, settle};
use ikev2d::wire::{ExchangeType, PayloadType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    static T0: OnceLock<Instant> = OnceLock::new();
    let now = *T0.get_or_init(Instant::now);
    let [sel, first, rest @ ..] = data else {
        return;
    };
    if sel & 1 == 0 {
        let mut i = endpoint(conn(I, Some(R)), 1);
        if i.initiate(now, "fuzz").is_err() {
            return;
        }
        let Some(init) = i.poll_transmit() else {
            return;
        };
        // A response carrying the request's SPIi, the R flag and message ID 0.
        let mut d = rest.to_vec();
        if let (Some(dst), Some(src)) = (d.get_mut(..8), init.data.get(..8)) {
            dst.copy_from_slice(src);
        }
        if let Some(flags) = d.get_mut(19) {
            *flags = 0x20;
        }
        i.handle_datagram(now, addr(I), addr(R), &d);
        settle(&mut i, now);
        return;
    }
    let Some(mut hs) = handshake(now, false) else {
        return;
    };
    let Some(msg) = seal(
        &hs,
        From::Responder,
        ExchangeType::IKE_AUTH,
        true,
        1,
        PayloadType(*first),
        rest,
    ) else {
        return;
    };
    hs.i.handle_datagram(now, addr(I), addr(R), &msg);
    // The genuine answer after the forged one must not revive anything half-finished.
    let genuine = std::mem::take(&mut hs.auth_response);
    hs.i.handle_datagram(now, addr(I), addr(R), &genuine);
    settle(&mut hs.i, now);
});
