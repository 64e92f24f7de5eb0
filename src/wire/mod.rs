//! IKEv2 wire codec (RFC 7296): header, payloads, open code-point types. Never panics on input.
