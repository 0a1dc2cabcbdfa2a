//! A linearizability checker for histories of per-key registers with
//! compare-and-set, Wing & Gong style: search for an order of the
//! operations that respects real time (an operation that completed before
//! another was invoked comes first) and the register's sequential
//! behaviour, memoising (linearized set, register value) as Lowe does so
//! that equivalent interleavings are explored once.
//!
//! Keys are independent registers, and linearizability is local, so every
//! key is checked on its own. An operation whose outcome is unknown (the
//! client got an error or no answer) may or may not have taken effect: it
//! never completes, so it constrains nothing, and the search may leave it
//! out.
//!
//! Besides the register values, [`revisions_monotonic`] checks the response
//! headers: an operation invoked after another completed never reports a
//! lower store revision.

use std::collections::{BTreeMap, HashSet};

/// A value written to a register; `None` in a register: the key is absent.
pub type Value = u64;

/// What an operation did, with what it observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Put the key to the value.
    Write(Value),
    /// Read the key and saw this.
    Read(Option<Value>),
    /// If the key holds `expect`, put it to `new`; `succeeded` is the
    /// answer, `None` when it is unknown.
    Cas {
        /// The value compared against (`None`: the key must be absent).
        expect: Option<Value>,
        /// The value written when the compare holds.
        new: Value,
        /// Whether the compare held, if the client learned it.
        succeeded: Option<bool>,
    },
}

/// One client operation on one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// The key.
    pub key: String,
    /// What was done and seen.
    pub kind: Kind,
    /// When the client sent it (any monotonic clock, e.g. nanoseconds).
    pub invoked: u64,
    /// When the answer arrived; `None` if the outcome is unknown.
    pub completed: Option<u64>,
    /// The store revision in the answer's header (ignored when unknown).
    pub revision: i64,
}

/// Why a history is not linearizable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The key whose history has no valid order.
    pub key: String,
    /// Definite operations of the key; the search got no further than
    /// `linearized` of them.
    pub operations: usize,
    /// The most operations any order placed.
    pub linearized: usize,
    /// Operations that could not be placed next at that point, earliest
    /// completion first (a few).
    pub stuck_at: Vec<Operation>,
}

/// Searches give up after visiting this many states of one key.
const MAX_STATES: usize = 5_000_000;

/// Checks every key's history; returns the first key without a valid order.
///
/// # Errors
/// The violation found, or an inconclusive one (`stuck_at` empty) when the
/// search grew past its bound.
pub fn check(operations: &[Operation]) -> Result<(), Violation> {
    let mut by_key: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for op in operations {
        by_key.entry(op.key.as_str()).or_default().push(op);
    }
    for (key, ops) in by_key {
        check_key(key, &ops)?;
    }
    Ok(())
}

/// Sequential behaviour of a register: the value after `kind` ran on
/// `state`, or `None` if `kind` could not have observed what it did.
fn step(state: Option<Value>, kind: Kind) -> Option<Option<Value>> {
    match kind {
        Kind::Write(value) => Some(Some(value)),
        Kind::Read(seen) => (seen == state).then_some(state),
        Kind::Cas {
            expect,
            new,
            succeeded,
        } => {
            let holds = state == expect;
            match succeeded {
                Some(true) => holds.then_some(Some(new)),
                Some(false) => (!holds).then_some(state),
                // Unknown: it ran (with whatever outcome the state implies).
                None => Some(if holds { Some(new) } else { state }),
            }
        }
    }
}

/// Which operations are placed, as a bit set.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Placed(Vec<u64>);

impl Placed {
    fn new(len: usize) -> Self {
        Self(vec![0; len.div_ceil(64)])
    }

    fn has(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }

    fn with(&self, i: usize) -> Self {
        let mut next = self.clone();
        next.0[i / 64] |= 1 << (i % 64);
        next
    }
}

fn check_key(key: &str, ops: &[&Operation]) -> Result<(), Violation> {
    let mut ops: Vec<&Operation> = ops.to_vec();
    ops.sort_by_key(|op| op.invoked);
    let definite = ops.iter().filter(|op| op.completed.is_some()).count();
    let start = (Placed::new(ops.len()), None::<Value>, 0usize);
    let mut seen: HashSet<(Placed, Option<Value>)> = HashSet::new();
    seen.insert((start.0.clone(), start.1));
    let mut stack = vec![start];
    let mut deepest = (0usize, Vec::new());
    while let Some((placed, state, placed_definite)) = stack.pop() {
        if placed_definite == definite {
            // The unknown operations left over never took effect.
            return Ok(());
        }
        // An operation may go next if no unplaced one completed before it
        // was invoked.
        let horizon = ops
            .iter()
            .enumerate()
            .filter(|(i, _)| !placed.has(*i))
            .filter_map(|(_, op)| op.completed)
            .min()
            .unwrap_or(u64::MAX);
        let mut progressed = false;
        for (i, op) in ops.iter().enumerate() {
            if op.invoked > horizon {
                break;
            }
            if placed.has(i) {
                continue;
            }
            let Some(next) = step(state, op.kind) else {
                continue;
            };
            progressed = true;
            let next_placed = placed.with(i);
            if seen.insert((next_placed.clone(), next)) {
                let count = placed_definite + usize::from(op.completed.is_some());
                stack.push((next_placed, next, count));
            }
        }
        if seen.len() > MAX_STATES {
            return Err(Violation {
                key: key.to_owned(),
                operations: definite,
                linearized: deepest.0,
                stuck_at: Vec::new(),
            });
        }
        if !progressed && placed_definite >= deepest.0 {
            let mut blocked: Vec<Operation> = ops
                .iter()
                .enumerate()
                .filter(|(i, op)| !placed.has(*i) && op.invoked <= horizon)
                .map(|(_, op)| (*op).clone())
                .collect();
            blocked.sort_by_key(|op| op.completed.unwrap_or(u64::MAX));
            blocked.truncate(4);
            deepest = (placed_definite, blocked);
        }
    }
    Err(Violation {
        key: key.to_owned(),
        operations: definite,
        linearized: deepest.0,
        stuck_at: deepest.1,
    })
}

/// A pair of operations whose revisions go backwards in real time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevisionRegression {
    /// Completed first, with the higher revision.
    pub earlier: Operation,
    /// Invoked after `earlier` completed, with a lower revision.
    pub later: Operation,
}

/// Checks that no definite operation reports a lower header revision than
/// one that completed before it was invoked.
///
/// # Errors
/// The first regression found.
pub fn revisions_monotonic(operations: &[Operation]) -> Result<(), Box<RevisionRegression>> {
    let mut done: Vec<&Operation> = operations
        .iter()
        .filter(|op| op.completed.is_some())
        .collect();
    done.sort_by_key(|op| op.completed);
    // The highest revision among the first n completions, and who had it.
    let mut best: Vec<&Operation> = Vec::with_capacity(done.len());
    for op in &done {
        let keep = match best.last() {
            Some(prev) if prev.revision >= op.revision => *prev,
            _ => *op,
        };
        best.push(keep);
    }
    for later in &done {
        let before = done.partition_point(|op| op.completed < Some(later.invoked));
        if before > 0 {
            let earlier = best[before - 1];
            if earlier.revision > later.revision {
                return Err(Box::new(RevisionRegression {
                    earlier: earlier.clone(),
                    later: (*later).clone(),
                }));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(kind: Kind, invoked: u64, completed: Option<u64>) -> Operation {
        Operation {
            key: "k".to_owned(),
            kind,
            invoked,
            completed,
            revision: 0,
        }
    }

    fn cas(expect: Option<Value>, new: Value, succeeded: Option<bool>) -> Kind {
        Kind::Cas {
            expect,
            new,
            succeeded,
        }
    }

    #[test]
    fn sequential_writes_and_reads_are_linearizable() {
        let history = [
            op(Kind::Read(None), 0, Some(1)),
            op(Kind::Write(1), 2, Some(3)),
            op(Kind::Read(Some(1)), 4, Some(5)),
            op(Kind::Write(2), 6, Some(7)),
            op(Kind::Read(Some(2)), 8, Some(9)),
        ];
        assert_eq!(check(&history), Ok(()));
    }

    #[test]
    fn a_read_overlapping_a_write_may_see_either_value() {
        for seen in [None, Some(1)] {
            let history = [
                op(Kind::Write(1), 0, Some(10)),
                op(Kind::Read(seen), 5, Some(6)),
            ];
            assert_eq!(check(&history), Ok(()), "read saw {seen:?}");
        }
    }

    #[test]
    fn a_read_two_acknowledged_writes_old_is_caught() {
        // The anomaly of issue 12: writes 2 and 3 were acknowledged, then
        // a read returned 1.
        let history = [
            op(Kind::Write(1), 0, Some(1)),
            op(Kind::Write(2), 2, Some(3)),
            op(Kind::Write(3), 4, Some(5)),
            op(Kind::Read(Some(1)), 6, Some(7)),
        ];
        let violation = check(&history).expect_err("stale read");
        assert_eq!(violation.key, "k");
        assert_eq!(violation.linearized, 3);
        assert_eq!(violation.stuck_at, vec![history[3].clone()]);
    }

    #[test]
    fn a_value_never_written_is_caught() {
        let history = [
            op(Kind::Write(1), 0, Some(1)),
            op(Kind::Read(Some(7)), 2, Some(3)),
        ];
        assert!(check(&history).is_err());
    }

    #[test]
    fn reads_going_back_to_an_older_value_are_caught() {
        // Two reads after both writes started: once 2 is seen, 1 cannot
        // come back.
        let history = [
            op(Kind::Write(1), 0, Some(1)),
            op(Kind::Write(2), 2, Some(20)),
            op(Kind::Read(Some(2)), 3, Some(4)),
            op(Kind::Read(Some(1)), 5, Some(6)),
        ];
        assert!(check(&history).is_err());
    }

    #[test]
    fn an_unknown_write_may_or_may_not_have_taken_effect() {
        let observed = [
            op(Kind::Write(1), 0, Some(1)),
            op(Kind::Write(2), 2, None),
            op(Kind::Read(Some(2)), 10, Some(11)),
        ];
        assert_eq!(check(&observed), Ok(()));
        let not_observed = [
            op(Kind::Write(1), 0, Some(1)),
            op(Kind::Write(2), 2, None),
            op(Kind::Read(Some(1)), 10, Some(11)),
        ];
        assert_eq!(check(&not_observed), Ok(()));
        // But once it is seen, it cannot be undone.
        let undone = [
            op(Kind::Write(1), 0, Some(1)),
            op(Kind::Write(2), 2, None),
            op(Kind::Read(Some(2)), 10, Some(11)),
            op(Kind::Read(Some(1)), 12, Some(13)),
        ];
        assert!(check(&undone).is_err());
    }

    #[test]
    fn two_compare_and_sets_from_the_same_value_cannot_both_succeed() {
        let both = [
            op(Kind::Write(1), 0, Some(1)),
            op(cas(Some(1), 2, Some(true)), 2, Some(5)),
            op(cas(Some(1), 3, Some(true)), 3, Some(6)),
        ];
        assert!(check(&both).is_err());
        let one = [
            op(Kind::Write(1), 0, Some(1)),
            op(cas(Some(1), 2, Some(true)), 2, Some(5)),
            op(cas(Some(1), 3, Some(false)), 3, Some(6)),
            op(Kind::Read(Some(2)), 7, Some(8)),
        ];
        assert_eq!(check(&one), Ok(()));
    }

    #[test]
    fn a_failed_compare_and_set_on_a_matching_value_is_caught() {
        let history = [
            op(Kind::Write(1), 0, Some(1)),
            op(cas(Some(1), 2, Some(false)), 2, Some(3)),
        ];
        assert!(check(&history).is_err());
        let absent = [
            op(cas(None, 2, Some(true)), 0, Some(1)),
            op(Kind::Read(Some(2)), 2, Some(3)),
        ];
        assert_eq!(check(&absent), Ok(()));
    }

    #[test]
    fn keys_are_checked_independently() {
        let mut other = op(Kind::Read(Some(1)), 2, Some(3));
        other.key = "other".to_owned();
        let history = [op(Kind::Write(1), 0, Some(1)), other];
        let violation = check(&history).expect_err("other key never written");
        assert_eq!(violation.key, "other");
    }

    #[test]
    fn a_revision_lower_than_one_seen_before_is_caught() {
        let mut first = op(Kind::Read(None), 0, Some(1));
        first.revision = 3523;
        let mut second = op(Kind::Read(None), 2, Some(3));
        second.revision = 3522;
        let regression =
            revisions_monotonic(&[first.clone(), second.clone()]).expect_err("went backwards");
        assert_eq!(
            *regression,
            RevisionRegression {
                earlier: first.clone(),
                later: second.clone(),
            }
        );
        // Overlapping operations may report either order.
        second.invoked = 0;
        assert_eq!(revisions_monotonic(&[first, second]), Ok(()));
    }
}
