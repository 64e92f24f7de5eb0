//! Message::parse must never panic, and whatever it accepts must re-encode to a canonical form
//! that parses to the same value. Canonicalisation only clears ignored bits (RESERVED fields,
//! the Critical bit of modelled payloads), so the encoding has the input's length and sets no bit
//! the input does not set (tests/wire_props.rs checks exactly which bits are cleared).
#![no_main]

use ikev2d::wire::{Message, PayloadType, encode_payloads, parse_payloads};
use libfuzzer_sys::fuzz_target;

/// `canonical` has the length of `input` and only clears bits of it.
fn only_clears_bits(input: &[u8], canonical: &[u8]) -> bool {
    input.len() == canonical.len() && input.iter().zip(canonical).all(|(i, c)| c & !i == 0)
}

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = Message::parse(data) {
        let canonical = msg.encode();
        assert!(only_clears_bits(data, &canonical));
        assert_eq!(Message::parse(&canonical), Ok(msg));
    }
    // The same bytes as a decrypted SK body: the first byte picks the first payload type.
    if let Some((&first, rest)) = data.split_first() {
        if let Ok(payloads) = parse_payloads(PayloadType(first), rest) {
            let (ty, canonical) = encode_payloads(&payloads);
            assert!(only_clears_bits(rest, &canonical));
            if !payloads.is_empty() {
                assert_eq!(ty, PayloadType(first));
            }
            assert_eq!(parse_payloads(ty, &canonical), Ok(payloads));
        }
    }
});
