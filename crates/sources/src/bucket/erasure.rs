//! Erasure in buckets: the rules that find a data subject's objects (a key
//! pattern naming the subject, or a query the database answers), and the
//! objects of a snapshot that a restore leaves out because the erasure
//! ledger erased them.

use std::collections::HashSet;

use lifeboat_repo::Repository;
use serde::Deserialize;

use super::client::BucketSpec;
use super::error::{BucketError, Result};
use super::restore::SnapshotObject;

/// A `[[bucket_erasure]]` rule: where a subject's objects are, in one
/// declared bucket source.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketErasureRule {
    /// The `[[source]]` (with a `bucket`) the rule covers; keys are
    /// relative to its location.
    pub source: String,
    /// A key pattern: `/`-separated segments, one of which holds
    /// `{subject}` (with literal text around it if needed), `*` for any
    /// one segment and a final `**` for anything below.
    #[serde(default)]
    pub key: Option<String>,
    /// A query run in the erased database whose first column gives the keys
    /// of subject `$1`'s objects (Supabase: `SELECT name FROM
    /// storage.objects WHERE bucket_id = 'avatars' AND owner_id::text = $1`).
    #[serde(default)]
    pub query: Option<String>,
}

impl BucketErasureRule {
    /// The rule as the ledger shows it: its pattern or its query.
    pub fn describe(&self) -> String {
        match (&self.key, &self.query) {
            (Some(k), _) => format!("key = {k}"),
            (None, Some(q)) => format!("query = {q}"),
            (None, None) => String::new(),
        }
    }

    /// Checks the rule has exactly one way to find objects, and parses its pattern.
    pub fn pattern(&self) -> Result<Option<KeyPattern>> {
        match (&self.key, &self.query) {
            (Some(k), None) => KeyPattern::parse(k).map(Some),
            (None, Some(_)) => Ok(None),
            _ => Err(BucketError::Invalid(format!(
                "[[bucket_erasure]] for source {:?}: give either `key` (a pattern with {{subject}}) or `query`, not {}",
                self.source,
                if self.key.is_some() {
                    "both"
                } else {
                    "neither"
                }
            ))),
        }
    }
}

/// One segment of a [`KeyPattern`].
#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    /// Exactly this text.
    Literal(String),
    /// Any one segment.
    Any,
    /// Any number of segments (last only).
    Rest,
    /// The subject, with literal text before and after it.
    Subject { before: String, after: String },
}

/// A key pattern naming the subject: `users/{subject}/**`,
/// `exports/*/{subject}.csv`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPattern {
    segments: Vec<Segment>,
}

impl KeyPattern {
    /// Parses a pattern; it must hold `{subject}` exactly once, within
    /// one segment, and `**` only as its last segment.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |why: &str| {
            BucketError::Invalid(format!(
                "key pattern {text:?}: {why} (e.g. \"users/{{subject}}/**\")"
            ))
        };
        let parts: Vec<&str> = text.trim_matches('/').split('/').collect();
        let mut segments = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            let segment = match *part {
                "" => return Err(bad("empty segment")),
                "*" => Segment::Any,
                "**" if i + 1 == parts.len() => Segment::Rest,
                "**" => return Err(bad("`**` may only end the pattern")),
                p if p.contains("{subject}") => {
                    let (before, after) = p.split_once("{subject}").unwrap_or((p, ""));
                    if after.contains("{subject}") {
                        return Err(bad("{subject} appears twice"));
                    }
                    Segment::Subject {
                        before: before.into(),
                        after: after.into(),
                    }
                }
                p if p.contains('*') || p.contains('{') => {
                    return Err(bad(
                        "`*` stands for a whole segment; braces only in {subject}",
                    ));
                }
                p => Segment::Literal(p.into()),
            };
            segments.push(segment);
        }
        match segments
            .iter()
            .filter(|s| matches!(s, Segment::Subject { .. }))
            .count()
        {
            1 => Ok(Self { segments }),
            0 => Err(bad("no {subject}")),
            _ => Err(bad("{subject} appears twice")),
        }
    }

    /// The subject a key names under this pattern, if it matches.
    pub fn subject_of<'a>(&self, key: &'a str) -> Option<&'a str> {
        let parts: Vec<&str> = key.split('/').collect();
        let mut subject = None;
        for (i, segment) in self.segments.iter().enumerate() {
            if matches!(segment, Segment::Rest) {
                return subject;
            }
            let part = parts.get(i)?;
            match segment {
                Segment::Literal(l) if l != part => return None,
                Segment::Subject { before, after } => {
                    let s = part.strip_prefix(before.as_str())?;
                    let s = s.strip_suffix(after.as_str())?;
                    if s.is_empty() {
                        return None;
                    }
                    subject = Some(s);
                }
                _ => {}
            }
        }
        (parts.len() == self.segments.len())
            .then_some(subject)
            .flatten()
    }

    /// The narrowest "directory" (a key prefix ending before a `/`, empty
    /// for all) under which `subject`'s keys lie, for listing: the literal
    /// segments up to the first wildcard, and the subject's own segment when
    /// more segments follow it.
    pub fn listing_prefix(&self, subject: &str) -> String {
        let mut dirs: Vec<String> = Vec::new();
        for (i, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Literal(l) if i + 1 < self.segments.len() => dirs.push(l.clone()),
                Segment::Subject { before, after } if i + 1 < self.segments.len() => {
                    dirs.push(format!("{before}{subject}{after}"));
                    break;
                }
                _ => break,
            }
        }
        dirs.join("/")
    }
}

/// Where a rule looks: a bucket and a prefix in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleLocation {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix (no leading or trailing `/`; empty for the whole bucket).
    pub prefix: String,
    /// The rule's pattern (`None` for a query rule: its objects are known
    /// by the hashes the ledger recorded).
    pub pattern: Option<KeyPattern>,
}

impl RuleLocation {
    /// The location of `spec` with a rule's pattern.
    pub fn new(spec: &BucketSpec, pattern: Option<KeyPattern>) -> Self {
        Self {
            bucket: spec.bucket.clone(),
            prefix: spec.prefix.clone(),
            pattern,
        }
    }

    /// `full` (a key within the bucket) relative to this location.
    fn relative<'a>(&self, bucket: &str, full: &'a str) -> Option<&'a str> {
        if bucket != self.bucket {
            return None;
        }
        if self.prefix.is_empty() {
            return Some(full);
        }
        full.strip_prefix(self.prefix.as_str())?.strip_prefix('/')
    }
}

/// What the erasure ledger asks of a bucket restore.
#[derive(Clone, Debug, Default)]
pub struct BucketErasure {
    /// The declared rules' locations and patterns.
    pub rules: Vec<RuleLocation>,
    /// Keyed hashes of the subjects whose erasure is in force.
    pub subjects: HashSet<String>,
    /// Keyed hashes of the objects those erasures deleted.
    pub objects: HashSet<String>,
}

/// What leaving erased objects out of a restore did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ObjectReplay {
    /// Erasures in force in the ledger.
    pub subjects: usize,
    /// Erased subjects whose objects the snapshot held.
    pub found: usize,
    /// Objects left out.
    pub objects: u64,
}

impl BucketErasure {
    /// Removes from `objects` (a snapshot of `origin`, `s3://BUCKET[/PREFIX]`)
    /// every object of an erased subject: one a rule's pattern names for an
    /// erased subject, or one the ledger recorded as deleted.
    pub fn leave_out(
        &self,
        repo: &Repository,
        origin: &str,
        objects: Vec<SnapshotObject>,
    ) -> Result<(Vec<SnapshotObject>, ObjectReplay)> {
        let origin = BucketSpec::parse(origin)?;
        let mut replay = ObjectReplay {
            subjects: self.subjects.len(),
            ..ObjectReplay::default()
        };
        if self.subjects.is_empty() {
            return Ok((objects, replay));
        }
        let mut found = HashSet::new();
        let mut kept = Vec::with_capacity(objects.len());
        for o in objects {
            let full = if origin.prefix.is_empty() {
                o.key.clone()
            } else {
                format!("{}/{}", origin.prefix, o.key)
            };
            let by_pattern = self.rules.iter().find_map(|r| {
                let subject = r
                    .pattern
                    .as_ref()?
                    .subject_of(r.relative(&origin.bucket, &full)?)?;
                let hash = repo.subject_hash(subject);
                self.subjects.contains(&hash).then_some(hash)
            });
            let erased = match by_pattern {
                Some(hash) => {
                    found.insert(hash);
                    true
                }
                None => {
                    !self.objects.is_empty()
                        && self
                            .objects
                            .contains(&repo.object_hash(&origin.bucket, &full))
                }
            };
            if erased {
                replay.objects += 1;
            } else {
                kept.push(o);
            }
        }
        replay.found = found.len();
        Ok((kept, replay))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> KeyPattern {
        KeyPattern::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn patterns_find_the_subject_in_whole_or_part_of_a_segment() {
        let users = p("users/{subject}/**");
        assert_eq!(users.subject_of("users/cust-1/avatar.png"), Some("cust-1"));
        assert_eq!(users.subject_of("users/cust-1/a/b.png"), Some("cust-1"));
        assert_eq!(users.subject_of("other/cust-1/a.png"), None);
        assert_eq!(users.subject_of("users"), None);
        let csv = p("exports/*/{subject}.csv");
        assert_eq!(csv.subject_of("exports/2026/cust-9.csv"), Some("cust-9"));
        assert_eq!(csv.subject_of("exports/2026/cust-9.json"), None);
        assert_eq!(csv.subject_of("exports/2026/x/cust-9.csv"), None);
        assert_eq!(csv.subject_of("exports/2026/.csv"), None);
        assert_eq!(users.listing_prefix("cust-1"), "users/cust-1");
        assert_eq!(csv.listing_prefix("cust-9"), "exports");
        assert_eq!(p("{subject}.png").listing_prefix("cust-9"), "");
        assert_eq!(p("a/b/{subject}.png").listing_prefix("cust-9"), "a/b");
    }

    #[test]
    fn patterns_that_cannot_name_a_subject_are_refused() {
        for bad in [
            "users/*",
            "users/{subject}/{subject}",
            "**/{subject}",
            "users//{subject}",
            "users/a*/{subject}",
        ] {
            assert!(KeyPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_rule_needs_exactly_one_way_to_find_objects() {
        let rule = |key: Option<&str>, query: Option<&str>| BucketErasureRule {
            source: "media".into(),
            key: key.map(String::from),
            query: query.map(String::from),
        };
        assert!(rule(Some("u/{subject}/**"), None).pattern().is_ok());
        assert!(rule(None, Some("SELECT 1")).pattern().is_ok());
        assert!(rule(None, None).pattern().is_err());
        assert!(
            rule(Some("u/{subject}"), Some("SELECT 1"))
                .pattern()
                .is_err()
        );
    }

    #[test]
    fn locations_take_keys_of_their_bucket_and_prefix_only() {
        let at = RuleLocation {
            bucket: "media".into(),
            prefix: "app".into(),
            pattern: None,
        };
        assert_eq!(at.relative("media", "app/users/x"), Some("users/x"));
        assert_eq!(at.relative("media", "apple/users/x"), None);
        assert_eq!(at.relative("other", "app/users/x"), None);
    }
}
