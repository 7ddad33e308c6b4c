//! The bucket side of erasure: finding a data subject's objects by the
//! `[[bucket_erasure]]` rules, deleting them from the live buckets, and what
//! the ledger asks of a bucket restore (the objects it leaves out).

use anyhow::{Context, Result};
use lifeboat_format::erasure::ErasedObjects;
use lifeboat_repo::Repository;
use lifeboat_repo::erasures::Ledger;
use lifeboat_sources::bucket::erasure::{BucketErasure, BucketErasureRule, RuleLocation};
use lifeboat_sources::bucket::{BucketClient, BucketSpec, list_all};

use crate::commands::bucket::spec_of_source;
use crate::exit::UsageError;
use crate::settings::FileSettings;

/// A subject's objects one rule found in a live bucket.
pub struct FoundObjects {
    /// The rule.
    rule: BucketErasureRule,
    /// A client for the rule's location.
    client: BucketClient,
    /// The keys found, relative to the rule's location.
    keys: Vec<String>,
}

impl FoundObjects {
    /// The full key (within the bucket) of `rel`.
    fn full_key(&self, rel: &str) -> String {
        match self.client.prefix() {
            "" => rel.to_string(),
            p => format!("{p}/{rel}"),
        }
    }

    /// The ledger's record of these objects; `deleting` adds each
    /// object's keyed hash (a hold deletes nothing, so records none).
    pub fn record(&self, repo: &Repository, deleting: bool) -> ErasedObjects {
        ErasedObjects {
            location: self.client.url().to_string(),
            rule: self.rule.describe(),
            objects: self.keys.len() as u64,
            hashes: if deleting {
                self.keys
                    .iter()
                    .map(|k| repo.object_hash(self.client.bucket_name(), &self.full_key(k)))
                    .collect()
            } else {
                Vec::new()
            },
        }
    }

    /// Deletes the objects from the live bucket.
    pub async fn delete(&self) -> Result<()> {
        for key in &self.keys {
            self.client.delete(key).await.with_context(|| {
                format!(
                    "deleting an erased subject's object in {}",
                    self.client.url()
                )
            })?;
        }
        Ok(())
    }

    /// How many objects were found.
    pub fn count(&self) -> usize {
        self.keys.len()
    }
}

/// Where a rule's source is, and how to reach it.
fn spec_for_rule(file: &FileSettings, rule: &BucketErasureRule) -> Result<BucketSpec> {
    if !file.source.iter().any(|s| *s.name.get_ref() == rule.source) {
        return Err(UsageError(format!(
            "[[bucket_erasure]] names source {:?}, which the settings file does not declare",
            rule.source
        ))
        .into());
    }
    match spec_of_source(file, &rule.source)? {
        Some(spec) => Ok(spec),
        None => Err(UsageError(format!(
            "[[bucket_erasure]] names source {:?}, which declares no `bucket`",
            rule.source
        ))
        .into()),
    }
}

/// The bucket client of a rule's source.
fn client_of(file: &FileSettings, rule: &BucketErasureRule) -> Result<BucketClient> {
    Ok(BucketClient::new(&spec_for_rule(file, rule)?)?)
}

/// Finds `subject`'s objects by every bucket rule: a pattern by listing
/// the bucket below the pattern's fixed part, a query by asking `db`.
pub async fn find(
    file: &FileSettings,
    db: Option<&lifeboat_postgres::sql::Client>,
    subject: &str,
) -> Result<Vec<FoundObjects>> {
    let mut found = Vec::new();
    for rule in &file.bucket_erasure {
        let client = client_of(file, rule)?;
        let keys = match rule.pattern().map_err(|e| UsageError(e.to_string()))? {
            Some(pattern) => {
                let dir = pattern.listing_prefix(subject);
                let below = match (client.prefix(), dir.as_str()) {
                    (p, "") => p.to_string(),
                    ("", d) => d.to_string(),
                    (p, d) => format!("{p}/{d}"),
                };
                let (listed, _) = list_all(&client.with_prefix(&below)).await?;
                listed
                    .into_iter()
                    .map(|o| match dir.as_str() {
                        "" => o.key,
                        d => format!("{d}/{}", o.key),
                    })
                    .filter(|k| pattern.subject_of(k) == Some(subject))
                    .collect()
            }
            None => {
                let Some(db) = db else {
                    return Err(UsageError(format!(
                        "[[bucket_erasure]] for source {:?} finds objects with a query: give the database with --db",
                        rule.source
                    ))
                    .into());
                };
                let query = rule.query.as_deref().unwrap_or_default();
                lifeboat_postgres::erasure::object_keys(db, query, subject).await?
            }
        };
        found.push(FoundObjects {
            rule: rule.clone(),
            client,
            keys,
        });
    }
    Ok(found)
}

/// Whether erasing needs a database connection: table rules, or bucket
/// rules that find objects with a query.
pub fn needs_database(file: &FileSettings) -> bool {
    !file.erasure.is_empty() || file.bucket_erasure.iter().any(|r| r.query.is_some())
}

/// What the ledger asks a bucket restore to leave out, with the declared
/// rules' locations; `None` when no erasure is in force.
pub fn replay_for_bucket(file: &FileSettings, ledger: &Ledger) -> Result<Option<BucketErasure>> {
    let subjects = ledger.erased_subjects();
    if subjects.is_empty() {
        return Ok(None);
    }
    let mut rules = Vec::new();
    for rule in &file.bucket_erasure {
        let pattern = rule.pattern().map_err(|e| UsageError(e.to_string()))?;
        rules.push(RuleLocation::new(&spec_for_rule(file, rule)?, pattern));
    }
    Ok(Some(BucketErasure {
        rules,
        subjects,
        objects: ledger.erased_objects(),
    }))
}
