//! Where configuration text comes from: files on disk, or memory (tests, fuzzing).
//!
//! `include` directives are resolved through [`IncludeResolver`] so the parsers only ever see
//! text. Patterns may contain shell wildcards (`*`, `?`, `[...]`, `[!...]`) in any path
//! component; relative patterns are relative to the directory of the including file, and
//! matches are returned sorted by name (as the shell would expand them).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::diag::{Diagnostics, Pos};

/// strongSwan limits include nesting to 10 levels.
pub const MAX_INCLUDE_DEPTH: usize = 10;
/// At most this many files are included in one load (guards against include fan-out).
pub const MAX_INCLUDED_FILES: usize = 1000;

/// One configuration file's text. `mode` is the Unix permission bits, when known.
///
/// The text of ipsec.secrets holds PSKs: it is wiped on drop and `Debug` shows only its
/// length.
#[derive(Clone, PartialEq, Eq)]
pub struct SourceFile {
    pub name: String,
    pub text: String,
    pub mode: Option<u32>,
}

impl Drop for SourceFile {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.text);
    }
}

impl std::fmt::Debug for SourceFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceFile")
            .field("name", &self.name)
            .field("text", &format_args!("<{} bytes>", self.text.len()))
            .field("mode", &self.mode)
            .finish()
    }
}

/// An included file that cannot be read (its `Display` is the diagnostic's message).
#[derive(Debug, thiserror::Error)]
pub enum IncludeError {
    #[error("cannot read '{path}': {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A literal path that an in-memory resolver does not hold.
    #[error("cannot read '{0}': no such file")]
    Missing(String),
}

/// Resolves `include PATTERN` found in file `from`.
pub trait IncludeResolver {
    /// The files matching `pattern`, sorted by name. An empty list is not an error (a wildcard
    /// may match nothing); a literal path that cannot be read is.
    fn resolve(&self, from: &str, pattern: &str) -> Result<Vec<SourceFile>, IncludeError>;
}

/// The files currently being read (outermost first) and how many were included so far;
/// rejects include loops, nesting deeper than [`MAX_INCLUDE_DEPTH`] and more than
/// [`MAX_INCLUDED_FILES`] files.
#[derive(Debug, Default)]
pub struct IncludeStack {
    stack: Vec<String>,
    total: usize,
}

impl IncludeStack {
    /// Marks `name` as being read (call [`IncludeStack::leave`] when done).
    pub fn enter(&mut self, name: &str) {
        self.stack.push(name.to_owned());
    }

    pub fn leave(&mut self) {
        self.stack.pop();
    }

    /// Resolves `include pattern` written at `pos` in file `from` and returns the files to
    /// read, reporting problems (unreadable file, loop, limits, no match) as diagnostics.
    pub fn resolve(
        &mut self,
        resolver: &dyn IncludeResolver,
        from: &str,
        pos: &Pos,
        pattern: &str,
        diags: &mut Diagnostics,
    ) -> Vec<SourceFile> {
        if self.stack.len() > MAX_INCLUDE_DEPTH {
            diags.error(
                pos,
                format!("include nesting deeper than {MAX_INCLUDE_DEPTH} levels"),
            );
            return Vec::new();
        }
        let files = match resolver.resolve(from, pattern) {
            Ok(files) => files,
            Err(e) => {
                diags.error(pos, e.to_string());
                return Vec::new();
            }
        };
        if files.is_empty() {
            diags.warning(pos, format!("include pattern '{pattern}' matches no file"));
        }
        let mut out = Vec::new();
        for f in files {
            if self.stack.contains(&f.name) {
                diags.error(
                    pos,
                    format!("include loop: '{}' is already being read", f.name),
                );
            } else if self.total >= MAX_INCLUDED_FILES {
                diags.error(
                    pos,
                    format!("more than {MAX_INCLUDED_FILES} included files"),
                );
                break;
            } else {
                self.total += 1; // ok: < MAX_INCLUDED_FILES (checked above)
                out.push(f);
            }
        }
        out
    }
}

/// Joins a relative include pattern onto the directory of the including file.
fn join_pattern(from: &str, pattern: &str) -> String {
    if pattern.starts_with('/') {
        return pattern.to_owned();
    }
    match Path::new(from).parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            dir.join(pattern).to_string_lossy().into_owned()
        }
        _ => pattern.to_owned(),
    }
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Shell-style wildcard match of one path component (`*`, `?`, `[a-z]`, `[!x]`).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Leading dots are not matched by wildcards, as in sh.
    if n.first() == Some(&'.') && p.first() != Some(&'.') {
        return false;
    }
    glob_at(&p, &n)
}

/// Iterative match with one back-tracking point (the last `*`): O(len(p) × len(n)) at worst,
/// so a pattern like `*a*a*a*a*b` against a long name cannot take exponential time.
fn glob_at(p: &[char], n: &[char]) -> bool {
    let (mut pi, mut ni) = (0, 0);
    // After a mismatch: where the pattern resumes after the last `*`, and how much of the name
    // that `*` has swallowed so far.
    let mut retry: Option<(usize, usize)> = None;
    loop {
        if p.get(pi) == Some(&'*') {
            pi += 1;
            retry = Some((pi, ni));
            continue;
        }
        let Some(&c) = n.get(ni) else {
            // The name is used up: only `*`s may remain.
            return p
                .get(pi..)
                .is_some_and(|rest| rest.iter().all(|&x| x == '*'));
        };
        if let Some(next) = step(p, pi, c) {
            pi = next;
            ni += 1;
            continue;
        }
        match retry {
            Some((resume, swallowed)) if swallowed < n.len() => {
                retry = Some((resume, swallowed + 1));
                pi = resume;
                ni = swallowed + 1;
            }
            _ => return false,
        }
    }
}

/// Matches the single-character token at `p[pi]` (not `*`) against `c`; the index after it.
fn step(p: &[char], pi: usize, c: char) -> Option<usize> {
    match *p.get(pi)? {
        '?' => Some(pi + 1),
        '[' => match class_match(p.get(pi + 1..)?, Some(c)) {
            Some((true, after)) => Some(p.len() - after.len()),
            Some((false, _)) => None,
            // An unterminated '[' is a literal character.
            None => (c == '[').then_some(pi + 1),
        },
        x => (x == c).then_some(pi + 1),
    }
}

/// Matches a bracket expression (after the '['); returns (matched, rest of pattern after ']').
fn class_match(p: &[char], c: Option<char>) -> Option<(bool, &[char])> {
    let (negate, mut body) = match p.first() {
        Some('!') | Some('^') => (true, p.get(1..)?),
        _ => (false, p),
    };
    let mut matched = false;
    let mut first = true;
    loop {
        let (&x, rest) = body.split_first()?;
        if x == ']' && !first {
            return Some((matched != negate && c.is_some(), rest));
        }
        first = false;
        if let (Some('-'), Some(&hi)) = (rest.first(), rest.get(1))
            && hi != ']'
        {
            matched |= c.is_some_and(|c| x <= c && c <= hi);
            body = rest.get(2..)?;
        } else {
            matched |= c == Some(x);
            body = rest;
        }
    }
}

/// Reads includes from the file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct FsResolver;

impl FsResolver {
    /// Reads one file (used for the top-level ipsec.conf / ipsec.secrets).
    /// Only regular files of at most [`MAX_FILE_BYTES`] are read: a FIFO, a device or a
    /// directory named by an include is refused at once instead of blocking the reader.
    pub fn load(path: &Path) -> std::io::Result<SourceFile> {
        use std::io::Read;
        let file = open_nonblocking(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        if meta.len() > MAX_FILE_BYTES {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("larger than {MAX_FILE_BYTES} bytes"),
            ));
        }
        let mut text = String::new();
        file.take(MAX_FILE_BYTES).read_to_string(&mut text)?;
        Ok(SourceFile {
            name: path.to_string_lossy().into_owned(),
            text,
            mode: file_mode(path),
        })
    }

    fn expand(pattern: &str) -> Vec<PathBuf> {
        let mut paths = vec![if pattern.starts_with('/') {
            PathBuf::from("/")
        } else {
            PathBuf::new()
        }];
        for comp in pattern.split('/').filter(|c| !c.is_empty()) {
            if !has_wildcard(comp) {
                paths.iter_mut().for_each(|p| p.push(comp));
                continue;
            }
            let mut next = Vec::new();
            for dir in &paths {
                let listing = if dir.as_os_str().is_empty() {
                    std::fs::read_dir(".")
                } else {
                    std::fs::read_dir(dir)
                };
                let Ok(entries) = listing else { continue };
                let mut names: Vec<String> = entries
                    .filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|name| glob_match(comp, name))
                    .collect();
                names.sort();
                next.extend(names.into_iter().map(|n| dir.join(n)));
            }
            paths = next;
        }
        paths
    }
}

/// Largest configuration file read (ipsec.conf, ipsec.secrets or an include): 16 MiB.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// Opens for reading without blocking on a FIFO that has no writer.
#[cfg(unix)]
fn open_nonblocking(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

#[cfg(not(unix))]
fn open_nonblocking(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::open(path)
}

#[cfg(unix)]
fn file_mode(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o7777)
}

#[cfg(not(unix))]
fn file_mode(_path: &Path) -> Option<u32> {
    None
}

impl IncludeResolver for FsResolver {
    fn resolve(&self, from: &str, pattern: &str) -> Result<Vec<SourceFile>, IncludeError> {
        let full = join_pattern(from, pattern);
        let read = |p: &Path| {
            Self::load(p).map_err(|source| IncludeError::Io {
                path: p.display().to_string(),
                source,
            })
        };
        if !has_wildcard(&full) {
            return read(Path::new(&full)).map(|f| vec![f]);
        }
        Self::expand(&full)
            .into_iter()
            .filter(|p| p.is_file())
            .map(|p| read(&p))
            .collect()
    }
}

/// In-memory files keyed by path, for tests and fuzzing.
#[derive(Clone, Debug, Default)]
pub struct MemResolver {
    pub files: BTreeMap<String, String>,
}

impl MemResolver {
    pub fn with(mut self, name: &str, text: &str) -> Self {
        self.files.insert(name.to_owned(), text.to_owned());
        self
    }
}

impl IncludeResolver for MemResolver {
    fn resolve(&self, from: &str, pattern: &str) -> Result<Vec<SourceFile>, IncludeError> {
        let full = join_pattern(from, pattern);
        let want: Vec<&str> = full.split('/').collect();
        let found: Vec<SourceFile> = self
            .files
            .iter()
            .filter(|(name, _)| {
                let have: Vec<&str> = name.split('/').collect();
                have.len() == want.len() && want.iter().zip(&have).all(|(p, n)| glob_match(p, n))
            })
            .map(|(name, text)| SourceFile {
                name: name.clone(),
                text: text.clone(),
                mode: None,
            })
            .collect();
        if found.is_empty() && !has_wildcard(&full) {
            return Err(IncludeError::Missing(full));
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_text() {
        let f = SourceFile {
            name: "ipsec.secrets".into(),
            text: ": PSK \"topsecret\"".into(),
            mode: Some(0o600),
        };
        let s = format!("{f:?}");
        assert!(!s.contains("topsecret"), "{s}");
        assert!(
            s.contains("ipsec.secrets") && s.contains("<17 bytes>"),
            "{s}"
        );
    }

    #[test]
    fn glob() {
        assert!(glob_match("*.conf", "a.conf"));
        assert!(!glob_match("*.conf", "a.secrets"));
        assert!(!glob_match("*.conf", ".hidden.conf"));
        assert!(glob_match("ipsec.?.conf", "ipsec.1.conf"));
        assert!(glob_match("[ab]*", "beta"));
        assert!(!glob_match("[!ab]*", "beta"));
        assert!(glob_match("[a-c]x", "bx"));
        assert!(!glob_match("[a-c]x", "dx"));
        assert!(glob_match("[x", "[x"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "aXbYc"));
        assert!(glob_match("*x", "xxx"));
        assert!(!glob_match("a*b", "a"));
        assert!(glob_match("**", "z"));
        assert!(glob_match("*[0-9]", "ipsec9"));
    }

    #[test]
    fn glob_does_not_backtrack_exponentially() {
        // With the recursive matcher this took exponential time in the number of stars.
        let name = "a".repeat(4096);
        let pattern = format!("{}b", "*a".repeat(12));
        assert!(!glob_match(&pattern, &name));
        assert!(glob_match(&format!("{}*", "*a".repeat(12)), &name));
    }

    #[cfg(unix)]
    #[test]
    fn fifo_and_directory_are_refused_without_blocking() {
        let dir = std::env::temp_dir().join(format!("ikev2d-src-fifo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo.conf");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let err = FsResolver::load(&fifo).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        let err = FsResolver::load(&dir).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn mem_resolver_relative_and_glob() {
        let r = MemResolver::default()
            .with("etc/ipsec.d/b.conf", "b")
            .with("etc/ipsec.d/a.conf", "a")
            .with("etc/ipsec.d/a.txt", "x");
        let got = r.resolve("etc/ipsec.conf", "ipsec.d/*.conf").unwrap();
        let names: Vec<_> = got.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["etc/ipsec.d/a.conf", "etc/ipsec.d/b.conf"]);
        assert!(r.resolve("etc/ipsec.conf", "missing.conf").is_err());
        assert!(
            r.resolve("etc/ipsec.conf", "none*.conf")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn include_stack_limits() {
        let r = MemResolver::default().with("y", "").with("d/z", "");
        let mut st = IncludeStack::default();
        let mut d = Diagnostics::default();
        let pos = Pos::new("x", 1, 9);
        st.enter("x");
        for _ in 0..MAX_INCLUDED_FILES {
            assert_eq!(st.resolve(&r, "x", &pos, "y", &mut d).len(), 1);
        }
        assert!(st.resolve(&r, "x", &pos, "y", &mut d).is_empty());
        assert_eq!(d.items.len(), 1);
        assert!(d.items[0].message.starts_with("more than 1000"));
        let mut st = IncludeStack::default();
        st.enter("y");
        assert!(st.resolve(&r, "y", &pos, "y", &mut d).is_empty());
        assert!(d.items[1].message.starts_with("include loop"));
        for i in 0..=MAX_INCLUDE_DEPTH {
            st.enter(&format!("f{i}"));
        }
        assert!(st.resolve(&r, "x", &pos, "d/z", &mut d).is_empty());
        assert!(d.items[2].message.starts_with("include nesting deeper"));
    }

    #[test]
    fn fs_resolver_globs_sorted() {
        let dir = std::env::temp_dir().join(format!("ikev2d-src-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("d")).unwrap();
        std::fs::write(dir.join("d/2.conf"), "two").unwrap();
        std::fs::write(dir.join("d/1.conf"), "one").unwrap();
        let from = dir.join("ipsec.conf").to_string_lossy().into_owned();
        let got = FsResolver.resolve(&from, "d/*.conf").unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].text, "one");
        assert!(FsResolver.resolve(&from, "d/none.conf").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
