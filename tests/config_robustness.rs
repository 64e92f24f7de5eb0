//! Property tests: the config parsers never panic on arbitrary or config-shaped input, and
//! proposals print back to a string that parses to the same proposal.

use ikev2d::config::check::report;
use ikev2d::config::conn::NoDns;
use ikev2d::config::load::load_str;
use ikev2d::config::proposal::{Protocol, parse_proposal};
use ikev2d::config::source::{MemResolver, SourceFile};
use proptest::prelude::*;

fn src(name: &str, text: &str) -> SourceFile {
    SourceFile {
        name: name.to_owned(),
        text: text.to_owned(),
        mode: Some(0o600),
    }
}

fn run(conf: &str, secrets: &str) -> String {
    let includes = MemResolver::default()
        .with("inc.conf", conf)
        .with("inc.secrets", secrets);
    let loaded = load_str(
        &src("ipsec.conf", conf),
        &src("ipsec.secrets", secrets),
        &includes,
        &NoDns,
    );
    report(loaded).to_string()
}

fn conf_line() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "left",
        "right",
        "leftid",
        "rightid",
        "leftsubnet",
        "rightsubnet",
        "leftprotoport",
        "rightikeport",
        "authby",
        "leftauth",
        "keyexchange",
        "ike",
        "esp",
        "type",
        "auto",
        "ikelifetime",
        "lifetime",
        "keylife",
        "rekeyfuzz",
        "keyingtries",
        "mark",
        "also",
        "mobike",
        "dpdaction",
        "reqid",
        "rigthsubnet",
        "uniqueids",
    ]);
    let value = prop::sample::select(vec![
        "10.1.0.1",
        "%any",
        "%any6",
        "fec0::1",
        "@moon",
        "@#0a",
        "@@a@b",
        "10.1.0.0/16,fec1::/16",
        "tcp/80",
        "secret",
        "psk",
        "ikev2",
        "ikev1",
        "aes128-sha256-x25519!",
        "aes128gcm16-prfsha256-ecp256,aes256-sha384-modp2048",
        "transport",
        "add",
        "3h",
        "60m",
        "100%",
        "%forever",
        "0x10/0xff",
        "a",
        "b",
        "\"quoted value\"",
        "",
        "yes",
        "x=y",
    ]);
    prop_oneof![
        "conn [a-c%]{0,8}".prop_map(|s| s),
        Just("config setup".to_owned()),
        Just("include inc.conf".to_owned()),
        Just("include *".to_owned()),
        "#[ -~]{0,10}".prop_map(|s| s),
        (key, "[ \t]{1,2}", value).prop_map(|(k, ws, v)| format!("{ws}{k}={v}")),
        "[ -~\t]{0,30}".prop_map(|s| s),
    ]
}

fn secrets_line() -> impl Strategy<Value = String> {
    let sel = prop::sample::select(vec![
        "", "@moon", "%any", "10.1.0.1", "fec0::1", "@#zz", "@a @b",
    ]);
    let sec = prop::sample::select(vec![
        "PSK \"x\"",
        "PSK 'y'",
        "PSK 0x0102",
        "PSK 0sAQI=",
        "PSK 0s=",
        "PSK",
        "RSA k.pem",
        "PSK \"open",
        "PKS z",
    ]);
    prop_oneof![
        (sel, sec).prop_map(|(a, b)| format!("{a} : {b}")),
        Just("include inc.secrets".to_owned()),
        "[ -~\t]{0,30}".prop_map(|s| s),
    ]
}

proptest! {
    #[test]
    fn config_shaped_input_never_panics(
        conf in prop::collection::vec(conf_line(), 0..25),
        secrets in prop::collection::vec(secrets_line(), 0..8),
    ) {
        let out = run(&conf.join("\n"), &secrets.join("\n"));
        prop_assert!(out.contains(" errors,") || out.contains(" error,"));
    }

    #[test]
    fn arbitrary_text_never_panics(conf in "\\PC{0,300}", secrets in "\\PC{0,100}") {
        let out = run(&conf, &secrets);
        prop_assert!(out.ends_with("at run time)\n"));
    }

    #[test]
    fn proposal_display_round_trips(
        encr in prop::sample::subsequence(vec!["aes128", "aes256", "aes192ctr", "camellia128", "3des"], 1..4),
        integ in prop::sample::subsequence(vec!["sha1", "sha256", "sha384", "sha512", "aesxcbc"], 1..4),
        prf in prop::sample::subsequence(vec!["prfsha256", "prfsha512"], 0..2),
        dh in prop::sample::subsequence(vec!["modp2048", "ecp256", "x25519", "curve448", "ecp384bp"], 1..4),
    ) {
        let text = [encr, integ, prf, dh].concat().join("-");
        let p = parse_proposal(Protocol::Ike, &text).unwrap();
        let again = parse_proposal(Protocol::Ike, &p.to_string()).unwrap();
        prop_assert_eq!(p, again);
    }
}
