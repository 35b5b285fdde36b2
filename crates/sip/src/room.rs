//! Giving a table's room back after a burst. A `HashMap`, `HashSet` or `VecDeque` never
//! shrinks by itself, so one burst of calls would pin its peak for the daemon's life (a 15 s
//! burst at 3× the clean rate triples every table sized by calls in progress). The tables of
//! the transaction endpoint and of call control call [`shrink_if_sparse`] after their work.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;

/// Tables and queues at or below this capacity are never shrunk.
pub const SHRINK_ABOVE: usize = 256;

/// A collection that knows its length and capacity and can shrink.
pub trait Room {
    fn length(&self) -> usize;
    fn room(&self) -> usize;
    fn shrink(&mut self, to: usize);
}

impl<K: Eq + Hash, V> Room for HashMap<K, V> {
    fn length(&self) -> usize {
        self.len()
    }
    fn room(&self) -> usize {
        self.capacity()
    }
    fn shrink(&mut self, to: usize) {
        self.shrink_to(to)
    }
}

impl<K: Eq + Hash> Room for HashSet<K> {
    fn length(&self) -> usize {
        self.len()
    }
    fn room(&self) -> usize {
        self.capacity()
    }
    fn shrink(&mut self, to: usize) {
        self.shrink_to(to)
    }
}

impl<T> Room for VecDeque<T> {
    fn length(&self) -> usize {
        self.len()
    }
    fn room(&self) -> usize {
        self.capacity()
    }
    fn shrink(&mut self, to: usize) {
        self.shrink_to(to)
    }
}

/// Gives the room back once the table is less than a quarter full, keeping room for twice
/// what is left: the hysteresis keeps the rehash amortised.
pub fn shrink_if_sparse<T: Room>(t: &mut T) {
    if t.room() > SHRINK_ABOVE && t.length() * 4 < t.room() {
        t.shrink(t.length() * 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sparse_table_gives_room_back_and_a_full_one_keeps_it() {
        let mut m: HashMap<u32, u32> = (0..10_000).map(|i| (i, i)).collect();
        let peak = m.capacity();
        shrink_if_sparse(&mut m);
        assert_eq!(m.capacity(), peak, "a full table keeps its room");
        m.retain(|k, _| *k < 100);
        shrink_if_sparse(&mut m);
        assert!(m.capacity() < peak / 10, "{} of {peak}", m.capacity());
        assert!(m.capacity() >= 200);
        let mut q: VecDeque<u8> = (0..5_000).map(|i| i as u8).collect();
        q.clear();
        shrink_if_sparse(&mut q);
        assert!(q.capacity() <= SHRINK_ABOVE, "{}", q.capacity());
    }
}
