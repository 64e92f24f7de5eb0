//! Bounds-checked reading and length-patching writing helpers shared by the payload codecs.

use super::WireError;

/// A cursor over an input slice. Every read is bounds-checked and names what was being read,
/// so a short input becomes [`WireError::Truncated`] instead of a panic.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    /// Takes the next `n` bytes.
    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        let (head, tail) = self
            .buf
            .split_at_checked(n)
            .ok_or(WireError::Truncated { what })?;
        self.buf = tail;
        Ok(head)
    }

    /// Takes the next `n` bytes as a nested reader.
    pub(crate) fn sub(&mut self, n: usize, what: &'static str) -> Result<Reader<'a>, WireError> {
        self.take(n, what).map(Reader::new)
    }

    /// Takes everything that is left.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Fails with [`WireError::TrailingData`] unless the input is exhausted.
    pub(crate) fn expect_end(&self, what: &'static str) -> Result<(), WireError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(WireError::TrailingData { what })
        }
    }

    pub(crate) fn array<const N: usize>(
        &mut self,
        what: &'static str,
    ) -> Result<[u8; N], WireError> {
        let bytes = self.take(N, what)?;
        bytes.try_into().map_err(|_| WireError::Truncated { what })
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        self.array::<1>(what).map(|[b]| b)
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, WireError> {
        self.array(what).map(u16::from_be_bytes)
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        self.array(what).map(u32::from_be_bytes)
    }

    /// Skips `N` RESERVED bytes. Their value is ignored (RFC 7296 §3.2: "MUST be ignored on
    /// receipt"); the encoders write zeros.
    pub(crate) fn reserved<const N: usize>(&mut self, what: &'static str) -> Result<(), WireError> {
        self.take(N, what).map(drop)
    }
}

/// Writes a structure with a 16-bit length field that counts the whole structure: `head` writes
/// the bytes before the length field, `body` everything after it.
pub(crate) fn with_len16(
    out: &mut Vec<u8>,
    head: impl FnOnce(&mut Vec<u8>),
    body: impl FnOnce(&mut Vec<u8>),
) {
    let start = out.len();
    head(out);
    let len_at = out.len();
    out.extend_from_slice(&[0, 0]);
    body(out);
    // Saturates: a structure longer than 64 KiB cannot be represented (the caller's mistake).
    let len = u16::try_from(out.len().saturating_sub(start)).unwrap_or(u16::MAX);
    if let Some(slot) = out.get_mut(len_at..len_at + 2) {
        slot.copy_from_slice(&len.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_reports_truncation_with_context() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u16("x").unwrap(), 0x0102);
        assert_eq!(
            r.u16("field y"),
            Err(WireError::Truncated { what: "field y" })
        );
        assert_eq!(r.u8("z").unwrap(), 3);
        assert!(r.is_empty());
        assert_eq!(r.u32("w"), Err(WireError::Truncated { what: "w" }));
    }

    #[test]
    fn reserved_bytes_are_skipped_whatever_their_value() {
        let mut r = Reader::new(&[0, 0xff, 0x80, 7]);
        assert_eq!(r.reserved::<3>("r"), Ok(()));
        assert_eq!(r.u8("x").unwrap(), 7);
        assert_eq!(
            Reader::new(&[1, 2]).reserved::<3>("r"),
            Err(WireError::Truncated { what: "r" })
        );
    }

    #[test]
    fn with_len16_patches_total_length() {
        let mut out = vec![0xaa];
        with_len16(&mut out, |o| o.push(7), |o| o.extend_from_slice(&[1, 2, 3]));
        assert_eq!(out, [0xaa, 7, 0, 6, 1, 2, 3]);
    }
}
