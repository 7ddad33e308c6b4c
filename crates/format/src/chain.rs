//! Hash chains of numbered entries (the erasure ledger and the audit log):
//! entry `n` names the BLAKE3 hash of entry `n - 1`'s payload, so an entry
//! removed, replaced or moved shows at the entry that follows it.

/// An entry of a hash chain: its number (from 1, without gaps) and the hash
/// of its predecessor's payload (empty for entry 1).
pub trait Chained {
    /// Position in the chain, from 1.
    fn seq(&self) -> u64;
    /// [`chain_hash`] of the previous entry's payload; empty for the first.
    fn prev(&self) -> &str;
}

/// The chain hash of an entry's payload, which the next entry names.
pub fn chain_hash(payload: &[u8]) -> String {
    blake3::hash(payload).to_hex().to_string()
}

/// A break in a chain: the first entry number it concerns, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Break {
    /// The entry number the problem is found at.
    pub seq: u64,
    /// What is wrong, for people.
    pub problem: String,
}

/// Checks a chain read in number order (each entry with its payload):
/// numbers from 1 without gaps, each naming its predecessor's hash. Returns
/// every break found, first first.
pub fn verify_chain<E: Chained>(entries: &[(E, Vec<u8>)]) -> Vec<Break> {
    let mut breaks = Vec::new();
    let mut prev = String::new();
    let mut want = 1;
    for (e, payload) in entries {
        if e.seq() > want {
            let missing = if e.seq() - want == 1 {
                format!("entry {want} is missing")
            } else {
                format!("entries {want} to {} are missing", e.seq() - 1)
            };
            breaks.push(Break {
                seq: want,
                problem: format!(
                    "{missing} (the next entry is number {}): it was removed",
                    e.seq()
                ),
            });
        } else if e.seq() < want {
            breaks.push(Break {
                seq: e.seq(),
                problem: format!("entry {} appears twice or out of order", e.seq()),
            });
        } else if e.prev() != prev {
            breaks.push(Break {
                seq: e.seq().saturating_sub(1).max(1),
                problem: format!(
                    "entry {} does not follow entry {}: entry {} was changed or replaced",
                    e.seq(),
                    e.seq().saturating_sub(1),
                    e.seq().saturating_sub(1)
                ),
            });
        }
        want = e.seq() + 1;
        prev = chain_hash(payload);
    }
    breaks
}

#[cfg(test)]
mod tests {
    use super::*;

    struct E(u64, String);
    impl Chained for E {
        fn seq(&self) -> u64 {
            self.0
        }
        fn prev(&self) -> &str {
            &self.1
        }
    }

    fn chain(n: u64) -> Vec<(E, Vec<u8>)> {
        let mut out: Vec<(E, Vec<u8>)> = Vec::new();
        for seq in 1..=n {
            let prev = out.last().map(|(_, p)| chain_hash(p)).unwrap_or_default();
            let payload = format!("entry {seq} after {prev}").into_bytes();
            out.push((E(seq, prev), payload));
        }
        out
    }

    #[test]
    fn an_intact_chain_has_no_breaks() {
        assert!(verify_chain(&chain(5)).is_empty());
    }

    #[test]
    fn a_removed_entry_is_named() {
        let mut c = chain(5);
        c.remove(2);
        let b = verify_chain(&c);
        assert_eq!(b[0].seq, 3);
        assert!(b[0].problem.contains("entry 3 is missing"), "{b:?}");
    }

    #[test]
    fn a_changed_entry_is_named_by_its_successor() {
        let mut c = chain(5);
        c[1].1 = b"something else".to_vec();
        let b = verify_chain(&c);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].seq, 2);
        assert!(
            b[0].problem.contains("entry 3 does not follow entry 2"),
            "{b:?}"
        );
    }

    #[test]
    fn swapped_entries_are_caught() {
        let mut c = chain(5);
        c.swap(1, 2);
        let b = verify_chain(&c);
        assert!(!b.is_empty());
        assert_eq!(b[0].seq, 2, "{b:?}");
    }
}
