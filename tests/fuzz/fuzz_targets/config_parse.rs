//! Fuzzes the ipsec.conf and ipsec.secrets parsers end to end (lexing, includes, typed conns,
//! proposals, identities, secrets lookup and the `ikectl check` report). The input is split at
//! the first NUL byte into ipsec.conf and ipsec.secrets text; both are also available as
//! include targets (`include inc.conf`, `include inc.secrets`, `include *`).
#![no_main]

use ikev2d::config::check::report;
use ikev2d::config::conn::NoDns;
use ikev2d::config::load::load_str;
use ikev2d::config::source::{MemResolver, SourceFile};
use libfuzzer_sys::fuzz_target;

fn src(name: &str, text: &str) -> SourceFile {
    SourceFile {
        name: name.to_owned(),
        text: text.to_owned(),
        mode: None,
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (conf, secrets) = text.split_once('\0').unwrap_or((&text, &text));
    let includes = MemResolver::default()
        .with("inc.conf", conf)
        .with("inc.secrets", secrets);
    let loaded = load_str(
        &src("ipsec.conf", conf),
        &src("ipsec.secrets", secrets),
        &includes,
        &NoDns,
    );
    let _ = report(loaded).to_string();
});
