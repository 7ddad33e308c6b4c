//! Putting a restore target back as it was when a restore fails part way.
//!
//! Before writing, the restore notes what the target holds (schemas,
//! extensions, relations, routines, types, event triggers, large objects,
//! roles); when a step fails, everything that appeared since is dropped and
//! the tables it loaded rows into are emptied again, so a failed restore
//! leaves no half-loaded database behind. (With `--clean`, objects that
//! existed were already replaced and cannot be brought back; the target is
//! then left empty of what the restore made.)

use std::collections::BTreeSet;

use tokio_postgres::Client;

use super::{QualifiedName, USER_SCHEMAS, quote_ident};
use crate::error::{PgError, Result};

/// What the target held before the restore wrote anything.
#[derive(Clone, Debug, Default)]
pub struct Before {
    schemas: BTreeSet<u32>,
    extensions: BTreeSet<u32>,
    relations: BTreeSet<u32>,
    routines: BTreeSet<u32>,
    types: BTreeSet<u32>,
    event_triggers: BTreeSet<u32>,
    large_objects: BTreeSet<u32>,
    roles: BTreeSet<u32>,
}

async fn oids(client: &Client, sql: &str) -> Result<BTreeSet<u32>> {
    let rows = client
        .query(sql, &[])
        .await
        .map_err(PgError::sql("noting what the target holds"))?;
    Ok(rows.iter().map(|r| r.get::<_, u32>(0)).collect())
}

const SCHEMAS: &str = "SELECT n.oid FROM pg_namespace n WHERE";
const RELATIONS: &str = "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND";
const ROUTINES: &str =
    "SELECT p.oid FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE";
const TYPES: &str = "SELECT t.oid FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
     LEFT JOIN pg_class r ON r.oid = t.typrelid \
     WHERE t.typcategory <> 'A' AND (t.typrelid = 0 OR r.relkind = 'c') AND";

impl Before {
    /// Notes what the connected target holds now.
    pub async fn capture(client: &Client) -> Result<Self> {
        Ok(Self {
            schemas: oids(client, &format!("{SCHEMAS} {USER_SCHEMAS}")).await?,
            extensions: oids(client, "SELECT oid FROM pg_extension").await?,
            relations: oids(client, &format!("{RELATIONS} {USER_SCHEMAS}")).await?,
            routines: oids(client, &format!("{ROUTINES} {USER_SCHEMAS}")).await?,
            types: oids(client, &format!("{TYPES} {USER_SCHEMAS}")).await?,
            event_triggers: oids(client, "SELECT oid FROM pg_event_trigger").await?,
            large_objects: oids(client, "SELECT oid FROM pg_largeobject_metadata").await?,
            roles: oids(client, "SELECT oid FROM pg_roles").await?,
        })
    }

    /// Drops everything that appeared since [`Before::capture`] and empties
    /// `loaded` (tables that existed and got rows). Returns what could not
    /// be undone, in words.
    pub async fn undo(&self, client: &Client, loaded: &[QualifiedName]) -> Vec<String> {
        let mut problems = Vec::new();
        let run = |sql: String| async move { (client.batch_execute(&sql).await, sql) };
        let mut steps: Vec<String> = Vec::new();
        for t in loaded {
            steps.push(format!("TRUNCATE {}", t.sql()));
        }
        let named = |sql: String| async move {
            client
                .query(&sql, &[])
                .await
                .map(|rows| {
                    rows.iter()
                        .map(|r| (r.get::<_, u32>(0), r.get::<_, String>(1)))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        };
        let new = |set: &BTreeSet<u32>, found: Vec<(u32, String)>| -> Vec<String> {
            found
                .into_iter()
                .filter(|(oid, _)| !set.contains(oid))
                .map(|(_, sql)| sql)
                .collect()
        };
        steps.extend(new(
            &self.event_triggers,
            named("SELECT oid, format('DROP EVENT TRIGGER IF EXISTS %I', evtname) FROM pg_event_trigger".into())
                .await,
        ));
        steps.extend(new(
            &self.extensions,
            named("SELECT oid, format('DROP EXTENSION IF EXISTS %I CASCADE', extname) FROM pg_extension".into())
                .await,
        ));
        steps.extend(new(
            &self.schemas,
            named(format!(
                "SELECT n.oid, format('DROP SCHEMA IF EXISTS %I CASCADE', n.nspname) FROM pg_namespace n WHERE {USER_SCHEMAS}"
            ))
            .await,
        ));
        steps.extend(new(
            &self.relations,
            named(format!(
                "SELECT c.oid, format('DROP %s IF EXISTS %I.%I CASCADE', CASE c.relkind WHEN 'v' THEN 'VIEW' \
                 WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE' \
                 ELSE 'TABLE' END, n.nspname, c.relname) FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND {USER_SCHEMAS}"
            ))
            .await,
        ));
        steps.extend(new(
            &self.routines,
            named(format!(
                "SELECT p.oid, format('DROP ROUTINE IF EXISTS %s CASCADE', p.oid::regprocedure) FROM pg_proc p \
                 JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {USER_SCHEMAS}"
            ))
            .await,
        ));
        steps.extend(new(
            &self.types,
            named(format!(
                "SELECT t.oid, format('DROP %s IF EXISTS %s CASCADE', CASE t.typtype WHEN 'd' THEN 'DOMAIN' \
                 ELSE 'TYPE' END, t.oid::regtype) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
                 LEFT JOIN pg_class r ON r.oid = t.typrelid \
                 WHERE t.typcategory <> 'A' AND (t.typrelid = 0 OR r.relkind = 'c') AND {USER_SCHEMAS}"
            ))
            .await,
        ));
        steps.extend(new(
            &self.large_objects,
            named("SELECT oid, format('SELECT pg_catalog.lo_unlink(%s)', oid) FROM pg_largeobject_metadata".into())
                .await,
        ));
        let roles = new(
            &self.roles,
            named("SELECT oid, rolname::text FROM pg_roles".into()).await,
        );
        for r in &roles {
            // Whatever the new role still owns here goes with it.
            steps.push(format!("DROP OWNED BY {}", quote_ident(r)));
            steps.push(super::roles::drop_sql(r));
        }
        for sql in steps {
            let (result, sql) = run(sql).await;
            if let Err(e) = result {
                // An object dropped with an earlier CASCADE is simply gone.
                let reason = super::roles::db_reason(&e);
                if !reason.contains("does not exist") {
                    problems.push(format!("{sql}: {reason}"));
                }
            }
        }
        problems
    }
}
