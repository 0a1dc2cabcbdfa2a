//! Behaviour of a single-replica store: MVCC bookkeeping, ranges,
//! transactions, watches, leases, compaction and durability.

use std::time::Duration;

use rudder_kvstore::{
    Compare, CompareOp, CompareTarget, EventKind, KeyRange, Op, OpResponse, PutRequest,
    RangeRequest, Store, StoreConfig, StoreError, TxnRequest, WatchError,
};

fn config(dir: &tempfile::TempDir) -> StoreConfig {
    let mut config = StoreConfig::new(dir.path());
    config.compaction_interval = None;
    config.lease_check_interval = Duration::from_millis(50);
    config
}

async fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(config(dir)).await.expect("store opens")
}

/// Waits for the next watch batch, failing the test rather than hanging.
async fn next(
    watcher: &mut rudder_kvstore::Watcher,
) -> Result<rudder_kvstore::RevisionEvents, WatchError> {
    tokio::time::timeout(Duration::from_secs(10), watcher.next())
        .await
        .expect("watch event within 10s")
        .expect("watcher still open")
}

#[tokio::test]
async fn every_write_gets_the_next_revision_and_keys_keep_their_bookkeeping() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir).await;
    assert_eq!(store.revision(), 0);
    let (r1, prev) = store.put("/a", "1", 0).await.expect("put");
    assert_eq!((r1, prev), (1, None));
    let (r2, _) = store.put("/b", "1", 0).await.expect("put");
    let (r3, prev) = store.put("/a", "2", 0).await.expect("put");
    assert_eq!((r2, r3), (2, 3));
    assert_eq!(prev.expect("prev").value, b"1");
    let a = store.get("/a").await.expect("get").expect("exists");
    assert_eq!(
        (a.create_revision, a.mod_revision, a.version),
        (1, 3, 2),
        "create stays, mod moves, version counts writes"
    );
    // A delete of nothing does not consume a revision.
    let (rev, deleted) = store.delete(KeyRange::key("/zzz")).await.expect("delete");
    assert_eq!((rev, deleted.len()), (3, 0));
    let (rev, deleted) = store.delete(KeyRange::key("/a")).await.expect("delete");
    assert_eq!((rev, deleted.len()), (4, 1));
    // Re-creating starts a new life: version 1, new create_revision.
    store.put("/a", "3", 0).await.expect("put");
    let a = store.get("/a").await.expect("get").expect("exists");
    assert_eq!((a.create_revision, a.version), (5, 1));
}

#[tokio::test]
async fn range_by_prefix_honours_limit_count_and_keys_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir).await;
    for name in ["a", "b", "c", "d"] {
        store
            .put(format!("/pods/{name}"), name, 0)
            .await
            .expect("put");
    }
    store.put("/podsX", "not a pod", 0).await.expect("put");
    store.put("/services/x", "svc", 0).await.expect("put");
    let (all, revision) = store
        .range(RangeRequest {
            range: KeyRange::prefix("/pods/"),
            ..RangeRequest::default()
        })
        .await
        .expect("range");
    assert_eq!(revision, 6);
    let keys: Vec<_> = all.kvs.iter().map(|kv| kv.key.clone()).collect();
    assert_eq!(
        keys,
        vec![
            b"/pods/a".to_vec(),
            b"/pods/b".to_vec(),
            b"/pods/c".to_vec(),
            b"/pods/d".to_vec()
        ]
    );
    let (limited, _) = store
        .range(RangeRequest {
            range: KeyRange::prefix("/pods/"),
            limit: 2,
            keys_only: true,
            ..RangeRequest::default()
        })
        .await
        .expect("range");
    assert_eq!(
        (limited.kvs.len(), limited.count, limited.more),
        (2, 4, true)
    );
    assert!(limited.kvs.iter().all(|kv| kv.value.is_empty()));
    let (counted, _) = store
        .range(RangeRequest {
            range: KeyRange::prefix("/"),
            count_only: true,
            ..RangeRequest::default()
        })
        .await
        .expect("range");
    assert_eq!((counted.kvs.len(), counted.count), (0, 6));
}

#[tokio::test]
async fn txn_compares_mod_revision_like_a_resource_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir).await;
    let (created, _) = store.put("/obj", "v1", 0).await.expect("put");
    let cas = |expected: i64, value: &'static str| TxnRequest {
        compare: vec![Compare {
            key: b"/obj".to_vec(),
            target: CompareTarget::ModRevision(expected),
            op: CompareOp::Equal,
        }],
        success: vec![Op::Put(PutRequest {
            key: b"/obj".to_vec(),
            value: value.into(),
            lease: 0,
        })],
        failure: vec![Op::Range(RangeRequest {
            range: KeyRange::key("/obj"),
            ..RangeRequest::default()
        })],
    };
    let first = store.txn(cas(created, "v2")).await.expect("txn");
    assert!(first.succeeded);
    let stale = store.txn(cas(created, "v3")).await.expect("txn");
    assert!(!stale.succeeded, "a stale mod_revision must not write");
    assert_eq!(
        stale.revision, first.revision,
        "a failed txn writes nothing"
    );
    match &stale.responses[..] {
        [OpResponse::Range(range)] => assert_eq!(range.kvs[0].value, b"v2"),
        other => panic!("failure branch should read the key, got {other:?}"),
    }
    // create_revision == 0 is "does not exist yet": create-if-absent.
    let create_if_absent = |key: &'static str| TxnRequest {
        compare: vec![Compare {
            key: key.into(),
            target: CompareTarget::CreateRevision(0),
            op: CompareOp::Equal,
        }],
        success: vec![Op::Put(PutRequest {
            key: key.into(),
            value: b"x".to_vec(),
            lease: 0,
        })],
        failure: vec![],
    };
    assert!(
        !store
            .txn(create_if_absent("/obj"))
            .await
            .expect("txn")
            .succeeded
    );
    assert!(
        store
            .txn(create_if_absent("/new"))
            .await
            .expect("txn")
            .succeeded
    );
    // Value and version compares.
    let by_value = TxnRequest {
        compare: vec![
            Compare {
                key: b"/obj".to_vec(),
                target: CompareTarget::Value(b"v2".to_vec()),
                op: CompareOp::Equal,
            },
            Compare {
                key: b"/obj".to_vec(),
                target: CompareTarget::Version(1),
                op: CompareOp::Greater,
            },
        ],
        ..TxnRequest::default()
    };
    assert!(store.txn(by_value).await.expect("txn").succeeded);
    let missing_value = TxnRequest {
        compare: vec![Compare {
            key: b"/missing".to_vec(),
            target: CompareTarget::Value(Vec::new()),
            op: CompareOp::Equal,
        }],
        ..TxnRequest::default()
    };
    assert!(
        !store.txn(missing_value).await.expect("txn").succeeded,
        "a missing key never matches a value compare"
    );
}

#[tokio::test]
async fn txn_with_several_writes_is_one_revision_and_one_watch_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir).await;
    let mut watcher = store.watch(KeyRange::prefix("/"), 0).expect("watch");
    let put = |key: &str| {
        Op::Put(PutRequest {
            key: key.into(),
            value: b"v".to_vec(),
            lease: 0,
        })
    };
    let response = store
        .txn(TxnRequest {
            success: vec![put("/x"), put("/y")],
            ..TxnRequest::default()
        })
        .await
        .expect("txn");
    assert_eq!(response.revision, 1);
    let batch = next(&mut watcher).await.expect("events");
    assert_eq!(batch.revision, 1);
    assert_eq!(batch.events.len(), 2);
}

#[tokio::test]
async fn watch_replays_history_then_follows_live_in_order_with_prev_on_delete() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir).await;
    store.put("/w/a", "1", 0).await.expect("put");
    store.put("/other", "x", 0).await.expect("put");
    store.put("/w/a", "2", 0).await.expect("put");
    let mut watcher = store.watch(KeyRange::prefix("/w/"), 1).expect("watch");
    store.delete(KeyRange::key("/w/a")).await.expect("delete");
    store.put("/w/b", "3", 0).await.expect("put");
    let mut seen = Vec::new();
    for _ in 0..4 {
        let batch = next(&mut watcher).await.expect("events");
        for event in batch.events {
            seen.push((batch.revision, event));
        }
    }
    let revisions: Vec<i64> = seen.iter().map(|(rev, _)| *rev).collect();
    assert_eq!(revisions, vec![1, 3, 4, 5], "the /other write is filtered");
    let (_, delete) = &seen[2];
    assert_eq!(delete.kind, EventKind::Delete);
    assert_eq!(
        delete.prev_kv.as_ref().expect("prev on delete").value,
        b"2",
        "a delete carries what the key held"
    );
}

#[tokio::test]
async fn watch_of_compacted_revision_fails_clearly_and_later_ones_work() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir).await;
    for i in 0..10 {
        store.put("/k", format!("{i}"), 0).await.expect("put");
    }
    store.compact(6).await.expect("compact");
    match store.watch(KeyRange::key("/k"), 3) {
        Err(WatchError::Compacted {
            requested,
            compact_revision,
        }) => assert_eq!((requested, compact_revision), (3, 6)),
        other => panic!("expected compacted, got {other:?}"),
    }
    let mut watcher = store.watch(KeyRange::key("/k"), 6).expect("watch");
    assert_eq!(next(&mut watcher).await.expect("events").revision, 6);
    assert!(matches!(
        store.compact(5).await,
        Err(StoreError::Compacted { .. })
    ));
    assert!(matches!(
        store.compact(99).await,
        Err(StoreError::FutureRevision { .. })
    ));
}

#[tokio::test]
async fn slow_watcher_is_cut_off_with_resume_revision_and_others_keep_going() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = config(&dir);
    config.watch_queue = 8;
    let store = Store::open(config).await.expect("store");
    let mut slow = store.watch(KeyRange::prefix("/"), 0).expect("watch");
    let mut fast = store.watch(KeyRange::prefix("/"), 0).expect("watch");
    let fast_reader = tokio::spawn(async move {
        let mut last = 0;
        while last < 200 {
            match next(&mut fast).await {
                Ok(batch) => {
                    assert_eq!(batch.revision, last + 1, "no gaps for the fast watcher");
                    last = batch.revision;
                }
                Err(err) => panic!("fast watcher ended: {err}"),
            }
        }
        last
    });
    for i in 0..200 {
        store.put(format!("/k{i}"), "v", 0).await.expect("put");
        // A put can be answered before this task ever waits (the event is
        // queued first); give the reader its turn, as a busy server would.
        tokio::task::yield_now().await;
    }
    assert_eq!(fast_reader.await.expect("reader"), 200);
    // The slow one never read; it has what fit in its buffers, then the cut.
    let mut last = 0;
    let resume_from = loop {
        match next(&mut slow).await {
            Ok(batch) => {
                assert_eq!(batch.revision, last + 1);
                last = batch.revision;
            }
            Err(WatchError::Lagged { resume_from }) => break resume_from,
            Err(err) => panic!("unexpected end: {err}"),
        }
    };
    assert_eq!(resume_from, last + 1);
    assert!(resume_from < 200, "the slow watcher must have been cut off");
    // Resuming from where it stopped delivers the rest without a gap.
    let mut resumed = store
        .watch(KeyRange::prefix("/"), resume_from)
        .expect("resume");
    let mut expect = resume_from;
    while expect <= 200 {
        let batch = next(&mut resumed).await.expect("events");
        assert_eq!(batch.revision, expect);
        expect += 1;
    }
}

#[tokio::test]
async fn expired_lease_deletes_its_keys_and_keep_alive_holds_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir).await;
    let (short, ttl) = store.lease_grant(0, 1).await.expect("grant");
    assert_eq!(ttl, 1);
    // Long enough that a keep-alive delayed by a busy machine (each one is
    // an fsync) still lands in time; the keep-alives below renew it.
    let (long, _) = store.lease_grant(0, 5).await.expect("grant");
    assert_ne!(short, long);
    store.put("/nodes/a", "hb", short).await.expect("put");
    store.put("/nodes/b", "hb", long).await.expect("put");
    let mut watcher = store.watch(KeyRange::prefix("/nodes/"), 0).expect("watch");
    // Keep `long` alive well past its TTL while `short` expires.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let expired = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "lease did not expire in 10s"
        );
        store.lease_keep_alive(long).await.expect("keep alive");
        if let Ok(Some(Ok(batch))) =
            tokio::time::timeout(Duration::from_millis(200), watcher.next()).await
        {
            break batch;
        }
    };
    assert_eq!(expired.events.len(), 1);
    assert_eq!(expired.events[0].kind, EventKind::Delete);
    assert_eq!(expired.events[0].kv.key, b"/nodes/a");
    assert!(store.get("/nodes/b").await.expect("get").is_some());
    assert!(matches!(
        store.lease_keep_alive(short).await,
        Err(StoreError::LeaseNotFound(_))
    ));
    assert!(matches!(
        store.put("/nodes/c", "x", short).await,
        Err(StoreError::LeaseNotFound(_))
    ));
    let info = store
        .lease_time_to_live(long)
        .await
        .expect("ttl")
        .expect("exists");
    assert_eq!(info.keys, vec![b"/nodes/b".to_vec()]);
    store.lease_revoke(long).await.expect("revoke");
    assert!(store.get("/nodes/b").await.expect("get").is_none());
}

#[tokio::test]
async fn acknowledged_writes_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open(&dir).await;
        let mut writers = Vec::new();
        for w in 0..8 {
            let store = store.clone();
            writers.push(tokio::spawn(async move {
                for i in 0..25 {
                    store
                        .put(format!("/d/{w}/{i}"), format!("{w}-{i}"), 0)
                        .await
                        .expect("put");
                }
            }));
        }
        for writer in writers {
            writer.await.expect("writer");
        }
        store.delete(KeyRange::key("/d/0/0")).await.expect("delete");
        store.lease_grant(77, 60).await.expect("grant");
        store.shutdown().await;
    }
    let store = open(&dir).await;
    assert_eq!(store.revision(), 201);
    let (all, _) = store
        .range(RangeRequest {
            range: KeyRange::prefix("/d/"),
            count_only: true,
            ..RangeRequest::default()
        })
        .await
        .expect("range");
    assert_eq!(all.count, 199);
    // History survives too: a watcher replays from the first revision.
    let mut watcher = store.watch(KeyRange::prefix("/d/"), 1).expect("watch");
    for expected in 1..=201 {
        assert_eq!(next(&mut watcher).await.expect("events").revision, expected);
    }
    assert!(store.lease_time_to_live(77).await.expect("ttl").is_some());
    assert!(matches!(
        store.lease_grant(77, 5).await,
        Err(StoreError::LeaseExists(77))
    ));
}

#[tokio::test]
async fn range_at_a_past_revision_sees_the_store_as_it_was() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir).await;
    let (r1, _) = store.put("/p/a", "a1", 0).await.expect("put");
    let (r2, _) = store.put("/p/b", "b1", 0).await.expect("put");
    let (r3, _) = store.put("/p/a", "a2", 0).await.expect("put");
    let (r4, _) = store.delete(KeyRange::key("/p/b")).await.expect("delete");
    store.put("/p/c", "c1", 0).await.expect("put");
    let at = |revision: i64| {
        let store = store.clone();
        async move {
            store
                .range(RangeRequest {
                    range: KeyRange::prefix("/p/"),
                    revision,
                    ..RangeRequest::default()
                })
                .await
        }
    };
    let values = |response: &rudder_kvstore::RangeResponse| {
        response
            .kvs
            .iter()
            .map(|kv| {
                format!(
                    "{}={}@{}",
                    String::from_utf8_lossy(&kv.key),
                    String::from_utf8_lossy(&kv.value),
                    kv.mod_revision
                )
            })
            .collect::<Vec<_>>()
    };
    let (response, read_at) = at(r2).await.expect("range at r2");
    assert_eq!(read_at, r2);
    assert_eq!(
        values(&response),
        vec![format!("/p/a=a1@{r1}"), format!("/p/b=b1@{r2}")]
    );
    let (response, _) = at(r3).await.expect("range at r3");
    assert_eq!(
        values(&response),
        vec![format!("/p/a=a2@{r3}"), format!("/p/b=b1@{r2}")]
    );
    let (response, _) = at(r4).await.expect("range at r4");
    assert_eq!(values(&response), vec![format!("/p/a=a2@{r3}")]);
    assert_eq!(response.count, 1);
    // A key's whole bookkeeping comes back as it was.
    let (response, _) = at(r1).await.expect("range at r1");
    assert_eq!(response.kvs.len(), 1);
    assert_eq!(
        (response.kvs[0].create_revision, response.kvs[0].version),
        (r1, 1)
    );

    let current = store.revision();
    match at(current + 1).await {
        Err(StoreError::FutureRevision {
            requested,
            current: now,
        }) => {
            assert_eq!((requested, now), (current + 1, current));
        }
        other => panic!("a future revision must be refused, got {other:?}"),
    }
    store.compact(r3).await.expect("compact");
    match at(r2).await {
        Err(StoreError::Compacted {
            requested,
            compact_revision,
        }) => assert_eq!((requested, compact_revision), (r2, r3)),
        other => panic!("a compacted revision must be refused, got {other:?}"),
    }
    let (response, _) = at(r3).await.expect("the compaction point itself is kept");
    assert_eq!(
        values(&response),
        vec![format!("/p/a=a2@{r3}"), format!("/p/b=b1@{r2}")]
    );
}
