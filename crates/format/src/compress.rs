//! Payload encoding: a one-byte tag followed by raw or zstd-compressed bytes.
//!
//! Decoding is always bounded by a size known in advance (from the index or
//! the object header), so a forged payload cannot expand without limit.

use zstd::zstd_safe::{CCtx, CParameter, DCtx};

use crate::error::FormatError;
use crate::id::Id;

/// Tag byte: the payload follows uncompressed.
pub const ENCODING_RAW: u8 = 0;
/// Tag byte: the payload is one zstd frame.
pub const ENCODING_ZSTD: u8 = 1;
/// Tag byte: the payload is the id of a base blob (32 bytes) followed by one
/// zstd frame compressed with the base's content as its prefix (a raw
/// content dictionary): only what differs from the base costs space.
pub const ENCODING_ZSTD_DELTA: u8 = 2;

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

    /// Whether an encoder may use level 1 instead where this level saves
    /// too little (see [`Encoder`]): the default levels, not a level asked
    /// for to save space.
    fn adapts(self) -> bool {
        matches!(self, Compression::Zstd(l) if (2..=ADAPTIVE_MAX_LEVEL).contains(&l))
    }
}

/// Size of the sample compressed to detect incompressible data.
const SAMPLE: usize = 64 * 1024;

/// The highest level an encoder trades for level 1 where it saves too little.
const ADAPTIVE_MAX_LEVEL: i32 = 3;
/// Payloads at least this large take part in choosing the level.
const ADAPTIVE_MIN_LEN: usize = 64 * 1024;
/// After payloads are compressed both ways, how many use the verdict before
/// the next comparison.
const ADAPTIVE_EVERY: u32 = 16;
/// Level 1 is chosen when its output is at most this many percent larger.
const ADAPTIVE_TOLERANCE_PERCENT: usize = 2;

/// Encodes payloads; keeps its zstd contexts to reuse across calls.
///
/// At the default level an encoder adapts to the data: every
/// [`ADAPTIVE_EVERY`]th large payload is compressed at the configured level
/// and at level 1, and the smaller output is kept; until the next such
/// comparison, payloads are compressed at level 1 alone if its output was
/// within [`ADAPTIVE_TOLERANCE_PERCENT`] of the configured level's. On
/// high-entropy text (hex digests, uuids, tokens) zstd's level 3 costs 2.3
/// times level 1's time for an output no smaller, while on repetitive text
/// it saves far more than the tolerance and stays in use. The level is not
/// part of the format: every zstd frame decodes the same way.
pub struct Encoder {
    level: Compression,
    zstd: Option<zstd::bulk::Compressor<'static>>,
    /// Level 1: samples for incompressibility, and the adaptive choice.
    probe: Option<zstd::bulk::Compressor<'static>>,
    scratch: Vec<u8>,
    /// The second output while comparing levels.
    other: Vec<u8>,
    /// The verdict of the last comparison: level 1 is as good.
    level_one_suffices: bool,
    /// Payloads left before the next comparison.
    until_comparison: u32,
    /// Payloads compressed at level 1 by the adaptive choice.
    at_level_one: u64,
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
            other: Vec::new(),
            level_one_suffices: false,
            until_comparison: 0,
            at_level_one: 0,
        })
    }

    /// How many payloads were compressed at level 1 instead of the
    /// configured level because that level saved too little on them.
    pub fn payloads_at_level_one(&self) -> u64 {
        self.at_level_one
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
        let (tag, payload) = self.encode_parts(data);
        out.push(tag);
        out.extend_from_slice(payload);
    }

    /// The encoding of `data` as [`Encoder::encode_into`] writes it, in two
    /// parts and without copying: the tag byte, and the payload (in the
    /// encoder's own buffer, or `data` itself when stored raw).
    pub fn encode_parts<'a>(&'a mut self, data: &'a [u8]) -> (u8, &'a [u8]) {
        if !self.looks_incompressible(data)
            && let Some(n) = self.compress(data)
            && n < data.len()
        {
            return (ENCODING_ZSTD, &self.scratch);
        }
        (ENCODING_RAW, data)
    }

    /// Compresses `data` into the scratch buffer, choosing the level as the
    /// type's documentation says; the compressed length, or `None` if zstd
    /// is off or failed.
    fn compress(&mut self, data: &[u8]) -> Option<usize> {
        let bound = zstd::zstd_safe::compress_bound(data.len());
        // zstd writes into the buffers' spare capacity: no zero-filling.
        self.scratch.clear();
        self.scratch.reserve(bound);
        let configured = self.zstd.as_mut()?;
        let fast = match self.probe.as_mut() {
            Some(fast) if self.level.adapts() && data.len() >= ADAPTIVE_MIN_LEN => fast,
            _ => return configured.compress_to_buffer(data, &mut self.scratch).ok(),
        };
        if self.until_comparison > 0 {
            self.until_comparison -= 1;
            if self.level_one_suffices {
                self.at_level_one += 1;
                return fast.compress_to_buffer(data, &mut self.scratch).ok();
            }
            return configured.compress_to_buffer(data, &mut self.scratch).ok();
        }
        self.until_comparison = ADAPTIVE_EVERY - 1;
        let slow = configured
            .compress_to_buffer(data, &mut self.scratch)
            .ok()?;
        self.other.clear();
        self.other.reserve(bound);
        let Ok(quick) = fast.compress_to_buffer(data, &mut self.other) else {
            self.level_one_suffices = false;
            return Some(slow);
        };
        self.level_one_suffices = quick * 100 <= slow * (100 + ADAPTIVE_TOLERANCE_PERCENT);
        if quick < slow {
            std::mem::swap(&mut self.scratch, &mut self.other);
            self.at_level_one += 1;
            return Some(quick);
        }
        Some(slow)
    }

    /// The encoding of `data` as a new vector.
    pub fn encode(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() + 1);
        self.encode_into(data, &mut out);
        out
    }
}

thread_local! {
    /// A zstd decompression context per thread: creating one for every blob
    /// cost a few percent of a restore.
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
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
            DECOMPRESSOR
                .with_borrow_mut(|d| {
                    let d = match d {
                        Some(d) => d,
                        None => d.insert(zstd::bulk::Decompressor::new()?),
                    };
                    d.decompress_to_buffer(payload, &mut out)
                })
                .map_err(|e| FormatError::Decompress {
                    what,
                    reason: format!("{e} (expected {expected_len} bytes)"),
                })?;
            out
        }
        ENCODING_ZSTD_DELTA => {
            return Err(FormatError::Invalid {
                what,
                reason: "the payload is a delta and needs its base blob".into(),
            });
        }
        other => {
            return Err(FormatError::Invalid {
                what,
                reason: format!("unknown payload encoding {other}"),
            });
        }
    };
    check_len(what, out.len(), expected_len)?;
    Ok(out)
}

fn check_len(what: &'static str, len: usize, expected_len: usize) -> Result<(), FormatError> {
    if len != expected_len {
        return Err(FormatError::Invalid {
            what,
            reason: format!("decoded to {len} bytes, expected {expected_len}"),
        });
    }
    Ok(())
}

/// The smallest zstd window (as a power of two) that lets every byte of
/// `data` refer back to the start of a prefix of `prefix_len` bytes.
fn window_log(prefix_len: usize, data_len: usize) -> u32 {
    let span = (prefix_len + data_len).max(1).next_power_of_two();
    span.trailing_zeros().clamp(17, 27)
}

/// Encodes `data` as a delta against `base`, the content of the data blob
/// `base_id`: the tag, the base's id, then one zstd frame at `level` that may
/// copy from `base`. Needs the same base to decode ([`decode_delta`]).
pub fn encode_delta(
    level: i32,
    base_id: &Id,
    base: &[u8],
    data: &[u8],
) -> Result<Vec<u8>, FormatError> {
    let failed = |e: usize| FormatError::Invalid {
        what: "delta compression",
        reason: zstd::zstd_safe::get_error_name(e).to_string(),
    };
    let mut cctx = CCtx::try_create().ok_or(FormatError::Invalid {
        what: "delta compression",
        reason: "zstd could not allocate a context".into(),
    })?;
    cctx.set_parameter(CParameter::CompressionLevel(level))
        .map_err(failed)?;
    cctx.set_parameter(CParameter::WindowLog(window_log(base.len(), data.len())))
        .map_err(failed)?;
    // Long-distance matching finds the long runs shared with the base even
    // where the regular match finder's tables are crowded by look-alike rows
    // (10x smaller deltas on blank-padded table rows, at the same speed).
    cctx.set_parameter(CParameter::EnableLongDistanceMatching(true))
        .map_err(failed)?;
    cctx.ref_prefix(base).map_err(failed)?;
    let mut out = Vec::with_capacity(1 + Id::LEN + zstd::zstd_safe::compress_bound(data.len()));
    out.push(ENCODING_ZSTD_DELTA);
    out.extend_from_slice(base_id.as_bytes());
    let mut frame = Vec::with_capacity(zstd::zstd_safe::compress_bound(data.len()));
    cctx.compress2(&mut frame, data).map_err(failed)?;
    out.extend_from_slice(&frame);
    Ok(out)
}

/// The base blob an encoded payload needs, or `None` for a payload that
/// decodes on its own.
pub fn delta_base(encoded: &[u8]) -> Result<Option<Id>, FormatError> {
    match encoded.split_first() {
        Some((&ENCODING_ZSTD_DELTA, rest)) => {
            let bytes: [u8; Id::LEN] = rest.get(..Id::LEN).and_then(|b| b.try_into().ok()).ok_or(
                FormatError::Truncated {
                    what: "delta payload",
                    needed: Id::LEN,
                },
            )?;
            Ok(Some(Id::from_bytes(bytes)))
        }
        Some(_) => Ok(None),
        None => Err(FormatError::Truncated {
            what: "payload",
            needed: 1,
        }),
    }
}

/// Decodes a delta payload with its base's content; the result must be
/// exactly `expected_len` bytes (never more is allocated).
pub fn decode_delta(
    what: &'static str,
    encoded: &[u8],
    base: &[u8],
    expected_len: usize,
) -> Result<Vec<u8>, FormatError> {
    if delta_base(encoded)?.is_none() {
        return Err(FormatError::Invalid {
            what,
            reason: "the payload is not a delta".into(),
        });
    }
    let frame = &encoded[1 + Id::LEN..];
    let failed = |e: usize| FormatError::Decompress {
        what,
        reason: format!(
            "{} (expected {expected_len} bytes)",
            zstd::zstd_safe::get_error_name(e)
        ),
    };
    let mut dctx = DCtx::try_create().ok_or(FormatError::Invalid {
        what,
        reason: "zstd could not allocate a context".into(),
    })?;
    dctx.ref_prefix(base).map_err(failed)?;
    let mut out = Vec::with_capacity(expected_len);
    dctx.decompress(&mut out, frame).map_err(failed)?;
    check_len(what, out.len(), expected_len)?;
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
    fn the_parts_are_the_encoding() {
        let mut enc = Encoder::new(Compression::DEFAULT).unwrap_or_else(|e| panic!("{e}"));
        let text = b"parts parts parts parts parts parts parts".repeat(100);
        let noise: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for data in [&text[..], &noise[..], b""] {
            let whole = enc.encode(data);
            let (tag, payload) = enc.encode_parts(data);
            assert_eq!([&[tag][..], payload].concat(), whole);
        }
        let (tag, payload) = enc.encode_parts(&text);
        assert_eq!(tag, ENCODING_ZSTD);
        assert!(payload.len() < text.len() / 10);
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
    fn deltas_store_only_the_difference_and_need_their_base() {
        let rows: Vec<u8> = (0..20_000u32)
            .flat_map(|i| format!("{i}\t{}\tcustomer {}\n", i * 7 % 1000, i % 97).into_bytes())
            .collect();
        let mut changed = rows.clone();
        for at in (1000..changed.len()).step_by(37_000) {
            changed[at] = b'X';
        }
        let base_id = Id::from_bytes([7; 32]);
        let e = encode_delta(3, &base_id, &rows, &changed).unwrap_or_default();
        assert_eq!(delta_base(&e).ok().flatten(), Some(base_id));
        let full = Encoder::new(Compression::DEFAULT)
            .map(|mut enc| enc.encode(&changed).len())
            .unwrap_or(0);
        assert!(e.len() * 10 < full, "delta {} vs full {full}", e.len());
        assert_eq!(
            decode_delta("t", &e, &rows, changed.len()).unwrap_or_default(),
            changed
        );
        // Without its base, with another base, or bounded too small: refused.
        assert!(decode("t", &e, changed.len()).is_err());
        assert!(decode_delta("t", &e, &changed[..1000], changed.len()).is_err());
        assert!(decode_delta("t", &e, &rows, changed.len() - 1).is_err());
        assert!(decode_delta("t", &e[..20], &rows, changed.len()).is_err());
        assert_eq!(delta_base(&[ENCODING_ZSTD, 1]).ok().flatten(), None);
    }

    #[test]
    fn deltas_find_their_rows_among_look_alike_rows() {
        // Blank-padded rows that differ only in their numbers (pgbench's
        // accounts): 1 in 200 rows deleted, 1 in 200 updated.
        let row = |i: u64, balance: u64| format!("{i}\t1\t{balance}\t{:84}\n", "");
        let mut base = Vec::new();
        let mut new = Vec::new();
        for i in 1..20_000u64 {
            base.extend_from_slice(row(i, 0).as_bytes());
            match i.wrapping_mul(2_654_435_761) % 200 {
                0 => {}
                1 => new.extend_from_slice(row(i, i % 977).as_bytes()),
                _ => new.extend_from_slice(row(i, 0).as_bytes()),
            }
        }
        let full = Encoder::new(Compression::DEFAULT)
            .map(|mut enc| enc.encode(&new).len())
            .unwrap_or(0);
        let e = encode_delta(3, &Id::from_bytes([1; 32]), &base, &new).unwrap_or_default();
        assert!(e.len() * 5 < full, "delta {} vs full {full}", e.len());
        assert_eq!(
            decode_delta("t", &e, &base, new.len()).unwrap_or_default(),
            new
        );
    }

    /// A deterministic generator of high-entropy bytes.
    fn xorshift(seed: u64) -> impl FnMut() -> u64 {
        let mut x = seed;
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    #[test]
    fn the_default_level_gives_way_to_level_one_only_where_it_saves_too_little() {
        // Rows of hex digests, as a table of tokens and uuids dumps: level 3
        // saves nothing over level 1 here.
        let mut next = xorshift(88172645463325252);
        let digests: Vec<u8> = (0..40_000)
            .flat_map(|i| {
                format!("{i}\t{:016x}{:016x}\t{:016x}\n", next(), next(), next()).into_bytes()
            })
            .collect();
        // Rows of prose drawn from a small vocabulary, where level 3 stores
        // clearly less.
        let words: Vec<&str> =
            "the of and to in is was for on that with as by at from this be are \
            or an it have not but which were all their there has one been more when we can also \
            its they time into other after only two first new some would many these any may such"
                .split_whitespace()
                .collect();
        let phrases: Vec<u8> = (1..8_000u32)
            .flat_map(|g| {
                let body: Vec<&str> = (0..110)
                    .map(|_| words[(next() % words.len() as u64) as usize])
                    .collect();
                format!("{g}\ttitle {g}\t{}\n", body.join(" ")).into_bytes()
            })
            .collect();
        for (data, level_one) in [(&digests, true), (&phrases, false)] {
            let mut adaptive = Encoder::new(Compression::DEFAULT).unwrap_or_else(|e| panic!("{e}"));
            let mut explicit = Encoder::new(Compression::Zstd(4)).unwrap_or_else(|e| panic!("{e}"));
            let level_three = |p: &[u8]| zstd::bulk::compress(p, 3).map_or(0, |c| c.len() + 1);
            let (mut stored, mut stored_at_three) = (0, 0);
            for part in data
                .chunks(256 << 10)
                .filter(|p| p.len() >= ADAPTIVE_MIN_LEN)
            {
                let e = adaptive.encode(part);
                assert_eq!(decode("t", &e, part.len()).unwrap_or_default(), part);
                stored += e.len();
                stored_at_three += level_three(part);
                explicit.encode(part);
            }
            let parts = (data.len() / (256 << 10)) as u64;
            assert!(parts >= 4, "{parts}");
            if level_one {
                assert!(
                    adaptive.payloads_at_level_one() >= parts - 1,
                    "{}",
                    adaptive.payloads_at_level_one()
                );
                assert!(
                    stored * 100 <= stored_at_three * (100 + ADAPTIVE_TOLERANCE_PERCENT),
                    "{stored} vs {stored_at_three}"
                );
            } else {
                assert_eq!(
                    adaptive.payloads_at_level_one(),
                    0,
                    "{stored} vs {stored_at_three}"
                );
            }
            // A level asked for explicitly is kept.
            assert_eq!(explicit.payloads_at_level_one(), 0);
        }
    }

    #[test]
    fn off_stores_raw() {
        let mut enc = Encoder::new(Compression::Off).unwrap_or_else(|e| panic!("{e}"));
        let e = enc.encode(&[0u8; 100]);
        assert_eq!(e[0], ENCODING_RAW);
        assert_eq!(e.len(), 101);
    }
}
