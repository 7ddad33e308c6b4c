//! The single error type of the format crate.

use crate::id::Id;

/// Everything that can go wrong while encoding or decoding format objects.
///
/// Each variant names *what* was being decoded so that callers can say which
/// object on storage is affected.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// A value could not be encoded (never stored as an empty object).
    #[error("cannot encode {what}: {detail}")]
    Encode {
        /// The structure being encoded.
        what: &'static str,
        /// Why.
        detail: String,
    },
    /// The input ended before a complete structure was read.
    #[error("{what} is truncated: needed {needed} more bytes")]
    Truncated {
        /// The structure being decoded.
        what: &'static str,
        /// How many more bytes were needed.
        needed: usize,
    },
    /// The magic bytes at the start or end of a structure are wrong.
    #[error("{what} has a bad magic number (not a lifeboat object, or damaged)")]
    BadMagic {
        /// The structure being decoded.
        what: &'static str,
    },
    /// The object was written by a newer (or unknown) format version.
    #[error(
        "{what} uses format version {found}, this lifeboat reads up to version {supported}; upgrade lifeboat"
    )]
    UnsupportedVersion {
        /// The structure being decoded.
        what: &'static str,
        /// The version found on storage.
        found: u8,
        /// The newest version this build reads.
        supported: u8,
    },
    /// AES-GCM authentication failed: wrong key, or the bytes were altered.
    #[error("{what} failed authentication: the data was altered or damaged (or the key is wrong)")]
    Authentication {
        /// The structure being decoded.
        what: &'static str,
    },
    /// A compressed payload could not be decompressed within its bound.
    #[error("{what} could not be decompressed: {reason}")]
    Decompress {
        /// The structure being decoded.
        what: &'static str,
        /// Why decompression failed.
        reason: String,
    },
    /// A declared size is beyond what this format allows.
    #[error("{what} declares {size} bytes, more than the limit of {limit}")]
    TooLarge {
        /// The structure being decoded.
        what: &'static str,
        /// The declared size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Decrypted content does not hash to the id it is stored under.
    #[error("{what} content does not match its id: expected {expected}, got {actual}")]
    IdMismatch {
        /// The structure being decoded.
        what: &'static str,
        /// The id it is stored under.
        expected: Id,
        /// The id of the content actually found.
        actual: Id,
    },
    /// A JSON payload did not parse.
    #[error("{what} is not valid: {source}")]
    Json {
        /// The structure being decoded.
        what: &'static str,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// A structure is syntactically complete but violates a rule of the format.
    #[error("{what} is invalid: {reason}")]
    Invalid {
        /// The structure being decoded.
        what: &'static str,
        /// The rule that was broken.
        reason: String,
    },
    /// The key derivation function rejected its parameters.
    #[error("key derivation failed: {0}")]
    Kdf(String),
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed: {0}")]
    Random(String),
}

/// Encodes `value` as JSON (pretty when asked), naming `what` if it fails:
/// an encoder never hands back an empty payload to be stored.
pub fn encode_json<T: serde::Serialize + ?Sized>(
    what: &'static str,
    value: &T,
    pretty: bool,
) -> Result<Vec<u8>, FormatError> {
    let bytes = if pretty {
        serde_json::to_vec_pretty(value)
    } else {
        serde_json::to_vec(value)
    };
    bytes.map_err(|e| FormatError::Encode {
        what,
        detail: e.to_string(),
    })
}
