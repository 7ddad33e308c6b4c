//! A bounded free list of byte buffers shared between threads.
//!
//! The backup pipeline moves large buffers (chunks, packs) from one thread to
//! another. Recycling them, instead of freeing and allocating each time, keeps
//! memory flat: the general-purpose allocator otherwise spreads freed
//! multi-MiB buffers over per-thread arenas and keeps them resident.

use crossbeam_channel::{Receiver, Sender, bounded};

/// Buffers waiting to be reused.
#[derive(Clone, Debug)]
pub struct BufferPool {
    tx: Sender<Vec<u8>>,
    rx: Receiver<Vec<u8>>,
}

impl BufferPool {
    /// A pool that keeps at most `max` idle buffers (extra ones are freed;
    /// with `max` 0 it keeps none, and every buffer is freed when given).
    pub fn new(max: usize) -> Self {
        // A zero-capacity channel: `try_send` never succeeds, as `take`
        // never waits in `recv`.
        let (tx, rx) = bounded(max);
        Self { tx, rx }
    }

    /// An empty buffer with at least `capacity` bytes of room.
    pub fn take(&self, capacity: usize) -> Vec<u8> {
        match self.rx.try_recv() {
            Ok(mut v) => {
                v.clear();
                // Exact: amortised growth would double a nearly-big-enough buffer.
                v.reserve_exact(capacity);
                v
            }
            Err(_) => Vec::with_capacity(capacity),
        }
    }

    /// Returns a buffer for reuse.
    pub fn give(&self, buffer: Vec<u8>) {
        if buffer.capacity() > 0 {
            let _ = self.tx.try_send(buffer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recycles_capacity_and_stays_bounded() {
        let pool = BufferPool::new(1);
        let mut a = pool.take(1000);
        a.extend_from_slice(b"hello");
        let ptr = a.as_ptr();
        pool.give(a);
        pool.give(Vec::with_capacity(10)); // over the bound: dropped
        let b = pool.take(10);
        assert!(b.is_empty());
        assert_eq!(b.as_ptr(), ptr);
        assert!(b.capacity() >= 1000);
        let c = pool.take(10);
        assert!(c.capacity() >= 10);
    }

    #[test]
    fn a_pool_of_none_frees_every_buffer() {
        let pool = BufferPool::new(0);
        pool.give(Vec::with_capacity(1000));
        assert_eq!(pool.take(10).capacity(), 10);
    }
}

/// A counting semaphore for threads: at most `n` [`Permit`]s exist at once.
/// Used to bound the pack buffers alive in a backup (being filled, queued or
/// uploading), whatever happens to each pack.
#[derive(Clone, Debug)]
pub struct Permits {
    tx: Sender<()>,
    rx: Receiver<()>,
}

/// One unit of a [`Permits`]; returned when dropped.
#[derive(Debug)]
pub struct Permit {
    tx: Sender<()>,
}

impl Permits {
    /// `n` permits (at least one).
    pub fn new(n: usize) -> Self {
        let n = n.max(1);
        let (tx, rx) = bounded(n);
        for _ in 0..n {
            // The channel has room for exactly n tokens.
            let _ = tx.try_send(());
        }
        Self { tx, rx }
    }

    /// Waits for a permit.
    pub fn acquire(&self) -> Permit {
        // `self` holds a sender, so the channel never disconnects while we wait.
        let _ = self.rx.recv();
        Permit {
            tx: self.tx.clone(),
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let _ = self.tx.try_send(());
    }
}

#[cfg(test)]
mod permit_tests {
    use super::*;

    #[test]
    fn permits_bound_and_come_back_on_drop() {
        let p = Permits::new(2);
        let a = p.acquire();
        let _b = p.acquire();
        assert!(p.rx.try_recv().is_err(), "a third permit was available");
        drop(a);
        let _c = p.acquire();
    }
}
