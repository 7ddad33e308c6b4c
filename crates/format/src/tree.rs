//! Tree blobs: one directory's listing, stored as JSON in a blob of type tree.
//!
//! Nodes are sorted by name bytes and serialized with a fixed field order, so
//! an unchanged directory always produces the same blob and deduplicates.

use serde::{Deserialize, Serialize};

use crate::error::FormatError;
use crate::id::Id;
use crate::names::ByteName;

/// What a node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// A regular file; `content` lists its chunks in order.
    File,
    /// A directory; `subtree` is its tree blob.
    Dir,
    /// A symbolic link; `target` is where it points.
    Symlink,
}

/// One entry of a directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// The entry's name (one path component).
    pub name: ByteName,
    /// File, directory or symlink.
    #[serde(rename = "type")]
    pub kind: NodeKind,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// Status-change time, nanoseconds since the Unix epoch (0 if unknown).
    /// Not restored; lets the next backup recognise an unchanged file.
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub ctime_ns: i64,
    /// Inode number on the source file system (0 if unknown), for the same purpose.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub inode: u64,
    /// The number of hard links to the file on the source file system, when
    /// more than one (0 otherwise): files sharing `device` and `inode` are
    /// restored as hard links to one another.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub links: u64,
    /// The source file system's device number, for files with `links`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub device: u64,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// File size in bytes (files only).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub size: u64,
    /// Chunk ids in file order (files only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<Id>,
    /// The data blobs that delta chunks of `content` are decoded against
    /// (files only; each listed once). Whatever keeps this file keeps them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bases: Vec<Id>,
    /// Tree blob of the directory (directories only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<Id>,
    /// Link target (symlinks only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<ByteName>,
    /// What the object store kept about the object (bucket snapshots only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjectAttrs>,
}

/// An object of a bucket snapshot: its key and what the object store kept
/// besides its bytes. The node's `mtime_ns` is the object's last-modified
/// time and `size` its length.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectAttrs {
    /// The key, relative to the backed-up prefix (the tree path is only a
    /// readable placement of it; restores use this).
    pub key: String,
    /// The ETag the store reported (quotes included), checked on every read.
    pub etag: String,
    /// BLAKE3 of the content, hex: what drills and restores compare against.
    pub hash: String,
    /// `Content-Type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// `Cache-Control`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    /// `Content-Disposition`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    /// `Content-Encoding`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    /// `Content-Language`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_language: Option<String>,
    /// User metadata (`x-amz-meta-*`), names lower-case without the prefix.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub metadata: std::collections::BTreeMap<String, String>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}

/// A directory listing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    /// Entries, sorted by name bytes, names unique.
    pub nodes: Vec<Node>,
}

impl Tree {
    /// Sorts the nodes into canonical order.
    pub fn sort(&mut self) {
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
    }

    /// Canonical JSON encoding (nodes must already be sorted).
    pub fn to_json(&self) -> Result<Vec<u8>, FormatError> {
        crate::error::encode_json("tree", self, false)
    }

    /// Decodes and validates a tree: every name is a safe single component,
    /// names are sorted and unique, and each node has the fields its kind needs.
    pub fn from_json(bytes: &[u8]) -> Result<Self, FormatError> {
        let tree: Tree = serde_json::from_slice(bytes).map_err(|source| FormatError::Json {
            what: "tree",
            source,
        })?;
        let invalid = |reason: String| FormatError::Invalid {
            what: "tree",
            reason,
        };
        for (i, n) in tree.nodes.iter().enumerate() {
            if !n.name.is_safe_component() {
                return Err(invalid(format!("unsafe entry name {:?}", n.name)));
            }
            if i > 0 && tree.nodes[i - 1].name >= n.name {
                return Err(invalid(format!(
                    "entries not sorted or duplicated at {:?}",
                    n.name
                )));
            }
            let ok = match n.kind {
                NodeKind::File => n.subtree.is_none() && n.target.is_none(),
                NodeKind::Dir => {
                    n.subtree.is_some()
                        && n.content.is_empty()
                        && n.bases.is_empty()
                        && n.object.is_none()
                }
                NodeKind::Symlink => {
                    n.target.is_some()
                        && n.content.is_empty()
                        && n.bases.is_empty()
                        && n.object.is_none()
                }
            };
            if !ok {
                return Err(invalid(format!(
                    "entry {:?} has fields that do not fit its type",
                    n.name
                )));
            }
        }
        Ok(tree)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str) -> Node {
        Node {
            name: name.into(),
            kind: NodeKind::File,
            mode: 0o644,
            mtime_ns: 1,
            ctime_ns: 2,
            inode: 3,
            links: 0,
            device: 0,
            uid: 0,
            gid: 0,
            size: 3,
            content: vec![Id::from_bytes([1; 32])],
            bases: Vec::new(),
            subtree: None,
            target: None,
            object: None,
        }
    }

    #[test]
    fn round_trip_and_canonical_order() {
        let mut t = Tree {
            nodes: vec![file("b"), file("a")],
        };
        t.sort();
        let back = Tree::from_json(&t.to_json().unwrap_or_default()).unwrap_or_default();
        assert_eq!(back, t);
        assert_eq!(back.nodes[0].name, "a".into());
    }

    #[test]
    fn rejects_traversal_duplicates_and_misshapen_nodes() {
        for bad in ["..", "a/b", "", "."] {
            let t = Tree {
                nodes: vec![file(bad)],
            };
            assert!(
                Tree::from_json(&t.to_json().unwrap_or_default()).is_err(),
                "{bad:?} accepted"
            );
        }
        let t = Tree {
            nodes: vec![file("a"), file("a")],
        };
        assert!(Tree::from_json(&t.to_json().unwrap_or_default()).is_err());
        let mut dir = file("d");
        dir.kind = NodeKind::Dir;
        let t = Tree { nodes: vec![dir] };
        assert!(Tree::from_json(&t.to_json().unwrap_or_default()).is_err());
        assert!(Tree::from_json(b"[1,2").is_err());
    }
}
