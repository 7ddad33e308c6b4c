//! Connection service files (`service=name` or `PGSERVICE`), as libpq reads
//! them: `PGSERVICEFILE` or `~/.pg_service.conf`, then
//! `$PGSYSCONFDIR/pg_service.conf` (Debian: `/etc/postgresql-common`).
//! A service is an INI section of `key=value` lines; what the connection
//! string itself says wins over the service.

use std::path::PathBuf;

use crate::error::{PgError, Result};
use crate::tls::key_values;

fn service_files() -> Vec<PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    let mut files = Vec::new();
    match env("PGSERVICEFILE") {
        Some(f) => files.push(PathBuf::from(f)),
        None => {
            if let Some(h) = env("HOME") {
                files.push(PathBuf::from(h).join(".pg_service.conf"));
            }
        }
    }
    let sysconf =
        env("PGSYSCONFDIR").map_or_else(|| PathBuf::from("/etc/postgresql-common"), PathBuf::from);
    files.push(sysconf.join("pg_service.conf"));
    files
}

/// The `key=value` lines of section `name` in `text`, if it has one.
fn section(text: &str, name: &str) -> Option<Vec<String>> {
    let mut inside = false;
    let mut found = None::<Vec<String>>;
    for line in text.lines() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        if let Some(header) = l.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            inside = header.trim() == name;
            if inside {
                found.get_or_insert_with(Vec::new);
            }
            continue;
        }
        if inside && let (Some(v), Some((k, val))) = (found.as_mut(), l.split_once('=')) {
            let val = val.trim().replace('\\', "\\\\").replace('\'', "\\'");
            v.push(format!("{}='{val}'", k.trim()));
        }
    }
    found
}

/// Replaces `service=name` (or `PGSERVICE`) in a key=value connection
/// string with the service's settings. URLs are returned unchanged.
pub fn expand(conninfo: &str) -> Result<String> {
    if conninfo.starts_with("postgres://") || conninfo.starts_with("postgresql://") {
        return Ok(conninfo.to_string());
    }
    let mut name = None;
    let mut kept = Vec::new();
    for (k, v, raw) in key_values(conninfo)? {
        if k == "service" {
            name = Some(v);
        } else {
            kept.push(raw);
        }
    }
    let Some(name) = name.or_else(|| std::env::var("PGSERVICE").ok().filter(|s| !s.is_empty()))
    else {
        return Ok(conninfo.to_string());
    };
    for file in service_files() {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        if let Some(settings) = section(&text, &name) {
            // The service's settings first: later ones (the string's) win.
            let mut all = settings;
            all.extend(kept);
            return Ok(all.join(" "));
        }
    }
    Err(PgError::Invalid(format!(
        "invalid connection string: service {name:?} is not defined in {}",
        service_files()
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(" or ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sections() {
        let text = "# comment\n[other]\nhost=x\n\n[app]\nhost = db.example.com\nport=6432\npassword=it's\n";
        assert_eq!(
            section(text, "app"),
            Some(vec![
                "host='db.example.com'".to_string(),
                "port='6432'".into(),
                "password='it\\'s'".into()
            ])
        );
        assert_eq!(section(text, "missing"), None);
    }
}
