//! Which restore destinations are protected: the data directory, databases
//! and bucket of every `[[source]]` with `protected = true`.

use std::path::Path;

use crate::config::SourceConfig;

/// Where a restore writes.
#[derive(Clone, Copy, Debug)]
pub enum Destination<'a> {
    /// A PostgreSQL data directory (physical restore).
    Directory(&'a Path),
    /// A database, as a connection string (logical restore).
    Database(&'a str),
    /// A bucket, `s3://BUCKET[/PREFIX]` or its name.
    Bucket(&'a str),
}

/// The protected source `dest` belongs to, if any.
pub fn protected_by<'a>(
    sources: &'a [SourceConfig],
    dest: Destination,
) -> Option<&'a SourceConfig> {
    sources.iter().filter(|s| s.protected).find(|s| match dest {
        Destination::Directory(d) => s.pgdata.as_deref().is_some_and(|p| same_dir(p, d)),
        Destination::Database(conninfo) => {
            let want = database_of(conninfo);
            want.is_some() && s.db.values().iter().any(|c| database_of(c) == want)
        }
        Destination::Bucket(b) => s
            .bucket
            .as_deref()
            .is_some_and(|p| bucket_name(p) == bucket_name(b)),
    })
}

fn same_dir(a: &Path, b: &Path) -> bool {
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.components().collect());
    canon(a) == canon(b)
}

/// (first host, first port, database) of a connection string.
fn database_of(conninfo: &str) -> Option<(String, u16, String)> {
    let c = lifeboat_postgres::sql::config(Some(conninfo), None).ok()?;
    let host = match c.get_hosts().first()? {
        tokio_postgres::config::Host::Tcp(h) => {
            if h == "localhost" {
                "127.0.0.1".to_string()
            } else {
                h.clone()
            }
        }
        tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
    };
    let port = c.get_ports().first().copied().unwrap_or(5432);
    Some((host, port, c.get_dbname()?.to_string()))
}

fn bucket_name(b: &str) -> &str {
    let b = b.strip_prefix("s3://").unwrap_or(b);
    b.split('/').next().unwrap_or(b)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sources() -> Vec<SourceConfig> {
        let text = r#"
            [[source]]
            name = "prod"
            kind = "postgres-logical"
            db = "host=10.0.0.5 port=5433 dbname=app user=lifeboat"
            protected = true
            [[source]]
            name = "files"
            kind = "bucket"
            bucket = "s3://uploads/images"
            protected = true
            [[source]]
            name = "staging"
            kind = "postgres-logical"
            db = "host=10.0.0.6 dbname=app"
        "#;
        #[derive(serde::Deserialize)]
        struct F {
            source: Vec<SourceConfig>,
        }
        toml::from_str::<F>(text).unwrap().source
    }

    #[test]
    fn the_same_database_written_differently_is_protected_and_others_are_not() {
        let s = sources();
        let hit = |d| protected_by(&s, d).map(|s| s.name.get_ref().clone());
        assert_eq!(
            hit(Destination::Database(
                "postgresql://admin@10.0.0.5:5433/app"
            )),
            Some("prod".into())
        );
        assert_eq!(
            hit(Destination::Database("host=10.0.0.5 port=5433 dbname=app2")),
            None
        );
        assert_eq!(
            hit(Destination::Database("host=10.0.0.6 dbname=app")),
            None,
            "not protected"
        );
        assert_eq!(
            hit(Destination::Bucket("s3://uploads")),
            Some("files".into())
        );
        assert_eq!(hit(Destination::Bucket("s3://uploads-copy/x")), None);
    }
}
