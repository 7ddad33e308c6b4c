//! lifeboat's on-disk format, version 1, as specified in `docs/FORMAT.md`.
//!
//! This crate is pure: it encodes and decodes bytes and never touches storage,
//! the file system or the network. Every constant here mirrors the spec; a
//! change to one is a change to the other.
//!
//! Layers, bottom up:
//! - [`id`]: keyed BLAKE3 blob and object ids, plain BLAKE3 pack ids;
//! - [`chunker`]: content-defined (FastCDC 2020) and fixed-size chunk boundaries;
//! - [`compress`]: zstd with a bound on decompressed size;
//! - [`crypto`]: the master key, per-unit subkeys and AES-256-GCM sealing;
//! - [`keyslot`]: Argon2id key slots that wrap the master key;
//! - [`object`]: the sealed envelope of stand-alone objects (config, index, snapshot);
//! - [`pack`]: pack files holding encrypted blobs plus an encrypted trailer;
//! - [`index`], [`tree`], [`snapshot`], [`config`]: payload codecs.

#![forbid(unsafe_code)]

pub mod audit;
pub mod chain;
pub mod chunker;
pub mod compress;
pub mod config;
pub mod crypto;
mod cursor;
pub mod erasure;
pub mod error;
pub mod id;
pub mod index;
pub mod keyslot;
pub mod maintenance;
pub mod names;
pub mod object;
pub mod pack;
pub mod report;
pub mod row_chunker;
pub mod snapshot;
pub mod tree;

pub use error::FormatError;
pub use id::{BlobType, Id};

/// The repository format version this build writes and the newest it reads.
pub const FORMAT_VERSION: u8 = 1;

/// Oldest repository format version this build can read.
pub const MIN_READ_VERSION: u8 = 1;

/// Checks a version byte read from storage against the range this build reads.
pub fn check_version(what: &'static str, found: u8) -> Result<(), FormatError> {
    if (MIN_READ_VERSION..=FORMAT_VERSION).contains(&found) {
        Ok(())
    } else {
        Err(FormatError::UnsupportedVersion {
            what,
            found,
            supported: FORMAT_VERSION,
        })
    }
}
