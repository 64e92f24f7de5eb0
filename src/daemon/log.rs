//! Logging: tracing to stderr, one line per event, with per-subsystem levels.
//!
//! Targets used by the daemon: `ike` (engine events), `kernel` (SA/policy installation),
//! `cfg` (configuration), `net` (sockets), `ctl` (control socket), `dmn` (daemon life cycle);
//! library modules log under their module path (`ikev2d::ike`, `ikev2d::kernel`, ...).
//!
//! strongSwan's `charondebug` (config setup) is honoured: each `subsystem level` pair maps to
//! a target filter, with levels -1 → off, 0 → warn, 1 → info, 2 → debug, 3 and 4 → trace.
//! `RUST_LOG`, when set, replaces the whole filter.

use tracing_subscriber::EnvFilter;

/// Targets that a strongSwan subsystem name stands for.
fn targets(subsystem: &str) -> &'static [&'static str] {
    match subsystem {
        "ike" | "chd" | "mgr" | "job" => &["ike", "ikev2d::ike"],
        "cfg" => &["cfg", "ikev2d::config"],
        "knl" | "esp" => &["kernel", "ikev2d::kernel"],
        "net" => &["net", "ikev2d::daemon::net"],
        "enc" | "asn" => &["ikev2d::wire"],
        "lib" => &["ikev2d::crypto"],
        "dmn" => &["dmn", "ctl", "ikev2d::daemon", "ikev2d::control"],
        _ => &[],
    }
}

fn level(n: i32) -> &'static str {
    match n {
        i32::MIN..=-1 => "off",
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    }
}

/// Filter directives for a `charondebug` value such as `"ike 2, knl 3, cfg 0"`, on top of
/// the default level `info`. Unknown subsystems are skipped; `any N` sets the default.
/// Returns the directives and the pairs that were not understood.
pub fn charondebug_directives(charondebug: &str) -> (String, Vec<String>) {
    let mut default = "info";
    let mut specific = Vec::new();
    let mut rejected = Vec::new();
    for item in charondebug
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let mut words = item.split_whitespace();
        let parsed = match (
            words.next(),
            words.next().map(str::parse::<i32>),
            words.next(),
        ) {
            (Some(sub), Some(Ok(n)), None) => Some((sub.to_ascii_lowercase(), n)),
            _ => None,
        };
        match parsed {
            Some((sub, n)) if sub == "any" => default = level(n),
            Some((sub, n)) if !targets(&sub).is_empty() => {
                specific.extend(targets(&sub).iter().map(|t| format!("{t}={}", level(n))));
            }
            _ => rejected.push(item.to_string()),
        }
    }
    let mut directives = vec![default.to_string()];
    directives.extend(specific);
    (directives.join(","), rejected)
}

/// Installs the global subscriber (stderr, no colours). `charondebug` is used unless
/// `RUST_LOG` is set.
pub fn init(charondebug: Option<&str>) {
    let (directives, rejected) = charondebug_directives(charondebug.unwrap_or(""));
    let filter = match std::env::var("RUST_LOG") {
        Ok(env) if !env.is_empty() => EnvFilter::new(env),
        _ => EnvFilter::new(directives),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
    for item in rejected {
        tracing::warn!(target: "cfg", "charondebug: ignoring {item:?} (unknown subsystem or level)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_subsystems_and_levels() {
        let (d, rejected) = charondebug_directives("ike 2, knl 3, cfg -1, any 0, tls 1, bogus");
        assert_eq!(
            d,
            "warn,ike=debug,ikev2d::ike=debug,kernel=trace,ikev2d::kernel=trace,cfg=off,ikev2d::config=off"
        );
        assert_eq!(rejected, vec!["tls 1".to_string(), "bogus".to_string()]);
        assert_eq!(charondebug_directives("").0, "info");
        // every produced directive set must be accepted by the filter parser
        assert!(EnvFilter::try_new(&d).is_ok());
    }
}
