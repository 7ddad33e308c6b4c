//! The password file, as libpq reads it: `PGPASSFILE`, else `~/.pgpass`;
//! lines of `hostname:port:database:username:password`, `*` matching
//! anything, `\:` and `\\` escaping; the first matching line wins. A file
//! that group or others can read is ignored (libpq warns and does the
//! same). Unix-socket connections match the host name `localhost`.

use std::path::{Path, PathBuf};

/// Where the password file is, if a location is known.
pub fn location() -> Option<PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    match env("PGPASSFILE") {
        Some(f) => Some(PathBuf::from(f)),
        None => env("HOME").map(|h| PathBuf::from(h).join(".pgpass")),
    }
}

/// What looking up a password found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// No file, or no line matched.
    None,
    /// The password of the first matching line.
    Found(String),
    /// The file was ignored: its permissions let others read it.
    TooOpen(PathBuf),
}

/// Looks up the password for a connection in the file at `path`.
pub fn lookup(path: &Path, host: &str, port: u16, database: &str, user: &str) -> Lookup {
    let Ok(meta) = std::fs::metadata(path) else {
        return Lookup::None;
    };
    if !meta.is_file() {
        return Lookup::None;
    }
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            return Lookup::TooOpen(path.to_path_buf());
        }
    }
    let Ok(text) = std::fs::read_to_string(path) else {
        return Lookup::None;
    };
    find(&text, host, port, database, user).map_or(Lookup::None, Lookup::Found)
}

/// The password of the first line of `text` that matches.
pub fn find(text: &str, host: &str, port: u16, database: &str, user: &str) -> Option<String> {
    let port = port.to_string();
    let wanted = [host, port.as_str(), database, user];
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let fields = split(l);
            (fields.len() == 5).then_some(fields)
        })
        .find(|f| {
            f.iter()
                .zip(wanted)
                .all(|(field, value)| field == "*" || field == value)
        })
        .and_then(|mut f| f.pop())
}

/// Splits one line at unescaped colons, removing the escapes.
fn split(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next()
                    && let Some(f) = fields.last_mut()
                {
                    f.push(next);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => {
                if let Some(f) = fields.last_mut() {
                    f.push(c);
                }
            }
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_matching_line_wins_with_wildcards_and_escapes() {
        let text = "# comment\n\
                    db.example.com:5432:app:alice:first\n\
                    *:*:*:alice:any\\:thing\n\
                    localhost:6543:*:bob:b\\\\ob\n";
        assert_eq!(
            find(text, "db.example.com", 5432, "app", "alice").as_deref(),
            Some("first")
        );
        assert_eq!(
            find(text, "db.example.com", 5433, "app", "alice").as_deref(),
            Some("any:thing")
        );
        assert_eq!(
            find(text, "localhost", 6543, "x", "bob").as_deref(),
            Some("b\\ob")
        );
        assert_eq!(find(text, "localhost", 6543, "x", "carol"), None);
        assert_eq!(find("a:b:c", "a", 1, "c", "d"), None);
    }

    #[test]
    fn a_file_others_can_read_is_ignored() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("pgpass");
        std::fs::write(&path, "*:*:*:*:secret\n").unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            lookup(&path, "h", 1, "d", "u"),
            Lookup::TooOpen(path.clone())
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            lookup(&path, "h", 1, "d", "u"),
            Lookup::Found("secret".into())
        );
    }

    proptest::proptest! {
        #[test]
        fn no_line_panics(text in "\\PC*") {
            let _ = find(&text, "h", 1, "d", "u");
        }
    }
}
