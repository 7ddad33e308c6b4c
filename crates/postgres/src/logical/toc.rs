//! Reading the table of contents `pg_restore --list` prints, and choosing
//! the entries a selective restore needs (a list for `pg_restore --use-list`).
//!
//! A line reads `215; 1259 16390 TABLE public accounts alice`: dump id,
//! catalog and object ids, the entry type (which may hold spaces), the
//! schema (`-` for none), the tag, and the owner. Tags of entries that
//! belong to a table start with the table's name (`accounts accounts_pkey`
//! for its constraint); an index's tag is its own name, so indexes are
//! matched through the manifest's index list.

use std::collections::HashSet;

use super::{IndexOf, QualifiedName};

/// Entry types, longest first so that "FK CONSTRAINT" wins over "CONSTRAINT".
const TYPES: &[&str] = &[
    "MATERIALIZED VIEW DATA",
    "SEQUENCE OWNED BY",
    "MATERIALIZED VIEW",
    "DEFAULT ACL",
    "FK CONSTRAINT",
    "ROW SECURITY",
    "SEQUENCE SET",
    "TABLE ATTACH",
    "INDEX ATTACH",
    "TABLE DATA",
    "CONSTRAINT",
    "SEQUENCE",
    "TRIGGER",
    "DEFAULT",
    "COMMENT",
    "POLICY",
    "INDEX",
    "TABLE",
    "RULE",
    "ACL",
];

/// One entry of the list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TocEntry {
    /// The line as printed (fed back to `pg_restore --use-list`).
    pub line: String,
    /// Entry type, e.g. `TABLE`, `FK CONSTRAINT`, or another type as printed.
    pub kind: String,
    /// Schema, empty for none.
    pub schema: String,
    /// Tag: the object's name, prefixed by its table's for table parts.
    pub tag: String,
    /// The owning role, for the entry types that have one (else empty).
    pub owner: String,
}

/// Entry types whose last word is always their owner.
const OWNED: &[&str] = &[
    "TABLE",
    "SEQUENCE",
    "VIEW",
    "MATERIALIZED VIEW",
    "FUNCTION",
    "PROCEDURE",
    "TYPE",
    "DOMAIN",
    "SCHEMA",
];

/// Parses `pg_restore --list` output; comments and blank lines are skipped,
/// as are lines in a form this parser does not know.
pub fn parse(list: &str) -> Vec<TocEntry> {
    list.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<TocEntry> {
    let l = line.trim();
    if l.is_empty() || l.starts_with(';') {
        return None;
    }
    // "<id>; <catalog oid> <oid> <rest>"
    let (_, after) = l.split_once("; ")?;
    let mut it = after.splitn(3, ' ');
    let (_cat, _oid, rest) = (it.next()?, it.next()?, it.next()?);
    let kind = TYPES
        .iter()
        .find(|t| rest.starts_with(**t) && rest[t.len()..].starts_with(' '))
        .map(|t| t.to_string())
        .unwrap_or_else(|| rest.split(' ').next().unwrap_or_default().to_string());
    let rest = rest[kind.len()..].trim_start();
    // "<schema> <tag…> <owner>"; the owner is the last word (may be absent
    // for some entry types, in which case the tag keeps one word too many:
    // harmless for matching on its first word).
    let (schema, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let (tag, owner) = match rest.rsplit_once(' ') {
        Some((tag, owner)) => (tag, owner),
        None => (rest, ""),
    };
    let owner = if OWNED.contains(&kind.as_str()) {
        owner.to_string()
    } else {
        String::new()
    };
    Some(TocEntry {
        line: line.to_string(),
        kind,
        schema: if schema == "-" {
            String::new()
        } else {
            schema.to_string()
        },
        tag: tag.to_string(),
        owner,
    })
}

/// What a selective restore wants.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Tables, whole.
    pub tables: Vec<QualifiedName>,
    /// Schemas, with everything in them.
    pub schemas: Vec<String>,
}

impl Selection {
    /// True when nothing was selected (restore everything).
    pub fn is_everything(&self) -> bool {
        self.tables.is_empty() && self.schemas.is_empty()
    }

    /// True when table `t`'s data is wanted.
    pub fn wants_table(&self, t: &QualifiedName) -> bool {
        self.is_everything() || self.schemas.contains(&t.schema) || self.tables.contains(t)
    }
}

/// The entries `selection` needs: for a schema everything in it (and the
/// schema itself); for a table its definition, the sequences it owns, its
/// defaults, constraints, indexes, triggers, policies, comments and grants.
pub fn select<'a>(
    entries: &'a [TocEntry],
    selection: &Selection,
    indexes: &[IndexOf],
    owned_sequences: &[QualifiedName],
) -> Vec<&'a TocEntry> {
    let index_names: HashSet<(&str, &str)> = indexes
        .iter()
        .filter(|i| selection.tables.contains(&i.table))
        .map(|i| (i.index.schema.as_str(), i.index.name.as_str()))
        .collect();
    let table_of_tag = |schema: &str, tag: &str| {
        selection.tables.iter().any(|t| {
            t.schema == schema
                && (tag == t.name
                    || tag
                        .strip_prefix(t.name.as_str())
                        .is_some_and(|r| r.starts_with(' ')))
        })
    };
    let is_sequence = |schema: &str, name: &str| {
        owned_sequences
            .iter()
            .any(|s| s.schema == schema && s.name == name)
    };
    entries
        .iter()
        .filter(|e| {
            if e.kind == "SCHEMA" {
                return selection.schemas.contains(&e.tag);
            }
            if selection.schemas.contains(&e.schema) {
                return true;
            }
            match e.kind.as_str() {
                "TABLE" | "DEFAULT" | "CONSTRAINT" | "FK CONSTRAINT" | "TRIGGER" | "POLICY"
                | "ROW SECURITY" | "RULE" => table_of_tag(&e.schema, &e.tag),
                "INDEX" => index_names.contains(&(e.schema.as_str(), e.tag.as_str())),
                "SEQUENCE" | "SEQUENCE OWNED BY" => is_sequence(&e.schema, &e.tag),
                "COMMENT" | "ACL" => {
                    // Tags like "TABLE accounts" or "COLUMN accounts.id".
                    let target = e
                        .tag
                        .strip_prefix("TABLE ")
                        .or_else(|| e.tag.strip_prefix("COLUMN "))
                        .map(|t| t.split('.').next().unwrap_or(t));
                    target.is_some_and(|t| table_of_tag(&e.schema, t))
                }
                _ => false,
            }
        })
        .collect()
}

/// The entries that build `table`'s own indexes: its `INDEX` entries and
/// its index-backed `CONSTRAINT`s (primary key, unique, exclusion). They
/// need nothing but the table's rows, so a restore can run them as soon as
/// the rows are in, while other tables still load; foreign keys, triggers,
/// policies and the rest wait for every table.
pub fn index_builds<'a>(
    entries: &[&'a TocEntry],
    table: &QualifiedName,
    indexes: &[IndexOf],
) -> Vec<&'a TocEntry> {
    let names: HashSet<&str> = indexes
        .iter()
        .filter(|i| &i.table == table && i.index.schema == table.schema)
        .map(|i| i.index.name.as_str())
        .collect();
    entries
        .iter()
        .copied()
        .filter(|e| e.schema == table.schema)
        .filter(|e| match e.kind.as_str() {
            "INDEX" => names.contains(e.tag.as_str()),
            "CONSTRAINT" => e
                .tag
                .strip_prefix(table.name.as_str())
                .is_some_and(|r| r.starts_with(' ')),
            _ => false,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = ";
; Archive created at 2026-11-23 02:00:00 UTC
;
215; 1259 16390 TABLE public accounts alice
216; 1259 16395 SEQUENCE public accounts_id_seq alice
217; 0 0 SEQUENCE OWNED BY public accounts_id_seq alice
3300; 2604 16396 DEFAULT public accounts id alice
3301; 2606 16400 CONSTRAINT public accounts accounts_pkey alice
3302; 1259 16401 INDEX public accounts_name_idx alice
3303; 2606 16402 FK CONSTRAINT public orders orders_account_fkey alice
3304; 2620 16403 TRIGGER public accounts audit_trg alice
3305; 3256 16404 POLICY public accounts own_rows alice
3306; 0 16390 ROW SECURITY public accounts alice
3307; 0 0 COMMENT public TABLE accounts alice
3308; 0 0 ACL public TABLE accounts alice
3309; 1259 16410 TABLE public accounts_archive alice
8; 2615 2200 SCHEMA - public alice
9; 2615 16500 SCHEMA - audit alice
3310; 1259 16501 TABLE audit log alice
";

    fn q(s: &str, n: &str) -> QualifiedName {
        QualifiedName {
            schema: s.into(),
            name: n.into(),
        }
    }

    #[test]
    fn parses_types_with_spaces() {
        let e = parse(LIST);
        assert_eq!(e.len(), 16);
        assert_eq!(e[2].kind, "SEQUENCE OWNED BY");
        assert_eq!(e[4].tag, "accounts accounts_pkey");
        assert_eq!(e[6].kind, "FK CONSTRAINT");
        assert_eq!(e[9].kind, "ROW SECURITY");
        assert_eq!(e[9].tag, "accounts");
        assert_eq!(e[13].schema, "");
        assert_eq!(e[13].tag, "public");
        assert_eq!(e[0].owner, "alice");
        assert_eq!(e[4].owner, "", "constraints are not owned objects");
    }

    #[test]
    fn selects_a_table_and_what_belongs_to_it() {
        let e = parse(LIST);
        let sel = Selection {
            tables: vec![q("public", "accounts")],
            schemas: vec![],
        };
        let idx = [IndexOf {
            index: q("public", "accounts_name_idx"),
            table: q("public", "accounts"),
        }];
        let chosen: Vec<String> = select(&e, &sel, &idx, &[q("public", "accounts_id_seq")])
            .iter()
            .map(|e| format!("{} {}", e.kind, e.tag))
            .collect();
        assert_eq!(
            chosen,
            [
                "TABLE accounts",
                "SEQUENCE accounts_id_seq",
                "SEQUENCE OWNED BY accounts_id_seq",
                "DEFAULT accounts id",
                "CONSTRAINT accounts accounts_pkey",
                "INDEX accounts_name_idx",
                "TRIGGER accounts audit_trg",
                "POLICY accounts own_rows",
                "ROW SECURITY accounts",
                "COMMENT TABLE accounts",
                "ACL TABLE accounts",
            ]
        );
    }

    #[test]
    fn selects_a_schema() {
        let e = parse(LIST);
        let sel = Selection {
            tables: vec![],
            schemas: vec!["audit".into()],
        };
        let chosen: Vec<&str> = select(&e, &sel, &[], &[])
            .iter()
            .map(|e| e.tag.as_str())
            .collect();
        assert_eq!(chosen, ["audit", "log"]);
        assert!(sel.wants_table(&q("audit", "log")));
        assert!(!sel.wants_table(&q("public", "accounts")));
    }

    #[test]
    fn a_tables_index_builds_are_its_indexes_and_key_constraints() {
        let e = parse(LIST);
        let all: Vec<&TocEntry> = e.iter().collect();
        let idx = [
            IndexOf {
                index: q("public", "accounts_name_idx"),
                table: q("public", "accounts"),
            },
            IndexOf {
                index: q("public", "orders_idx"),
                table: q("public", "orders"),
            },
        ];
        let builds: Vec<String> = index_builds(&all, &q("public", "accounts"), &idx)
            .iter()
            .map(|e| format!("{} {}", e.kind, e.tag))
            .collect();
        // Not the foreign key of another table, the trigger, the policy, or
        // the constraints of a table whose name only starts the same.
        assert_eq!(
            builds,
            [
                "CONSTRAINT accounts accounts_pkey",
                "INDEX accounts_name_idx"
            ]
        );
        assert!(index_builds(&all, &q("audit", "accounts"), &idx).is_empty());
        assert!(index_builds(&all, &q("public", "accounts_archive"), &idx).is_empty());
    }
}
