//! Content-defined cut points at row boundaries, for the rows of a logical
//! backup (`COPY` text: one row per line).
//!
//! After each row the chunk may end: never below `min_size`, always at
//! `max_size`, and in between when the row's seeded xxh3 hash falls below a
//! threshold proportional to the row's length, so that on average a chunk
//! ends `avg_size - min_size` bytes after the minimum, like FastCDC's. The
//! decision depends only on the row itself and the chunk length: a row
//! inserted, deleted or changed moves no other boundary beyond the next one,
//! and every chunk holds whole rows. Scanning rows costs one hash per row
//! instead of a rolling hash over every byte. A row that would carry the
//! chunk past `max_size` starts the next chunk instead; only a row longer
//! than `max_size` on its own is cut inside.

use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::chunker::ChunkerParams;

/// Decides where row chunks end.
#[derive(Clone, Copy, Debug)]
pub struct RowCutter {
    seed: u64,
    min: usize,
    max: usize,
    spread: u128,
}

impl RowCutter {
    /// A cutter with the repository's chunker sizes and secret seed.
    pub fn new(params: &ChunkerParams) -> Self {
        let min = params.min_size as usize;
        let avg = (params.avg_size as usize).max(min + 1);
        Self {
            // Distinct from FastCDC's use of the seed.
            seed: params.seed ^ 0x726f_7773_2d63_7574,
            min,
            max: params.max_size as usize,
            spread: (avg - min) as u128,
        }
    }

    /// The largest chunk.
    pub fn max_size(&self) -> usize {
        self.max
    }

    /// Whether the chunk ends after `row` (which includes its newline),
    /// the chunk being `chunk_len` bytes long with it.
    pub fn cut_after(&self, row: &[u8], chunk_len: usize) -> bool {
        if chunk_len >= self.max {
            return true;
        }
        if chunk_len < self.min {
            return false;
        }
        let h = u128::from(xxh3_64_with_seed(row, self.seed));
        // P(cut) = len / spread: one cut per `spread` bytes on average.
        (h * self.spread) < ((row.len() as u128) << 64)
    }
}

/// Splits rows into chunks as they arrive, across buffer boundaries.
#[derive(Debug)]
pub struct RowChunks {
    cutter: RowCutter,
    chunk: Vec<u8>,
    row_start: usize,
    rows: u64,
    /// Emptied chunk buffers handed back by the consumer, reused before
    /// allocating: fresh multi-MiB buffers cost a page fault per 4 KiB.
    spare: Vec<Vec<u8>>,
}

/// How many handed-back buffers [`RowChunks`] keeps at most.
const SPARE_BUFFERS: usize = 8;

/// The capacity a chunk buffer starts with and is cut back to when handed
/// back: twice the usual average chunk, so most chunks never grow their
/// buffer, and one that ran long (up to the largest chunk) does not keep
/// its buffer that large for every later chunk.
const BUFFER_CAPACITY: usize = 2 << 20;

impl RowChunks {
    /// Starts with an empty chunk.
    pub fn new(cutter: RowCutter) -> Self {
        Self {
            cutter,
            chunk: Vec::new(),
            row_start: 0,
            rows: 0,
            spare: Vec::new(),
        }
    }

    /// Hands back a chunk buffer the consumer is done with, to hold a later
    /// chunk (its contents are discarded).
    pub fn recycle(&mut self, mut buffer: Vec<u8>) {
        if self.spare.len() < SPARE_BUFFERS {
            buffer.clear();
            // Returns the pages past the usual size to the system.
            buffer.shrink_to(self.fresh_capacity());
            self.spare.push(buffer);
        }
    }

    /// Complete rows seen so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Adds `data`; calls `emit` with every chunk completed.
    pub fn push<E>(
        &mut self,
        mut data: &[u8],
        emit: &mut impl FnMut(Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        while !data.is_empty() {
            let room = self.cutter.max - self.chunk.len();
            match memchr::memchr(b'\n', &data[..data.len().min(room)]) {
                Some(i) => {
                    self.chunk.extend_from_slice(&data[..=i]);
                    data = &data[i + 1..];
                    self.rows += 1;
                    let row = &self.chunk[self.row_start..];
                    if self.cutter.cut_after(row, self.chunk.len()) {
                        emit(self.take())?;
                    } else {
                        self.row_start = self.chunk.len();
                    }
                }
                None if data.len() < room => {
                    self.chunk.extend_from_slice(data);
                    data = &[];
                }
                None if self.row_start > 0 => {
                    // The row in progress would pass the largest chunk: the
                    // chunk ends before it, and it starts the next one.
                    let row = self.chunk.split_off(self.row_start);
                    let full = std::mem::replace(&mut self.chunk, row);
                    self.row_start = 0;
                    emit(full)?;
                }
                None => {
                    // One row longer than the largest chunk: cut inside it.
                    self.chunk.extend_from_slice(&data[..room]);
                    data = &data[room..];
                    emit(self.take())?;
                }
            }
        }
        Ok(())
    }

    /// The last chunk, if any bytes are left.
    pub fn finish(mut self) -> Option<Vec<u8>> {
        (!self.chunk.is_empty()).then(|| self.take())
    }

    fn take(&mut self) -> Vec<u8> {
        self.row_start = 0;
        let next = self
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.fresh_capacity()));
        std::mem::replace(&mut self.chunk, next)
    }

    fn fresh_capacity(&self) -> usize {
        self.cutter.max.min(BUFFER_CAPACITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> ChunkerParams {
        ChunkerParams {
            min_size: 1024,
            avg_size: 4096,
            max_size: 16384,
            ..ChunkerParams::with_seed(11)
        }
    }

    fn rows(range: std::ops::Range<u32>) -> Vec<u8> {
        range
            .flat_map(|i| format!("{i}\trow number {i}\t{}\n", i * 7919 % 1000).into_bytes())
            .collect()
    }

    fn chunks(data: &[u8], piece: usize) -> Vec<Vec<u8>> {
        let mut c = RowChunks::new(RowCutter::new(&small()));
        let mut out = Vec::new();
        for p in data.chunks(piece) {
            let _ = c.push(p, &mut |ch| {
                out.push(ch);
                Ok::<_, ()>(())
            });
        }
        out.extend(c.finish());
        out
    }

    #[test]
    fn whole_rows_same_cuts_whatever_the_buffers() {
        let data = rows(0..20_000);
        let a = chunks(&data, 1 << 20);
        let b = chunks(&data, 7);
        assert_eq!(a, b);
        assert_eq!(a.concat(), data);
        assert!(a.iter().all(|c| c.ends_with(b"\n") && c.len() <= 16384));
        let avg = data.len() / a.len();
        assert!((2000..8000).contains(&avg), "average chunk {avg}");
    }

    #[test]
    fn recycled_buffers_hold_new_chunks_only() {
        let data = rows(0..20_000);
        let mut c = RowChunks::new(RowCutter::new(&small()));
        let mut out = Vec::new();
        for p in data.chunks(3000) {
            let mut emitted = Vec::new();
            let _ = c.push(p, &mut |ch| {
                emitted.push(ch);
                Ok::<_, ()>(())
            });
            for ch in emitted {
                out.push(ch.clone());
                c.recycle(ch);
            }
        }
        out.extend(c.finish());
        assert_eq!(out, chunks(&data, 3000));
        assert!(out.len() > SPARE_BUFFERS, "{} chunks", out.len());
    }

    #[test]
    fn a_buffer_that_grew_is_cut_back_when_handed_back() {
        let mut c = RowChunks::new(RowCutter::new(&small()));
        let mut grown = Vec::with_capacity(1 << 20);
        grown.extend_from_slice(b"old chunk\n");
        c.recycle(grown);
        assert_eq!(c.spare.len(), 1);
        assert!(c.spare[0].is_empty());
        // The small test chunks are at most 16 KiB: so is a kept buffer.
        assert!(c.spare[0].capacity() <= 16384, "{}", c.spare[0].capacity());
    }

    #[test]
    fn an_inserted_row_changes_one_chunk() {
        let before = rows(0..20_000);
        let mut after = rows(0..10_000);
        after.extend_from_slice(b"inserted\trow\n");
        after.extend(rows(10_000..20_000));
        let (a, b) = (chunks(&before, 4096), chunks(&after, 4096));
        let same = b.iter().filter(|c| a.contains(c)).count();
        assert!(same + 2 >= b.len(), "{same} of {} chunks kept", b.len());
    }

    #[test]
    fn huge_rows_are_cut_inside() {
        let mut data = vec![b'x'; 40_000];
        data.push(b'\n');
        let c = chunks(&data, 1000);
        assert_eq!(c.concat(), data);
        assert!(c.iter().all(|c| c.len() <= 16384));
        assert_eq!(c.len(), 3);
    }
}
