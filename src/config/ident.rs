//! IKE identities (`leftid=`, `rightid=`, ipsec.secrets selectors), parsed as strongSwan does:
//!
//! * `%any`, `%any6`, `*` → any identity;
//! * `TYPE:VALUE` with TYPE one of `ipv4`, `ipv6`, `fqdn`/`dns`, `rfc822`/`email`/`userfqdn`,
//!   `keyid` forces the type (a VALUE starting with `#` is hex: `keyid:#0102`);
//! * `@#HEX` → key id, `@@user@host` → user FQDN, `@name` → FQDN taken literally;
//! * an IPv4/IPv6 address → address identity;
//! * otherwise a value containing `@` → user FQDN (RFC 822), containing `=` → a distinguished
//!   name (not supported: certificates are out of scope), anything else → FQDN.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IKEv2 identity (RFC 7296 §3.5 ID types 1, 2, 3, 5, 11).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Identity {
    /// Matches any identity (`%any`); never sent.
    Any,
    Ipv4(Ipv4Addr),
    Ipv6(Ipv6Addr),
    Fqdn(String),
    UserFqdn(String),
    KeyId(Vec<u8>),
}

/// How well an identity matches a configured one, worst to best (strongSwan's ranking:
/// `%any` < a `*` wildcard < the identity itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum IdMatch {
    None,
    Any,
    Wildcard,
    Exact,
}

/// Whether `value` ends with the text after a pattern's leading `*` (ASCII case-insensitive,
/// as names compare). `None` when `pattern` has no leading `*`.
pub fn wildcard_suffix_matches(pattern: &[u8], value: &[u8]) -> Option<bool> {
    let suffix = pattern.strip_prefix(b"*")?;
    Some(
        value.len() >= suffix.len()
            && value
                .get(value.len() - suffix.len()..) // ok: checked above
                .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix)),
    )
}

impl Identity {
    /// Whether this configured identity stands for many: `%any`, or a name with a leading
    /// `*` wildcard (`@*.example.org`, `*@example.org`).
    pub fn is_pattern(&self) -> bool {
        match self {
            Self::Any => true,
            Self::Fqdn(s) | Self::UserFqdn(s) => s.starts_with('*'),
            _ => false,
        }
    }

    /// How `id` (a peer's concrete identity) matches this configured one. `%any` matches
    /// anything as [`IdMatch::Any`], itself included: a configured `%any` (an initiator that
    /// does not know its peer's ID yet) is no better a match for a `%any` secret than for any.
    pub fn matches(&self, id: &Identity) -> IdMatch {
        if *self == Self::Any {
            return IdMatch::Any;
        }
        if self == id {
            return IdMatch::Exact;
        }
        match (self, id) {
            (Self::Fqdn(p), Self::Fqdn(v)) | (Self::UserFqdn(p), Self::UserFqdn(v))
                if wildcard_suffix_matches(p.as_bytes(), v.as_bytes()) == Some(true) =>
            {
                IdMatch::Wildcard
            }
            _ => IdMatch::None,
        }
    }

    pub fn from_addr(a: IpAddr) -> Self {
        match a {
            IpAddr::V4(v4) => Self::Ipv4(v4),
            IpAddr::V6(v6) => Self::Ipv6(v6),
        }
    }

    /// The IANA ID type (RFC 7296 §3.5), `None` for [`Identity::Any`].
    pub fn id_type(&self) -> Option<u8> {
        match self {
            Self::Any => None,
            Self::Ipv4(_) => Some(1),
            Self::Fqdn(_) => Some(2),
            Self::UserFqdn(_) => Some(3),
            Self::Ipv6(_) => Some(5),
            Self::KeyId(_) => Some(11),
        }
    }

    /// The identification data as sent in an ID payload.
    pub fn data(&self) -> Vec<u8> {
        match self {
            Self::Any => Vec::new(),
            Self::Ipv4(a) => a.octets().to_vec(),
            Self::Ipv6(a) => a.octets().to_vec(),
            Self::Fqdn(s) | Self::UserFqdn(s) => s.as_bytes().to_vec(),
            Self::KeyId(k) => k.clone(),
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("%any"),
            Self::Ipv4(a) => write!(f, "{a}"),
            Self::Ipv6(a) => write!(f, "{a}"),
            Self::Fqdn(s) => write!(f, "@{s}"),
            Self::UserFqdn(s) => f.write_str(s),
            Self::KeyId(k) => {
                f.write_str("@#")?;
                k.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
        }
    }
}

/// Decodes hex digits (optionally with `:` separators, as strongSwan accepts).
pub fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = s.bytes().filter(|b| *b != b':').collect();
    if digits.is_empty() || !digits.len().is_multiple_of(2) {
        return None;
    }
    digits
        .chunks(2)
        .map(|pair| {
            let hi = char::from(*pair.first()?).to_digit(16)?;
            let lo = char::from(*pair.get(1)?).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()
        })
        .collect()
}

/// Why an identity string is invalid (its `Display` is the diagnostic's message). Fields
/// hold the identity as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("empty identity")]
    Empty,
    #[error("identity type '{prefix}:' is not supported ('{value}')")]
    UnsupportedType { prefix: String, value: String },
    #[error("empty name in identity '{0}'")]
    EmptyName(String),
    #[error("distinguished-name identities are not supported ('{0}'): only PSK authentication is")]
    DistinguishedName(String),
    #[error("binary '{prefix}:#...' identities are not supported ('{value}')")]
    Binary { prefix: String, value: String },
    #[error("invalid IPv4 address in identity '{0}'")]
    Ipv4(String),
    #[error("invalid IPv6 address in identity '{0}'")]
    Ipv6(String),
    #[error("empty value in identity '{0}'")]
    EmptyValue(String),
    #[error("invalid hex key id in identity '{0}'")]
    KeyId(String),
}

fn keyid(hex: &str, v: &str) -> Result<Identity, IdentityError> {
    decode_hex(hex)
        .map(Identity::KeyId)
        .ok_or_else(|| IdentityError::KeyId(v.to_owned()))
}

const PREFIXES: &[&str] = &[
    "ipv4", "ipv6", "fqdn", "dns", "rfc822", "email", "userfqdn", "keyid",
];
const UNSUPPORTED_PREFIXES: &[&str] = &[
    "asn1dn",
    "asn1gn",
    "ipv4net",
    "ipv6net",
    "ipv4range",
    "ipv6range",
    "xmppaddr",
    "md5",
    "sha1",
];

/// Parses an identity string.
pub fn parse_identity(v: &str) -> Result<Identity, IdentityError> {
    match v {
        "%any" | "%any6" | "*" => return Ok(Identity::Any),
        "" => return Err(IdentityError::Empty),
        _ => {}
    }
    if let Some((prefix, value)) = v.split_once(':') {
        if PREFIXES.contains(&prefix) {
            return typed(prefix, value, v);
        }
        if UNSUPPORTED_PREFIXES.contains(&prefix) {
            return Err(IdentityError::UnsupportedType {
                prefix: prefix.to_owned(),
                value: v.to_owned(),
            });
        }
    }
    if let Some(rest) = v.strip_prefix('@') {
        if let Some(hex) = rest.strip_prefix('#') {
            return keyid(hex, v);
        }
        let (user, name) = match rest.strip_prefix('@') {
            Some(u) => (true, u),
            None => (false, rest),
        };
        if name.is_empty() {
            return Err(IdentityError::EmptyName(v.to_owned()));
        }
        return Ok(if user {
            Identity::UserFqdn(name.to_owned())
        } else {
            Identity::Fqdn(name.to_owned())
        });
    }
    if let Ok(a) = v.parse::<IpAddr>() {
        return Ok(Identity::from_addr(a));
    }
    if v.contains('=') {
        return Err(IdentityError::DistinguishedName(v.to_owned()));
    }
    if v.contains('@') {
        return Ok(Identity::UserFqdn(v.to_owned()));
    }
    Ok(Identity::Fqdn(v.to_owned()))
}

fn typed(prefix: &str, value: &str, v: &str) -> Result<Identity, IdentityError> {
    if value.starts_with('#') && prefix != "keyid" {
        return Err(IdentityError::Binary {
            prefix: prefix.to_owned(),
            value: v.to_owned(),
        });
    }
    match prefix {
        "ipv4" => value
            .parse()
            .map(Identity::Ipv4)
            .map_err(|_| IdentityError::Ipv4(v.to_owned())),
        "ipv6" => value
            .parse()
            .map(Identity::Ipv6)
            .map_err(|_| IdentityError::Ipv6(v.to_owned())),
        _ if value.is_empty() => Err(IdentityError::EmptyValue(v.to_owned())),
        "fqdn" | "dns" => Ok(Identity::Fqdn(value.to_owned())),
        "rfc822" | "email" | "userfqdn" => Ok(Identity::UserFqdn(value.to_owned())),
        _ => match value.strip_prefix('#') {
            Some(hex) => keyid(hex, v),
            None => Ok(Identity::KeyId(value.as_bytes().to_vec())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let p = |s| parse_identity(s).unwrap();
        assert_eq!(p("%any"), Identity::Any);
        assert_eq!(p("10.1.0.1"), Identity::Ipv4("10.1.0.1".parse().unwrap()));
        assert_eq!(p("fec0::1").id_type(), Some(5));
        assert_eq!(
            p("@moon.strongswan.org"),
            Identity::Fqdn("moon.strongswan.org".into())
        );
        assert_eq!(
            p("@@carol@strongswan.org"),
            Identity::UserFqdn("carol@strongswan.org".into())
        );
        assert_eq!(
            p("carol@strongswan.org"),
            Identity::UserFqdn("carol@strongswan.org".into())
        );
        assert_eq!(p("@#0a0B"), Identity::KeyId(vec![0x0a, 0x0b]));
        assert_eq!(p("keyid:#01:02"), Identity::KeyId(vec![1, 2]));
        assert_eq!(p("keyid:swanny"), Identity::KeyId(b"swanny".to_vec()));
        assert_eq!(p("fqdn:10.1.0.1"), Identity::Fqdn("10.1.0.1".into()));
        assert_eq!(p("email:a@b"), Identity::UserFqdn("a@b".into()));
        assert_eq!(p("ipv4:10.0.0.1").to_string(), "10.0.0.1");
        assert_eq!(p("gw.example.com"), Identity::Fqdn("gw.example.com".into()));
        assert_eq!(p("@#0a0b").to_string(), "@#0a0b");
        assert_eq!(p("@gw").to_string(), "@gw");
        assert_eq!(p("@gw").data(), b"gw");
    }

    #[test]
    fn wildcards() {
        let p = |s| parse_identity(s).unwrap();
        assert_eq!(
            p("@*.example.org").matches(&p("@gw.example.org")),
            IdMatch::Wildcard
        );
        assert_eq!(
            p("@*.example.org").matches(&p("@GW.Example.ORG")),
            IdMatch::Wildcard
        );
        assert_eq!(
            p("@*.example.org").matches(&p("@example.org")),
            IdMatch::None
        );
        assert_eq!(
            p("@*.example.org").matches(&p("@gw.example.com")),
            IdMatch::None
        );
        // The type must agree: a user FQDN does not match an FQDN pattern.
        assert_eq!(
            p("@*.example.org").matches(&p("a@b.example.org")),
            IdMatch::None
        );
        assert_eq!(
            p("*@example.org").matches(&p("carol@example.org")),
            IdMatch::Wildcard
        );
        assert_eq!(
            p("*@example.org").matches(&p("carol@example.com")),
            IdMatch::None
        );
        assert_eq!(p("%any").matches(&p("carol@example.org")), IdMatch::Any);
        assert_eq!(p("%any").matches(&p("%any")), IdMatch::Any);
        assert_eq!(p("@gw").matches(&p("@gw")), IdMatch::Exact);
        assert_eq!(p("@gw").matches(&p("@gw2")), IdMatch::None);
        assert!(IdMatch::Exact > IdMatch::Wildcard && IdMatch::Wildcard > IdMatch::Any);
        assert!(p("@*.example.org").is_pattern() && p("*@example.org").is_pattern());
        assert!(p("%any").is_pattern() && !p("@gw").is_pattern() && !p("10.0.0.1").is_pattern());
        assert_eq!(wildcard_suffix_matches(b"gw", b"gw"), None);
    }

    #[test]
    fn errors() {
        for bad in [
            "",
            "@#zz",
            "@#abc",
            "@",
            "@@",
            "ipv4:1.2.3",
            "C=CH, O=strongSwan",
            "asn1dn:#30",
            "fqdn:",
        ] {
            assert!(parse_identity(bad).is_err(), "{bad}");
        }
    }
}
