//! Reports kept in the repository catalog (`reports/<id>`, kind 8): the
//! outcome of a restore drill, an integrity check or a recovery, so that
//! `status` and `drills` can tell what was proven and when, from the
//! repository alone.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::FormatError;

/// One stored report. `body` is the full report of its `kind`, whose
/// fields readers treat as optional.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CatalogReport {
    /// `drill`, `check` or `recover`; readers skip kinds they do not know.
    pub kind: String,
    /// When the work started.
    pub time: DateTime<Utc>,
    /// Who ran it (user@host).
    pub by: String,
    /// Whether everything passed.
    pub ok: bool,
    /// One line for lists.
    pub summary: String,
    /// The report itself.
    pub body: serde_json::Value,
}

impl CatalogReport {
    /// JSON payload.
    pub fn to_json(&self) -> Result<Vec<u8>, FormatError> {
        crate::error::encode_json("report", self, false)
    }

    /// Parses a payload.
    pub fn from_json(bytes: &[u8]) -> Result<Self, FormatError> {
        serde_json::from_slice(bytes).map_err(|source| FormatError::Json {
            what: "report",
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_tolerates_new_fields() {
        let r = CatalogReport {
            kind: "drill".into(),
            time: Utc::now(),
            by: "ops@db1".into(),
            ok: false,
            summary: "check orders failed".into(),
            body: serde_json::json!({"rto_seconds": 12.5}),
        };
        assert_eq!(
            CatalogReport::from_json(&r.to_json().unwrap_or_default()).ok(),
            Some(r.clone())
        );
        let mut v: serde_json::Value = serde_json::from_slice(&r.to_json().unwrap_or_default())
            .unwrap_or(serde_json::Value::Null);
        v["later"] = serde_json::json!(1);
        let bytes = serde_json::to_vec(&v).unwrap_or_default();
        assert_eq!(CatalogReport::from_json(&bytes).ok(), Some(r));
        assert!(CatalogReport::from_json(b"{}").is_err());
    }
}
