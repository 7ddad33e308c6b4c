//! Payload encoding: a one-byte tag followed by raw or zstd-compressed bytes.
//!
//! Decoding is always bounded by a size known in advance (from the index or
//! the object header), so a forged payload cannot expand without limit.

use crate::error::FormatError;

/// Tag byte: the payload follows uncompressed.
pub const ENCODING_RAW: u8 = 0;
/// Tag byte: the payload is one zstd frame.
pub const ENCODING_ZSTD: u8 = 1;

/// How hard to compress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Store raw.
    Off,
    /// A zstd level (1 to 19).
    Zstd(i32),
}

impl Compression {
    /// The default: zstd level 3, a good speed/ratio balance.
    pub const DEFAULT: Compression = Compression::Zstd(3);
}

/// Encodes payloads; keeps one zstd context to reuse across calls.
pub struct Encoder {
    level: Compression,
    zstd: Option<zstd::bulk::Compressor<'static>>,
}

impl Encoder {
    /// Builds an encoder for the given level.
    pub fn new(level: Compression) -> Result<Self, FormatError> {
        let zstd = match level {
            Compression::Off => None,
            Compression::Zstd(l) => {
                Some(
                    zstd::bulk::Compressor::new(l).map_err(|e| FormatError::Invalid {
                        what: "compression level",
                        reason: e.to_string(),
                    })?,
                )
            }
        };
        Ok(Self { level, zstd })
    }

    /// The level this encoder uses.
    pub fn level(&self) -> Compression {
        self.level
    }

    /// Appends the encoding of `data` (tag byte plus payload) to `out`.
    ///
    /// Falls back to raw when compression does not make the payload smaller,
    /// so incompressible data costs one byte of overhead, never more.
    pub fn encode_into(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        if let Some(z) = self.zstd.as_mut() {
            out.push(ENCODING_ZSTD);
            let bound = zstd::zstd_safe::compress_bound(data.len());
            out.reserve(bound);
            let spare_start = out.len();
            out.resize(spare_start + bound, 0);
            match z.compress_to_buffer(data, &mut out[spare_start..]) {
                Ok(n) if n < data.len() => {
                    out.truncate(spare_start + n);
                    return;
                }
                _ => out.truncate(start),
            }
        }
        out.push(ENCODING_RAW);
        out.extend_from_slice(data);
    }

    /// The encoding of `data` as a new vector.
    pub fn encode(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() + 1);
        self.encode_into(data, &mut out);
        out
    }
}

/// Decodes a tagged payload whose decoded length must be exactly `expected_len`.
pub fn decode(
    what: &'static str,
    encoded: &[u8],
    expected_len: usize,
) -> Result<Vec<u8>, FormatError> {
    let (&tag, payload) = encoded
        .split_first()
        .ok_or(FormatError::Truncated { what, needed: 1 })?;
    let out = match tag {
        ENCODING_RAW => payload.to_vec(),
        ENCODING_ZSTD => {
            let mut out = Vec::with_capacity(expected_len);
            zstd::bulk::Decompressor::new()
                .and_then(|mut d| d.decompress_to_buffer(payload, &mut out))
                .map_err(|e| FormatError::Decompress {
                    what,
                    reason: format!("{e} (expected {expected_len} bytes)"),
                })?;
            out
        }
        other => {
            return Err(FormatError::Invalid {
                what,
                reason: format!("unknown payload encoding {other}"),
            });
        }
    };
    if out.len() != expected_len {
        return Err(FormatError::Invalid {
            what,
            reason: format!("decoded to {} bytes, expected {expected_len}", out.len()),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_falls_back_to_raw() {
        let mut enc = Encoder::new(Compression::DEFAULT).unwrap_or_else(|e| panic!("{e}"));
        let text = b"hello hello hello hello hello hello hello hello".repeat(100);
        let e = enc.encode(&text);
        assert_eq!(e[0], ENCODING_ZSTD);
        assert!(e.len() < text.len() / 10);
        assert_eq!(decode("t", &e, text.len()).unwrap_or_default(), text);

        let noise: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let e = enc.encode(&noise);
        if e[0] == ENCODING_RAW {
            assert_eq!(e.len(), noise.len() + 1);
        }
        assert_eq!(decode("t", &e, noise.len()).unwrap_or_default(), noise);

        let empty = enc.encode(b"");
        assert_eq!(decode("t", &empty, 0).unwrap_or_default(), b"");
    }

    #[test]
    fn decompression_is_bounded() {
        let mut enc = Encoder::new(Compression::DEFAULT).unwrap_or_else(|e| panic!("{e}"));
        let big = vec![0u8; 1 << 20];
        let e = enc.encode(&big);
        // A reader told to expect less must refuse rather than allocate more.
        assert!(decode("t", &e, 1000).is_err());
        assert!(decode("t", &e, (1 << 20) + 1).is_err());
        assert!(decode("t", &[9, 1, 2], 2).is_err());
        assert!(decode("t", &[], 0).is_err());
    }

    #[test]
    fn off_stores_raw() {
        let mut enc = Encoder::new(Compression::Off).unwrap_or_else(|e| panic!("{e}"));
        let e = enc.encode(&[0u8; 100]);
        assert_eq!(e[0], ENCODING_RAW);
        assert_eq!(e.len(), 101);
    }
}
