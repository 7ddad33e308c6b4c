//! A bounds-checked reader over a byte slice, shared by the binary decoders.

use crate::error::FormatError;

/// Reads little-endian integers and fixed-size arrays from a slice, failing
/// with [`FormatError::Truncated`] instead of panicking on short input.
pub(crate) struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(data: &'a [u8], what: &'static str) -> Self {
        Self { data, pos: 0, what }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        if self.remaining() < n {
            return Err(FormatError::Truncated {
                what: self.what,
                needed: n - self.remaining(),
            });
        }
        let slice = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(slice)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], FormatError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, FormatError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32, FormatError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, FormatError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// Reads a count of items that each take at least `item_len` bytes, and
    /// rejects counts the remaining input cannot possibly hold (so a forged
    /// count never causes a huge allocation).
    pub(crate) fn count(&mut self, item_len: usize) -> Result<usize, FormatError> {
        let n = self.u32()? as usize;
        let needed = n.saturating_mul(item_len);
        if needed > self.remaining() {
            return Err(FormatError::Truncated {
                what: self.what,
                needed: needed - self.remaining(),
            });
        }
        Ok(n)
    }

    pub(crate) fn finish(self) -> Result<(), FormatError> {
        if self.remaining() != 0 {
            return Err(FormatError::Invalid {
                what: self.what,
                reason: format!("{} unexpected trailing bytes", self.remaining()),
            });
        }
        Ok(())
    }
}
