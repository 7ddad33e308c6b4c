//! Changes to the settings file, for the audit log: a digest of each
//! top-level section (`[retention]`, `[[source]] "app"`, …), compared with
//! the digests the daemon last recorded, at start and while it runs. Only
//! digests are kept, never the settings' text.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lifeboat_repo::audit::AuditRecord;

/// The settings file the daemon was started with.
#[derive(Clone, Debug)]
pub struct SettingsFile {
    /// Where it is.
    pub path: PathBuf,
    /// Its section digests when the daemon read it.
    pub loaded: BTreeMap<String, String>,
}

impl SettingsFile {
    /// The file at `path` as read now (`text`).
    pub fn new(path: PathBuf, text: &str) -> Self {
        Self {
            path,
            loaded: section_digests(text),
        }
    }

    /// The file's digests as it is on disk now (`None` when it cannot be read).
    pub fn on_disk(&self) -> Option<BTreeMap<String, String>> {
        std::fs::read_to_string(&self.path)
            .ok()
            .map(|t| section_digests(&t))
    }
}

/// A digest (BLAKE3, hex, 16 digits) per top-level section; an entry of an
/// array of tables is named by its `name` when it has one, else its
/// position. Text that is not TOML digests as one section, `(unparsed)`.
pub fn section_digests(text: &str) -> BTreeMap<String, String> {
    let digest = |v: &str| blake3::hash(v.as_bytes()).to_hex()[..16].to_string();
    let Ok(table) = text.parse::<toml::Table>() else {
        return BTreeMap::from([("(unparsed)".to_string(), digest(text))]);
    };
    let mut out = BTreeMap::new();
    for (key, value) in &table {
        match value {
            toml::Value::Array(items) if items.iter().all(toml::Value::is_table) => {
                for (i, item) in items.iter().enumerate() {
                    let name = item
                        .get("name")
                        .and_then(toml::Value::as_str)
                        .map_or_else(|| format!("{key}[{i}]"), |n| format!("{key} {n:?}"));
                    out.insert(name, digest(&item.to_string()));
                }
            }
            other => {
                out.insert(key.clone(), digest(&other.to_string()));
            }
        }
    }
    out
}

/// The sections added, removed or changed from `old` to `new`, each with
/// what happened to it.
pub fn changed_sections(
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in new {
        match old.get(k) {
            None => out.push(format!("{k} added")),
            Some(o) if o != v => out.push(format!("{k} changed")),
            Some(_) => {}
        }
    }
    for k in old.keys().filter(|k| !new.contains_key(*k)) {
        out.push(format!("{k} removed"));
    }
    out
}

/// Who last wrote `path`: its owner's account name (or uid), and when.
fn last_writer(path: &Path) -> (String, String) {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return ("unknown".into(), "unknown".into());
    };
    let owner = account_name(meta.uid());
    let when = meta
        .modified()
        .ok()
        .map(|t| chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339())
        .unwrap_or_default();
    (owner, when)
}

/// The account name of `uid` from the user database, else the number.
fn account_name(uid: u32) -> String {
    uzers::get_user_by_uid(uid)
        .map(|u| u.name().to_string_lossy().into_owned())
        .unwrap_or_else(|| format!("uid {uid}"))
}

/// The audit record of a settings change: `applied` when the daemon runs
/// with the new settings (it read them at start), else it still runs with
/// the old ones until restarted.
pub fn change_record(path: &Path, changed: &[String], applied: bool, host: &str) -> AuditRecord {
    let (owner, modified) = last_writer(path);
    AuditRecord {
        actor: format!("lifeboat serve@{host}"),
        from: host.to_string(),
        action: "settings changed".into(),
        args: vec![path.display().to_string()],
        outcome: "ok".into(),
        exit: 0,
        error: None,
        details: BTreeMap::from([
            ("sections".to_string(), changed.join(", ")),
            ("file_owner".to_string(), owner),
            ("modified".to_string(), modified),
            (
                "applied".to_string(),
                if applied {
                    "yes: the daemon started with them".to_string()
                } else {
                    "not yet: the daemon runs with the settings it started with until restarted"
                        .to_string()
                },
            ),
        ]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_source_and_a_new_section_are_named_and_others_are_not() {
        let before = section_digests(
            "[retention]\nkeep_daily = 30\n[[source]]\nname = \"app\"\ndb = \"a\"\n[[source]]\nname = \"etc\"\n",
        );
        let after = section_digests(
            "[retention]\nkeep_daily = 30\n[[source]]\nname = \"app\"\ndb = \"b\"\n[[source]]\nname = \"etc\"\n[approvals]\nrequired = 2\n",
        );
        assert_eq!(
            changed_sections(&before, &after),
            ["approvals added", "source \"app\" changed"]
        );
        assert!(changed_sections(&after, &after).is_empty());
        assert_eq!(
            changed_sections(&after, &section_digests("not = [toml")),
            [
                "(unparsed) added",
                "approvals removed",
                "retention removed",
                "source \"app\" removed",
                "source \"etc\" removed"
            ]
        );
    }
}
