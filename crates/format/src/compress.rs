//! Payload encoding: a one-byte tag followed by raw or zstd-compressed bytes.
//!
//! Decoding is always bounded by a size known in advance (from the index or
//! the object header), so a forged payload cannot expand without limit.

use crate::error::FormatError;

/// Tag byte: the payload follows uncompressed.
pub const ENCODING_RAW: u8 = 0;
/// Tag byte: the payload is one zstd frame.
pub const ENCODING_ZSTD: u8 = 1;

/// The most bytes [`Encoder::encode_into`] appends for `len` input bytes.
pub fn max_encoded_len(len: usize) -> usize {
    1 + zstd::zstd_safe::compress_bound(len).max(len)
}

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

/// Size of the sample compressed to detect incompressible data.
const SAMPLE: usize = 64 * 1024;

/// Encodes payloads; keeps its zstd contexts to reuse across calls.
pub struct Encoder {
    level: Compression,
    zstd: Option<zstd::bulk::Compressor<'static>>,
    probe: Option<zstd::bulk::Compressor<'static>>,
    scratch: Vec<u8>,
}

impl Encoder {
    /// Builds an encoder for the given level.
    pub fn new(level: Compression) -> Result<Self, FormatError> {
        let make = |l| {
            zstd::bulk::Compressor::new(l).map_err(|e| FormatError::Invalid {
                what: "compression level",
                reason: e.to_string(),
            })
        };
        let (zstd, probe) = match level {
            Compression::Off => (None, None),
            Compression::Zstd(l) => (Some(make(l)?), Some(make(1)?)),
        };
        Ok(Self {
            level,
            zstd,
            probe,
            scratch: Vec::new(),
        })
    }

    /// The level this encoder uses.
    pub fn level(&self) -> Compression {
        self.level
    }

    /// True when a fast trial compression of a sample of `data` saves less
    /// than 2%: such data (already compressed media, encrypted files) is
    /// stored raw without spending time on a full compression.
    fn looks_incompressible(&mut self, data: &[u8]) -> bool {
        if data.len() < 2 * SAMPLE {
            return false;
        }
        let Some(probe) = self.probe.as_mut() else {
            return false;
        };
        self.scratch.clear();
        self.scratch
            .reserve(zstd::zstd_safe::compress_bound(SAMPLE));
        // Sample the middle: headers at the start compress better than the rest.
        let mid = data.len() / 2 - SAMPLE / 2;
        match probe.compress_to_buffer(&data[mid..mid + SAMPLE], &mut self.scratch) {
            Ok(n) => n * 100 >= SAMPLE * 98,
            Err(_) => false,
        }
    }

    /// Appends the encoding of `data` (tag byte plus payload) to `out`.
    ///
    /// Falls back to raw when compression does not make the payload smaller,
    /// so incompressible data costs one byte of overhead, never more.
    pub fn encode_into(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let skip = self.looks_incompressible(data);
        if let Some(z) = self.zstd.as_mut().filter(|_| !skip) {
            // zstd writes into the scratch buffer's spare capacity: no zero-filling.
            self.scratch.clear();
            self.scratch
                .reserve(zstd::zstd_safe::compress_bound(data.len()));
            if let Ok(n) = z.compress_to_buffer(data, &mut self.scratch)
                && n < data.len()
            {
                out.push(ENCODING_ZSTD);
                out.extend_from_slice(&self.scratch);
                return;
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
    fn incompressible_data_is_stored_raw_without_full_compression() {
        let mut enc = Encoder::new(Compression::DEFAULT).unwrap_or_else(|e| panic!("{e}"));
        let mut x: u64 = 88172645463325252;
        let noise: Vec<u8> = (0..1 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert!(enc.looks_incompressible(&noise));
        assert_eq!(enc.encode(&noise)[0], ENCODING_RAW);
        let text = b"2026-11-22 10:00:00 INFO request ok id=42\n".repeat(30_000);
        assert!(!enc.looks_incompressible(&text));
        assert_eq!(enc.encode(&text)[0], ENCODING_ZSTD);
    }

    #[test]
    fn off_stores_raw() {
        let mut enc = Encoder::new(Compression::Off).unwrap_or_else(|e| panic!("{e}"));
        let e = enc.encode(&[0u8; 100]);
        assert_eq!(e[0], ENCODING_RAW);
        assert_eq!(e.len(), 101);
    }
}
