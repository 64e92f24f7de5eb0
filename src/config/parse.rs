//! Lexer/parser for ipsec.conf as strongSwan's starter reads it, producing untyped sections.
//!
//! Rules implemented:
//! * a line starting in column 1 opens a section (`config setup`, `conn NAME`, `ca NAME`) or is
//!   an `include PATTERN` directive; every indented line (space or tab) belongs to the section
//!   above it as `keyword=value` (whitespace around `=` is allowed);
//! * `#` starts a comment at the start of a line or after whitespace (so `leftid=@#01ab` keeps
//!   its `#`); blank and comment-only lines are ignored anywhere;
//! * a value is one unquoted word, or a double-quoted string that may contain spaces, `#` and
//!   the escapes `\"`, `\\`, `\n`, `\t`; an empty value (`keyword=`) resets the keyword;
//! * `include` takes one pattern with shell wildcards, relative to the including file's
//!   directory (see [`super::source::IncludeStack`] for the limits).

use super::diag::{Diagnostics, Pos};
use super::source::{IncludeResolver, IncludeStack};

/// One `keyword=value` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    pub key: String,
    pub key_pos: Pos,
    pub value: String,
    pub value_pos: Pos,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SectionKind {
    Setup,
    Conn,
    Ca,
}

/// A `config setup`, `conn NAME` or `ca NAME` section with its settings in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    pub kind: SectionKind,
    pub name: String,
    pub pos: Pos,
    pub settings: Vec<Setting>,
}

/// The sections of an ipsec.conf and all files it includes, in reading order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawConf {
    pub sections: Vec<Section>,
}

/// Parses ipsec.conf text named `name`, resolving includes through `resolver`.
pub fn parse_conf_str(
    name: &str,
    text: &str,
    resolver: &dyn IncludeResolver,
) -> (RawConf, Diagnostics) {
    let mut parser = Parser {
        resolver,
        conf: RawConf::default(),
        diags: Diagnostics::default(),
        includes: IncludeStack::default(),
    };
    parser.file(name, text);
    (parser.conf, parser.diags)
}

struct Parser<'r> {
    resolver: &'r dyn IncludeResolver,
    conf: RawConf,
    diags: Diagnostics,
    includes: IncludeStack,
}

/// Splits off the leading whitespace-separated words of a section header line, stopping at a
/// comment. Returns (column, word) pairs.
fn words(line: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (col, (idx, ch)) in line.char_indices().enumerate() {
        match (ch.is_whitespace(), start) {
            (true, Some((c0, i0))) => {
                out.push((c0, line.get(i0..idx).unwrap_or_default()));
                start = None;
            }
            (false, None) => {
                if ch == '#' {
                    return out;
                }
                start = Some((col + 1, idx));
            }
            _ => {}
        }
    }
    if let Some((c0, i0)) = start {
        out.push((c0, line.get(i0..).unwrap_or_default()));
    }
    out
}

impl Parser<'_> {
    fn file(&mut self, name: &str, text: &str) {
        self.includes.enter(name);
        // Whether indented lines have a section to go to (false before the first header and
        // after an include directive).
        let mut in_section = false;
        for (idx, raw) in text.split('\n').enumerate() {
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            let lineno = idx + 1;
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            if trimmed.len() != line.len() {
                let indent = line.chars().count() - trimmed.chars().count(); // ok: suffix
                if in_section {
                    self.setting(name, lineno, indent, trimmed);
                } else {
                    self.diags.error(
                        &Pos::new(name, lineno, indent + 1),
                        "indented line outside a section (sections start with 'config setup', 'conn NAME' or 'ca NAME' in column 1)",
                    );
                }
                continue;
            }
            in_section = self.header(name, lineno, line);
        }
        self.includes.leave();
    }

    /// Handles a column-1 line; returns whether following indented lines belong to a section.
    fn header(&mut self, name: &str, lineno: usize, line: &str) -> bool {
        let pos = |col| Pos::new(name, lineno, col);
        let w = words(line);
        let (first, rest) = match w.split_first() {
            Some(((_, first), rest)) => (*first, rest),
            None => return false,
        };
        let kind = match first {
            "config" => Some(SectionKind::Setup),
            "conn" => Some(SectionKind::Conn),
            "ca" => Some(SectionKind::Ca),
            _ => None,
        };
        match (first, kind, rest) {
            ("include", _, [(col, pattern)]) => {
                let files = self.includes.resolve(
                    self.resolver,
                    name,
                    &pos(*col),
                    pattern,
                    &mut self.diags,
                );
                for f in files {
                    self.file(&f.name, &f.text);
                }
                false
            }
            ("include", _, _) => {
                self.diags
                    .error(&pos(1), "'include' takes exactly one file name or pattern");
                false
            }
            ("version", _, [(col, v)]) => {
                if *v != "2" && *v != "2.0" {
                    self.diags
                        .error(&pos(*col), format!("unsupported ipsec.conf version '{v}'"));
                } else {
                    self.diags
                        .warning(&pos(1), "'version' is obsolete and ignored");
                }
                false
            }
            ("config", _, [(col, n)]) if *n != "setup" => {
                self.diags.error(
                    &pos(*col),
                    format!("unknown section 'config {n}' (only 'config setup' exists)"),
                );
                false
            }
            (_, Some(kind), [(col, n)]) => {
                self.conf.sections.push(Section {
                    kind,
                    name: (*n).to_owned(),
                    pos: pos(*col),
                    settings: Vec::new(),
                });
                true
            }
            (_, Some(_), []) => {
                self.diags
                    .error(&pos(1), format!("'{first}' needs a section name"));
                false
            }
            (_, Some(_), [_, (col, _), ..]) => {
                self.diags
                    .error(&pos(*col), "unexpected text after the section name");
                false
            }
            _ if first.contains('=') => {
                self.diags.error(
                    &pos(1),
                    format!(
                        "'{}' must be indented to belong to a section",
                        first.split('=').next().unwrap_or(first)
                    ),
                );
                false
            }
            _ => {
                let hint = super::diag::did_you_mean(first, ["config", "conn", "ca", "include"]);
                self.diags.error(
                    &pos(1),
                    format!("expected 'config setup', 'conn NAME', 'ca NAME' or 'include FILE', found '{first}'{hint}"),
                );
                false
            }
        }
    }

    fn setting(&mut self, name: &str, lineno: usize, indent: usize, text: &str) {
        let pos = |col| Pos::new(name, lineno, col);
        let key_end = text
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(text.len());
        let key = text.get(..key_end).unwrap_or_default();
        let after_key = text.get(key_end..).unwrap_or_default();
        let after_ws = after_key.trim_start();
        let key_col = indent + 1;
        let Some(after_eq) = after_ws.strip_prefix('=') else {
            self.diags.error(
                &pos(key_col),
                format!("expected 'keyword=value', found '{key}'"),
            );
            return;
        };
        if key.is_empty() {
            self.diags
                .error(&pos(key_col), "missing keyword before '='");
            return;
        }
        let value_text = after_eq.trim_start();
        let value_col = key_col + text.chars().count() - value_text.chars().count(); // ok: suffix
        let (value, rest) = match lex_value(value_text) {
            Ok(v) => v,
            Err(e) => {
                self.diags.error(&pos(value_col), e.to_string());
                return;
            }
        };
        let rest_trim = rest.trim_start();
        if !rest_trim.is_empty() && (!rest_trim.starts_with('#') || rest_trim.len() == rest.len()) {
            let col = value_col + value_text.chars().count() - rest_trim.chars().count(); // ok: suffix
            self.diags.error(
                &pos(col),
                format!("unexpected text '{rest_trim}' after the value of '{key}' (quote values that contain spaces)"),
            );
            return;
        }
        let Some(section) = self.conf.sections.last_mut() else {
            return;
        };
        section.settings.push(Setting {
            key: key.to_owned(),
            key_pos: pos(key_col),
            value,
            value_pos: pos(value_col),
        });
    }
}

/// Why a value cannot be read (its `Display` is the diagnostic's message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LexError {
    #[error("stray '\"' in value '{0}'")]
    StrayQuote(String),
    #[error("unterminated quoted value (missing closing '\"')")]
    Unterminated,
}

/// Reads one value: a double-quoted string with escapes, or a word up to whitespace.
/// Returns the value and the remaining text.
fn lex_value(text: &str) -> Result<(String, &str), LexError> {
    let Some(body) = text.strip_prefix('"') else {
        let end = text.find(char::is_whitespace).unwrap_or(text.len());
        let (word, rest) = text.split_at(end); // ok: find() gives a char boundary
        if word.contains('"') {
            return Err(LexError::StrayQuote(word.to_owned()));
        }
        return Ok((word.to_owned(), rest));
    };
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, body.get(i + 1..).unwrap_or_default())),
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, 'r')) => out.push('\r'),
                Some((_, e)) => out.push(e),
                None => break,
            },
            c => out.push(c),
        }
    }
    Err(LexError::Unterminated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::source::MemResolver;

    fn parse(text: &str) -> (RawConf, Diagnostics) {
        parse_conf_str("t.conf", text, &MemResolver::default())
    }

    fn msgs(d: &Diagnostics) -> Vec<String> {
        d.items.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn sections_settings_comments_quotes() {
        let (c, d) = parse(
            "# head\nconfig setup\n\tcharondebug=\"ike 2, knl 1\" # c\n\nconn a\n  left = 10.0.0.1\n  leftid=@#0a0b # keyid\n  leftupdown=\"/bin/x \\\"y\\\"\"\n  rightsubnet=\nca x\n",
        );
        assert!(d.items.is_empty(), "{:?}", msgs(&d));
        assert_eq!(c.sections.len(), 3);
        assert_eq!(c.sections[0].kind, SectionKind::Setup);
        assert_eq!(c.sections[0].settings[0].value, "ike 2, knl 1");
        let a = &c.sections[1];
        assert_eq!((a.name.as_str(), a.pos.line, a.pos.col), ("a", 5, 6));
        assert_eq!(a.settings[0].key, "left");
        assert_eq!(a.settings[0].key_pos.col, 3);
        assert_eq!(a.settings[0].value_pos.col, 10);
        assert_eq!(a.settings[1].value, "@#0a0b");
        assert_eq!(a.settings[2].value, "/bin/x \"y\"");
        assert_eq!(a.settings[3].value, "");
        assert_eq!(c.sections[2].kind, SectionKind::Ca);
    }

    #[test]
    fn errors_have_positions() {
        let (_, d) = parse(
            "  left=1\nconn\nconn a b\nleft=1\nfoo bar\nconn x\n  left 1\n  right=a b\n  x=\"open\n",
        );
        assert_eq!(
            msgs(&d),
            [
                "t.conf:1:3: error: indented line outside a section (sections start with 'config setup', 'conn NAME' or 'ca NAME' in column 1)",
                "t.conf:2:1: error: 'conn' needs a section name",
                "t.conf:3:8: error: unexpected text after the section name",
                "t.conf:4:1: error: 'left' must be indented to belong to a section",
                "t.conf:5:1: error: expected 'config setup', 'conn NAME', 'ca NAME' or 'include FILE', found 'foo'",
                "t.conf:7:3: error: expected 'keyword=value', found 'left'",
                "t.conf:8:11: error: unexpected text 'b' after the value of 'right' (quote values that contain spaces)",
                "t.conf:9:5: error: unterminated quoted value (missing closing '\"')",
            ]
        );
    }

    #[test]
    fn includes_and_loops() {
        let r = MemResolver::default()
            .with(
                "etc/ipsec.conf",
                "conn a\n  left=1\ninclude d/*.conf\n  right=2\n",
            )
            .with("etc/d/b.conf", "conn b\n  left=3\n")
            .with("etc/loop.conf", "include loop.conf\n");
        let (c, d) = parse_conf_str("etc/ipsec.conf", &r.files["etc/ipsec.conf"], &r);
        assert_eq!(c.sections.len(), 2);
        assert_eq!(c.sections[1].pos.file, "etc/d/b.conf");
        assert_eq!(
            msgs(&d),
            [
                "etc/ipsec.conf:4:3: error: indented line outside a section (sections start with 'config setup', 'conn NAME' or 'ca NAME' in column 1)"
            ]
        );
        let (_, d) = parse_conf_str("etc/loop.conf", "include loop.conf\n", &r);
        assert_eq!(d.items.len(), 1);
        assert_eq!(
            d.items[0].to_string(),
            "etc/loop.conf:1:9: error: include loop: 'etc/loop.conf' is already being read"
        );
    }
}
