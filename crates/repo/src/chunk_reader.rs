//! Splits a byte stream into chunks without copying them: content-defined
//! (FastCDC) cuts, or fixed-size blocks for page-structured files.
//!
//! Each chunk is returned as its own `Vec` (moved down the pipeline as is).
//! The reader fills only as much as it needs to find the next cut: it starts
//! with `min_size + 1 MiB` and doubles up to `max_size` when no cut point is
//! found yet, so a typical chunk is read once and only the few bytes read
//! past its cut are copied into the next buffer.

use std::io::Read;

use lifeboat_format::chunker::Chunker;

use crate::pool::BufferPool;

const BLOCK: usize = 1 << 20;

/// How to cut.
#[derive(Clone, Copy, Debug)]
pub enum Cut<'c> {
    /// Content-defined cut points.
    ContentDefined(&'c Chunker),
    /// Blocks of exactly this many bytes (the last one may be shorter).
    Fixed(usize),
}

/// Iterates over the chunks of a reader.
pub struct ChunkReader<'c, R> {
    src: R,
    cut: Cut<'c>,
    buf: Vec<u8>,
    eof: bool,
    pool: Option<&'c BufferPool>,
}

impl<'c, R: Read> ChunkReader<'c, R> {
    /// Chunks `src` with `chunker`.
    pub fn new(src: R, chunker: &'c Chunker) -> Self {
        Self::cutting(src, Cut::ContentDefined(chunker))
    }

    /// Chunks `src` as `cut` says.
    pub fn cutting(src: R, cut: Cut<'c>) -> Self {
        Self {
            src,
            cut,
            buf: Vec::new(),
            eof: false,
            pool: None,
        }
    }

    /// Takes chunk buffers from `pool` (consumers give them back when done).
    pub fn with_pool(src: R, cut: Cut<'c>, pool: &'c BufferPool) -> Self {
        let mut reader = Self::cutting(src, cut);
        reader.pool = Some(pool);
        reader
    }

    /// Reads until the buffer holds `target` bytes or the stream ends.
    /// Reads straight into spare capacity: nothing is zero-filled first, so a
    /// small file touches only as many pages as it has bytes.
    fn fill_to(&mut self, target: usize) -> std::io::Result<()> {
        if self.eof || self.buf.len() >= target {
            return Ok(());
        }
        let want = target - self.buf.len();
        self.buf.reserve_exact(want);
        let got = (&mut self.src)
            .take(want as u64)
            .read_to_end(&mut self.buf)?;
        if got < want {
            self.eof = true;
        }
        Ok(())
    }

    /// The next chunk, or `None` at the end of the stream.
    pub fn next_chunk(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        let chunker = match self.cut {
            Cut::ContentDefined(c) => c,
            Cut::Fixed(size) => {
                let size = size.max(1);
                let mut block = match self.pool {
                    Some(p) => p.take(size),
                    None => Vec::with_capacity(size),
                };
                let got = (&mut self.src).take(size as u64).read_to_end(&mut block)?;
                if got == 0 {
                    if let Some(p) = self.pool {
                        p.give(block);
                    }
                    return Ok(None);
                }
                return Ok(Some(block));
            }
        };
        let max = chunker.max_size();
        let mut target = (chunker.params().min_size as usize + BLOCK).min(max);
        loop {
            self.fill_to(target)?;
            if self.buf.is_empty() {
                return Ok(None);
            }
            let cut = chunker.cut(&self.buf);
            // A cut before the end of what we have is final (FastCDC decides
            // at each byte from the bytes before it); so is any cut at the end
            // of the stream or at the maximum size.
            if cut < self.buf.len() || self.eof || self.buf.len() >= max {
                let rest = &self.buf[cut..];
                let want = target.max(rest.len());
                let mut next = match self.pool {
                    Some(p) => p.take(want),
                    None => Vec::with_capacity(want),
                };
                next.extend_from_slice(rest);
                let mut chunk = std::mem::replace(&mut self.buf, next);
                chunk.truncate(cut);
                return Ok(Some(chunk));
            }
            target = (target * 2).min(max);
        }
    }
}

impl<R> Drop for ChunkReader<'_, R> {
    fn drop(&mut self) {
        if let Some(p) = self.pool {
            p.give(std::mem::take(&mut self.buf));
        }
    }
}

impl<R: Read> Iterator for ChunkReader<'_, R> {
    type Item = std::io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_chunk().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat_format::chunker::ChunkerParams;

    /// A reader that returns at most `step` bytes per call, to exercise refills.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = self.step.min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn data(len: usize) -> Vec<u8> {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn streaming_cuts_equal_whole_buffer_cuts() {
        let chunker = Chunker::new(ChunkerParams::with_seed(11)).unwrap_or_else(|e| panic!("{e}"));
        let mut d = data(20 << 20);
        // A long run of zeros forces cuts at the maximum size.
        d[3 << 20..13 << 20].fill(0);
        let expected = chunker.chunk_lengths(&d);
        for step in [4096, 100_000, 1 << 20, usize::MAX] {
            let got: Vec<usize> = ChunkReader::new(Trickle { data: &d, step }, &chunker)
                .map(|c| c.map(|c| c.len()).unwrap_or(0))
                .collect();
            assert_eq!(got, expected, "step {step}");
        }
        let joined: Vec<u8> = ChunkReader::new(&d[..], &chunker)
            .flat_map(|c| c.unwrap_or_default())
            .collect();
        assert_eq!(joined, d);
    }

    #[test]
    fn fixed_blocks_are_aligned_and_cover_the_input() {
        let d = data(1_000_000);
        let got: Vec<Vec<u8>> = ChunkReader::cutting(
            Trickle {
                data: &d,
                step: 5000,
            },
            Cut::Fixed(256 * 1024),
        )
        .map(|c| c.unwrap_or_default())
        .collect();
        assert_eq!(
            got.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![262144, 262144, 262144, 213568]
        );
        assert_eq!(got.concat(), d);
        assert_eq!(ChunkReader::cutting(&b""[..], Cut::Fixed(8192)).count(), 0);
    }

    #[test]
    fn empty_and_tiny_inputs() {
        let chunker = Chunker::new(ChunkerParams::with_seed(1)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ChunkReader::new(&b""[..], &chunker).count(), 0);
        let one: Vec<Vec<u8>> = ChunkReader::new(&b"x"[..], &chunker)
            .map(|c| c.unwrap_or_default())
            .collect();
        assert_eq!(one, vec![b"x".to_vec()]);
    }
}
