//! Choosing bases for delta chunks: a chunk of a stream that changes a
//! little between backups (a table's `COPY` output) and is new to the
//! repository is stored as the difference to the chunk of the previous
//! backup it most likely replaces.
//!
//! Table data is cut at content-defined row boundaries, so most chunks keep
//! their boundaries from one backup to the next and the chunk that replaces
//! an old one ends with the same row. The planner walks the previous
//! backup's chunk list alongside the new chunks: in a small window ahead of
//! the last match it looks for the old chunk that ends with the same row,
//! and failing that takes the next old chunk in order. Bases are always data
//! blobs (a delta of a delta would make chains), so an old chunk that was
//! itself stored as a delta lends its own base.

use std::collections::HashMap;
use std::sync::Arc;

use lifeboat_format::Id;

use crate::error::Result;

/// How many old chunks ahead of the last match are considered.
pub(crate) const WINDOW: usize = 4;

/// An old chunk, read back.
pub(crate) struct OldChunk {
    /// Its content.
    pub content: Arc<Vec<u8>>,
    /// The data blob a delta replacing it is stored against: the chunk
    /// itself, or the base it was itself stored against.
    pub base: Id,
    /// That blob's content.
    pub base_content: Arc<Vec<u8>>,
}

/// Where the planner reads old chunks from (the repository; a map in tests).
pub(crate) trait OldChunks {
    /// The base an old chunk was stored against as a delta (read from its
    /// record, without decoding), or `None` for a chunk stored whole.
    fn delta_base(&mut self, id: &Id) -> Result<Option<Id>>;
    /// Reads an old chunk and its base.
    fn read(&mut self, id: &Id) -> Result<OldChunk>;
}

/// Walks the previous backup's chunks of one stream.
pub(crate) struct DeltaPlanner {
    previous: Vec<Id>,
    next: usize,
    read: HashMap<usize, Arc<OldChunk>>,
    bases: HashMap<usize, Option<Id>>,
}

impl DeltaPlanner {
    /// A planner over the previous backup's chunk list of the same stream.
    pub(crate) fn new(previous: Vec<Id>) -> Self {
        Self {
            previous,
            next: 0,
            read: HashMap::new(),
            bases: HashMap::new(),
        }
    }

    fn window(&self) -> std::ops::Range<usize> {
        self.next..(self.next + WINDOW).min(self.previous.len())
    }

    fn advance_past(&mut self, q: usize) {
        self.next = q + 1;
        let next = self.next;
        self.read.retain(|&k, _| k >= next);
        self.bases.retain(|&k, _| k >= next);
    }

    /// A new chunk was found in the repository as it is: if it is one of
    /// the old chunks just ahead, the walk moves past it.
    pub(crate) fn matched(&mut self, id: &Id) {
        let end = (self.next + 2 * WINDOW).min(self.previous.len());
        if let Some(q) = (self.next..end).find(|&q| self.previous[q] == *id) {
            self.advance_past(q);
        }
    }

    /// An old delta chunk just ahead that the new chunk equals: `delta_id`
    /// gives the id the new chunk would have as a delta against a base.
    /// Returns the old chunk's id and base, to list again without storing.
    pub(crate) fn reuse(
        &mut self,
        old: &mut dyn OldChunks,
        delta_id: &dyn Fn(&Id) -> Id,
    ) -> Result<Option<(Id, Id)>> {
        for q in self.window() {
            let base = match self.bases.get(&q) {
                Some(b) => *b,
                None => {
                    let b = old.delta_base(&self.previous[q])?;
                    self.bases.insert(q, b);
                    b
                }
            };
            if let Some(b) = base
                && delta_id(&b) == self.previous[q]
            {
                let found = (self.previous[q], b);
                self.advance_past(q);
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// The base for a new chunk that is not in the repository: the old
    /// chunk ahead ending with the same row, else the next old chunk.
    /// Returns the base blob's id and content; `None` past the old list's end.
    pub(crate) fn base_for(
        &mut self,
        old: &mut dyn OldChunks,
        chunk: &[u8],
    ) -> Result<Option<(Id, Arc<Vec<u8>>)>> {
        let tail = last_row(chunk);
        let mut chosen = None;
        for q in self.window() {
            let c = self.old_chunk(old, q)?;
            if last_row(&c.content) == tail {
                chosen = Some((q, c));
                break;
            }
        }
        let (q, c) = match chosen {
            Some(found) => found,
            None if self.next < self.previous.len() => {
                let q = self.next;
                (q, self.old_chunk(old, q)?)
            }
            None => return Ok(None),
        };
        self.advance_past(q);
        Ok(Some((c.base, c.base_content.clone())))
    }

    fn old_chunk(&mut self, old: &mut dyn OldChunks, q: usize) -> Result<Arc<OldChunk>> {
        if let Some(c) = self.read.get(&q) {
            return Ok(c.clone());
        }
        let c = Arc::new(old.read(&self.previous[q])?);
        self.read.insert(q, c.clone());
        Ok(c)
    }
}

/// The last row of a chunk of `COPY` text (its last line, newline excluded).
fn last_row(chunk: &[u8]) -> &[u8] {
    let body = chunk.strip_suffix(b"\n").unwrap_or(chunk);
    match body.iter().rposition(|&b| b == b'\n') {
        Some(i) => &body[i + 1..],
        None => body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Old chunks by id: content and, for deltas, the base.
    #[derive(Default)]
    struct Map {
        chunks: HashMap<Id, (Vec<u8>, Option<Id>)>,
        reads: usize,
    }

    impl OldChunks for Map {
        fn delta_base(&mut self, id: &Id) -> Result<Option<Id>> {
            Ok(self.chunks.get(id).and_then(|c| c.1))
        }
        fn read(&mut self, id: &Id) -> Result<OldChunk> {
            self.reads += 1;
            let (content, base) = self.chunks.get(id).cloned().unwrap_or_default();
            let content = Arc::new(content);
            Ok(match base {
                Some(b) => OldChunk {
                    content,
                    base: b,
                    base_content: Arc::new(self.chunks.get(&b).cloned().unwrap_or_default().0),
                },
                None => OldChunk {
                    base: *id,
                    base_content: content.clone(),
                    content,
                },
            })
        }
    }

    fn id(n: u8) -> Id {
        Id::from_bytes([n; 32])
    }

    fn rows(from: u32, to: u32) -> Vec<u8> {
        (from..to)
            .flat_map(|i| format!("{i}\trow {i}\n").into_bytes())
            .collect()
    }

    /// The planner's base for `chunk`, or the default id and nothing.
    fn base_of(p: &mut DeltaPlanner, old: &mut Map, chunk: &[u8]) -> (Id, Arc<Vec<u8>>) {
        p.base_for(old, chunk).ok().flatten().unwrap_or_default()
    }

    #[test]
    fn follows_boundaries_across_a_merged_and_a_changed_chunk() {
        let mut old = Map::default();
        for (n, (a, b)) in [(0, 10), (10, 20), (20, 30), (30, 40)]
            .into_iter()
            .enumerate()
        {
            old.chunks.insert(id(n as u8 + 1), (rows(a, b), None));
        }
        let mut p = DeltaPlanner::new((1..=4).map(id).collect());
        // Chunk 1 unchanged (found in the repository), chunks 2 and 3 merged
        // and changed (their boundary row was updated): ends like old 3.
        p.matched(&id(1));
        let mut merged = rows(10, 30);
        merged[3] = b'X';
        let (base, content) = base_of(&mut p, &mut old, &merged);
        assert_eq!(base, id(3));
        assert_eq!(*content, rows(20, 30));
        // The last one changed in the middle: the next old chunk.
        let mut last = rows(30, 40);
        last[5] = b'Y';
        let (base, _) = base_of(&mut p, &mut old, &last);
        assert_eq!(base, id(4));
        // Past the end of the old list: nothing to delta against.
        assert!(p.base_for(&mut old, &rows(40, 50)).ok().flatten().is_none());
        assert!(
            old.reads <= 4,
            "each old chunk read once, got {}",
            old.reads
        );
    }

    #[test]
    fn an_old_delta_lends_its_base_and_an_equal_chunk_is_reused() {
        let mut old = Map::default();
        old.chunks.insert(id(9), (rows(0, 10), None));
        old.chunks.insert(id(1), (rows(0, 10), Some(id(9))));
        old.chunks.insert(id(2), (rows(10, 20), Some(id(9))));
        let mut p = DeltaPlanner::new(vec![id(1), id(2)]);
        // The new chunk equals old chunk 1 (id(1) as a delta against id(9)).
        let same = |b: &Id| if *b == id(9) { id(1) } else { id(0) };
        assert_eq!(
            p.reuse(&mut old, &same).ok().flatten(),
            Some((id(1), id(9)))
        );
        assert_eq!(old.reads, 0, "reuse reads no content");
        // A changed version of old chunk 2: its base is old 2's base.
        let (base, content) = base_of(&mut p, &mut old, &rows(10, 21));
        assert_eq!(base, id(9));
        assert_eq!(*content, rows(0, 10));
        assert_eq!(last_row(b"a\nb\n"), b"b");
        assert_eq!(last_row(b"only"), b"only");
    }
}
