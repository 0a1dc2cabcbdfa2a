//! Maglev consistent hashing (Eisenbud et al., NSDI 2016): a lookup table
//! of prime size where every backend owns an almost equal share of slots,
//! and a backend change moves few slots. Built from the backends' identities
//! only, so every node computes the same table.

use dataplane_common::service::{MAGLEV_TABLE_SIZE, MaglevTable};

use super::service_state::BackendKey;

/// The table for `backends` (key, backend id). Empty input gives a table of
/// zeros, which the kernel never consults (the frontend has no backends).
pub fn build(backends: &[(BackendKey, u32)]) -> MaglevTable {
    let mut table = MaglevTable {
        backends: [0; MAGLEV_TABLE_SIZE],
    };
    if backends.is_empty() {
        return table;
    }
    let m = MAGLEV_TABLE_SIZE as u64;
    // Sorting by identity makes the table independent of input order.
    let mut sorted: Vec<&(BackendKey, u32)> = backends.iter().collect();
    sorted.sort_by_key(|(key, _)| *key);
    let permutations: Vec<(u64, u64)> = sorted
        .iter()
        .map(|(key, _)| {
            let name = format!("{}:{}/{}", key.addr, key.port, key.protocol.as_str());
            let offset = fnv1a(name.as_bytes(), 0xcbf2_9ce4_8422_2325) % m;
            let skip = fnv1a(name.as_bytes(), 0x8422_2325_cbf2_9ce4) % (m - 1) + 1;
            (offset, skip)
        })
        .collect();
    let mut owner: Vec<Option<usize>> = vec![None; MAGLEV_TABLE_SIZE];
    let mut next = vec![0u64; sorted.len()];
    let mut filled = 0;
    'fill: loop {
        for (i, (offset, skip)) in permutations.iter().enumerate() {
            let mut slot = ((offset + next[i] * skip) % m) as usize;
            while owner[slot].is_some() {
                next[i] += 1;
                slot = ((offset + next[i] * skip) % m) as usize;
            }
            owner[slot] = Some(i);
            next[i] += 1;
            filled += 1;
            if filled == MAGLEV_TABLE_SIZE {
                break 'fill;
            }
        }
    }
    for (slot, i) in owner.iter().enumerate() {
        table.backends[slot] = i.map_or(0, |i| sorted[i].1);
    }
    table
}

/// 64-bit FNV-1a with a chosen offset basis (two bases, two hash functions).
fn fnv1a(bytes: &[u8], basis: u64) -> u64 {
    bytes.iter().fold(basis, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::dataplane::services::service_state::Protocol;

    fn key(last: u8) -> BackendKey {
        BackendKey {
            addr: Ipv4Addr::new(10, 244, 1, last),
            port: 8080,
            protocol: Protocol::Tcp,
        }
    }

    #[test]
    fn every_node_builds_the_same_table_whatever_the_input_order() {
        let a = build(&[(key(1), 11), (key(2), 12), (key(3), 13)]);
        let b = build(&[(key(3), 13), (key(1), 11), (key(2), 12)]);
        assert_eq!(a, b);
    }

    #[test]
    fn backends_share_the_table_almost_equally() {
        let backends: Vec<_> = (1..=5).map(|i| (key(i), u32::from(i))).collect();
        let table = build(&backends);
        for (_, id) in &backends {
            let share = table.backends.iter().filter(|b| *b == id).count();
            // 1021 / 5 = 204.2; Maglev keeps shares within a few slots.
            assert!(
                (195..=215).contains(&share),
                "backend {id} owns {share} slots"
            );
        }
    }

    #[test]
    fn removing_a_backend_moves_only_its_slots_and_few_others() {
        let before: Vec<_> = (1..=5).map(|i| (key(i), u32::from(i))).collect();
        let after: Vec<_> = before.iter().copied().filter(|(_, id)| *id != 3).collect();
        let (t1, t2) = (build(&before), build(&after));
        let moved = t1
            .backends
            .iter()
            .zip(t2.backends.iter())
            .filter(|(a, b)| **a != 3 && a != b)
            .count();
        // Slots of surviving backends that changed owner: a small fraction.
        assert!(
            moved < MAGLEV_TABLE_SIZE / 10,
            "{moved} slots of surviving backends moved"
        );
        assert!(!t2.backends.contains(&3));
    }
}
