//! The include resolver's wildcard matcher against a plain recursive reference (on inputs
//! short enough for the reference's exponential worst case), and through the in-memory
//! resolver (relative paths, several components, sorting).
//!
//! Input: pattern, NUL, file name [, NUL, more file names...].
#![no_main]

use ikev2d::config::source::{IncludeResolver, MemResolver, glob_match};
use libfuzzer_sys::fuzz_target;

/// The obvious definition: `*` tries every split, `?` any one char, `[...]` a class
/// (`!`/`^` negates, `a-z` ranges, `]` first is literal, unterminated `[` is literal).
fn reference(p: &[char], n: &[char]) -> bool {
    match p.split_first() {
        None => n.is_empty(),
        Some(('*', rest)) => (0..=n.len()).any(|k| reference(rest, &n[k..])),
        Some(('?', rest)) => !n.is_empty() && reference(rest, &n[1..]),
        Some(('[', rest)) => match class(rest) {
            Some((neg, items, after)) => match n.split_first() {
                Some((&c, tail)) => {
                    let hit = items.iter().any(|&(lo, hi)| lo <= c && c <= hi);
                    hit != neg && reference(after, tail)
                }
                None => false,
            },
            None => n.first() == Some(&'[') && reference(rest, &n[1..]),
        },
        Some((c, rest)) => n.first() == Some(c) && reference(rest, &n[1..]),
    }
}

type Class<'a> = (bool, Vec<(char, char)>, &'a [char]);

fn class(p: &[char]) -> Option<Class<'_>> {
    let (neg, mut i) = match p.first() {
        Some('!') | Some('^') => (true, 1),
        _ => (false, 0),
    };
    let mut items = Vec::new();
    let mut first = true;
    loop {
        let &c = p.get(i)?;
        if c == ']' && !first {
            return Some((neg, items, &p[i + 1..]));
        }
        first = false;
        match (p.get(i + 1), p.get(i + 2)) {
            (Some('-'), Some(&hi)) if hi != ']' => {
                items.push((c, hi));
                i += 3;
            }
            _ => {
                items.push((c, c));
                i += 1;
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    let pattern = parts.next().unwrap_or_default();
    let names: Vec<&str> = parts.collect();
    for name in &names {
        let got = glob_match(pattern, name);
        let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
        if p.len() <= 12 && n.len() <= 24 {
            let want = !(n.first() == Some(&'.') && p.first() != Some(&'.')) && reference(&p, &n);
            assert_eq!(got, want, "pattern {pattern:?} name {name:?}");
        }
    }
    let mut files = MemResolver::default();
    for name in &names {
        files = files.with(&format!("dir/{name}"), "");
    }
    if let Ok(found) = files.resolve("dir/ipsec.conf", pattern) {
        let got: Vec<&str> = found.iter().map(|f| f.name.as_str()).collect();
        let mut sorted = got.clone();
        sorted.sort_unstable();
        assert_eq!(got, sorted, "includes come sorted");
    }
});
