//! Message::parse must never panic, and whatever it accepts must re-encode to the same bytes.
#![no_main]

use ikev2d::wire::{Message, PayloadType, parse_payloads};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = Message::parse(data) {
        assert_eq!(msg.encode(), data);
    }
    // The same bytes as a decrypted SK body: the first byte picks the first payload type.
    if let Some((&first, rest)) = data.split_first() {
        if let Ok(payloads) = parse_payloads(PayloadType(first), rest) {
            let (ty, bytes) = ikev2d::wire::encode_payloads(&payloads);
            assert_eq!(bytes, rest);
            if !payloads.is_empty() {
                assert_eq!(ty, PayloadType(first));
            }
        }
    }
});
