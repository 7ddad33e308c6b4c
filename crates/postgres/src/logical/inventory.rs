//! Counting a database's objects by kind (tables, indexes, constraints,
//! policies, triggers, functions, grants…), recorded at backup time and
//! counted again after a restore: a restore that "passes" with a policy or
//! a grant missing is the worst kind of failure, so a difference fails it,
//! as a differing row count does.
//!
//! Objects that belong to an extension are left out: `CREATE EXTENSION`
//! makes them, and another version of the extension may make others.

use std::collections::BTreeMap;

use tokio_postgres::Client;

use super::USER_SCHEMAS;
use crate::error::{PgError, Result};

/// Kinds compared only when privileges are restored.
pub const PRIVILEGE_KINDS: &[&str] = &["grants", "default privileges"];

/// Kinds that are data, compared only when data is restored.
pub const DATA_KINDS: &[&str] = &["large objects"];

/// Counts the objects of the connected database by kind.
pub async fn count(client: &Client) -> Result<BTreeMap<String, u64>> {
    let sql = format!(
        "WITH ext AS (SELECT classid, objid FROM pg_depend WHERE deptype = 'e'), \
         rels AS (SELECT c.oid, c.relkind, c.relacl FROM pg_class c \
                  JOIN pg_namespace n ON n.oid = c.relnamespace \
                  WHERE {USER_SCHEMAS} AND NOT EXISTS (SELECT 1 FROM ext \
                        WHERE ext.classid = 'pg_class'::regclass AND ext.objid = c.oid)), \
         procs AS (SELECT p.oid, p.proacl FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
                   WHERE {USER_SCHEMAS} AND NOT EXISTS (SELECT 1 FROM ext \
                         WHERE ext.classid = 'pg_proc'::regclass AND ext.objid = p.oid)), \
         types AS (SELECT t.oid, t.typacl FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
                   LEFT JOIN pg_class r ON r.oid = t.typrelid \
                   WHERE {USER_SCHEMAS} AND t.typcategory <> 'A' AND (t.typrelid = 0 OR r.relkind = 'c') \
                     AND NOT EXISTS (SELECT 1 FROM ext \
                         WHERE ext.classid = 'pg_type'::regclass AND ext.objid = t.oid)), \
         schemas AS (SELECT n.oid, n.nspacl FROM pg_namespace n WHERE {USER_SCHEMAS} \
                     AND NOT EXISTS (SELECT 1 FROM ext \
                         WHERE ext.classid = 'pg_namespace'::regclass AND ext.objid = n.oid)) \
         SELECT 'tables', count(*) FROM rels WHERE relkind IN ('r', 'p') \
         UNION ALL SELECT 'views', count(*) FROM rels WHERE relkind = 'v' \
         UNION ALL SELECT 'materialized views', count(*) FROM rels WHERE relkind = 'm' \
         UNION ALL SELECT 'sequences', count(*) FROM rels WHERE relkind = 'S' \
         UNION ALL SELECT 'foreign tables', count(*) FROM rels WHERE relkind = 'f' \
         UNION ALL SELECT 'indexes', count(*) FROM pg_index i WHERE i.indrelid IN (SELECT oid FROM rels) \
         UNION ALL SELECT 'constraints', count(*) FROM pg_constraint k \
             WHERE k.conrelid IN (SELECT oid FROM rels) OR k.contypid IN (SELECT oid FROM types) \
         UNION ALL SELECT 'triggers', count(*) FROM pg_trigger t \
             WHERE NOT t.tgisinternal AND t.tgrelid IN (SELECT oid FROM rels) \
         UNION ALL SELECT 'policies', count(*) FROM pg_policy p WHERE p.polrelid IN (SELECT oid FROM rels) \
         UNION ALL SELECT 'row security', count(*) FROM pg_class c \
             WHERE c.oid IN (SELECT oid FROM rels) AND c.relrowsecurity \
         UNION ALL SELECT 'rules', count(*) FROM pg_rewrite w \
             WHERE w.ev_class IN (SELECT oid FROM rels WHERE relkind <> 'v' AND relkind <> 'm') \
         UNION ALL SELECT 'functions', count(*) FROM procs \
         UNION ALL SELECT 'types', count(*) FROM types \
         UNION ALL SELECT 'schemas', count(*) FROM schemas \
         UNION ALL SELECT 'extensions', count(*) FROM pg_extension \
         UNION ALL SELECT 'event triggers', count(*) FROM pg_event_trigger e \
             WHERE NOT EXISTS (SELECT 1 FROM ext \
                 WHERE ext.classid = 'pg_event_trigger'::regclass AND ext.objid = e.oid) \
         UNION ALL SELECT 'grants', \
             (SELECT count(*) FROM rels, aclexplode(relacl)) \
           + (SELECT count(*) FROM procs, aclexplode(proacl)) \
           + (SELECT count(*) FROM types, aclexplode(typacl)) \
           + (SELECT count(*) FROM schemas, aclexplode(nspacl)) \
           + (SELECT count(*) FROM pg_attribute a, aclexplode(a.attacl) \
              WHERE a.attrelid IN (SELECT oid FROM rels)) \
         UNION ALL SELECT 'default privileges', \
             (SELECT count(*) FROM pg_default_acl, aclexplode(defaclacl)) \
         UNION ALL SELECT 'large objects', count(*) FROM pg_largeobject_metadata"
    );
    let rows = client
        .query(&sql, &[])
        .await
        .map_err(PgError::sql("counting the database's objects"))?;
    rows.iter()
        .map(|r| {
            let kind: String = r.try_get(0).map_err(PgError::sql("counting objects"))?;
            let n: i64 = r.try_get(1).map_err(PgError::sql("counting objects"))?;
            Ok((kind, n.max(0) as u64))
        })
        .collect()
}

/// Every kind whose count differs, in words ("policies: 3 in the backup, 2
/// restored"); kinds in `skip`, and kinds either side does not know, are
/// not compared.
pub fn differences(
    expected: &BTreeMap<String, u64>,
    actual: &BTreeMap<String, u64>,
    skip: &[&str],
) -> Vec<String> {
    expected
        .iter()
        .filter(|(kind, _)| !skip.contains(&kind.as_str()))
        .filter_map(|(kind, want)| {
            let got = actual.get(kind)?;
            (got != want).then(|| format!("{kind}: {want} in the backup, {got} restored"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_each_kind_and_respect_skips() {
        let want: BTreeMap<String, u64> = [("policies", 3), ("grants", 10), ("tables", 5)]
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        let mut got = want.clone();
        assert!(differences(&want, &got, &[]).is_empty());
        got.insert("policies".into(), 2);
        got.insert("grants".into(), 0);
        assert_eq!(
            differences(&want, &got, PRIVILEGE_KINDS),
            vec!["policies: 3 in the backup, 2 restored"]
        );
        assert_eq!(differences(&want, &got, &[]).len(), 2);
        // A kind an older backup did not count is not compared.
        got.insert("rules".into(), 1);
        assert_eq!(differences(&want, &got, PRIVILEGE_KINDS).len(), 1);
    }
}
