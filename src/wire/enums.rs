//! Open code-point newtypes (RFC 7296 §3 and the IANA "IKEv2 Parameters" registry).
//!
//! Every type wraps the raw wire value, so values this crate has no name for survive a parse →
//! encode round trip. `Debug`/`Display` print the registry name when known, else the number.

use std::fmt;

/// Declares an open code-point newtype with named constants and a name-or-number `Debug`.
macro_rules! code_points {
    ($(#[$meta:meta])* $name:ident($repr:ty) { $($(#[$cmeta:meta])* $konst:ident = $value:expr,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub $repr);

        impl $name {
            $($(#[$cmeta])* pub const $konst: $name = $name($value);)*

            /// The registry name of this value, if this crate knows it.
            pub fn name(self) -> Option<&'static str> {
                match self {
                    $(Self::$konst => Some(stringify!($konst)),)*
                    _ => None,
                }
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.name() {
                    Some(name) => f.write_str(name),
                    None => write!(f, "{}({})", stringify!($name), self.0),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self, f)
            }
        }
    };
}

code_points! {
    /// IKE header Exchange Type (RFC 7296 §3.1).
    ExchangeType(u8) {
        IKE_SA_INIT = 34,
        IKE_AUTH = 35,
        CREATE_CHILD_SA = 36,
        INFORMATIONAL = 37,
    }
}

code_points! {
    /// Next Payload / payload type code (RFC 7296 §3.2; SKF from RFC 7383).
    PayloadType(u8) {
        NONE = 0,
        SA = 33,
        KE = 34,
        IDI = 35,
        IDR = 36,
        CERT = 37,
        CERTREQ = 38,
        AUTH = 39,
        NONCE = 40,
        NOTIFY = 41,
        DELETE = 42,
        VENDOR = 43,
        TSI = 44,
        TSR = 45,
        SK = 46,
        CP = 47,
        EAP = 48,
        SKF = 53,
    }
}

code_points! {
    /// Security Protocol ID (RFC 7296 §3.3.1).
    ProtocolId(u8) {
        IKE = 1,
        AH = 2,
        ESP = 3,
    }
}

code_points! {
    /// Transform Type (RFC 7296 §3.3.2).
    TransformType(u8) {
        ENCR = 1,
        PRF = 2,
        INTEG = 3,
        DH = 4,
        ESN = 5,
    }
}

/// Transform ID (RFC 7296 §3.3.2). The numbering is per [`TransformType`], so the constants are
/// prefixed with their type and `Debug` prints only the number; use [`TransformId::name_for`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransformId(pub u16);

impl TransformId {
    pub const ENCR_3DES: TransformId = TransformId(3);
    pub const ENCR_AES_CBC: TransformId = TransformId(12);
    pub const ENCR_AES_CTR: TransformId = TransformId(13);
    pub const ENCR_AES_GCM_8: TransformId = TransformId(18);
    pub const ENCR_AES_GCM_12: TransformId = TransformId(19);
    pub const ENCR_AES_GCM_16: TransformId = TransformId(20);
    pub const ENCR_CHACHA20_POLY1305: TransformId = TransformId(28);

    pub const PRF_HMAC_SHA1: TransformId = TransformId(2);
    pub const PRF_HMAC_SHA2_256: TransformId = TransformId(5);
    pub const PRF_HMAC_SHA2_384: TransformId = TransformId(6);
    pub const PRF_HMAC_SHA2_512: TransformId = TransformId(7);

    pub const AUTH_NONE: TransformId = TransformId(0);
    pub const AUTH_HMAC_SHA1_96: TransformId = TransformId(2);
    pub const AUTH_HMAC_SHA2_256_128: TransformId = TransformId(12);
    pub const AUTH_HMAC_SHA2_384_192: TransformId = TransformId(13);
    pub const AUTH_HMAC_SHA2_512_256: TransformId = TransformId(14);

    pub const DH_MODP2048: TransformId = TransformId(14);
    pub const DH_MODP3072: TransformId = TransformId(15);
    pub const DH_MODP4096: TransformId = TransformId(16);
    pub const DH_ECP256: TransformId = TransformId(19);
    pub const DH_ECP384: TransformId = TransformId(20);
    pub const DH_ECP521: TransformId = TransformId(21);
    pub const DH_CURVE25519: TransformId = TransformId(31);
    pub const DH_CURVE448: TransformId = TransformId(32);

    pub const ESN_NONE: TransformId = TransformId(0);
    pub const ESN_YES: TransformId = TransformId(1);

    /// The registry name of this ID for transforms of type `kind`, if this crate knows it.
    pub fn name_for(self, kind: TransformType) -> Option<&'static str> {
        let names: &[(TransformId, &str)] = match kind {
            TransformType::ENCR => &[
                (Self::ENCR_3DES, "ENCR_3DES"),
                (Self::ENCR_AES_CBC, "ENCR_AES_CBC"),
                (Self::ENCR_AES_CTR, "ENCR_AES_CTR"),
                (Self::ENCR_AES_GCM_8, "ENCR_AES_GCM_8"),
                (Self::ENCR_AES_GCM_12, "ENCR_AES_GCM_12"),
                (Self::ENCR_AES_GCM_16, "ENCR_AES_GCM_16"),
                (Self::ENCR_CHACHA20_POLY1305, "ENCR_CHACHA20_POLY1305"),
            ],
            TransformType::PRF => &[
                (Self::PRF_HMAC_SHA1, "PRF_HMAC_SHA1"),
                (Self::PRF_HMAC_SHA2_256, "PRF_HMAC_SHA2_256"),
                (Self::PRF_HMAC_SHA2_384, "PRF_HMAC_SHA2_384"),
                (Self::PRF_HMAC_SHA2_512, "PRF_HMAC_SHA2_512"),
            ],
            TransformType::INTEG => &[
                (Self::AUTH_NONE, "AUTH_NONE"),
                (Self::AUTH_HMAC_SHA1_96, "AUTH_HMAC_SHA1_96"),
                (Self::AUTH_HMAC_SHA2_256_128, "AUTH_HMAC_SHA2_256_128"),
                (Self::AUTH_HMAC_SHA2_384_192, "AUTH_HMAC_SHA2_384_192"),
                (Self::AUTH_HMAC_SHA2_512_256, "AUTH_HMAC_SHA2_512_256"),
            ],
            TransformType::DH => &[
                (Self::DH_MODP2048, "MODP_2048"),
                (Self::DH_MODP3072, "MODP_3072"),
                (Self::DH_MODP4096, "MODP_4096"),
                (Self::DH_ECP256, "ECP_256"),
                (Self::DH_ECP384, "ECP_384"),
                (Self::DH_ECP521, "ECP_521"),
                (Self::DH_CURVE25519, "CURVE_25519"),
                (Self::DH_CURVE448, "CURVE_448"),
            ],
            TransformType::ESN => &[(Self::ESN_NONE, "NO_ESN"), (Self::ESN_YES, "ESN")],
            _ => &[],
        };
        names
            .iter()
            .find(|(id, _)| *id == self)
            .map(|(_, name)| *name)
    }
}

impl fmt::Debug for TransformId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TransformId({})", self.0)
    }
}

code_points! {
    /// Notify Message Type (RFC 7296 §3.10.1 and later IANA registrations).
    NotifyType(u16) {
        UNSUPPORTED_CRITICAL_PAYLOAD = 1,
        INVALID_IKE_SPI = 4,
        INVALID_MAJOR_VERSION = 5,
        INVALID_SYNTAX = 7,
        INVALID_MESSAGE_ID = 9,
        INVALID_SPI = 11,
        NO_PROPOSAL_CHOSEN = 14,
        INVALID_KE_PAYLOAD = 17,
        AUTHENTICATION_FAILED = 24,
        SINGLE_PAIR_REQUIRED = 34,
        NO_ADDITIONAL_SAS = 35,
        INTERNAL_ADDRESS_FAILURE = 36,
        FAILED_CP_REQUIRED = 37,
        TS_UNACCEPTABLE = 38,
        INVALID_SELECTORS = 39,
        TEMPORARY_FAILURE = 43,
        CHILD_SA_NOT_FOUND = 44,
        INITIAL_CONTACT = 16384,
        SET_WINDOW_SIZE = 16385,
        ADDITIONAL_TS_POSSIBLE = 16386,
        IPCOMP_SUPPORTED = 16387,
        NAT_DETECTION_SOURCE_IP = 16388,
        NAT_DETECTION_DESTINATION_IP = 16389,
        COOKIE = 16390,
        USE_TRANSPORT_MODE = 16391,
        HTTP_CERT_LOOKUP_SUPPORTED = 16392,
        REKEY_SA = 16393,
        ESP_TFC_PADDING_NOT_SUPPORTED = 16394,
        NON_FIRST_FRAGMENTS_ALSO = 16395,
        MOBIKE_SUPPORTED = 16396,
        MULTIPLE_AUTH_SUPPORTED = 16404,
        REDIRECT_SUPPORTED = 16406,
        IKEV2_FRAGMENTATION_SUPPORTED = 16430,
        SIGNATURE_HASH_ALGORITHMS = 16431,
    }
}

impl NotifyType {
    /// Error types are 0..16383; status types are 16384 and up (RFC 7296 §3.10.1).
    pub fn is_error(self) -> bool {
        self.0 < 16384
    }
}

code_points! {
    /// Identification payload ID Type (RFC 7296 §3.5).
    IdType(u8) {
        IPV4_ADDR = 1,
        FQDN = 2,
        RFC822_ADDR = 3,
        IPV6_ADDR = 5,
        DER_ASN1_DN = 9,
        DER_ASN1_GN = 10,
        KEY_ID = 11,
    }
}

code_points! {
    /// Authentication Method (RFC 7296 §3.8; DIGITAL_SIGNATURE from RFC 7427).
    AuthMethod(u8) {
        RSA_SIG = 1,
        SHARED_KEY_MIC = 2,
        DSS_SIG = 3,
        DIGITAL_SIGNATURE = 14,
    }
}

code_points! {
    /// Configuration payload CFG Type (RFC 7296 §3.15).
    CfgType(u8) {
        CFG_REQUEST = 1,
        CFG_REPLY = 2,
        CFG_SET = 3,
        CFG_ACK = 4,
    }
}

code_points! {
    /// Configuration Attribute Type (RFC 7296 §3.15.1).
    ConfigAttrType(u16) {
        INTERNAL_IP4_ADDRESS = 1,
        INTERNAL_IP4_NETMASK = 2,
        INTERNAL_IP4_DNS = 3,
        INTERNAL_IP4_NBNS = 4,
        INTERNAL_IP4_DHCP = 6,
        APPLICATION_VERSION = 7,
        INTERNAL_IP6_ADDRESS = 8,
        INTERNAL_IP6_DNS = 10,
        INTERNAL_IP6_DHCP = 12,
        INTERNAL_IP4_SUBNET = 13,
        SUPPORTED_ATTRIBUTES = 14,
        INTERNAL_IP6_SUBNET = 15,
    }
}

code_points! {
    /// Traffic Selector Type (RFC 7296 §3.13.1).
    TsType(u8) {
        IPV4_ADDR_RANGE = 7,
        IPV6_ADDR_RANGE = 8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_prints_name_or_number() {
        assert_eq!(format!("{:?}", ExchangeType::IKE_AUTH), "IKE_AUTH");
        assert_eq!(format!("{:?}", ExchangeType(99)), "ExchangeType(99)");
        assert_eq!(
            format!("{}", NotifyType::NAT_DETECTION_SOURCE_IP),
            "NAT_DETECTION_SOURCE_IP"
        );
        assert_eq!(format!("{}", NotifyType(40000)), "NotifyType(40000)");
        assert_eq!(PayloadType::SKF.name(), Some("SKF"));
        assert_eq!(TsType(9).name(), None);
    }

    #[test]
    fn transform_id_names_depend_on_type() {
        assert_eq!(
            TransformId(2).name_for(TransformType::PRF),
            Some("PRF_HMAC_SHA1")
        );
        assert_eq!(
            TransformId(2).name_for(TransformType::INTEG),
            Some("AUTH_HMAC_SHA1_96")
        );
        assert_eq!(
            TransformId(31).name_for(TransformType::DH),
            Some("CURVE_25519")
        );
        assert_eq!(TransformId(31).name_for(TransformType::ENCR), None);
        assert_eq!(TransformId(1).name_for(TransformType(200)), None);
        assert_eq!(
            format!("{:?}", TransformId::ENCR_AES_GCM_16),
            "TransformId(20)"
        );
    }

    #[test]
    fn notify_error_range() {
        assert!(NotifyType::AUTHENTICATION_FAILED.is_error());
        assert!(NotifyType(16383).is_error());
        assert!(!NotifyType::INITIAL_CONTACT.is_error());
        assert!(!NotifyType::COOKIE.is_error());
    }
}
