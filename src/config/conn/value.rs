//! One `keyword=value`, validated into its type once, where it is written.

use std::time::Duration;

use super::{Action, AuthMethod, Auto, ConnType, Fragmentation, UniqueIds};
use crate::config::diag::did_you_mean;
use crate::config::ident::{Identity, IdentityError, parse_identity};
use crate::config::keywords::ValueKind;
use crate::config::proposal::{ProposalError, Proposals, Protocol, parse_proposals};
use crate::config::values::{
    DnsServer, Host, Mark, ProtoPort, SourceIp, SubnetList, ValueError, parse_bool, parse_dns,
    parse_duration, parse_host, parse_mark, parse_percent, parse_protoport, parse_sourceips,
    parse_subnets, parse_u32, parse_u64,
};

/// A validated keyword value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Val {
    /// `keyword=` (reset to default).
    Unset,
    Host(Host),
    Id(Identity),
    Subnets(SubnetList),
    ProtoPort(ProtoPort),
    SourceIps(Vec<SourceIp>),
    Dns(Vec<DnsServer>),
    Port(u16),
    Auth(AuthMethod),
    Proposals(Proposals),
    ConnType(ConnType),
    Auto(Auto),
    Duration(Duration),
    Percent(u32),
    Tries(Option<u32>),
    Bool(bool),
    Action(Action),
    Fragmentation(Fragmentation),
    U32(u32),
    U64(u64),
    Mark(Mark),
    Text(String),
    UniqueIds(UniqueIds),
    Ignored,
}

/// Why a keyword's value is invalid (its `Display` is the diagnostic's message). `hint`
/// fields are a " (did you mean ...?)" suffix or empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingError {
    #[error(transparent)]
    Value(#[from] ValueError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Proposal(#[from] ProposalError),
    /// A value that is not one of a keyword's fixed words (`what`: the keyword).
    #[error("invalid {what} '{value}' (expected {expected}){hint}")]
    Choice {
        what: &'static str,
        value: String,
        expected: String,
        hint: String,
    },
    #[error("invalid authentication method '{value}' (expected psk, pubkey, eap or xauth){hint}")]
    Auth { value: String, hint: String },
    #[error("invalid port '{0}' (expected 1-65535)")]
    Port(String),
    #[error("authby={0} is IKEv1 only; IKEv1 is not supported")]
    IkeV1AuthBy(String),
    #[error(
        "invalid authby '{value}' (expected secret, psk, pubkey, rsasig, ecdsasig or never){hint}"
    )]
    AuthBy { value: String, hint: String },
    #[error("IKEv1 is not supported (keyexchange=ikev1); use keyexchange=ikev2")]
    IkeV1,
    #[error("invalid keyexchange '{value}' (expected ike or ikev2){hint}")]
    KeyExchange { value: String, hint: String },
    #[error("type=transport_proxy is not supported")]
    TransportProxy,
    #[error("invalid keyingtries '{0}' (expected a number or %forever)")]
    KeyingTries(String),
}

fn choice<T: Copy>(v: &str, options: &[(&str, T)], what: &'static str) -> Result<T, SettingError> {
    options
        .iter()
        .find(|(n, _)| *n == v)
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
            SettingError::Choice {
                what,
                value: v.to_owned(),
                expected: names.join(", "),
                hint: did_you_mean(v, names.iter().copied()),
            }
        })
}

fn parse_auth(v: &str) -> Result<AuthMethod, SettingError> {
    match v {
        "psk" | "secret" => Ok(AuthMethod::Psk),
        "pubkey" | "rsa" | "ecdsa" | "bliss" => Ok(AuthMethod::Pubkey),
        "never" => Ok(AuthMethod::Never),
        _ if v.starts_with("rsa-") || v.starts_with("ecdsa-") => Ok(AuthMethod::Pubkey),
        _ if v.starts_with("eap") => Ok(AuthMethod::Eap),
        _ if v.starts_with("xauth") => Ok(AuthMethod::Xauth),
        _ => Err(SettingError::Auth {
            value: v.to_owned(),
            hint: did_you_mean(v, ["psk", "pubkey", "eap", "xauth"]),
        }),
    }
}

pub(super) fn convert(kind: ValueKind, v: &str) -> Result<Val, SettingError> {
    if v.is_empty() {
        return Ok(Val::Unset);
    }
    Ok(match kind {
        ValueKind::Host => Val::Host(parse_host(v)?),
        ValueKind::Id => Val::Id(parse_identity(v)?),
        ValueKind::Subnets => Val::Subnets(parse_subnets(v)?),
        ValueKind::ProtoPort => Val::ProtoPort(parse_protoport(v)?),
        ValueKind::SourceIp => Val::SourceIps(parse_sourceips(v)?),
        ValueKind::Dns => Val::Dns(parse_dns(v)?),
        ValueKind::Port => Val::Port(
            v.parse()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| SettingError::Port(v.to_owned()))?,
        ),
        ValueKind::AuthBy => Val::Auth(match v {
            "secret" | "psk" => AuthMethod::Psk,
            "pubkey" | "rsasig" | "ecdsasig" => AuthMethod::Pubkey,
            "never" => AuthMethod::Never,
            "xauthpsk" | "xauthrsasig" => {
                return Err(SettingError::IkeV1AuthBy(v.to_owned()));
            }
            _ => {
                return Err(SettingError::AuthBy {
                    value: v.to_owned(),
                    hint: did_you_mean(
                        v,
                        ["secret", "psk", "pubkey", "rsasig", "ecdsasig", "never"],
                    ),
                });
            }
        }),
        ValueKind::Auth => Val::Auth(parse_auth(v)?),
        ValueKind::KeyExchange => match v {
            "ikev2" | "ike" => Val::Ignored,
            "ikev1" => {
                return Err(SettingError::IkeV1);
            }
            _ => {
                return Err(SettingError::KeyExchange {
                    value: v.to_owned(),
                    hint: did_you_mean(v, ["ike", "ikev2", "ikev1"]),
                });
            }
        },
        ValueKind::Ike => Val::Proposals(parse_proposals(Protocol::Ike, v)?),
        ValueKind::Esp => Val::Proposals(parse_proposals(Protocol::Esp, v)?),
        ValueKind::Ah => Val::Proposals(parse_proposals(Protocol::Ah, v)?),
        ValueKind::ConnType => Val::ConnType(match v {
            "transport_proxy" => {
                return Err(SettingError::TransportProxy);
            }
            _ => choice(
                v,
                &[
                    ("tunnel", ConnType::Tunnel),
                    ("transport", ConnType::Transport),
                    ("passthrough", ConnType::Passthrough),
                    ("pass", ConnType::Passthrough),
                    ("drop", ConnType::Drop),
                    ("reject", ConnType::Drop),
                ],
                "type",
            )?,
        }),
        ValueKind::Auto => Val::Auto(choice(
            v,
            &[
                ("ignore", Auto::Ignore),
                ("add", Auto::Add),
                ("start", Auto::Start),
                ("route", Auto::Route),
            ],
            "auto",
        )?),
        ValueKind::Duration => Val::Duration(parse_duration(v)?),
        ValueKind::Percent => Val::Percent(parse_percent(v)?),
        ValueKind::Tries => Val::Tries(match v {
            "%forever" => None,
            n => Some(parse_u32(n).map_err(|_| SettingError::KeyingTries(n.to_owned()))?)
                .filter(|n| *n != 0),
        }),
        ValueKind::Bool => Val::Bool(parse_bool(v)?),
        ValueKind::Action => Val::Action(choice(
            v,
            &[
                ("none", Action::None),
                ("clear", Action::Clear),
                ("hold", Action::Hold),
                ("restart", Action::Restart),
            ],
            "action",
        )?),
        ValueKind::Fragmentation => Val::Fragmentation(choice(
            v,
            &[
                ("yes", Fragmentation::Yes),
                ("accept", Fragmentation::Accept),
                ("force", Fragmentation::Force),
                ("no", Fragmentation::No),
            ],
            "fragmentation",
        )?),
        ValueKind::U32 => Val::U32(parse_u32(v)?),
        ValueKind::U64 => Val::U64(parse_u64(v)?),
        ValueKind::Mark => Val::Mark(parse_mark(v)?),
        ValueKind::Text => Val::Text(v.to_owned()),
        ValueKind::UniqueIds => Val::UniqueIds(choice(
            v,
            &[
                ("yes", UniqueIds::Yes),
                ("no", UniqueIds::No),
                ("never", UniqueIds::Never),
                ("replace", UniqueIds::Replace),
                ("keep", UniqueIds::Keep),
            ],
            "uniqueids",
        )?),
        ValueKind::Also | ValueKind::Unchecked => Val::Ignored,
    })
}
