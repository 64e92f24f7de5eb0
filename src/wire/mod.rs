//! IKEv2 wire codec (RFC 7296): header, payloads, open code-point types. Never panics on input.
//!
//! [`Message::parse`] accepts exactly the canonical encodings, so that for every input it accepts
//! `Message::encode(&Message::parse(b)?) == b`:
//! - unknown code points (exchange types, transform IDs, notify types, ...) are kept as numbers;
//! - payloads of types this crate does not model are kept as [`Payload::Unknown`], unless their
//!   Critical bit is set ([`WireError::UnsupportedCriticalPayload`]);
//! - RESERVED fields must be zero and the Critical bit must be clear on payload types this crate
//!   models (RFC 7296 says to ignore both on receipt; no known implementation sets them, and
//!   rejecting them keeps the representation free of fields nobody uses);
//! - the content of an SK payload stays opaque: decrypt it and use [`parse_payloads`].

mod codec;
mod enums;
mod header;
mod message;
mod payload;
mod ts;

pub use enums::{
    AuthMethod, ExchangeType, IdType, NotifyType, PayloadType, ProtocolId, TransformId,
    TransformType, TsType,
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
    #[error("non-zero RESERVED field in {what}")]
    NonZeroReserved { what: &'static str },
    #[error("bad Last Substruc value {value} in {what}")]
    BadLastSubstruc { what: &'static str, value: u8 },
    #[error("unsupported critical payload {0}")]
    UnsupportedCriticalPayload(PayloadType),
    #[error("critical bit set on payload {0}, which must have it clear")]
    CriticalBitOnKnownPayload(PayloadType),
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
