//! The ipsec.conf keyword tables: which keywords exist (strongSwan 5.9), how their values are
//! checked, and whether this daemon acts on them yet.

/// How a keyword's value is parsed and validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueKind {
    Host,
    Id,
    Subnets,
    ProtoPort,
    /// `leftsourceip`: `%config` or an address pool.
    SourceIp,
    /// `leftdns`: DNS servers or `%config4`/`%config6`.
    Dns,
    Port,
    AuthBy,
    Auth,
    KeyExchange,
    Ike,
    Esp,
    Ah,
    ConnType,
    Auto,
    Duration,
    Percent,
    Tries,
    Bool,
    Action,
    Fragmentation,
    U32,
    /// A byte or packet count (`lifebytes`, `marginpackets`, ...).
    U64,
    Mark,
    Text,
    UniqueIds,
    Also,
    /// A strongSwan keyword we neither check nor use.
    Unchecked,
}

/// What the daemon does with a keyword.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    /// Used by the daemon in this iteration.
    Acted,
    /// Parsed and validated, but not acted on yet (warning).
    NotActed,
    /// A strongSwan keyword we do not implement at all (warning, value unchecked).
    Unsupported,
}

use Support::{Acted, NotActed, Unsupported};
use ValueKind as V;

/// Per-side keywords, used with a `left` or `right` prefix.
const SIDED: &[(&str, ValueKind, Support)] = &[
    ("", V::Host, Acted),
    ("id", V::Id, Acted),
    ("subnet", V::Subnets, Acted),
    ("protoport", V::ProtoPort, Acted),
    ("ikeport", V::Port, Acted),
    ("auth", V::Auth, Acted),
    ("updown", V::Text, Acted),
    ("firewall", V::Bool, Acted),
    ("sourceip", V::SourceIp, Acted),
    ("dns", V::Dns, Acted),
    ("allowany", V::Unchecked, Unsupported),
    ("auth2", V::Unchecked, Unsupported),
    ("ca", V::Unchecked, Unsupported),
    ("ca2", V::Unchecked, Unsupported),
    ("cert", V::Unchecked, Unsupported),
    ("cert2", V::Unchecked, Unsupported),
    ("certpolicy", V::Unchecked, Unsupported),
    ("groups", V::Unchecked, Unsupported),
    ("groups2", V::Unchecked, Unsupported),
    ("hostaccess", V::Unchecked, Unsupported),
    ("id2", V::Unchecked, Unsupported),
    ("rsasigkey", V::Unchecked, Unsupported),
    ("sendcert", V::Unchecked, Unsupported),
    ("sigkey", V::Unchecked, Unsupported),
];

/// Conn keywords without a side.
const CONN: &[(&str, ValueKind, Support)] = &[
    ("also", V::Also, Acted),
    ("authby", V::AuthBy, Acted),
    ("keyexchange", V::KeyExchange, Acted),
    ("ike", V::Ike, Acted),
    ("esp", V::Esp, Acted),
    ("ah", V::Ah, Acted),
    ("type", V::ConnType, Acted),
    ("auto", V::Auto, Acted),
    ("ikelifetime", V::Duration, Acted),
    ("lifetime", V::Duration, Acted),
    ("keylife", V::Duration, Acted),
    ("keyingtries", V::Tries, Acted),
    ("replay_window", V::U32, Acted),
    ("reqid", V::U32, Acted),
    ("mobike", V::Bool, NotActed),
    ("rekeymargin", V::Duration, Acted),
    ("margintime", V::Duration, Acted),
    ("rekeyfuzz", V::Percent, Acted),
    ("rekey", V::Bool, Acted),
    ("reauth", V::Bool, Acted),
    ("dpdaction", V::Action, Acted),
    ("dpddelay", V::Duration, Acted),
    ("dpdtimeout", V::Duration, NotActed),
    ("closeaction", V::Action, Acted),
    ("fragmentation", V::Fragmentation, NotActed),
    ("forceencaps", V::Bool, Acted),
    ("mark", V::Mark, Acted),
    ("mark_in", V::Mark, Acted),
    ("mark_out", V::Mark, Acted),
    ("inactivity", V::Duration, Acted),
    ("aaa_identity", V::Unchecked, Unsupported),
    ("aggressive", V::Unchecked, Unsupported),
    ("compress", V::Unchecked, Unsupported),
    ("eap_identity", V::Unchecked, Unsupported),
    ("hw_offload", V::Unchecked, Unsupported),
    ("if_id_in", V::Unchecked, Unsupported),
    ("if_id_out", V::Unchecked, Unsupported),
    ("ikedscp", V::Unchecked, Unsupported),
    ("installpolicy", V::Unchecked, Unsupported),
    ("lifebytes", V::U64, Acted),
    ("lifepackets", V::U64, Acted),
    ("marginbytes", V::U64, Acted),
    ("marginpackets", V::U64, Acted),
    ("mediated_by", V::Unchecked, Unsupported),
    ("mediation", V::Unchecked, Unsupported),
    ("me_peerid", V::Unchecked, Unsupported),
    ("modeconfig", V::Unchecked, Unsupported),
    ("ppk_id", V::Unchecked, Unsupported),
    ("ppk_required", V::Unchecked, Unsupported),
    ("sha256_96", V::Unchecked, Unsupported),
    ("tfc", V::Unchecked, Unsupported),
    ("xauth", V::Unchecked, Unsupported),
    ("xauth_identity", V::Unchecked, Unsupported),
];

/// `config setup` keywords.
const SETUP: &[(&str, ValueKind, Support)] = &[
    ("charondebug", V::Text, Acted),
    ("uniqueids", V::UniqueIds, Acted),
    ("cachecrls", V::Unchecked, Unsupported),
    ("charonstart", V::Unchecked, Unsupported),
    ("strictcrlpolicy", V::Unchecked, Unsupported),
];

/// Looks up a conn keyword. Returns its canonical name (aliases `keylife` → `lifetime`,
/// `margintime` → `rekeymargin` resolved), value kind and support level.
pub fn conn_keyword(key: &str) -> Option<(String, ValueKind, Support)> {
    if let Some(&(name, kind, support)) = CONN.iter().find(|(n, _, _)| *n == key) {
        let canon = match name {
            "keylife" => "lifetime",
            "margintime" => "rekeymargin",
            n => n,
        };
        return Some((canon.to_owned(), kind, support));
    }
    let rest = key
        .strip_prefix("left")
        .or_else(|| key.strip_prefix("right"))?;
    SIDED
        .iter()
        .find(|(n, _, _)| *n == rest)
        .map(|&(_, kind, support)| (key.to_owned(), kind, support))
}

pub fn setup_keyword(key: &str) -> Option<(ValueKind, Support)> {
    SETUP
        .iter()
        .find(|(n, _, _)| *n == key)
        .map(|&(_, k, s)| (k, s))
}

/// All conn keyword spellings (for suggestions).
pub fn conn_keywords() -> Vec<String> {
    let mut out: Vec<String> = CONN.iter().map(|(n, _, _)| (*n).to_owned()).collect();
    for side in ["left", "right"] {
        out.extend(SIDED.iter().map(|(n, _, _)| format!("{side}{n}")));
    }
    out
}

pub fn setup_keywords() -> Vec<String> {
    SETUP.iter().map(|(n, _, _)| (*n).to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        assert_eq!(conn_keyword("keylife").unwrap().0, "lifetime");
        assert_eq!(conn_keyword("margintime").unwrap().0, "rekeymargin");
        assert_eq!(conn_keyword("rightsubnet").unwrap().1, ValueKind::Subnets);
        assert_eq!(conn_keyword("left").unwrap().2, Support::Acted);
        assert_eq!(conn_keyword("leftcert").unwrap().2, Support::Unsupported);
        assert!(conn_keyword("rigthsubnet").is_none());
        assert!(conn_keyword("leftfoo").is_none());
        assert!(setup_keyword("uniqueids").is_some());
        assert!(conn_keywords().contains(&"rightsubnet".to_owned()));
    }
}
