//! File names and link targets as raw bytes, stored losslessly in JSON.
//!
//! Unix names are arbitrary bytes except `/` and NUL. A name that is valid
//! UTF-8 is stored as a JSON string; any other name as `{"b64": "..."}`.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A name or path as raw bytes.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ByteName(pub Vec<u8>);

impl ByteName {
    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// A lossy, printable form for messages and listings.
    pub fn display(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }

    /// True when the bytes form a single path component that is safe to join
    /// onto a directory: not empty, not `.` or `..`, no `/` and no NUL.
    pub fn is_safe_component(&self) -> bool {
        let b = self.0.as_slice();
        !b.is_empty() && b != b"." && b != b".." && !b.contains(&b'/') && !b.contains(&0)
    }
}

impl From<&[u8]> for ByteName {
    fn from(b: &[u8]) -> Self {
        Self(b.to_vec())
    }
}

impl From<&str> for ByteName {
    fn from(s: &str) -> Self {
        Self(s.as_bytes().to_vec())
    }
}

impl fmt::Debug for ByteName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.display())
    }
}

#[derive(Serialize, Deserialize)]
struct Encoded {
    b64: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Either {
    Text(String),
    Bytes(Encoded),
}

impl Serialize for ByteName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(text) => s.serialize_str(text),
            Err(_) => Encoded {
                b64: B64.encode(&self.0),
            }
            .serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for ByteName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Either::deserialize(d)? {
            Either::Text(t) => Ok(Self(t.into_bytes())),
            Either::Bytes(e) => B64
                .decode(e.b64)
                .map(Self)
                .map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_and_raw_names_round_trip() {
        for raw in [
            &b"plain.txt"[..],
            b"caf\xc3\xa9",
            b"bad\xff\xfename",
            b"with\nnewline",
        ] {
            let n = ByteName(raw.to_vec());
            let json = serde_json::to_string(&n).unwrap_or_default();
            let back: ByteName = serde_json::from_str(&json).unwrap_or_default();
            assert_eq!(back, n, "{json}");
        }
        let raw = serde_json::to_string(&ByteName(b"\xff".to_vec())).unwrap_or_default();
        assert!(raw.contains("b64"));
    }

    #[test]
    fn unsafe_components() {
        for bad in [&b""[..], b".", b"..", b"a/b", b"a\0"] {
            assert!(!ByteName(bad.to_vec()).is_safe_component());
        }
        assert!(ByteName::from("...").is_safe_component());
    }
}
