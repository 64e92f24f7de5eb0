//! `ike=` / `esp=` / `ah=` proposal strings with strongSwan's algorithm keywords, as plain IANA
//! transform numbers (RFC 7296 §3.3.2 registries). Config is a leaf, so it keeps its own
//! table of these numbers (it also names algorithms ikev2d does not implement, to diagnose
//! them); the protocol layers use `wire::TransformId`. `daemon/conns.rs` is the one place
//! where these numbers become crypto types (`Encr::from_id`, ...).
//!
//! Syntax: a comma-separated list of proposals, each a `-`-separated list of algorithm keywords
//! (several of one kind are alternatives, IKEv2 style), with an optional trailing `!` on the
//! whole string. Without `!`, strongSwan appends its default proposals after the configured
//! ones; with `!` only the configured proposals are sent/accepted ([`Proposals::effective`]).
//!
//! In IKE proposals without a PRF keyword the PRFs are derived from the integrity algorithms
//! (sha256 → prfsha256), as strongSwan does; in AEAD IKE proposals an integrity keyword is
//! read that way too and then dropped (`aes128gcm16-sha256-x25519` is
//! `aes128gcm16-prfsha256-x25519`), so an AEAD IKE proposal needs a PRF or an integrity keyword.

use std::fmt;

/// IANA encryption transform IDs (Transform Type 1).
pub mod encr {
    pub const DES3: u16 = 3;
    pub const NULL: u16 = 11;
    pub const AES_CBC: u16 = 12;
    pub const AES_CTR: u16 = 13;
    pub const AES_CCM_8: u16 = 14;
    pub const AES_CCM_12: u16 = 15;
    pub const AES_CCM_16: u16 = 16;
    pub const AES_GCM_8: u16 = 18;
    pub const AES_GCM_12: u16 = 19;
    pub const AES_GCM_16: u16 = 20;
    pub const CAMELLIA_CBC: u16 = 23;
    pub const CAMELLIA_CTR: u16 = 24;
    pub const CHACHA20_POLY1305: u16 = 28;
}

/// IANA PRF transform IDs (Transform Type 2).
pub mod prf {
    pub const HMAC_MD5: u16 = 1;
    pub const HMAC_SHA1: u16 = 2;
    pub const AES128_XCBC: u16 = 4;
    pub const HMAC_SHA2_256: u16 = 5;
    pub const HMAC_SHA2_384: u16 = 6;
    pub const HMAC_SHA2_512: u16 = 7;
    pub const AES128_CMAC: u16 = 8;
}

/// IANA integrity transform IDs (Transform Type 3).
pub mod integ {
    pub const HMAC_MD5_96: u16 = 1;
    pub const HMAC_SHA1_96: u16 = 2;
    pub const AES_XCBC_96: u16 = 5;
    pub const AES_CMAC_96: u16 = 8;
    pub const HMAC_SHA2_256_128: u16 = 12;
    pub const HMAC_SHA2_384_192: u16 = 13;
    pub const HMAC_SHA2_512_256: u16 = 14;
}

/// IANA key exchange (Diffie-Hellman) group numbers (Transform Type 4).
pub mod dh {
    pub const MODP768: u16 = 1;
    pub const MODP1024: u16 = 2;
    pub const MODP1536: u16 = 5;
    pub const MODP2048: u16 = 14;
    pub const MODP3072: u16 = 15;
    pub const MODP4096: u16 = 16;
    pub const MODP6144: u16 = 17;
    pub const MODP8192: u16 = 18;
    pub const ECP256: u16 = 19;
    pub const ECP384: u16 = 20;
    pub const ECP521: u16 = 21;
    pub const MODP1024S160: u16 = 22;
    pub const MODP2048S224: u16 = 23;
    pub const MODP2048S256: u16 = 24;
    pub const ECP192: u16 = 25;
    pub const ECP224: u16 = 26;
    pub const ECP224BP: u16 = 27;
    pub const ECP256BP: u16 = 28;
    pub const ECP384BP: u16 = 29;
    pub const ECP512BP: u16 = 30;
    pub const CURVE25519: u16 = 31;
    pub const CURVE448: u16 = 32;
}

/// IANA extended sequence number values (Transform Type 5).
pub mod esn {
    pub const NO_ESN: u16 = 0;
    pub const ESN: u16 = 1;
}

/// Which SA a proposal is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Ike,
    Esp,
    /// `ah=`: integrity algorithms (and ESN, PFS groups) only, written
    /// `integrity[-dhgroup]` (ipsec.conf(5)).
    Ah,
}

/// One proposal: each list holds alternatives in preference order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Proposal {
    /// (transform id, key length in bits) — `None` for fixed-key-size ciphers.
    pub encr: Vec<(u16, Option<u16>)>,
    pub integ: Vec<u16>,
    pub prf: Vec<u16>,
    pub dh: Vec<u16>,
    pub esn: Vec<u16>,
}

/// A configured `ike=`/`esp=` value (or the defaults when the keyword is absent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposals {
    pub list: Vec<Proposal>,
    /// Trailing `!`: send/accept only `list`, without strongSwan's defaults.
    pub strict: bool,
    /// False when the keyword was absent (`list` is then the default set).
    pub configured: bool,
}

impl Proposals {
    pub fn default_for(proto: Protocol) -> Self {
        Self {
            list: match proto {
                Protocol::Ike => default_ike_proposals(),
                Protocol::Esp => default_esp_proposals(),
                Protocol::Ah => default_ah_proposals(),
            },
            strict: false,
            configured: false,
        }
    }

    /// What the daemon proposes (initiator) and accepts (responder), in preference order:
    /// the configured proposals, followed by the defaults unless strict.
    pub fn effective(&self, proto: Protocol) -> Vec<Proposal> {
        let mut out = self.list.clone();
        if self.configured && !self.strict {
            out.extend(Self::default_for(proto).list);
        }
        out
    }
}

impl fmt::Display for Proposals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.configured {
            return f.write_str("default");
        }
        for (i, p) in self.list.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{p}")?;
        }
        f.write_str(if self.strict { "!" } else { ",default" })
    }
}

fn is_aead(id: u16) -> bool {
    matches!(
        id,
        encr::AES_CCM_8
            | encr::AES_CCM_12
            | encr::AES_CCM_16
            | encr::AES_GCM_8
            | encr::AES_GCM_12
            | encr::AES_GCM_16
            | encr::CHACHA20_POLY1305
    )
}

/// The PRF strongSwan pairs with an integrity algorithm when no PRF is configured.
fn prf_for_integ(i: u16) -> Option<u16> {
    match i {
        integ::HMAC_MD5_96 => Some(prf::HMAC_MD5),
        integ::HMAC_SHA1_96 => Some(prf::HMAC_SHA1),
        integ::AES_XCBC_96 => Some(prf::AES128_XCBC),
        integ::AES_CMAC_96 => Some(prf::AES128_CMAC),
        integ::HMAC_SHA2_256_128 => Some(prf::HMAC_SHA2_256),
        integ::HMAC_SHA2_384_192 => Some(prf::HMAC_SHA2_384),
        integ::HMAC_SHA2_512_256 => Some(prf::HMAC_SHA2_512),
        _ => None,
    }
}

fn derived_prfs(integ: &[u16]) -> Vec<u16> {
    let mut out: Vec<u16> = Vec::new();
    for p in integ.iter().filter_map(|i| prf_for_integ(*i)) {
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Encr(u16, Option<u16>),
    Integ(u16),
    Prf(u16),
    Dh(u16),
    Esn(u16),
}

const INTEG_NAMES: &[(&str, u16)] = &[
    ("md5", integ::HMAC_MD5_96),
    ("sha1", integ::HMAC_SHA1_96),
    ("sha", integ::HMAC_SHA1_96),
    ("aesxcbc", integ::AES_XCBC_96),
    ("aescmac", integ::AES_CMAC_96),
    ("sha256", integ::HMAC_SHA2_256_128),
    ("sha2_256", integ::HMAC_SHA2_256_128),
    ("sha384", integ::HMAC_SHA2_384_192),
    ("sha2_384", integ::HMAC_SHA2_384_192),
    ("sha512", integ::HMAC_SHA2_512_256),
    ("sha2_512", integ::HMAC_SHA2_512_256),
];

const PRF_NAMES: &[(&str, u16)] = &[
    ("prfmd5", prf::HMAC_MD5),
    ("prfsha1", prf::HMAC_SHA1),
    ("prfaesxcbc", prf::AES128_XCBC),
    ("prfaescmac", prf::AES128_CMAC),
    ("prfsha256", prf::HMAC_SHA2_256),
    ("prfsha384", prf::HMAC_SHA2_384),
    ("prfsha512", prf::HMAC_SHA2_512),
];

const DH_NAMES: &[(&str, u16)] = &[
    ("modp768", dh::MODP768),
    ("modp1024", dh::MODP1024),
    ("modp1536", dh::MODP1536),
    ("modp2048", dh::MODP2048),
    ("modp3072", dh::MODP3072),
    ("modp4096", dh::MODP4096),
    ("modp6144", dh::MODP6144),
    ("modp8192", dh::MODP8192),
    ("ecp256", dh::ECP256),
    ("ecp384", dh::ECP384),
    ("ecp521", dh::ECP521),
    ("modp1024s160", dh::MODP1024S160),
    ("modp2048s224", dh::MODP2048S224),
    ("modp2048s256", dh::MODP2048S256),
    ("ecp192", dh::ECP192),
    ("ecp224", dh::ECP224),
    ("ecp224bp", dh::ECP224BP),
    ("ecp256bp", dh::ECP256BP),
    ("ecp384bp", dh::ECP384BP),
    ("ecp512bp", dh::ECP512BP),
    ("x25519", dh::CURVE25519),
    ("curve25519", dh::CURVE25519),
    ("x448", dh::CURVE448),
    ("curve448", dh::CURVE448),
];

/// Encryption keywords: (prefix, id, ICV suffixes) expanded with key sizes 128/192/256.
fn encr_name(id: u16, bits: Option<u16>) -> String {
    let b = bits.unwrap_or(128);
    match id {
        encr::AES_CBC => format!("aes{b}"),
        encr::AES_CTR => format!("aes{b}ctr"),
        encr::CAMELLIA_CBC => format!("camellia{b}"),
        encr::CAMELLIA_CTR => format!("camellia{b}ctr"),
        encr::AES_GCM_8 => format!("aes{b}gcm8"),
        encr::AES_GCM_12 => format!("aes{b}gcm12"),
        encr::AES_GCM_16 => format!("aes{b}gcm16"),
        encr::AES_CCM_8 => format!("aes{b}ccm8"),
        encr::AES_CCM_12 => format!("aes{b}ccm12"),
        encr::AES_CCM_16 => format!("aes{b}ccm16"),
        encr::DES3 => "3des".to_owned(),
        encr::NULL => "null".to_owned(),
        encr::CHACHA20_POLY1305 => "chacha20poly1305".to_owned(),
        other => format!("encr{other}"),
    }
}

fn parse_encr(tok: &str) -> Option<(u16, Option<u16>)> {
    match tok {
        "3des" => return Some((encr::DES3, None)),
        "null" => return Some((encr::NULL, None)),
        "chacha20poly1305" => return Some((encr::CHACHA20_POLY1305, None)),
        "aes" => return Some((encr::AES_CBC, Some(128))),
        "camellia" => return Some((encr::CAMELLIA_CBC, Some(128))),
        _ => {}
    }
    let (family, rest) = if let Some(r) = tok.strip_prefix("aes") {
        ("aes", r)
    } else {
        ("camellia", tok.strip_prefix("camellia")?)
    };
    let bits: u16 = rest.get(..3)?.parse().ok()?;
    if ![128, 192, 256].contains(&bits) {
        return None;
    }
    let id = match (family, rest.get(3..)?) {
        ("aes", "") => encr::AES_CBC,
        ("aes", "ctr") => encr::AES_CTR,
        ("camellia", "") => encr::CAMELLIA_CBC,
        ("camellia", "ctr") => encr::CAMELLIA_CTR,
        ("aes", "gcm8" | "gcm64") => encr::AES_GCM_8,
        ("aes", "gcm12" | "gcm96") => encr::AES_GCM_12,
        ("aes", "gcm16" | "gcm128") => encr::AES_GCM_16,
        ("aes", "ccm8" | "ccm64") => encr::AES_CCM_8,
        ("aes", "ccm12" | "ccm96") => encr::AES_CCM_12,
        ("aes", "ccm16" | "ccm128") => encr::AES_CCM_16,
        _ => return None,
    };
    Some((id, Some(bits)))
}

fn lookup(table: &[(&str, u16)], tok: &str) -> Option<u16> {
    table.iter().find(|(n, _)| *n == tok).map(|(_, v)| *v)
}

fn name_of(table: &[(&str, u16)], id: u16) -> String {
    table
        .iter()
        .find(|(_, v)| *v == id)
        .map_or_else(|| format!("#{id}"), |(n, _)| (*n).to_owned())
}

fn classify(tok: &str) -> Option<Kind> {
    if let Some((id, bits)) = parse_encr(tok) {
        return Some(Kind::Encr(id, bits));
    }
    lookup(INTEG_NAMES, tok)
        .map(Kind::Integ)
        .or_else(|| lookup(PRF_NAMES, tok).map(Kind::Prf))
        .or_else(|| lookup(DH_NAMES, tok).map(Kind::Dh))
        .or(match tok {
            "esn" => Some(Kind::Esn(esn::ESN)),
            "noesn" => Some(Kind::Esn(esn::NO_ESN)),
            _ => None,
        })
}

/// All keywords, for "did you mean" suggestions.
fn all_keywords() -> Vec<String> {
    let mut out: Vec<String> = ["3des", "null", "chacha20poly1305", "aes", "esn", "noesn"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    for bits in [128, 192, 256] {
        for suffix in [
            "", "ctr", "gcm8", "gcm12", "gcm16", "ccm8", "ccm12", "ccm16",
        ] {
            out.push(format!("aes{bits}{suffix}"));
        }
        out.push(format!("camellia{bits}"));
    }
    for table in [INTEG_NAMES, PRF_NAMES, DH_NAMES] {
        out.extend(table.iter().map(|(n, _)| (*n).to_owned()));
    }
    out
}

fn push_unique<T: PartialEq>(v: &mut Vec<T>, x: T) {
    if !v.contains(&x) {
        v.push(x);
    }
}

/// Why a proposal string is invalid (its `Display` is the diagnostic's message). `text` is
/// the proposal as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposalError {
    #[error("empty algorithm name in proposal '{text}'")]
    EmptyAlgorithm { text: String },
    /// `hint`: a " (did you mean ...?)" suffix or empty.
    #[error("unknown algorithm '{token}' in proposal '{text}'{hint}")]
    UnknownAlgorithm {
        token: String,
        text: String,
        hint: String,
    },
    #[error("PRF '{token}' is not allowed in an ESP proposal ('{text}')")]
    PrfInEsp { token: String, text: String },
    #[error(
        "'{token}' is not allowed in an AH proposal ('{text}'): AH only authenticates (integrity[-dhgroup])"
    )]
    NotInAh { token: String, text: String },
    #[error("'{token}' is only valid in ESP and AH proposals ('{text}')")]
    EsnInIke { token: String, text: String },
    #[error("proposal '{text}' has no encryption algorithm")]
    NoEncryption { text: String },
    #[error(
        "proposal '{text}' mixes AEAD and non-AEAD encryption algorithms (use separate proposals)"
    )]
    MixedAead { text: String },
    #[error("integrity algorithm '{integ}' is not allowed with AEAD encryption in '{text}'")]
    IntegWithAead { integ: String, text: String },
    #[error("proposal '{text}' has no integrity algorithm")]
    NoIntegrity { text: String },
    #[error("AEAD proposal '{text}' needs a PRF (e.g. prfsha256)")]
    AeadWithoutPrf { text: String },
    #[error("proposal '{text}' has no key exchange group (e.g. x25519, ecp256, modp2048)")]
    NoKeyExchange { text: String },
}

/// Parses one proposal (`aes128-sha256-x25519`).
pub fn parse_proposal(proto: Protocol, text: &str) -> Result<Proposal, ProposalError> {
    let text_owned = || text.to_owned();
    let mut p = Proposal::default();
    for tok in text.split('-') {
        if tok.is_empty() {
            return Err(ProposalError::EmptyAlgorithm { text: text_owned() });
        }
        let lower = tok.to_ascii_lowercase();
        let kind = classify(&lower).ok_or_else(|| {
            let words = all_keywords();
            ProposalError::UnknownAlgorithm {
                token: tok.to_owned(),
                text: text_owned(),
                hint: super::diag::did_you_mean(&lower, words.iter().map(String::as_str)),
            }
        })?;
        match (proto, kind) {
            (Protocol::Ah, Kind::Encr(..) | Kind::Prf(_)) => {
                return Err(ProposalError::NotInAh {
                    token: tok.to_owned(),
                    text: text_owned(),
                });
            }
            (_, Kind::Encr(id, bits)) => push_unique(&mut p.encr, (id, bits)),
            (_, Kind::Integ(id)) => push_unique(&mut p.integ, id),
            (Protocol::Ike, Kind::Prf(id)) => push_unique(&mut p.prf, id),
            (Protocol::Esp, Kind::Prf(_)) => {
                return Err(ProposalError::PrfInEsp {
                    token: tok.to_owned(),
                    text: text_owned(),
                });
            }
            (_, Kind::Dh(id)) => push_unique(&mut p.dh, id),
            (Protocol::Esp | Protocol::Ah, Kind::Esn(id)) => push_unique(&mut p.esn, id),
            (Protocol::Ike, Kind::Esn(_)) => {
                return Err(ProposalError::EsnInIke {
                    token: tok.to_owned(),
                    text: text_owned(),
                });
            }
        }
    }
    if proto == Protocol::Ah {
        if p.integ.is_empty() {
            return Err(ProposalError::NoIntegrity { text: text_owned() });
        }
        if p.esn.is_empty() {
            p.esn.push(esn::NO_ESN);
        }
        return Ok(p);
    }
    let aead = p.encr.iter().filter(|(id, _)| is_aead(*id)).count();
    if p.encr.is_empty() {
        return Err(ProposalError::NoEncryption { text: text_owned() });
    }
    if aead != 0 && aead != p.encr.len() {
        return Err(ProposalError::MixedAead { text: text_owned() });
    }
    if aead != 0 && proto == Protocol::Ike && !p.integ.is_empty() {
        if p.prf.is_empty() {
            p.prf = derived_prfs(&p.integ);
        }
        p.integ.clear();
    }
    if aead != 0 {
        if let Some(i) = p.integ.first() {
            return Err(ProposalError::IntegWithAead {
                integ: name_of(INTEG_NAMES, *i),
                text: text_owned(),
            });
        }
    } else if p.integ.is_empty() {
        return Err(ProposalError::NoIntegrity { text: text_owned() });
    }
    if proto == Protocol::Ike {
        if p.prf.is_empty() {
            p.prf = derived_prfs(&p.integ);
        }
        if p.prf.is_empty() {
            return Err(ProposalError::AeadWithoutPrf { text: text_owned() });
        }
        if p.dh.is_empty() {
            return Err(ProposalError::NoKeyExchange { text: text_owned() });
        }
    } else if p.esn.is_empty() {
        p.esn.push(esn::NO_ESN);
    }
    Ok(p)
}

/// Parses an `ike=`/`esp=`/`ah=` value: `proposal[,proposal...][!]`.
pub fn parse_proposals(proto: Protocol, text: &str) -> Result<Proposals, ProposalError> {
    let (body, strict) = match text.strip_suffix('!') {
        Some(b) => (b, true),
        None => (text, false),
    };
    let list = body
        .split(',')
        .map(|p| parse_proposal(proto, p.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Proposals {
        list,
        strict,
        configured: true,
    })
}

impl fmt::Display for Proposal {
    /// strongSwan keyword form; PRFs equal to those derived from the integrity algorithms and
    /// the default `noesn` are left out, so `aes128-sha256-x25519` prints as written.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut toks: Vec<String> = self.encr.iter().map(|(id, b)| encr_name(*id, *b)).collect();
        toks.extend(self.integ.iter().map(|i| name_of(INTEG_NAMES, *i)));
        if self.prf != derived_prfs(&self.integ) {
            toks.extend(self.prf.iter().map(|p| name_of(PRF_NAMES, *p)));
        }
        toks.extend(self.dh.iter().map(|d| name_of(DH_NAMES, *d)));
        if self.esn != [esn::NO_ESN] {
            toks.extend(
                self.esn
                    .iter()
                    .map(|e| if *e == esn::ESN { "esn" } else { "noesn" }.to_owned()),
            );
        }
        f.write_str(&toks.join("-"))
    }
}

fn sizes(id: u16) -> [(u16, Option<u16>); 3] {
    [(id, Some(128)), (id, Some(192)), (id, Some(256))]
}

/// strongSwan 5.9.8's default IKE proposals (used when `ike=` is absent, and appended after
/// configured ones unless `!`), as built by `proposal_create_default` and
/// `proposal_create_default_aead` with the usual plugin set (openssl, curve25519, ...):
///
/// 1. AES-CBC/AES-CTR/Camellia-CBC/Camellia-CTR 128/192/256, 3DES;
///    HMAC-SHA2-256-128/384-192/512-256, HMAC-SHA1-96, AES-XCBC-96, AES-CMAC-96;
///    PRF HMAC-SHA2-256/384/512, AES128-XCBC, AES128-CMAC, HMAC-SHA1;
///    groups ECP-256/384/521, Brainpool-256/384/512, Curve25519, Curve448,
///    MODP-3072/4096/6144/8192, MODP-2048 (MODP-768/1024/1536 and RFC 5114 groups excluded);
/// 2. AEAD: AES-GCM-16 and AES-CCM-16 128/192/256, ChaCha20-Poly1305, then AES-GCM-12/8 and
///    AES-CCM-12/8 128/192/256, with the same PRFs and groups.
///
/// Inside each class strongSwan orders algorithms by plugin registration, so another plugin
/// set may reorder them; there is no single "aes128-sha256-x25519" default in 5.9.8
/// (the man page's `aes128-sha256-modp3072` is a subset of proposal 1).
pub fn default_ike_proposals() -> Vec<Proposal> {
    let prfs = vec![
        prf::HMAC_SHA2_256,
        prf::HMAC_SHA2_384,
        prf::HMAC_SHA2_512,
        prf::AES128_XCBC,
        prf::AES128_CMAC,
        prf::HMAC_SHA1,
    ];
    let groups = vec![
        dh::ECP256,
        dh::ECP384,
        dh::ECP521,
        dh::ECP256BP,
        dh::ECP384BP,
        dh::ECP512BP,
        dh::CURVE25519,
        dh::CURVE448,
        dh::MODP3072,
        dh::MODP4096,
        dh::MODP6144,
        dh::MODP8192,
        dh::MODP2048,
    ];
    let mut classic: Vec<(u16, Option<u16>)> = Vec::new();
    for id in [
        encr::AES_CBC,
        encr::AES_CTR,
        encr::CAMELLIA_CBC,
        encr::CAMELLIA_CTR,
    ] {
        classic.extend(sizes(id));
    }
    classic.push((encr::DES3, None));
    let mut aead: Vec<(u16, Option<u16>)> = Vec::new();
    aead.extend(sizes(encr::AES_GCM_16));
    aead.extend(sizes(encr::AES_CCM_16));
    aead.push((encr::CHACHA20_POLY1305, None));
    for id in [
        encr::AES_GCM_12,
        encr::AES_GCM_8,
        encr::AES_CCM_12,
        encr::AES_CCM_8,
    ] {
        aead.extend(sizes(id));
    }
    vec![
        Proposal {
            encr: classic,
            integ: vec![
                integ::HMAC_SHA2_256_128,
                integ::HMAC_SHA2_384_192,
                integ::HMAC_SHA2_512_256,
                integ::HMAC_SHA1_96,
                integ::AES_XCBC_96,
                integ::AES_CMAC_96,
            ],
            prf: prfs.clone(),
            dh: groups.clone(),
            esn: Vec::new(),
        },
        Proposal {
            encr: aead,
            integ: Vec::new(),
            prf: prfs,
            dh: groups,
            esn: Vec::new(),
        },
    ]
}

/// strongSwan 5.9.8's default ESP proposals (since 5.9.6 an AEAD proposal comes first):
/// 1. AES-GCM-16 128/192/256, no ESN;
/// 2. AES-CBC 128/192/256 with HMAC-SHA2-256-128/384-192/512-256, HMAC-SHA1-96, AES-XCBC-96,
///    no ESN. No key exchange (the CHILD_SA created with IKE_AUTH never uses one).
pub fn default_esp_proposals() -> Vec<Proposal> {
    vec![
        Proposal {
            encr: sizes(encr::AES_GCM_16).to_vec(),
            esn: vec![esn::NO_ESN],
            ..Proposal::default()
        },
        Proposal {
            encr: sizes(encr::AES_CBC).to_vec(),
            integ: default_integrity(),
            esn: vec![esn::NO_ESN],
            ..Proposal::default()
        },
    ]
}

/// The integrity algorithms of the default ESP (CBC) and AH proposals, in preference order.
fn default_integrity() -> Vec<u16> {
    vec![
        integ::HMAC_SHA2_256_128,
        integ::HMAC_SHA2_384_192,
        integ::HMAC_SHA2_512_256,
        integ::HMAC_SHA1_96,
        integ::AES_XCBC_96,
    ]
}

/// The default AH proposal (used when `ah=` lists proposals without `!`): the integrity
/// algorithms of [`default_esp_proposals`]'s second proposal, no ESN.
pub fn default_ah_proposals() -> Vec<Proposal> {
    vec![Proposal {
        integ: default_integrity(),
        esn: vec![esn::NO_ESN],
        ..Proposal::default()
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ah_proposals_are_integrity_only() {
        let p = parse_proposals(Protocol::Ah, "sha1!").unwrap();
        assert_eq!(p.list[0].integ, [integ::HMAC_SHA1_96]);
        assert!(p.list[0].encr.is_empty());
        assert_eq!(p.list[0].esn, [esn::NO_ESN]);
        assert_eq!(p.effective(Protocol::Ah).len(), 1);
        assert_eq!(p.to_string(), "sha1!");
        let p = parse_proposals(Protocol::Ah, "sha256-sha512-modp2048-esn,sha384").unwrap();
        assert_eq!(
            p.list[0].integ,
            [integ::HMAC_SHA2_256_128, integ::HMAC_SHA2_512_256]
        );
        assert_eq!(
            (p.list[0].dh.as_slice(), p.list[0].esn.as_slice()),
            (&[dh::MODP2048][..], &[esn::ESN][..])
        );
        assert_eq!(p.effective(Protocol::Ah).len(), 3);
        for bad in ["aes128-sha1", "sha1-prfsha1"] {
            assert!(
                matches!(
                    parse_proposal(Protocol::Ah, bad),
                    Err(ProposalError::NotInAh { .. })
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_proposal(Protocol::Ah, "modp2048"),
            Err(ProposalError::NoIntegrity { .. })
        ));
    }

    #[test]
    fn ike_basic_and_derived_prf() {
        let p = parse_proposal(Protocol::Ike, "aes128-sha256-x25519").unwrap();
        assert_eq!(p.encr, [(12, Some(128))]);
        assert_eq!(p.integ, [12]);
        assert_eq!(p.prf, [5]);
        assert_eq!(p.dh, [31]);
        assert_eq!(p.to_string(), "aes128-sha256-x25519");
        let p = parse_proposal(
            Protocol::Ike,
            "aes256-aes128-sha384-sha256-prfsha512-curve25519-ecp256-modp2048",
        )
        .unwrap();
        assert_eq!(p.encr, [(12, Some(256)), (12, Some(128))]);
        assert_eq!(p.prf, [7]);
        assert_eq!(p.dh, [31, 19, 14]);
        assert_eq!(
            p.to_string(),
            "aes256-aes128-sha384-sha256-prfsha512-x25519-ecp256-modp2048"
        );
    }

    #[test]
    fn ike_aead() {
        let p = parse_proposal(Protocol::Ike, "aes128gcm16-prfsha256-ecp256").unwrap();
        assert_eq!(p.encr, [(20, Some(128))]);
        assert!(p.integ.is_empty());
        assert_eq!(p.to_string(), "aes128gcm16-prfsha256-ecp256");
        let p = parse_proposal(
            Protocol::Ike,
            "aes256gcm128-aes128gcm12-aes128gcm8-chacha20poly1305-prfsha384-x448",
        )
        .unwrap();
        assert_eq!(
            p.encr,
            [
                (20, Some(256)),
                (19, Some(128)),
                (18, Some(128)),
                (28, None)
            ]
        );
        assert_eq!(
            parse_proposal(Protocol::Ike, "aes128gcm16-x25519")
                .unwrap_err()
                .to_string(),
            "AEAD proposal 'aes128gcm16-x25519' needs a PRF (e.g. prfsha256)"
        );
        // strongSwan's idiom: the integrity keyword of an AEAD IKE proposal is its PRF
        let p = parse_proposal(Protocol::Ike, "aes128gcm16-sha256-x25519").unwrap();
        assert!(p.integ.is_empty());
        assert_eq!(p.to_string(), "aes128gcm16-prfsha256-x25519");
        let p = parse_proposal(Protocol::Ike, "aes256gcm16-sha384-prfsha256-x25519").unwrap();
        assert_eq!(p.to_string(), "aes256gcm16-prfsha256-x25519");
        // ESP has no PRF: there it stays an error
        assert!(
            parse_proposal(Protocol::Esp, "aes128gcm16-sha256")
                .unwrap_err()
                .to_string()
                .contains("not allowed with AEAD")
        );
        assert!(
            parse_proposal(Protocol::Ike, "aes128gcm16-aes128-sha256-x25519")
                .unwrap_err()
                .to_string()
                .contains("mixes")
        );
    }

    #[test]
    fn esp() {
        let p = parse_proposal(Protocol::Esp, "aes128-sha256").unwrap();
        assert_eq!(
            (p.integ.as_slice(), p.esn.as_slice(), p.dh.is_empty()),
            (&[12u16][..], &[0u16][..], true)
        );
        assert_eq!(p.to_string(), "aes128-sha256");
        let p = parse_proposal(Protocol::Esp, "aes256gcm16-modp2048-esn-noesn").unwrap();
        assert_eq!(p.esn, [1, 0]);
        assert_eq!(p.to_string(), "aes256gcm16-modp2048-esn-noesn");
        assert!(parse_proposal(Protocol::Esp, "aes128-sha256-prfsha256").is_err());
        assert!(
            parse_proposal(Protocol::Esp, "aes128")
                .unwrap_err()
                .to_string()
                .contains("no integrity")
        );
    }

    #[test]
    fn errors_and_suggestions() {
        assert_eq!(
            parse_proposal(Protocol::Ike, "aes128-sha265-x25519")
                .unwrap_err()
                .to_string(),
            "unknown algorithm 'sha265' in proposal 'aes128-sha265-x25519' (did you mean 'sha256'?)"
        );
        assert!(
            parse_proposal(Protocol::Ike, "aes128-sha256")
                .unwrap_err()
                .to_string()
                .contains("no key exchange")
        );
        assert!(
            parse_proposal(Protocol::Ike, "aes128--x25519")
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        assert!(parse_proposal(Protocol::Ike, "aes127-sha256-x25519").is_err());
        assert!(parse_proposal(Protocol::Ike, "aes128-sha256-x25519-esn").is_err());
        assert!(
            parse_proposal(Protocol::Ike, "sha256-x25519")
                .unwrap_err()
                .to_string()
                .contains("no encryption")
        );
    }

    #[test]
    fn lists_strict_and_effective() {
        let p = parse_proposals(
            Protocol::Ike,
            "aes256-sha256-modp2048,aes128gcm16-prfsha256-ecp256!",
        )
        .unwrap();
        assert!(p.strict);
        assert_eq!(p.list.len(), 2);
        assert_eq!(p.effective(Protocol::Ike).len(), 2);
        assert_eq!(
            p.to_string(),
            "aes256-sha256-modp2048,aes128gcm16-prfsha256-ecp256!"
        );
        let p = parse_proposals(Protocol::Esp, "aes128-sha256").unwrap();
        assert_eq!(p.effective(Protocol::Esp).len(), 3);
        assert_eq!(p.to_string(), "aes128-sha256,default");
        let d = Proposals::default_for(Protocol::Ike);
        assert_eq!(d.to_string(), "default");
        assert_eq!(d.effective(Protocol::Ike), default_ike_proposals());
    }

    #[test]
    fn defaults_shape() {
        let ike = default_ike_proposals();
        assert_eq!(ike.len(), 2);
        assert_eq!(ike[0].encr.first(), Some(&(encr::AES_CBC, Some(128))));
        assert!(ike[0].dh.contains(&dh::CURVE25519) && ike[0].dh.contains(&dh::MODP2048));
        assert!(!ike[0].dh.contains(&dh::MODP1024));
        assert!(ike[1].encr.iter().all(|(id, _)| is_aead(*id)) && ike[1].integ.is_empty());
        let esp = default_esp_proposals();
        assert_eq!(esp[0].encr.first(), Some(&(encr::AES_GCM_16, Some(128))));
        assert_eq!(
            esp[1].to_string(),
            "aes128-aes192-aes256-sha256-sha384-sha512-sha1-aesxcbc"
        );
    }
}
