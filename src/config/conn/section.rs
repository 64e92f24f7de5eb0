//! Keyword checks of one section (unknown keywords, support warnings, repeated keywords,
//! values) and `config setup`.

use std::collections::BTreeMap;

use crate::config::diag::{Diagnostics, Pos, did_you_mean};
use crate::config::keywords::{self, Support, ValueKind};
use crate::config::parse::{Section, Setting};

use super::Setup;
use super::value::{Val, convert};

/// Validated settings of one section: canonical key → (value, position of the keyword).
#[derive(Clone, Debug, Default)]
pub(super) struct Checked {
    pub(super) values: BTreeMap<String, (Val, Pos)>,
    pub(super) also: Vec<(String, Pos)>,
}

fn support_warning(diags: &mut Diagnostics, s: &Setting, support: Support) {
    match support {
        Support::Acted => {}
        Support::NotActed => diags.warning(
            &s.key_pos,
            format!("keyword '{}' is accepted but not acted on yet", s.key),
        ),
        Support::Unsupported => diags.warning(
            &s.key_pos,
            format!("keyword '{}' is not supported and is ignored", s.key),
        ),
    }
}

pub(super) fn check_conn_section(sec: &Section, diags: &mut Diagnostics) -> Checked {
    let mut out = Checked::default();
    let names = keywords::conn_keywords();
    for s in &sec.settings {
        let Some((canon, kind, support)) = keywords::conn_keyword(&s.key) else {
            let hint = did_you_mean(&s.key, names.iter().map(String::as_str));
            let where_ = if keywords::setup_keyword(&s.key).is_some() {
                " (it belongs in 'config setup')"
            } else {
                ""
            };
            diags.error(
                &s.key_pos,
                format!("unknown keyword '{}'{hint}{where_}", s.key),
            );
            continue;
        };
        if kind == ValueKind::Also {
            if s.value.is_empty() {
                diags.error(&s.value_pos, "also= needs a conn name");
            } else {
                out.also.push((s.value.clone(), s.value_pos.clone()));
            }
            continue;
        }
        support_warning(diags, s, support);
        match convert(kind, &s.value) {
            Ok(v) => {
                if let Some((_, prev)) = out.values.get(&canon) {
                    diags.warning(
                        &s.key_pos,
                        format!(
                            "'{}' set again (first at line {}); the last value wins",
                            s.key, prev.line
                        ),
                    );
                }
                out.values.insert(canon, (v, s.key_pos.clone()));
            }
            Err(e) => diags.error(&s.value_pos, e.to_string()),
        }
    }
    out
}

pub(super) fn build_setup(sec: &Section, setup: &mut Setup, diags: &mut Diagnostics) {
    let names = keywords::setup_keywords();
    for s in &sec.settings {
        let Some((kind, support)) = keywords::setup_keyword(&s.key) else {
            let hint = did_you_mean(&s.key, names.iter().map(String::as_str));
            let where_ = if keywords::conn_keyword(&s.key).is_some() {
                " (it belongs in a conn section)"
            } else {
                ""
            };
            diags.error(
                &s.key_pos,
                format!("unknown keyword '{}' in config setup{hint}{where_}", s.key),
            );
            continue;
        };
        support_warning(diags, s, support);
        match convert(kind, &s.value) {
            Ok(Val::Text(t)) => setup.charondebug = Some(t),
            Ok(Val::UniqueIds(u)) => setup.uniqueids = u,
            Ok(_) => {}
            Err(e) => diags.error(&s.value_pos, e.to_string()),
        }
    }
}
