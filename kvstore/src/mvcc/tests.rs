//! The state machine end to end: staging, pending layers, redb, compaction.

use redb::ReadableTableMetadata;

use super::*;
use crate::types::{Command, DeleteRequest, KeyRange, Op, PutRequest, TxnRequest};

fn put(key: &str, value: &str) -> Command {
    Command::Txn(TxnRequest {
        success: vec![Op::Put(PutRequest {
            key: key.into(),
            value: value.into(),
            lease: 0,
        })],
        ..TxnRequest::default()
    })
}

fn delete(key: &str) -> Command {
    Command::Txn(TxnRequest {
        success: vec![Op::Delete(DeleteRequest {
            range: KeyRange::key(key),
        })],
        ..TxnRequest::default()
    })
}

fn keys(view: &View) -> Vec<String> {
    let mut keys = Vec::new();
    view.kv_scan(None, &KeyRange::prefix("/"), &mut |key, _| {
        keys.push(String::from_utf8_lossy(key).into_owned());
        Ok(true)
    })
    .expect("scan");
    keys
}

fn log(mvcc: &Mvcc, commands: &[Command], wal_seq: i64) {
    let staged = mvcc.stage(commands).expect("stage");
    assert!(staged.results.iter().all(Result::is_ok));
    mvcc.add_pending(staged.delta, wal_seq);
}

#[test]
fn pending_changes_read_the_same_before_during_and_after_reaching_redb() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.redb");
    let mvcc = Mvcc::open(&path).expect("open");
    log(&mvcc, &[put("/a", "1"), put("/b", "1")], 1);
    let frozen = mvcc.freeze_pending().expect("something pending");
    assert!(
        mvcc.freeze_pending().is_none(),
        "one frozen layer at a time"
    );
    log(&mvcc, &[delete("/a"), put("/c", "1")], 2);
    let while_frozen = mvcc.view().expect("view");
    mvcc.write_frozen(&frozen, true).expect("write frozen");
    let after = mvcc.view().expect("view");
    for view in [&while_frozen, &after] {
        assert_eq!(keys(view), vec!["/b", "/c"]);
        assert_eq!(view.meta(None, META_REVISION).expect("revision"), 4);
    }
    let history = mvcc
        .history(&KeyRange::prefix("/"), 1, 10, 100)
        .expect("history");
    let revisions: Vec<i64> = history.revisions.iter().map(|r| r.revision).collect();
    assert_eq!(revisions, vec![1, 2, 3, 4]);
    assert_eq!(history.scanned_to, 10);
    // redb holds what was written: the first record, not the second
    // (the write-ahead log replays that one after a restart).
    assert_eq!(mvcc.wal_seq().expect("seq"), 1);
    drop((while_frozen, after, mvcc));
    let reopened = Mvcc::open(&path).expect("reopen");
    assert_eq!(keys(&reopened.view().expect("view")), vec!["/a", "/b"]);
    assert_eq!(reopened.revision().expect("revision"), 2);
}

#[test]
fn compaction_hides_history_at_once_and_removes_it_from_redb_later() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mvcc = Mvcc::open(&dir.path().join("state.redb")).expect("open");
    log(&mvcc, &[put("/a", "1"), put("/a", "2"), put("/a", "3")], 1);
    log(&mvcc, &[Command::Compact { revision: 3 }], 2);
    assert!(matches!(
        mvcc.history(&KeyRange::prefix("/"), 2, 3, 10),
        Err(StoreError::Compacted {
            compact_revision: 3,
            ..
        })
    ));
    let frozen = mvcc.freeze_pending().expect("pending");
    mvcc.write_frozen(&frozen, true).expect("write");
    let page = mvcc
        .history(&KeyRange::prefix("/"), 3, 3, 10)
        .expect("history");
    assert_eq!(page.revisions.len(), 1);
    let txn = mvcc.db.begin_read().expect("read");
    let history = txn.open_table(HISTORY).expect("history");
    assert_eq!(history.len().expect("len"), 1, "revisions 1 and 2 are gone");
}
