//! The roles of a logical backup (`roles.sql`, from `pg_dumpall
//! --roles-only`), read statement by statement and created where the
//! target lacks them.
//!
//! Roles are the cluster's, not the database's: a restore creates the
//! roles that are missing (with their attributes, settings, comments and
//! memberships) and never alters a role that exists, so restoring into a
//! shared server cannot change who may do what there. Memberships are
//! granted only to roles this restore created.

use std::collections::BTreeSet;

use tokio_postgres::Client;

use super::{quote_ident, quote_literal};
use crate::error::{PgError, Result};

/// One role as the dump defines it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredRole {
    /// Its name.
    pub name: String,
    /// `CREATE ROLE`, then `ALTER ROLE … WITH`, settings, comments, labels.
    pub statements: Vec<String>,
}

impl StoredRole {
    /// True if the role may log in (`LOGIN` among its attributes).
    pub fn can_login(&self) -> bool {
        self.statements
            .iter()
            .any(|s| s.starts_with("ALTER ROLE") && s.contains(" LOGIN"))
    }
}

/// A membership grant (`GRANT role TO member …`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Membership {
    /// The role receiving the membership.
    pub member: String,
    /// The statement.
    pub sql: String,
}

/// The roles of a `pg_dumpall --roles-only` script.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RolesDump {
    /// Roles in the order they were dumped.
    pub roles: Vec<StoredRole>,
    /// Membership grants.
    pub memberships: Vec<Membership>,
}

/// Splits SQL text into statements at `;` outside quotes, leaving out
/// comment lines and psql meta-commands (`\restrict`).
pub fn statements(text: &str) -> Vec<String> {
    let body: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("--") && !l.starts_with('\\'))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    for c in body.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == ';' => {
                let s = cur.trim().to_string();
                if !s.is_empty() {
                    out.push(s);
                }
                cur.clear();
                continue;
            }
            None => {}
        }
        cur.push(c);
    }
    let s = cur.trim().to_string();
    if !s.is_empty() {
        out.push(s);
    }
    out
}

/// Reads the identifier at the start of `s` (quoted or bare); returns it
/// and the rest.
fn ident(s: &str) -> Option<(String, &str)> {
    let s = s.trim_start();
    if let Some(rest) = s.strip_prefix('"') {
        let mut name = String::new();
        let mut chars = rest.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c == '"' {
                if chars.peek().is_some_and(|(_, n)| *n == '"') {
                    name.push('"');
                    chars.next();
                } else {
                    return Some((name, &rest[i + 1..]));
                }
            } else {
                name.push(c);
            }
        }
        None
    } else {
        let end = s
            .find(|c: char| c.is_whitespace() || c == ';' || c == ',')
            .unwrap_or(s.len());
        (end > 0).then(|| (s[..end].to_string(), &s[end..]))
    }
}

/// Parses a `pg_dumpall --roles-only` script.
pub fn parse(text: &str) -> RolesDump {
    let mut dump = RolesDump::default();
    let role_of = |dump: &mut RolesDump, name: String, sql: String| match dump
        .roles
        .iter_mut()
        .find(|r| r.name == name)
    {
        Some(r) => r.statements.push(sql),
        None => dump.roles.push(StoredRole {
            name,
            statements: vec![sql],
        }),
    };
    for sql in statements(text) {
        let upper = sql.to_ascii_uppercase();
        let after = |prefix: &str| {
            upper
                .starts_with(prefix)
                .then(|| ident(&sql[prefix.len()..]))
                .flatten()
        };
        if let Some((name, _)) = after("CREATE ROLE ") {
            role_of(&mut dump, name, sql);
        } else if let Some((name, _)) = after("ALTER ROLE ") {
            role_of(&mut dump, name, sql);
        } else if let Some((name, _)) = after("COMMENT ON ROLE ") {
            role_of(&mut dump, name, sql);
        } else if upper.starts_with("SECURITY LABEL ")
            && let Some(i) = upper.find(" ON ROLE ")
            && let Some((name, _)) = ident(&sql[i + " ON ROLE ".len()..])
        {
            role_of(&mut dump, name, sql);
        } else if upper.starts_with("GRANT ")
            && let Some(i) = upper.find(" TO ")
            && let Some((member, _)) = ident(&sql[i + " TO ".len()..])
        {
            dump.memberships.push(Membership { member, sql });
        }
    }
    dump
}

/// What creating the missing roles did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RolesOutcome {
    /// Roles created.
    pub created: Vec<String>,
    /// Roles that existed and were left as they are.
    pub existing: Vec<String>,
    /// Statements that failed, with the server's reason.
    pub failures: Vec<String>,
}

/// The roles of the target server.
pub async fn existing_roles(client: &Client) -> Result<BTreeSet<String>> {
    let rows = client
        .query("SELECT rolname::text FROM pg_roles", &[])
        .await
        .map_err(PgError::sql("listing the target's roles"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Creates the roles of `dump` that the target lacks, with their
/// memberships. Roles that exist are not touched.
pub async fn create_missing(client: &Client, dump: &RolesDump) -> Result<RolesOutcome> {
    let have = existing_roles(client).await?;
    let mut out = RolesOutcome::default();
    for role in &dump.roles {
        if have.contains(&role.name) {
            out.existing.push(role.name.clone());
            continue;
        }
        let mut created = false;
        for sql in &role.statements {
            match client.batch_execute(sql).await {
                Ok(()) => created |= sql.to_ascii_uppercase().starts_with("CREATE ROLE"),
                Err(e) => {
                    out.failures
                        .push(format!("role {}: {sql}: {}", role.name, db_reason(&e)))
                }
            }
        }
        if created {
            out.created.push(role.name.clone());
        }
    }
    for m in &dump.memberships {
        if !out.created.contains(&m.member) {
            continue;
        }
        if let Err(e) = client.batch_execute(&m.sql).await {
            out.failures
                .push(format!("membership {}: {}", m.sql, db_reason(&e)));
        }
    }
    Ok(out)
}

/// The server's own words for a failed statement.
pub(crate) fn db_reason(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_else(|| e.to_string())
}

/// A psql script that creates the roles of `dump` only where missing and
/// grants memberships only to roles it created, for plain exports.
pub fn create_missing_script(dump: &RolesDump) -> String {
    let mut out = String::from(
        "--\n-- Roles (created only where missing; existing roles are left as they are)\n--\n\n\
         CREATE TEMPORARY TABLE lifeboat_created_roles (name text);\n",
    );
    for role in &dump.roles {
        let body: String = role
            .statements
            .iter()
            .map(|s| format!("    EXECUTE {};\n", quote_literal(s)))
            .collect();
        out.push_str(&format!(
            "DO $lifeboat$ BEGIN\n  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = {name}) THEN\n{body}    INSERT INTO lifeboat_created_roles VALUES ({name});\n  END IF;\nEND $lifeboat$;\n",
            name = quote_literal(&role.name)
        ));
    }
    for m in &dump.memberships {
        out.push_str(&format!(
            "DO $lifeboat$ BEGIN\n  IF EXISTS (SELECT FROM lifeboat_created_roles WHERE name = {}) THEN\n    EXECUTE {};\n  END IF;\nEND $lifeboat$;\n",
            quote_literal(&m.member),
            quote_literal(&m.sql)
        ));
    }
    out.push_str("DROP TABLE lifeboat_created_roles;\n\n");
    out
}

/// `DROP ROLE` for roles a failed restore created.
pub(crate) fn drop_sql(name: &str) -> String {
    format!("DROP ROLE IF EXISTS {}", quote_ident(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMPALL: &str = "--\n-- PostgreSQL database cluster dump\n--\n\n\\restrict abc\n\n\
        SET default_transaction_read_only = off;\n\nSET client_encoding = 'UTF8';\n\n\
        --\n-- Roles\n--\n\n\
        CREATE ROLE anon;\n\
        ALTER ROLE anon WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS;\n\
        CREATE ROLE \"Odd \"\"Name\";\n\
        ALTER ROLE \"Odd \"\"Name\" WITH LOGIN PASSWORD 'SCRAM-SHA-256$x;y';\n\
        COMMENT ON ROLE \"Odd \"\"Name\" IS 'has a ; in it';\n\
        ALTER ROLE anon SET statement_timeout TO '3s';\n\n\
        --\n-- Role memberships\n--\n\n\
        GRANT anon TO \"Odd \"\"Name\" GRANTED BY postgres;\n\n\\unrestrict abc\n";

    #[test]
    fn reads_roles_settings_comments_and_memberships() {
        let d = parse(DUMPALL);
        let names: Vec<&str> = d.roles.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["anon", "Odd \"Name"]);
        assert_eq!(d.roles[0].statements.len(), 3, "{:?}", d.roles[0]);
        assert_eq!(d.roles[1].statements.len(), 3, "{:?}", d.roles[1]);
        assert!(d.roles[1].statements[2].contains("has a ; in it"));
        assert!(d.roles[1].can_login());
        assert!(!d.roles[0].can_login());
        assert_eq!(d.memberships.len(), 1);
        assert_eq!(d.memberships[0].member, "Odd \"Name");
        let script = create_missing_script(&d);
        assert!(script.contains("WHERE rolname = 'Odd \"Name'"), "{script}");
        assert!(!script.contains("\\restrict"));
    }
}
