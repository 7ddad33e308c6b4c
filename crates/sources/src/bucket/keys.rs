//! Object keys, their place in a snapshot's tree, and their place in a
//! local directory.
//!
//! A key becomes a tree path by splitting it at `/` and encoding each part
//! so that every key has its own path: `%` is written `%25`, an empty part
//! `%`, `.` `%2E` and `..` `%2E%2E`; an object whose path is also a
//! directory (keys `a` and `a/b`) gets a `%` after its last part. The key
//! itself is kept in the node ([`lifeboat_format::tree::ObjectAttrs::key`]),
//! so the encoding only has to be unique, not reversible.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

use super::error::{BucketError, Result};

fn encode_part(part: &str) -> String {
    match part {
        "" => "%".into(),
        "." => "%2E".into(),
        ".." => "%2E%2E".into(),
        p => p.replace('%', "%25").replace('\0', "%00"),
    }
}

fn encoded_parts(key: &str) -> Vec<String> {
    key.split('/').map(encode_part).collect()
}

/// The tree paths of every key's directories (its encoded proper prefixes).
pub fn directories<'a>(keys: impl Iterator<Item = &'a str>) -> HashSet<PathBuf> {
    let mut dirs = HashSet::new();
    for key in keys {
        let parts = encoded_parts(key);
        let mut p = PathBuf::new();
        for part in &parts[..parts.len().saturating_sub(1)] {
            p.push(part);
            dirs.insert(p.clone());
        }
    }
    dirs
}

/// Where `key` goes in the snapshot tree, given the tree's `directories`.
pub fn tree_path(key: &str, directories: &HashSet<PathBuf>) -> PathBuf {
    let mut p: PathBuf = encoded_parts(key).into_iter().collect();
    if directories.contains(&p)
        && let Some(name) = p.file_name()
    {
        let mut leaf = name.to_os_string();
        leaf.push("%");
        p.set_file_name(leaf);
    }
    p
}

/// Where `key` goes below a local directory: its parts as path components.
/// `Ok(None)` for a folder marker (a key ending in `/`), which becomes a
/// directory. Keys that would leave the directory or that a file system
/// cannot hold (`..`, `.`, empty parts, a leading `/`, NUL) are refused.
pub fn local_path(key: &str) -> Result<(PathBuf, bool)> {
    let (body, marker) = match key.strip_suffix('/') {
        Some(b) => (b, true),
        None => (key, false),
    };
    let refuse = |why: &str| {
        Err(BucketError::Invalid(format!(
            "key {key:?} cannot be restored into a directory: {why}"
        )))
    };
    if body.is_empty() {
        return refuse("it names no file");
    }
    if body.contains('\0') {
        return refuse("it contains a NUL byte");
    }
    let path = PathBuf::from(body);
    let parts: Vec<Component<'_>> = path.components().collect();
    let normal = parts.iter().all(|c| matches!(c, Component::Normal(_)));
    // `components()` folds `a//b` and drops `.`: compare part counts too.
    if !normal || parts.len() != body.split('/').count() {
        return refuse("it has an empty, '.' or '..' part, or starts with '/'");
    }
    Ok((path, marker))
}

/// True when `path` (relative) stays below its root.
pub fn stays_below(path: &Path) -> bool {
    path.components().all(|c| matches!(c, Component::Normal(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_gets_its_own_tree_path() {
        let keys = [
            "a", "a/b", "a/", "a//b", "%", "%25", ".", "..", "x/./y", "x/%2E/y", "a%",
        ];
        let dirs = directories(keys.iter().copied());
        let paths: HashSet<PathBuf> = keys.iter().map(|k| tree_path(k, &dirs)).collect();
        assert_eq!(paths.len(), keys.len(), "{paths:?}");
        for p in &paths {
            assert!(stays_below(p), "{p:?}");
            for c in p.components() {
                let s = c.as_os_str().to_string_lossy();
                assert!(!s.is_empty() && s != "." && s != "..", "{p:?}");
            }
        }
        assert_eq!(
            tree_path("photos/cat.png", &dirs),
            PathBuf::from("photos/cat.png")
        );
        assert_eq!(tree_path("a", &dirs), PathBuf::from("a%"));
    }

    #[test]
    fn local_paths_never_leave_the_directory() {
        assert_eq!(
            local_path("photos/2024/cat 1.png").ok(),
            Some((PathBuf::from("photos/2024/cat 1.png"), false))
        );
        assert_eq!(
            local_path("folder/").ok(),
            Some((PathBuf::from("folder"), true))
        );
        for bad in [
            "../../etc/passwd",
            "/etc/passwd",
            "a/../../b",
            "a//b",
            "./a",
            "a/.",
            "",
            "/",
            "a\0b",
        ] {
            assert!(local_path(bad).is_err(), "{bad:?} accepted");
        }
    }
}
