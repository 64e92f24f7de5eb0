//! The fixed 28-byte IKE header (RFC 7296 §3.1).

use super::codec::Reader;
use super::{ExchangeType, PayloadType, WireError};

/// IKE header. `next_payload` and `length` are recomputed by [`super::Message::encode`], so
/// callers building a message may leave them at any value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    pub spi_i: [u8; 8],
    pub spi_r: [u8; 8],
    pub next_payload: PayloadType,
    pub major: u8,
    pub minor: u8,
    pub exchange: ExchangeType,
    /// The flags octet. Only [`Header::FLAGS_DEFINED`] bits are read and written: the reserved
    /// bits are ignored on receipt and sent as zero.
    pub flags: u8,
    pub message_id: u32,
    pub length: u32,
}

impl Header {
    /// Size of the encoded header.
    pub const LEN: usize = 28;
    /// I(nitiator) flag: set by the original initiator of the IKE SA.
    pub const FLAG_INITIATOR: u8 = 0x08;
    /// V(ersion) flag: the sender could speak a higher major version.
    pub const FLAG_VERSION: u8 = 0x10;
    /// R(esponse) flag.
    pub const FLAG_RESPONSE: u8 = 0x20;
    /// The flags RFC 7296 defines (I, V, R); the other bits are RESERVED.
    pub const FLAGS_DEFINED: u8 = Self::FLAG_INITIATOR | Self::FLAG_VERSION | Self::FLAG_RESPONSE;
    /// The IKE major version this crate speaks.
    pub const MAJOR_VERSION: u8 = 2;

    pub fn is_response(&self) -> bool {
        self.flags & Self::FLAG_RESPONSE != 0
    }

    pub fn is_initiator(&self) -> bool {
        self.flags & Self::FLAG_INITIATOR != 0
    }

    /// Parses the first [`Header::LEN`] bytes of `bytes` (anything after them is ignored). The
    /// version is not checked here, so that a responder can still read SPIs and message ID to
    /// answer INVALID_MAJOR_VERSION; [`super::Message::parse`] checks it.
    pub fn parse(bytes: &[u8]) -> Result<Header, WireError> {
        let mut r = Reader::new(bytes);
        Self::read(&mut r)
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Header, WireError> {
        let what = "IKE header";
        let spi_i = r.array(what)?;
        let spi_r = r.array(what)?;
        let next_payload = PayloadType(r.u8(what)?);
        let version = r.u8(what)?;
        let exchange = ExchangeType(r.u8(what)?);
        let flags = r.u8(what)? & Self::FLAGS_DEFINED;
        let message_id = r.u32(what)?;
        let length = r.u32(what)?;
        Ok(Header {
            spi_i,
            spi_r,
            next_payload,
            major: version >> 4,
            minor: version & 0x0f,
            exchange,
            flags,
            message_id,
            length,
        })
    }

    /// Appends the header as its fields say (`major`/`minor` are truncated to 4 bits, reserved
    /// flag bits are cleared).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.spi_i);
        out.extend_from_slice(&self.spi_r);
        out.push(self.next_payload.0);
        out.push((self.major << 4) | (self.minor & 0x0f));
        out.push(self.exchange.0);
        out.push(self.flags & Self::FLAGS_DEFINED);
        out.extend_from_slice(&self.message_id.to_be_bytes());
        out.extend_from_slice(&self.length.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BYTES: [u8; 28] = [
        1, 2, 3, 4, 5, 6, 7, 8, // SPIi
        0, 0, 0, 0, 0, 0, 0, 0, // SPIr
        33, 0x20, 34, 0x08, // next SA, version 2.0, IKE_SA_INIT, initiator
        0, 0, 0, 0, // message ID
        0, 0, 1, 0x2c, // length 300
    ];

    #[test]
    fn parse_rfc_layout() {
        let h = Header::parse(&BYTES).unwrap();
        assert_eq!(h.spi_i, [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(h.spi_r, [0; 8]);
        assert_eq!(h.next_payload, PayloadType::SA);
        assert_eq!((h.major, h.minor), (2, 0));
        assert_eq!(h.exchange, ExchangeType::IKE_SA_INIT);
        assert!(h.is_initiator());
        assert!(!h.is_response());
        assert_eq!(h.message_id, 0);
        assert_eq!(h.length, 300);
        let mut out = Vec::new();
        h.encode(&mut out);
        assert_eq!(out, BYTES);
    }

    #[test]
    fn flags_and_odd_versions_round_trip() {
        let mut bytes = BYTES;
        bytes[17] = 0x3f; // version 3.15
        bytes[19] = 0x38; // I, V and R
        let h = Header::parse(&bytes).unwrap();
        assert_eq!((h.major, h.minor), (3, 15));
        assert!(h.is_response() && h.is_initiator());
        assert_eq!(h.flags, Header::FLAGS_DEFINED);
        let mut out = Vec::new();
        h.encode(&mut out);
        assert_eq!(out, bytes);
    }

    #[test]
    fn reserved_flag_bits_are_ignored_and_sent_as_zero() {
        let mut bytes = BYTES;
        bytes[19] = 0xc7 | Header::FLAG_RESPONSE; // every reserved bit, and R
        let h = Header::parse(&bytes).unwrap();
        assert_eq!(
            h,
            Header::parse(&BYTES)
                .map(|h| Header {
                    flags: Header::FLAG_RESPONSE,
                    ..h
                })
                .unwrap()
        );
        let mut out = Vec::new();
        h.encode(&mut out);
        assert_eq!(out[19], Header::FLAG_RESPONSE);
        // Reserved bits set by a caller are not sent either.
        let mut out = Vec::new();
        Header { flags: 0xff, ..h }.encode(&mut out);
        assert_eq!(out[19], Header::FLAGS_DEFINED);
    }

    #[test]
    fn short_header_is_truncated() {
        for n in 0..Header::LEN {
            assert_eq!(
                Header::parse(&BYTES[..n]),
                Err(WireError::Truncated { what: "IKE header" })
            );
        }
    }
}
