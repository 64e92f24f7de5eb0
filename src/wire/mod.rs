//! IKEv2 wire codec (RFC 7296): header, payloads, open code-point types. Never panics on input.
//!
//! [`Message::parse`] follows RFC 7296 §3.2 on what to ignore, and [`Message::encode`] writes a
//! canonical form:
//! - unknown code points (exchange types, transform IDs, notify types, ...) are kept as numbers;
//! - payloads of types this crate does not model are kept as [`Payload::Unknown`], unless their
//!   Critical bit is set ([`WireError::UnsupportedCriticalPayload`]);
//! - RESERVED fields (the reserved bits of the header flags and of the generic payload header,
//!   the RESERVED octets of KE, ID, AUTH and TS payloads and of proposal and transform
//!   substructures) and the Critical bit of a payload type this crate models are ignored on
//!   receipt; the encoder writes them as zero. The body of a [`Payload::Unknown`] (including a
//!   TS payload with an unmodelled selector type) is kept as received, reserved octets included;
//! - the content of an SK payload stays opaque: decrypt it and use [`parse_payloads`].
//!
//! Round trip: for every `b` that parses, `parse(encode(parse(b))) == parse(b)`, and
//! `encode(parse(b))` is `b` with exactly those ignored bits cleared, so it equals `b` whenever
//! `b` is canonical (as every message this crate or strongSwan sends is). The integrity check and
//! the AUTH computation of a received message must therefore use the received bytes.

mod codec;
mod cp;
mod enums;
mod header;
mod message;
mod payload;
mod ts;

pub use cp::{ConfigAttribute, ConfigPayload};
pub use enums::{
    AuthMethod, CfgType, ConfigAttrType, ExchangeType, IdType, NotifyType, PayloadType, ProtocolId,
    TransformId, TransformType, TsType,
};
pub use header::Header;
pub use message::{Message, Payload, encode_payloads, parse_payloads};
pub use payload::{
    AuthPayload, Delete, EncryptedFragment, EncryptedPayload, Identification, KePayload, Notify,
    Proposal, SaPayload, Transform,
};
pub use ts::TrafficSelector;

/// Why a message or payload chain was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("truncated {what}")]
    Truncated { what: &'static str },
    #[error("bad length {length} of {what}")]
    BadLength { what: &'static str, length: usize },
    #[error("trailing data after {what}")]
    TrailingData { what: &'static str },
    #[error("bad Last Substruc value {value} in {what}")]
    BadLastSubstruc { what: &'static str, value: u8 },
    #[error("unsupported critical payload {0}")]
    UnsupportedCriticalPayload(PayloadType),
    #[error("encrypted payload is not the last payload")]
    EncryptedNotLast,
    #[error("invalid major version {0}")]
    InvalidMajorVersion(u8),
}

impl WireError {
    /// The error notification to answer a request that failed to parse with.
    pub fn notify(&self) -> NotifyType {
        match self {
            WireError::UnsupportedCriticalPayload(_) => NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD,
            WireError::InvalidMajorVersion(_) => NotifyType::INVALID_MAJOR_VERSION,
            _ => NotifyType::INVALID_SYNTAX,
        }
    }
}
