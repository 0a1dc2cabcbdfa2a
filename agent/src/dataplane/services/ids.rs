//! Frontend and backend ids of the service maps.

use std::collections::HashSet;

/// Hands out ids, never reusing one until the range wraps, so conntrack
/// entries of a deleted frontend or backend cannot alias a new one soon.
#[derive(Debug)]
pub(super) struct IdAllocator {
    next: u32,
    /// The largest id handed out.
    pub(super) max: u32,
    used: HashSet<u32>,
}

impl IdAllocator {
    pub(super) fn new(max: u32) -> Self {
        Self {
            next: 1,
            max,
            used: Default::default(),
        }
    }

    pub(super) fn allocate(&mut self) -> Option<u32> {
        for _ in 0..self.max {
            let id = self.next;
            self.next = if self.next >= self.max {
                1
            } else {
                self.next + 1
            };
            if self.used.insert(id) {
                return Some(id);
            }
        }
        None
    }

    pub(super) fn claim(&mut self, id: u32) {
        self.used.insert(id);
        if id >= self.next && id < self.max {
            self.next = id + 1;
        }
    }

    pub(super) fn release(&mut self, id: u32) {
        self.used.remove(&id);
    }
}
