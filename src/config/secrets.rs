//! ipsec.secrets: `[selectors] : PSK secret` entries and their best-match lookup.
//!
//! Syntax (ipsec.secrets(5)): an entry is a line `ID... : TYPE SECRET`; the `:` must be
//! surrounded by whitespace (or start the line when there are no selectors, so IPv6
//! selectors keep their colons). Selectors are identities as in `leftid=` plus `%any`/`%any6`.
//! `include PATTERN` (shell wildcards, relative to this file) pulls in other files. `#` starts
//! a comment at the start of a line or after whitespace.
//!
//! PSK secrets: `"text"` or `'text'` (taken literally, no escapes), `0x` + hex,
//! `0s` + base64, or a bare word taken literally. Other types (RSA, ECDSA, EAP, XAUTH, ...) are
//! reported as not supported and skipped.
//!
//! # Lookup rule
//! For a lookup with local identity L and remote identity R, every PSK entry is scored:
//! * an entry without selectors matches both L and R as "any" (1 + 1 = 2);
//! * otherwise `m(L)` is the best match of any selector against L — 20 for an equal identity,
//!   19 for a `*` wildcard selector that matches it (`*@example.org`), 1 for a `%any`
//!   selector, 0 for none — and likewise `m(R)`;
//! * an entry is a candidate when `m(L) + m(R) > 0`; the highest `m(L) + m(R)` wins, and among
//!   equal scores the entry written first wins.
//!
//! So both identities matching exactly (40) beats one exact plus `%any` (21), beats one exact
//! match alone (20, as `carol@example.org : PSK` for a road warrior), beats a wildcard alone
//! (19), beats a selector-less entry or a `%any` one (2). This is strongSwan's rule for shared
//! keys (sum of the ID match qualities, first best kept).

use std::fmt;

use zeroize::Zeroizing;

use super::diag::{Diagnostics, Pos, did_you_mean};
use super::ident::{IdMatch, Identity, decode_hex, parse_identity};
use super::source::{IncludeResolver, IncludeStack, SourceFile};

/// A pre-shared key. Zeroized on drop; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Psk(Zeroizing<Vec<u8>>);

impl Psk {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Psk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Psk(<{} bytes redacted>)", self.0.len())
    }
}

/// One `selectors : PSK secret` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretEntry {
    pub selectors: Vec<Identity>,
    pub psk: Psk,
    /// Where the entry is written (line start).
    pub pos: Pos,
}

/// All PSK entries of an ipsec.secrets and its includes, in reading order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Secrets {
    pub entries: Vec<SecretEntry>,
}

fn match_value(m: IdMatch) -> u8 {
    match m {
        IdMatch::None => 0,
        IdMatch::Any => 1,
        IdMatch::Wildcard => 19,
        IdMatch::Exact => 20,
    }
}

fn match_quality(selectors: &[Identity], id: &Identity) -> u8 {
    selectors
        .iter()
        .map(|s| match_value(s.matches(id)))
        .max()
        .unwrap_or(0)
}

impl SecretEntry {
    /// The lookup score of this entry (see the module documentation), 0 if it does not match.
    pub fn score(&self, local: &Identity, remote: &Identity) -> u8 {
        if self.selectors.is_empty() {
            return 2 * match_value(IdMatch::Any);
        }
        match_quality(&self.selectors, local) + match_quality(&self.selectors, remote)
    }

    /// Whether some peer of a conn whose ends are `local` and `remote` (either may be a
    /// pattern: `%any`, `@*.example.org`) could be given this entry by [`Secrets::lookup`].
    pub fn may_serve(&self, local: &Identity, remote: &Identity) -> bool {
        self.selectors.is_empty()
            || self.selectors.iter().any(|s| {
                *s == Identity::Any
                    || local.matches(s) != IdMatch::None
                    || remote.matches(s) != IdMatch::None
                    || (s.is_pattern() && (s == local || s == remote))
            })
    }
}

impl Secrets {
    /// The best PSK for (local, remote), by the rule in the module documentation.
    pub fn lookup(&self, local: &Identity, remote: &Identity) -> Option<&SecretEntry> {
        let mut best: Option<(&SecretEntry, u8)> = None;
        for e in &self.entries {
            let score = e.score(local, remote);
            if score > 0 && best.is_none_or(|(_, b)| score > b) {
                best = Some((e, score));
            }
        }
        best.map(|(e, _)| e)
    }

    /// The entries some peer of a conn with these ends may be given (see
    /// [`SecretEntry::may_serve`]), for a conn whose peer is only known at IKE_AUTH.
    pub fn candidates<'a>(
        &'a self,
        local: &'a Identity,
        remote: &'a Identity,
    ) -> impl Iterator<Item = &'a SecretEntry> + 'a {
        self.entries
            .iter()
            .filter(move |e| e.may_serve(local, remote))
    }
}

/// Parses ipsec.secrets text (with its permission bits, when known) and its includes.
pub fn parse_secrets_str(
    name: &str,
    text: &str,
    mode: Option<u32>,
    resolver: &dyn IncludeResolver,
) -> (Secrets, Diagnostics) {
    let mut p = SecretsParser {
        resolver,
        secrets: Secrets::default(),
        diags: Diagnostics::default(),
        includes: IncludeStack::default(),
    };
    p.file(&SourceFile {
        name: name.to_owned(),
        text: text.to_owned(),
        mode,
    });
    (p.secrets, p.diags)
}

struct SecretsParser<'r> {
    resolver: &'r dyn IncludeResolver,
    secrets: Secrets,
    diags: Diagnostics,
    includes: IncludeStack,
}

const OTHER_TYPES: &[&str] = &[
    "RSA", "ECDSA", "BLISS", "PKCS8", "P12", "PKCS12", "EAP", "NTLM", "XAUTH", "PIN", "PPK",
];

/// Byte index of the `:` separating selectors from the secret (whitespace or line start
/// before it, whitespace or end after it).
fn separator(line: &str) -> Option<usize> {
    let bytes = line.as_bytes();
    bytes.iter().enumerate().find_map(|(i, b)| {
        let before_ok = i == 0 || bytes.get(i - 1).is_some_and(u8::is_ascii_whitespace);
        let after_ok = bytes.get(i + 1).is_none_or(u8::is_ascii_whitespace);
        (*b == b':' && before_ok && after_ok).then_some(i)
    })
}

fn col_of(line: &str, byte: usize) -> usize {
    line.get(..byte).map_or(1, |s| s.chars().count() + 1)
}

/// Standard base64 (RFC 4648) with optional `=` padding.
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let body = s.trim_end_matches('=');
    let padding = s.len() - body.len(); // ok: body is a prefix of s
    if padding > 2 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for c in body.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).ok()?);
        }
    }
    // Leftover bits must be padding zeros, and a single leftover sextet is invalid.
    if bits >= 6 || acc & ((1 << bits) - 1) != 0 {
        return None;
    }
    Some(out)
}

impl SecretsParser<'_> {
    fn file(&mut self, f: &SourceFile) {
        self.includes.enter(&f.name);
        if let Some(mode) = f.mode
            && mode & 0o077 != 0
        {
            self.diags.warning(
                &Pos::new(&f.name, 1, 1),
                format!(
                    "secrets file is accessible by group or others (mode {mode:04o}); run chmod 600"
                ),
            );
        }
        for (idx, raw) in f.text.split('\n').enumerate() {
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            self.line(&f.name, idx + 1, line);
        }
        self.includes.leave();
    }

    fn line(&mut self, name: &str, lineno: usize, line: &str) {
        let pos = |byte: usize| Pos::new(name, lineno, col_of(line, byte));
        let trimmed = line.trim_start();
        let start = line.len() - trimmed.len(); // ok: suffix
        if trimmed.is_empty() || trimmed.starts_with('#') {
            return;
        }
        if let Some(rest) = trimmed.strip_prefix("include")
            && rest.starts_with(char::is_whitespace)
        {
            self.include(name, &pos(start), rest.trim());
            return;
        }
        let Some(sep) = separator(line) else {
            self.diags.error(
                &pos(start),
                "expected '[selectors] : TYPE secret' (the ':' needs whitespace around it)",
            );
            return;
        };
        let mut selectors = Vec::new();
        let mut ok = true;
        let head = line.get(..sep).unwrap_or_default();
        let mut offset = 0;
        for word in head.split_whitespace() {
            let at = head
                .get(offset..)
                .and_then(|h| h.find(word))
                .map_or(0, |i| i + offset);
            offset = at + word.len();
            match parse_identity(word) {
                Ok(id) => selectors.push(id),
                Err(msg) => {
                    self.diags
                        .error(&pos(at), format!("invalid selector: {msg}"));
                    ok = false;
                }
            }
        }
        let tail = line.get(sep + 1..).unwrap_or_default();
        let tail_trim = tail.trim_start();
        let type_at = sep + 1 + (tail.len() - tail_trim.len()); // ok: suffix
        let type_end = tail_trim
            .find(char::is_whitespace)
            .unwrap_or(tail_trim.len());
        let (kind, after_type) = tail_trim.split_at(type_end); // ok: find() gives a char boundary
        if kind == "PSK" {
            let secret_text = after_type.trim_start();
            let secret_at = line.len() - secret_text.len(); // ok: suffix
            match lex_secret(secret_text) {
                Ok((psk, rest)) => {
                    let rest_t = rest.trim_start();
                    if !rest_t.is_empty()
                        && (!rest_t.starts_with('#') || rest_t.len() == rest.len())
                    {
                        self.diags.error(
                            &pos(line.len() - rest_t.len()), // ok: suffix
                            "unexpected text after the secret (quote secrets that contain spaces)",
                        );
                    } else if ok {
                        self.secrets.entries.push(SecretEntry {
                            selectors,
                            psk,
                            pos: pos(start),
                        });
                    }
                }
                Err(e) => self.diags.error(&pos(secret_at), e.to_string()),
            }
        } else if OTHER_TYPES.contains(&kind) {
            self.diags.warning(
                &pos(type_at),
                format!("secret type '{kind}' is not supported (only PSK); entry skipped"),
            );
        } else if kind.is_empty() {
            self.diags.error(
                &pos(type_at),
                "missing secret type after ':' (expected PSK)",
            );
        } else {
            let names = OTHER_TYPES.iter().copied().chain(["PSK"]);
            self.diags.error(
                &pos(type_at),
                format!(
                    "unknown secret type '{kind}'{}",
                    did_you_mean(&kind.to_ascii_uppercase(), names)
                ),
            );
        }
    }

    fn include(&mut self, from: &str, pos: &Pos, pattern: &str) {
        if pattern.is_empty() || pattern.contains(char::is_whitespace) {
            self.diags
                .error(pos, "'include' takes exactly one file name or pattern");
            return;
        }
        let files = self
            .includes
            .resolve(self.resolver, from, pos, pattern, &mut self.diags);
        files.iter().for_each(|f| self.file(f));
    }
}

/// Why a PSK value cannot be read (its `Display` is the diagnostic's message; it never
/// contains the secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("missing PSK secret")]
    Missing,
    #[error("unterminated quoted secret (missing closing {0})")]
    Unterminated(char),
    #[error("empty PSK secret")]
    Empty,
    #[error("invalid hex secret after 0x")]
    Hex,
    #[error("invalid base64 secret after 0s")]
    Base64,
}

/// Reads a PSK value; returns it and the rest of the line.
fn lex_secret(text: &str) -> Result<(Psk, &str), SecretError> {
    if text.is_empty() || text.starts_with('#') {
        return Err(SecretError::Missing);
    }
    if let Some(q) = text.chars().next().filter(|c| *c == '"' || *c == '\'') {
        let body = text.get(1..).unwrap_or_default();
        let Some(end) = body.find(q) else {
            return Err(SecretError::Unterminated(q));
        };
        let value = body.get(..end).unwrap_or_default();
        if value.is_empty() {
            return Err(SecretError::Empty);
        }
        return Ok((
            Psk::new(value.as_bytes().to_vec()),
            body.get(end + 1..).unwrap_or_default(),
        ));
    }
    let end = text.find(char::is_whitespace).unwrap_or(text.len());
    let (word, rest) = text.split_at(end); // ok: find() gives a char boundary
    let bytes = if let Some(hex) = word.strip_prefix("0x") {
        decode_hex(hex).ok_or(SecretError::Hex)?
    } else if let Some(b64) = word.strip_prefix("0s") {
        decode_base64(b64).ok_or(SecretError::Base64)?
    } else {
        word.as_bytes().to_vec()
    };
    if bytes.is_empty() {
        return Err(SecretError::Empty);
    }
    Ok((Psk::new(bytes), rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::source::MemResolver;

    fn parse(text: &str) -> (Secrets, Diagnostics) {
        parse_secrets_str("s", text, None, &MemResolver::default())
    }

    fn id(s: &str) -> Identity {
        parse_identity(s).unwrap()
    }

    #[test]
    fn encodings() {
        let (s, d) = parse(
            "@moon @sun : PSK 0sv+NkxY9LLZvwj4qCC2o/gGrWDF2d21jL\n@moon %any : PSK 0x45a30759df97dc26a15b88ff\n@sun : PSK \"This is a strong password\"\n : PSK 'My \"home\" is my \"castle\"!' # comment\n10.1.0.1 : PSK bareword\nfec0::1 fec0::2 : PSK \"v6\"\n",
        );
        assert!(d.items.is_empty(), "{:?}", d.items);
        assert_eq!(s.entries.len(), 6);
        assert_eq!(s.entries[0].psk.as_bytes().len(), 24);
        assert_eq!(
            s.entries[1].psk.as_bytes(),
            [
                0x45, 0xa3, 0x07, 0x59, 0xdf, 0x97, 0xdc, 0x26, 0xa1, 0x5b, 0x88, 0xff
            ]
        );
        assert_eq!(s.entries[2].psk.as_bytes(), b"This is a strong password");
        assert_eq!(
            s.entries[3].psk.as_bytes(),
            b"My \"home\" is my \"castle\"!"
        );
        assert!(s.entries[3].selectors.is_empty());
        assert_eq!(s.entries[4].psk.as_bytes(), b"bareword");
        assert_eq!(s.entries[5].selectors, [id("fec0::1"), id("fec0::2")]);
        assert_eq!(s.entries[2].pos.line, 3);
    }

    #[test]
    fn base64() {
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVsbG8").unwrap(), b"hello");
        assert_eq!(decode_base64("YQ==").unwrap(), b"a");
        assert!(decode_base64("a").is_none());
        assert!(decode_base64("a===").is_none());
        assert!(decode_base64("YR==").is_none());
        assert!(decode_base64("a*bc").is_none());
    }

    #[test]
    fn debug_is_redacted() {
        let (s, _) = parse(": PSK \"topsecret\"\n");
        let dbg = format!("{:?}", s);
        assert!(!dbg.contains("topsecret"));
        assert!(dbg.contains("redacted"));
    }

    #[test]
    fn errors_and_warnings() {
        let (s, d) = parse(
            "@a @b : RSA key.pem\n@a : PSK\n@a : PSK \"open\n@a: PSK x\n@a : PKS x\n@a : PSK 0xzz\n@a : PSK x y\n@@ : PSK x\n",
        );
        let msgs: Vec<String> = d.items.iter().map(ToString::to_string).collect();
        assert_eq!(
            msgs,
            [
                "s:1:9: warning: secret type 'RSA' is not supported (only PSK); entry skipped",
                "s:2:9: error: missing PSK secret",
                "s:3:10: error: unterminated quoted secret (missing closing \")",
                "s:4:1: error: expected '[selectors] : TYPE secret' (the ':' needs whitespace around it)",
                "s:5:6: error: unknown secret type 'PKS' (did you mean 'PSK'?)",
                "s:6:10: error: invalid hex secret after 0x",
                "s:7:12: error: unexpected text after the secret (quote secrets that contain spaces)",
                "s:8:1: error: invalid selector: empty name in identity '@@'",
            ]
        );
        assert!(s.entries.is_empty());
    }

    #[test]
    fn permissions_warning() {
        let (_, d) = parse_secrets_str("s", ": PSK x\n", Some(0o644), &MemResolver::default());
        assert_eq!(
            d.items[0].to_string(),
            "s:1:1: warning: secrets file is accessible by group or others (mode 0644); run chmod 600"
        );
        let (_, d) = parse_secrets_str("s", ": PSK x\n", Some(0o600), &MemResolver::default());
        assert!(d.items.is_empty());
    }

    #[test]
    fn includes() {
        let r = MemResolver::default().with("etc/ipsec.d/a.secrets", "@a : PSK a\n");
        let (s, d) = parse_secrets_str(
            "etc/ipsec.secrets",
            "include ipsec.d/*.secrets\n: PSK d\n",
            None,
            &r,
        );
        assert!(d.items.is_empty());
        assert_eq!(s.entries.len(), 2);
        assert_eq!(s.entries[0].pos.file, "etc/ipsec.d/a.secrets");
    }

    fn get2(s: &Secrets, l: &str, r: &str) -> Vec<u8> {
        s.lookup(&id(l), &id(r)).unwrap().psk.as_bytes().to_vec()
    }

    #[test]
    fn candidates_for_patterns() {
        let (s, _) = parse("carol@example.org : PSK a\n@moon @sun : PSK b\n@venus : PSK c\n");
        let n = |l: &str, r: &str| s.candidates(&id(l), &id(r)).count();
        // %any peer: every entry keyed by some client, or by our own ID, may serve
        assert_eq!(n("@moon", "%any"), 3);
        // a wildcard peer: only entries it could match or ours
        assert_eq!(n("@moon", "*@example.org"), 2);
        assert_eq!(n("@mars", "*@example.com"), 0);
        let (s, _) = parse("*@example.org : PSK a\n");
        assert_eq!(s.candidates(&id("@gw"), &id("*@example.org")).count(), 1);
        assert_eq!(s.candidates(&id("@gw"), &id("*@example.com")).count(), 0);
    }

    #[test]
    fn best_match() {
        let (s, _) = parse(
            ": PSK default\n%any : PSK anyone\n@sun : PSK sun\n@moon %any : PSK moonany\n@moon @sun : PSK both\n@carol @dave : PSK cd\n",
        );
        let get = |l: &str, r: &str| s.lookup(&id(l), &id(r)).map(|e| e.psk.as_bytes().to_vec());
        assert_eq!(get("@moon", "@sun").unwrap(), b"both");
        assert_eq!(get("@moon", "@venus").unwrap(), b"moonany");
        assert_eq!(get("@sun", "@venus").unwrap(), b"sun");
        assert_eq!(get("@venus", "@mars").unwrap(), b"default");
        assert_eq!(get("@carol", "@dave").unwrap(), b"cd");
        let (s, _) = parse("@a : PSK a\n");
        assert!(s.lookup(&id("@x"), &id("@y")).is_none());
        assert!(s.lookup(&id("@a"), &id("@y")).is_some());
        // road-warrior secrets keyed by the client alone; a wildcard selector ranks below
        let (s, _) = parse(
            "carol@example.org : PSK carol\n192.0.2.100 : PSK dave\n*@example.org : PSK staff\n%any : PSK fallback\n",
        );
        assert_eq!(get2(&s, "@moon", "carol@example.org"), b"carol");
        assert_eq!(get2(&s, "10.1.0.1", "192.0.2.100"), b"dave");
        assert_eq!(get2(&s, "@moon", "eve@example.org"), b"staff");
        assert_eq!(get2(&s, "@moon", "@mallory"), b"fallback");
        // an initiator not knowing its peer's ID (%any) still gets its own entry, not %any's
        assert_eq!(get2(&s, "carol@example.org", "%any"), b"carol");
        // first of equal scores wins
        let (s, _) = parse("@a : PSK first\n@a : PSK second\n");
        assert_eq!(
            s.lookup(&id("@a"), &id("@b")).unwrap().psk.as_bytes(),
            b"first"
        );
    }
}
