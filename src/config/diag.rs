//! Diagnostics with `file:line:column` positions, and the "did you mean" helper.

use std::fmt;

/// How bad a diagnostic is. Errors make `ikectl check` exit 1; warnings do not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Warning => "warning",
            Self::Error => "error",
        })
    }
}

/// A position in a named source file; `line` and `col` are 1-based (col counts characters).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pos {
    pub file: String,
    pub line: usize,
    pub col: usize,
}

impl Pos {
    pub fn new(file: &str, line: usize, col: usize) -> Self {
        Self {
            file: file.to_owned(),
            line,
            col,
        }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// One message about the configuration, e.g.
/// `conf/ipsec.conf:7:5: error: unknown keyword 'rigthsubnet' (did you mean 'rightsubnet'?)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub pos: Pos,
    pub severity: Severity,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.pos, self.severity, self.message)
    }
}

/// An ordered collection of diagnostics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnostics {
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn error(&mut self, pos: &Pos, message: impl Into<String>) {
        self.push(pos, Severity::Error, message.into());
    }

    pub fn warning(&mut self, pos: &Pos, message: impl Into<String>) {
        self.push(pos, Severity::Warning, message.into());
    }

    fn push(&mut self, pos: &Pos, severity: Severity, message: String) {
        self.items.push(Diagnostic {
            pos: pos.clone(),
            severity,
            message,
        });
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.items.extend(other.items);
    }

    pub fn count(&self, severity: Severity) -> usize {
        self.items.iter().filter(|d| d.severity == severity).count()
    }

    pub fn has_errors(&self) -> bool {
        self.count(Severity::Error) > 0
    }
}

/// Edit distance between two strings (by characters): insertions, deletions, substitutions
/// and transpositions of adjacent characters each cost 1 (optimal string alignment), so the
/// classic typo `rigthsubnet` is one edit away from `rightsubnet`.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Rows i-2 and i-1 of the dynamic-programming table; `at` reads a cell (missing = huge).
    let at = |row: &[usize], k: usize| row.get(k).copied().unwrap_or(usize::MAX - 1);
    let mut prev2: Vec<usize> = Vec::new();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let mut d = (at(&prev, j + 1) + 1)
                .min(at(&cur, j) + 1)
                .min(at(&prev, j) + usize::from(ca != cb));
            let transposed = i > 0 && j > 0 && a.get(i - 1) == Some(cb) && b.get(j - 1) == Some(ca);
            if transposed {
                d = d.min(at(&prev2, j - 1) + 1); // ok: j > 0, at() <= usize::MAX - 1
            }
            cur.push(d);
        }
        prev2 = std::mem::replace(&mut prev, cur);
    }
    prev.last().copied().unwrap_or(0)
}

/// The closest candidate to `word`, if it is close enough to be a plausible typo
/// (distance at most 1 for short words, at most a third of the length otherwise).
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `" (did you mean 'x'?)"` or an empty string.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    nearest(word, candidates)
        .map(|c| format!(" (did you mean '{c}'?)"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance() {
        assert_eq!(edit_distance("rigthsubnet", "rightsubnet"), 1);
        assert_eq!(edit_distance("ab", "ba"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn nearest_picks_closest_and_rejects_far() {
        let c = ["rightsubnet", "leftsubnet", "right"];
        assert_eq!(nearest("rigthsubnet", c), Some("rightsubnet"));
        assert_eq!(nearest("lefsubnet", c), Some("leftsubnet"));
        assert_eq!(nearest("completely", c), None);
        assert_eq!(did_you_mean("xyz", c), "");
    }

    #[test]
    fn display_format() {
        let mut d = Diagnostics::default();
        d.error(&Pos::new("conf/ipsec.conf", 7, 5), "boom");
        d.warning(&Pos::new("a", 1, 1), "meh");
        assert_eq!(d.items[0].to_string(), "conf/ipsec.conf:7:5: error: boom");
        assert_eq!(d.count(Severity::Warning), 1);
        assert!(d.has_errors());
    }
}
