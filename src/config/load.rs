//! Loading ipsec.conf and ipsec.secrets (from disk or from text) into a typed [`Config`] and
//! [`Secrets`], with every diagnostic. Used by the daemon (start, reload) and `ikectl check`.

use std::path::Path;

use super::conn::{Config, HostResolver, build_config};
use super::diag::{Diagnostics, Pos};
use super::parse::parse_conf_str;
use super::secrets::{Secrets, parse_secrets_str};
use super::source::{FsResolver, IncludeResolver, SourceFile};

/// Everything loaded from ipsec.conf + ipsec.secrets, with all diagnostics.
#[derive(Debug, Default)]
pub struct Loaded {
    pub config: Config,
    pub secrets: Secrets,
    pub diagnostics: Diagnostics,
}

/// Loads both files from text (for tests, fuzzing and the daemon's reload).
pub fn load_str(
    conf: &SourceFile,
    secrets: &SourceFile,
    includes: &dyn IncludeResolver,
    dns: &dyn HostResolver,
) -> Loaded {
    let (raw, mut diagnostics) = parse_conf_str(&conf.name, &conf.text, includes);
    let config = build_config(&raw, dns, &mut diagnostics);
    sort_by_position(&mut diagnostics);
    let (secrets, sdiags) = parse_secrets_str(&secrets.name, &secrets.text, secrets.mode, includes);
    diagnostics.extend(sdiags);
    Loaded {
        config,
        secrets,
        diagnostics,
    }
}

/// Orders diagnostics by file (in order of first appearance), line and column, so syntax and
/// value problems read top to bottom.
fn sort_by_position(diags: &mut Diagnostics) {
    let mut files: Vec<String> = Vec::new();
    for d in &diags.items {
        if !files.contains(&d.pos.file) {
            files.push(d.pos.file.clone());
        }
    }
    diags.items.sort_by_key(|d| {
        let file = files.iter().position(|f| *f == d.pos.file);
        (file, d.pos.line, d.pos.col)
    });
}

/// Loads both files from disk; an unreadable file is an error diagnostic.
pub fn load(conf: &Path, secrets: &Path, dns: &dyn HostResolver) -> Loaded {
    let mut missing = Diagnostics::default();
    let mut read = |p: &Path| {
        FsResolver::load(p).unwrap_or_else(|e| {
            let name = p.to_string_lossy().into_owned();
            missing.error(&Pos::new(&name, 1, 1), format!("cannot read file: {e}"));
            SourceFile {
                name,
                text: String::new(),
                mode: None,
            }
        })
    };
    let conf = read(conf);
    let secrets = read(secrets);
    let mut loaded = load_str(&conf, &secrets, &FsResolver, dns);
    missing.extend(loaded.diagnostics);
    loaded.diagnostics = missing;
    loaded
}
