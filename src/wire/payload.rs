//! Payload bodies (RFC 7296 §3.3–§3.14): everything after the 4-byte generic payload header.
//!
//! Each type has a `read` that consumes a whole body (trailing bytes are an error) and a `write`
//! that appends the body. RESERVED fields are ignored on input and written as zero.

use std::net::IpAddr;

use super::codec::{Reader, with_len16};
use super::{AuthMethod, IdType, PayloadType, ProtocolId, TransformId, TransformType, WireError};

/// Security Association payload (§3.3).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SaPayload {
    pub proposals: Vec<Proposal>,
}

/// Proposal substructure (§3.3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// Proposal Num: 1 for the first proposal, echoed by the responder.
    pub number: u8,
    pub protocol: ProtocolId,
    /// Empty in an IKE_SA_INIT proposal, 4 bytes for ESP/AH, 8 for IKE SA rekeying.
    pub spi: Vec<u8>,
    pub transforms: Vec<Transform>,
}

/// Transform substructure (§3.3.2).
///
/// `key_length` holds the Key Length attribute (TV, type 14) when it is the transform's *first*
/// attribute; every other attribute, in wire order, is kept in `other_attributes`, so a transform
/// with a non-empty `other_attributes` has attributes this crate does not understand (RFC 7296
/// §3.3.6: such a transform must not be selected).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transform {
    pub kind: TransformType,
    pub id: TransformId,
    /// Key length in bits.
    pub key_length: Option<u16>,
    /// `(raw attribute type, value)`. The raw type includes the AF bit (0x8000): when it is set the
    /// attribute is TV and the value is its 2 bytes (encoding pads or truncates to 2), otherwise TLV.
    pub other_attributes: Vec<(u16, Vec<u8>)>,
}

impl Transform {
    /// Attribute Format bit: set for TV (2-byte value in place of the length) attributes.
    pub const ATTR_FORMAT_TV: u16 = 0x8000;
    /// Attribute type of Key Length (always TV).
    pub const ATTR_KEY_LENGTH: u16 = 14;

    /// A transform without attributes.
    pub fn new(kind: TransformType, id: TransformId) -> Self {
        Transform {
            kind,
            id,
            key_length: None,
            other_attributes: Vec::new(),
        }
    }

    /// A transform with a Key Length attribute (in bits), e.g. ENCR_AES_CBC with 256.
    pub fn with_key_length(kind: TransformType, id: TransformId, bits: u16) -> Self {
        Transform {
            key_length: Some(bits),
            ..Transform::new(kind, id)
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let what = "transform";
        let kind = TransformType(r.u8(what)?);
        r.reserved::<1>("transform RESERVED")?;
        let id = TransformId(r.u16(what)?);
        let mut transform = Transform::new(kind, id);
        while !r.is_empty() {
            let raw_type = r.u16("transform attribute")?;
            if raw_type & Self::ATTR_FORMAT_TV == 0 {
                let len = r.u16("transform attribute")?;
                let value = r.take(usize::from(len), "transform attribute value")?;
                transform.other_attributes.push((raw_type, value.to_vec()));
                continue;
            }
            let value = r.u16("transform attribute")?;
            if raw_type == Self::ATTR_FORMAT_TV | Self::ATTR_KEY_LENGTH
                && transform.key_length.is_none()
                && transform.other_attributes.is_empty()
            {
                transform.key_length = Some(value);
            } else {
                transform
                    .other_attributes
                    .push((raw_type, value.to_be_bytes().to_vec()));
            }
        }
        Ok(transform)
    }

    fn write(&self, last: bool, out: &mut Vec<u8>) {
        with_len16(
            out,
            |out| out.extend_from_slice(&[if last { 0 } else { 3 }, 0]),
            |out| {
                out.extend_from_slice(&[self.kind.0, 0]);
                out.extend_from_slice(&self.id.0.to_be_bytes());
                if let Some(bits) = self.key_length {
                    out.extend_from_slice(
                        &(Self::ATTR_FORMAT_TV | Self::ATTR_KEY_LENGTH).to_be_bytes(),
                    );
                    out.extend_from_slice(&bits.to_be_bytes());
                }
                for (raw_type, value) in &self.other_attributes {
                    out.extend_from_slice(&raw_type.to_be_bytes());
                    if raw_type & Self::ATTR_FORMAT_TV != 0 {
                        let mut tv = [0; 2];
                        for (slot, byte) in tv.iter_mut().zip(value) {
                            *slot = *byte;
                        }
                        out.extend_from_slice(&tv);
                    } else {
                        let value = value.get(..usize::from(u16::MAX)).unwrap_or(value);
                        let len = u16::try_from(value.len()).unwrap_or(u16::MAX);
                        out.extend_from_slice(&len.to_be_bytes());
                        out.extend_from_slice(value);
                    }
                }
            },
        );
    }
}

/// Checks a Last Substruc octet: `more` (another substructure follows) or 0 (this is the last).
fn check_last(what: &'static str, value: u8, is_last: bool, more: u8) -> Result<(), WireError> {
    if value == if is_last { 0 } else { more } {
        Ok(())
    } else {
        Err(WireError::BadLastSubstruc { what, value })
    }
}

/// Reads the 4-byte substructure header shared by proposals and transforms and returns a reader
/// over the rest of the substructure.
fn read_substruc<'a>(
    r: &mut Reader<'a>,
    what: &'static str,
    min_len: u16,
) -> Result<(u8, Reader<'a>), WireError> {
    let last = r.u8(what)?;
    r.reserved::<1>(what)?;
    let len = r.u16(what)?;
    if len < min_len {
        return Err(WireError::BadLength {
            what,
            length: usize::from(len),
        });
    }
    Ok((last, r.sub(usize::from(len - 4), what)?))
}

/// A length-prefixed (one octet) field's length and bytes, truncated to 255 bytes.
fn short_field(bytes: &[u8]) -> (u8, &[u8]) {
    let bytes = bytes.get(..usize::from(u8::MAX)).unwrap_or(bytes);
    (u8::try_from(bytes.len()).unwrap_or(u8::MAX), bytes)
}

impl Proposal {
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let what = "proposal";
        let number = r.u8(what)?;
        let protocol = ProtocolId(r.u8(what)?);
        let spi_size = r.u8(what)?;
        let count = r.u8(what)?;
        let spi = r.take(usize::from(spi_size), "proposal SPI")?.to_vec();
        let mut transforms = Vec::with_capacity(usize::from(count));
        for i in 0..count {
            let (last, mut body) = read_substruc(r, "transform", 8)?;
            check_last("transform", last, i + 1 == count, 3)?;
            transforms.push(Transform::read(&mut body)?);
        }
        r.expect_end(what)?;
        Ok(Proposal {
            number,
            protocol,
            spi,
            transforms,
        })
    }

    fn write(&self, last: bool, out: &mut Vec<u8>) {
        with_len16(
            out,
            |out| out.extend_from_slice(&[if last { 0 } else { 2 }, 0]),
            |out| {
                let (spi_size, spi) = short_field(&self.spi);
                let transforms = self
                    .transforms
                    .get(..usize::from(u8::MAX))
                    .unwrap_or(&self.transforms);
                let count = u8::try_from(transforms.len()).unwrap_or(u8::MAX);
                out.extend_from_slice(&[self.number, self.protocol.0, spi_size, count]);
                out.extend_from_slice(spi);
                for (i, transform) in transforms.iter().enumerate() {
                    transform.write(i + 1 == transforms.len(), out);
                }
            },
        );
    }
}

impl SaPayload {
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let mut proposals = Vec::new();
        while !r.is_empty() {
            let (last, mut body) = read_substruc(r, "proposal", 8)?;
            check_last("proposal", last, r.is_empty(), 2)?;
            proposals.push(Proposal::read(&mut body)?);
        }
        Ok(SaPayload { proposals })
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        for (i, proposal) in self.proposals.iter().enumerate() {
            proposal.write(i + 1 == self.proposals.len(), out);
        }
    }
}

/// Key Exchange payload (§3.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KePayload {
    /// Diffie-Hellman Group Num (a [`TransformType::DH`] transform ID).
    pub group: TransformId,
    pub data: Vec<u8>,
}

impl KePayload {
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let group = TransformId(r.u16("KE payload")?);
        r.reserved::<2>("KE payload RESERVED")?;
        Ok(KePayload {
            group,
            data: r.rest().to_vec(),
        })
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.group.0.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.data);
    }
}

/// Reads the "type octet + 3 RESERVED + data" layout shared by ID and AUTH payloads.
fn read_typed_body(r: &mut Reader<'_>, what: &'static str) -> Result<(u8, Vec<u8>), WireError> {
    let kind = r.u8(what)?;
    r.reserved::<3>(what)?;
    Ok((kind, r.rest().to_vec()))
}

fn write_typed_body(kind: u8, data: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&[kind, 0, 0, 0]);
    out.extend_from_slice(data);
}

/// Identification payload body, for both IDi and IDr (§3.5).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identification {
    pub id_type: IdType,
    pub data: Vec<u8>,
}

/// As written in ipsec.conf: `10.1.0.1`, `@gw.example.org`, `carol@example.org`, `@#0a0b`.
impl std::fmt::Display for Identification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = || String::from_utf8_lossy(&self.data);
        match self.id_type {
            IdType::IPV4_ADDR | IdType::IPV6_ADDR => match self.ip() {
                Some(a) => write!(f, "{a}"),
                None => f.write_str("<bad address id>"),
            },
            IdType::FQDN => write!(f, "@{}", text()),
            IdType::RFC822_ADDR => f.write_str(&text()),
            IdType::KEY_ID => {
                f.write_str("@#")?;
                self.data.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
            t => write!(f, "id-type-{}", t.0),
        }
    }
}

impl Identification {
    /// ID_IPV4_ADDR or ID_IPV6_ADDR.
    pub fn from_ip(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(v4) => Identification {
                id_type: IdType::IPV4_ADDR,
                data: v4.octets().to_vec(),
            },
            IpAddr::V6(v6) => Identification {
                id_type: IdType::IPV6_ADDR,
                data: v6.octets().to_vec(),
            },
        }
    }

    /// ID_FQDN (without strongSwan's leading `@`).
    pub fn fqdn(name: &str) -> Self {
        Identification {
            id_type: IdType::FQDN,
            data: name.as_bytes().to_vec(),
        }
    }

    /// ID_RFC822_ADDR (an e-mail address).
    pub fn rfc822(addr: &str) -> Self {
        Identification {
            id_type: IdType::RFC822_ADDR,
            data: addr.as_bytes().to_vec(),
        }
    }

    /// ID_KEY_ID (opaque octets).
    pub fn key_id(id: &[u8]) -> Self {
        Identification {
            id_type: IdType::KEY_ID,
            data: id.to_vec(),
        }
    }

    /// The address of an ID_IPV4_ADDR / ID_IPV6_ADDR identity with a well-formed length.
    pub fn ip(&self) -> Option<IpAddr> {
        match self.id_type {
            IdType::IPV4_ADDR => <[u8; 4]>::try_from(self.data.as_slice())
                .ok()
                .map(IpAddr::from),
            IdType::IPV6_ADDR => <[u8; 16]>::try_from(self.data.as_slice())
                .ok()
                .map(IpAddr::from),
            _ => None,
        }
    }

    /// The payload body after the generic header: ID Type, 3 RESERVED octets, data. This is what
    /// the PSK AUTH computation hashes (RFC 7296 §2.15, `RestOfInitIDPayload`).
    pub fn body_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.data.len());
        self.write(&mut out);
        out
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let (id_type, data) = read_typed_body(r, "ID payload")?;
        Ok(Identification {
            id_type: IdType(id_type),
            data,
        })
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        write_typed_body(self.id_type.0, &self.data, out);
    }
}

/// Authentication payload (§3.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthPayload {
    pub method: AuthMethod,
    pub data: Vec<u8>,
}

impl AuthPayload {
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let (method, data) = read_typed_body(r, "AUTH payload")?;
        Ok(AuthPayload {
            method: AuthMethod(method),
            data,
        })
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        write_typed_body(self.method.0, &self.data, out);
    }
}

/// Notify payload (§3.10). `spi` is empty for notifications about the IKE SA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    pub protocol: ProtocolId,
    pub spi: Vec<u8>,
    pub notify_type: super::NotifyType,
    pub data: Vec<u8>,
}

impl Notify {
    /// A notification about the IKE SA (Protocol ID 0, no SPI), as most status notifies are sent.
    pub fn ike(notify_type: super::NotifyType, data: Vec<u8>) -> Self {
        Notify {
            protocol: ProtocolId(0),
            spi: Vec::new(),
            notify_type,
            data,
        }
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let what = "Notify payload";
        let protocol = ProtocolId(r.u8(what)?);
        let spi_size = r.u8(what)?;
        let notify_type = super::NotifyType(r.u16(what)?);
        let spi = r.take(usize::from(spi_size), "Notify SPI")?.to_vec();
        Ok(Notify {
            protocol,
            spi,
            notify_type,
            data: r.rest().to_vec(),
        })
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        let (spi_size, spi) = short_field(&self.spi);
        out.extend_from_slice(&[self.protocol.0, spi_size]);
        out.extend_from_slice(&self.notify_type.0.to_be_bytes());
        out.extend_from_slice(spi);
        out.extend_from_slice(&self.data);
    }
}

/// Delete payload (§3.11). Every element of `spis` is expected to be `spi_size` bytes long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete {
    pub protocol: ProtocolId,
    pub spi_size: u8,
    pub spis: Vec<Vec<u8>>,
}

impl Delete {
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let what = "Delete payload";
        let protocol = ProtocolId(r.u8(what)?);
        let spi_size = r.u8(what)?;
        let count = r.u16(what)?;
        let spis = (0..count)
            .map(|_| {
                r.take(usize::from(spi_size), "Delete SPI")
                    .map(<[u8]>::to_vec)
            })
            .collect::<Result<Vec<_>, _>>()?;
        r.expect_end(what)?;
        Ok(Delete {
            protocol,
            spi_size,
            spis,
        })
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        let spis = self.spis.get(..usize::from(u16::MAX)).unwrap_or(&self.spis);
        let count = u16::try_from(spis.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&[self.protocol.0, self.spi_size]);
        out.extend_from_slice(&count.to_be_bytes());
        for spi in spis {
            out.extend_from_slice(spi);
        }
    }
}

/// Encrypted and Authenticated payload (§3.14). `data` is IV ‖ ciphertext ‖ ICV, opaque here;
/// `next_inner` is the type of the first payload inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedPayload {
    pub next_inner: PayloadType,
    pub data: Vec<u8>,
}

/// Encrypted and Authenticated Fragment payload (RFC 7383 §2.5). `next_inner` is the first inner
/// payload type in fragment 1 and NONE in the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedFragment {
    pub next_inner: PayloadType,
    pub fragment_number: u16,
    pub total_fragments: u16,
    /// IV ‖ ciphertext ‖ ICV.
    pub data: Vec<u8>,
}

impl EncryptedFragment {
    pub(crate) fn read(next_inner: PayloadType, r: &mut Reader<'_>) -> Result<Self, WireError> {
        let fragment_number = r.u16("SKF payload")?;
        let total_fragments = r.u16("SKF payload")?;
        Ok(EncryptedFragment {
            next_inner,
            fragment_number,
            total_fragments,
            data: r.rest().to_vec(),
        })
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.fragment_number.to_be_bytes());
        out.extend_from_slice(&self.total_fragments.to_be_bytes());
        out.extend_from_slice(&self.data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::NotifyType;

    fn read<T>(
        f: fn(&mut Reader<'_>) -> Result<T, WireError>,
        bytes: &[u8],
    ) -> Result<T, WireError> {
        f(&mut Reader::new(bytes))
    }

    // SA body: proposal 1, IKE, no SPI, 3 transforms (AES-CBC-256, PRF-SHA256, Curve25519).
    const SA_BODY: [u8; 36] = [
        0, 0, 0, 36, 1, 1, 0,
        3, // last proposal, length 36, #1, IKE, SPI size 0, 3 transforms
        3, 0, 0, 12, 1, 0, 0, 12, 0x80, 14, 1, 0, // ENCR AES_CBC, Key Length 256 (TV)
        3, 0, 0, 8, 2, 0, 0, 5, // PRF_HMAC_SHA2_256
        0, 0, 0, 8, 4, 0, 0, 31, // last transform: DH Curve25519
    ];

    fn encode_sa(sa: &SaPayload) -> Vec<u8> {
        let mut out = Vec::new();
        sa.write(&mut out);
        out
    }

    #[test]
    fn sa_payload_rfc_layout() {
        let sa = read(SaPayload::read, &SA_BODY).unwrap();
        let [p] = sa.proposals.as_slice() else {
            panic!("{sa:?}")
        };
        assert_eq!(
            (p.number, p.protocol, p.spi.as_slice()),
            (1, ProtocolId::IKE, &[][..])
        );
        assert_eq!(
            p.transforms,
            [
                Transform::with_key_length(TransformType::ENCR, TransformId::ENCR_AES_CBC, 256),
                Transform::new(TransformType::PRF, TransformId::PRF_HMAC_SHA2_256),
                Transform::new(TransformType::DH, TransformId::DH_CURVE25519),
            ]
        );
        assert_eq!(encode_sa(&sa), SA_BODY);
    }

    #[test]
    fn esp_proposals_with_spi_and_last_substruc() {
        let sa = SaPayload {
            proposals: vec![
                Proposal {
                    number: 1,
                    protocol: ProtocolId::ESP,
                    spi: vec![0xc0, 1, 2, 3],
                    transforms: vec![
                        Transform::with_key_length(
                            TransformType::ENCR,
                            TransformId::ENCR_AES_GCM_16,
                            128,
                        ),
                        Transform::new(TransformType::ESN, TransformId::ESN_NONE),
                    ],
                },
                Proposal {
                    number: 2,
                    protocol: ProtocolId::ESP,
                    spi: vec![0xc0, 1, 2, 3],
                    transforms: vec![Transform::new(TransformType::ESN, TransformId::ESN_YES)],
                },
            ],
        };
        let bytes = encode_sa(&sa);
        #[rustfmt::skip]
        let expected = [
            2, 0, 0, 32, 1, 3, 4, 2, 0xc0, 1, 2, 3,
            3, 0, 0, 12, 1, 0, 0, 20, 0x80, 14, 0, 128,
            0, 0, 0, 8, 5, 0, 0, 0,
            0, 0, 0, 20, 2, 3, 4, 1, 0xc0, 1, 2, 3,
            0, 0, 0, 8, 5, 0, 0, 1,
        ];
        assert_eq!(bytes, expected);
        assert_eq!(read(SaPayload::read, &bytes).unwrap(), sa);
    }

    #[test]
    fn transform_attributes_tv_tlv_and_order_round_trip() {
        #[rustfmt::skip]
        let cases: [&[u8]; 3] = [
            // TLV attribute 0x0123 (3 bytes), then Key Length: key length is not first → kept in order.
            &[0, 0, 0, 19, 1, 0, 0, 12, 0x01, 0x23, 0, 3, 9, 9, 9, 0x80, 14, 0, 128],
            // Key Length twice: the second one is an "other" attribute.
            &[0, 0, 0, 16, 1, 0, 0, 12, 0x80, 14, 0, 128, 0x80, 14, 1, 0],
            // Unknown TV attribute and an empty TLV one.
            &[0, 0, 0, 16, 9, 0, 0xff, 0xff, 0xff, 0xff, 0xab, 0xcd, 0x7f, 0xff, 0, 0],
        ];
        for body in cases {
            let mut r = Reader::new(body);
            let (last, mut sub) = read_substruc(&mut r, "transform", 8).unwrap();
            assert_eq!(last, 0);
            let t = Transform::read(&mut sub).unwrap();
            let mut out = Vec::new();
            t.write(true, &mut out);
            assert_eq!(out, body, "{t:?}");
        }
        let mut r = Reader::new(cases[0]);
        let (_, mut sub) = read_substruc(&mut r, "transform", 8).unwrap();
        let t = Transform::read(&mut sub).unwrap();
        assert_eq!(t.key_length, None);
        assert_eq!(
            t.other_attributes,
            [(0x0123, vec![9, 9, 9]), (0x800e, vec![0, 128])]
        );
    }

    #[test]
    fn tv_attribute_values_are_padded_on_encode() {
        let t = Transform {
            other_attributes: vec![(0x8001, vec![7]), (0x8002, vec![1, 2, 3])],
            ..Transform::new(TransformType::ENCR, TransformId(1))
        };
        let mut out = Vec::new();
        t.write(false, &mut out);
        assert_eq!(out, [3, 0, 0, 16, 1, 0, 0, 1, 0x80, 1, 7, 0, 0x80, 2, 1, 2]);
    }

    #[test]
    fn sa_reserved_octets_are_ignored_and_written_as_zero() {
        let mut bytes = SA_BODY;
        bytes[1] = 0xff; // proposal substructure RESERVED
        bytes[9] = 0x01; // transform substructure RESERVED
        bytes[13] = 0x80; // RESERVED after Transform Type
        bytes[29] = 0x10;
        bytes[33] = 0xff;
        let sa = read(SaPayload::read, &bytes).unwrap();
        assert_eq!(sa, read(SaPayload::read, &SA_BODY).unwrap());
        assert_eq!(encode_sa(&sa), SA_BODY);
    }

    #[test]
    fn sa_payload_errors() {
        let mut bad_last = SA_BODY;
        bad_last[0] = 2; // claims another proposal follows
        assert_eq!(
            read(SaPayload::read, &bad_last),
            Err(WireError::BadLastSubstruc {
                what: "proposal",
                value: 2
            })
        );
        let mut bad_transform_last = SA_BODY;
        bad_transform_last[28] = 3; // last transform claims more
        assert_eq!(
            read(SaPayload::read, &bad_transform_last),
            Err(WireError::BadLastSubstruc {
                what: "transform",
                value: 3
            })
        );
        let mut short_proposal = SA_BODY;
        short_proposal[3] = 7;
        assert_eq!(
            read(SaPayload::read, &short_proposal),
            Err(WireError::BadLength {
                what: "proposal",
                length: 7
            })
        );
        let mut long_proposal = SA_BODY;
        long_proposal[3] = 37;
        assert_eq!(
            read(SaPayload::read, &long_proposal),
            Err(WireError::Truncated { what: "proposal" })
        );
        let mut short_transform = SA_BODY;
        short_transform[11] = 4;
        assert_eq!(
            read(SaPayload::read, &short_transform),
            Err(WireError::BadLength {
                what: "transform",
                length: 4
            })
        );
        let mut fewer_transforms = SA_BODY;
        fewer_transforms[7] = 2;
        fewer_transforms[20] = 0; // second transform now claims to be last
        assert_eq!(
            read(SaPayload::read, &fewer_transforms),
            Err(WireError::TrailingData { what: "proposal" })
        );
        let mut more_transforms = SA_BODY;
        more_transforms[7] = 4;
        more_transforms[28] = 3;
        assert_eq!(
            read(SaPayload::read, &more_transforms),
            Err(WireError::Truncated { what: "transform" })
        );
        let mut big_spi = SA_BODY;
        big_spi[6] = 40;
        assert_eq!(
            read(SaPayload::read, &big_spi),
            Err(WireError::Truncated {
                what: "proposal SPI"
            })
        );
        let mut bad_tlv = SA_BODY;
        bad_tlv[16] = 0; // Key Length as TLV with length 0x0100: overruns the transform
        assert_eq!(
            read(SaPayload::read, &bad_tlv),
            Err(WireError::Truncated {
                what: "transform attribute value"
            })
        );
        let mut half_attr = SA_BODY;
        half_attr[11] = 10; // transform ends in the middle of the attribute
        assert!(read(SaPayload::read, &half_attr).is_err());
        for n in 1..SA_BODY.len() {
            assert!(
                read(SaPayload::read, &SA_BODY[..n]).is_err(),
                "prefix {n} accepted"
            );
        }
        assert_eq!(read(SaPayload::read, &[]).unwrap(), SaPayload::default());
    }

    #[test]
    fn ke_payload() {
        let bytes = [0, 31, 0, 0, 0xaa, 0xbb];
        let ke = read(KePayload::read, &bytes).unwrap();
        assert_eq!(
            ke,
            KePayload {
                group: TransformId::DH_CURVE25519,
                data: vec![0xaa, 0xbb]
            }
        );
        let mut out = Vec::new();
        ke.write(&mut out);
        assert_eq!(out, bytes);
        assert_eq!(
            read(KePayload::read, &[0, 31, 0]),
            Err(WireError::Truncated {
                what: "KE payload RESERVED"
            })
        );
        assert_eq!(read(KePayload::read, &[0, 31, 0x80, 1, 0xaa, 0xbb]), Ok(ke));
    }

    #[test]
    fn identification_payload_and_helpers() {
        let bytes = [1, 0, 0, 0, 10, 1, 0, 1];
        let id = read(Identification::read, &bytes).unwrap();
        assert_eq!(id, Identification::from_ip("10.1.0.1".parse().unwrap()));
        assert_eq!(id.body_bytes(), bytes);
        assert_eq!(id.ip(), Some("10.1.0.1".parse().unwrap()));
        let v6 = Identification::from_ip("2001:db8::1".parse().unwrap());
        assert_eq!(v6.id_type, IdType::IPV6_ADDR);
        assert_eq!(v6.body_bytes().len(), 20);
        assert_eq!(v6.ip(), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(
            Identification::fqdn("moon.example").body_bytes(),
            b"\x02\0\0\0moon.example"
        );
        assert_eq!(Identification::rfc822("a@b").body_bytes(), b"\x03\0\0\0a@b");
        assert_eq!(
            Identification::key_id(&[0xff]).body_bytes(),
            [11, 0, 0, 0, 0xff]
        );
        assert_eq!(Identification::key_id(&[1, 2, 3, 4]).ip(), None);
        assert_eq!(
            Identification {
                id_type: IdType::IPV4_ADDR,
                data: vec![1, 2, 3]
            }
            .ip(),
            None
        );
        assert_eq!(
            read(Identification::read, &[2, 0, 0]),
            Err(WireError::Truncated { what: "ID payload" })
        );
        assert_eq!(
            read(Identification::read, &[1, 0xff, 1, 0x80, 10, 1, 0, 1]),
            Ok(id)
        );
    }

    #[test]
    fn auth_payload() {
        let bytes = [2, 0, 0, 0, 1, 2, 3];
        let auth = read(AuthPayload::read, &bytes).unwrap();
        assert_eq!(
            auth,
            AuthPayload {
                method: AuthMethod::SHARED_KEY_MIC,
                data: vec![1, 2, 3]
            }
        );
        let mut out = Vec::new();
        auth.write(&mut out);
        assert_eq!(out, bytes);
        assert_eq!(
            read(AuthPayload::read, &[2, 1, 0x80, 0xff, 1, 2, 3]),
            Ok(auth)
        );
        assert_eq!(
            read(AuthPayload::read, &[2]),
            Err(WireError::Truncated {
                what: "AUTH payload"
            })
        );
    }

    #[test]
    fn notify_payload() {
        // REKEY_SA for ESP SPI c0010203, no data.
        let bytes = [3, 4, 0x40, 0x09, 0xc0, 1, 2, 3];
        let n = read(Notify::read, &bytes).unwrap();
        assert_eq!(
            n,
            Notify {
                protocol: ProtocolId::ESP,
                spi: vec![0xc0, 1, 2, 3],
                notify_type: NotifyType::REKEY_SA,
                data: vec![]
            }
        );
        let mut out = Vec::new();
        n.write(&mut out);
        assert_eq!(out, bytes);
        let cookie = Notify::ike(NotifyType::COOKIE, vec![9; 3]);
        let mut out = Vec::new();
        cookie.write(&mut out);
        assert_eq!(out, [0, 0, 0x40, 0x06, 9, 9, 9]);
        assert_eq!(
            read(Notify::read, &[0, 0, 0x40]),
            Err(WireError::Truncated {
                what: "Notify payload"
            })
        );
        assert_eq!(
            read(Notify::read, &[3, 4, 0x40, 9, 1, 2, 3]),
            Err(WireError::Truncated { what: "Notify SPI" })
        );
    }

    #[test]
    fn delete_payload() {
        let bytes = [3, 4, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8];
        let d = read(Delete::read, &bytes).unwrap();
        assert_eq!(
            d,
            Delete {
                protocol: ProtocolId::ESP,
                spi_size: 4,
                spis: vec![vec![1, 2, 3, 4], vec![5, 6, 7, 8]]
            }
        );
        let mut out = Vec::new();
        d.write(&mut out);
        assert_eq!(out, bytes);
        let ike = read(Delete::read, &[1, 0, 0, 0]).unwrap();
        assert_eq!(
            ike,
            Delete {
                protocol: ProtocolId::IKE,
                spi_size: 0,
                spis: vec![]
            }
        );
        assert_eq!(
            read(Delete::read, &bytes[..11]),
            Err(WireError::Truncated { what: "Delete SPI" })
        );
        assert_eq!(
            read(Delete::read, &[3, 4, 0, 1, 1, 2, 3, 4, 5]),
            Err(WireError::TrailingData {
                what: "Delete payload"
            })
        );
        assert_eq!(
            read(Delete::read, &[3, 4, 0]),
            Err(WireError::Truncated {
                what: "Delete payload"
            })
        );
    }

    #[test]
    fn encrypted_fragment_payload() {
        let bytes = [0, 2, 0, 3, 0xee];
        let f = EncryptedFragment::read(PayloadType::NONE, &mut Reader::new(&bytes)).unwrap();
        assert_eq!(
            (f.fragment_number, f.total_fragments, f.data.as_slice()),
            (2, 3, &[0xee][..])
        );
        let mut out = Vec::new();
        f.write(&mut out);
        assert_eq!(out, bytes);
        assert_eq!(
            EncryptedFragment::read(PayloadType::NONE, &mut Reader::new(&bytes[..3])),
            Err(WireError::Truncated {
                what: "SKF payload"
            })
        );
    }
}
