//! Behaviour of the log as a whole: group commit, recovery, subscriptions.
//! These run against the in-memory store (rules above the store boundary)
//! and against fjall where the engine matters.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::envelope::{Actor, NewEvent};
use crate::event::{Event, MessageAppended, Role, SessionCreated};
use crate::log::{Clock, CommitHook, Log, LogConfig};
use crate::record;
use crate::recovery::RecoveryError;
use crate::store::{AppendRecord, Durability, FjallStore, LogStore, MemoryStore, StoreError};
use crate::subscription::SubscriptionError;

/// A clock the test moves by hand.
struct ManualClock(AtomicI64);

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

fn clock(at: i64) -> Arc<ManualClock> {
    Arc::new(ManualClock(AtomicI64::new(at)))
}

fn message(session: &str, n: u64) -> NewEvent {
    NewEvent::new(
        session,
        Actor::System,
        Event::MessageAppended(MessageAppended {
            session_key: session.to_owned(),
            message_id: format!("m{n}"),
            role: Role::User,
            content: format!("message number {n}"),
            run_id: None,
            tool_call_id: None,
            origin: None,
        }),
    )
}

fn open(store: Arc<dyn LogStore>) -> Log {
    Log::open(store, LogConfig::default(), clock(1_000), None).expect("open")
}

fn fill(log: &Log, count: u64) {
    for n in 0..count {
        log.append_blocking(vec![message("agent:main:main", n)])
            .expect("append");
    }
}

#[test]
fn appends_get_gap_free_seqs_and_a_verifiable_chain() {
    let store: Arc<dyn LogStore> = Arc::new(MemoryStore::new());
    let log = open(store.clone());
    let first = log.append_blocking(vec![message("s", 0)]).expect("append");
    let second = log
        .append_blocking(vec![message("s", 1), message("t", 2)])
        .expect("append");
    assert_eq!((first.first_seq, first.last_seq), (0, 0));
    assert_eq!((second.first_seq, second.last_seq), (1, 2));
    assert_eq!(log.next_seq(), 3);
    assert_eq!(log.head_hash(), second.last_hash);
    let (tail_hash, _, checked) = crate::recovery::verify_chain(&*store, 0).expect("verifies");
    assert_eq!((tail_hash, checked), (second.last_hash, 3));
}

#[test]
fn concurrent_appenders_share_syncs_and_every_append_is_present() {
    let store: Arc<dyn LogStore> = Arc::new(MemoryStore::new());
    let log = Arc::new(open(store.clone()));
    let threads: Vec<_> = (0..16)
        .map(|thread| {
            let log = log.clone();
            std::thread::spawn(move || {
                (0..200)
                    .map(|n| {
                        log.append_blocking(vec![message(&format!("s{thread}"), n)])
                            .expect("append")
                            .first_seq
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut seqs: Vec<u64> = threads
        .into_iter()
        .flat_map(|thread| thread.join().expect("thread"))
        .collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (0..3_200).collect::<Vec<_>>(),
        "every append got its own seq, no gap"
    );
    assert!(log.batches_committed() <= 3_200);
    crate::recovery::verify_chain(&*store, 0).expect("chain verifies");
}

#[test]
fn timestamps_never_go_back_even_when_the_clock_does() {
    let store: Arc<dyn LogStore> = Arc::new(MemoryStore::new());
    let manual = clock(5_000);
    let log = Log::open(store.clone(), LogConfig::default(), manual.clone(), None).expect("open");
    log.append_blocking(vec![message("s", 0)]).expect("append");
    manual.0.store(1_000, Ordering::SeqCst);
    log.append_blocking(vec![message("s", 1)]).expect("append");
    let second = record::decode(1, &store.get(1).expect("get").expect("present")).expect("decode");
    assert_eq!(second.body.ts_ms, 5_000);
}

#[test]
fn the_commit_hook_sees_every_batch_before_the_append_returns() {
    let seen = Arc::new(AtomicU64::new(0));
    let seen_by_hook = seen.clone();
    let hook: CommitHook = Box::new(move |batch| {
        seen_by_hook.fetch_add(batch.len() as u64, Ordering::SeqCst);
    });
    let log = Log::open(
        Arc::new(MemoryStore::new()),
        LogConfig::default(),
        clock(0),
        Some(hook),
    )
    .expect("open");
    for n in 0..10 {
        log.append_blocking(vec![message("s", n)]).expect("append");
        assert_eq!(seen.load(Ordering::SeqCst), n + 1);
    }
}

#[test]
fn invalid_appends_are_refused_without_touching_the_log() {
    let log = open(Arc::new(MemoryStore::new()));
    assert!(log.append_blocking(vec![]).is_err());
    let mut bad = message("s", 0);
    bad.stream = "with\0nul".to_owned();
    let error = log.append_blocking(vec![bad]).expect_err("refused");
    assert_eq!(
        error.to_string(),
        "invalid event: stream name contains a NUL byte"
    );
    let mut huge = message("s", 1);
    if let Event::MessageAppended(body) = &mut huge.event {
        body.content = "x".repeat(crate::log::RECORD_BYTES_MAX + 1);
    }
    assert!(log.append_blocking(vec![huge]).is_err());
    assert_eq!(log.next_seq(), 0);
    log.append_blocking(vec![message("s", 2)])
        .expect("the log still works");
    assert_eq!(log.next_seq(), 1);
}

/// A store that fails every append after the first `healthy` ones, like a
/// disk whose sync starts failing.
struct FailingStore {
    inner: MemoryStore,
    healthy: AtomicU64,
}

impl LogStore for FailingStore {
    fn append(
        &self,
        records: &[AppendRecord<'_>],
        durability: Durability,
    ) -> Result<(), StoreError> {
        if self.healthy.load(Ordering::SeqCst) == 0 {
            return Err(StoreError::Io("fdatasync: Input/output error".to_owned()));
        }
        self.healthy.fetch_sub(1, Ordering::SeqCst);
        self.inner.append(records, durability)
    }
    fn sync(&self) -> Result<(), StoreError> {
        self.inner.sync()
    }
    fn next_seq(&self) -> Result<u64, StoreError> {
        self.inner.next_seq()
    }
    fn scan(
        &self,
        from: u64,
        visit: &mut dyn FnMut(u64, &[u8]) -> std::ops::ControlFlow<()>,
    ) -> Result<(), StoreError> {
        self.inner.scan(from, visit)
    }
    fn scan_stream(
        &self,
        stream: &str,
        from: u64,
        visit: &mut dyn FnMut(u64) -> std::ops::ControlFlow<()>,
    ) -> Result<(), StoreError> {
        self.inner.scan_stream(stream, from, visit)
    }
    fn truncate_from(&self, from: u64) -> Result<u64, StoreError> {
        self.inner.truncate_from(from)
    }
}

#[test]
fn after_a_failed_sync_the_writer_acknowledges_nothing_more() {
    let store = Arc::new(FailingStore {
        inner: MemoryStore::new(),
        healthy: AtomicU64::new(2),
    });
    let log = open(store.clone());
    fill(&log, 2);
    let failed = log
        .append_blocking(vec![message("s", 2)])
        .expect_err("sync failed");
    assert!(
        failed.to_string().contains("fdatasync: Input/output error"),
        "{failed}"
    );
    store.healthy.store(100, Ordering::SeqCst);
    let later = log
        .append_blocking(vec![message("s", 3)])
        .expect_err("writer stopped");
    assert!(
        later.to_string().starts_with("the log writer has stopped"),
        "{later}"
    );
    assert_eq!(
        store.next_seq().expect("next"),
        2,
        "nothing after the failure was written"
    );
}

#[test]
fn a_torn_tail_record_is_dropped_and_reported() {
    let store = Arc::new(MemoryStore::new());
    fill(&open(store.clone()), 5);
    let last = store.get(4).expect("get").expect("present");
    store.overwrite_for_test(4, last[..last.len() - 7].to_vec());
    let log = open(store.clone());
    let report = log.recovery().to_string();
    assert!(
        report.starts_with(&format!(
            "recovery: dropped torn record at seq 4 ({} bytes: record is truncated ({} bytes, body ends early)); it was never acknowledged\n",
            last.len() - 7,
            last.len() - 7
        )),
        "{report}"
    );
    assert!(report.contains("recovery: log ends at seq 3"), "{report}");
    assert_eq!(log.next_seq(), 4);
    assert_eq!(
        log.append_blocking(vec![message("s", 9)])
            .expect("append")
            .first_seq,
        4
    );
}

#[test]
fn more_than_one_batch_of_cut_records_is_damage_and_left_alone() {
    let store = Arc::new(MemoryStore::new());
    let log = open(store.clone());
    let count = crate::recovery::TORN_RECORDS_MAX + 2;
    for start in (0..count).step_by(1_000) {
        let end = (start + 1_000).min(count);
        log.append_blocking((start..end).map(|n| message("s", n)).collect())
            .expect("append");
    }
    drop(log);
    for seq in 1..count {
        let bytes = store.get(seq).expect("get").expect("present");
        store.overwrite_for_test(seq, bytes[..bytes.len() - 3].to_vec());
    }
    let error = Log::open(store.clone(), LogConfig::default(), clock(0), None)
        .err()
        .expect("refused");
    assert!(
        error
            .to_string()
            .starts_with("log has 5001 unreadable records at its tail (from seq 1)"),
        "{error}"
    );
    assert_eq!(
        store.next_seq().expect("next"),
        count,
        "nothing was dropped"
    );
}

#[test]
fn a_bit_flip_in_the_middle_is_refused_with_its_seq() {
    let store = Arc::new(MemoryStore::new());
    fill(&open(store.clone()), 10);
    let mut damaged = store.get(6).expect("get").expect("present");
    let last = damaged.len() - 1;
    damaged[last] ^= 0x04;
    store.overwrite_for_test(6, damaged);
    let error = Log::open(store.clone(), LogConfig::default(), clock(0), None)
        .err()
        .expect("refused");
    let text = error.to_string();
    assert!(
        text.starts_with("log corrupted at seq 6: stored hash "),
        "{text}"
    );
    assert!(text.contains("the record was altered or damaged on disk. The log was not opened and nothing was changed."), "{text}");
    assert!(matches!(error, RecoveryError::Corrupt { seq: 6, .. }));
    assert_eq!(store.next_seq().expect("next"), 10, "nothing was dropped");
}

#[test]
fn a_bit_flip_in_the_last_record_is_refused_not_dropped() {
    let store = Arc::new(MemoryStore::new());
    fill(&open(store.clone()), 3);
    let mut damaged = store.get(2).expect("get").expect("present");
    damaged[40] ^= 0x80; // inside the stored hash: the length is intact
    store.overwrite_for_test(2, damaged);
    let error = Log::open(store.clone(), LogConfig::default(), clock(0), None)
        .err()
        .expect("refused");
    assert!(
        matches!(error, RecoveryError::Corrupt { seq: 2, .. }),
        "{error}"
    );
    assert_eq!(store.next_seq().expect("next"), 3);
}

#[test]
fn a_record_rewritten_with_a_valid_hash_breaks_the_chain() {
    // An attacker with disk access rewrites seq 3 and recomputes its own hash;
    // the link from seq 4 exposes it.
    let store = Arc::new(MemoryStore::new());
    fill(&open(store.clone()), 6);
    let original =
        record::decode(3, &store.get(3).expect("get").expect("present")).expect("decode");
    let mut forged = original.body.clone();
    if let Event::MessageAppended(body) = &mut forged.event {
        body.content = "forged".to_owned();
    }
    let (bytes, _) = record::encode(3, &original.prev_hash, &forged);
    store.overwrite_for_test(3, bytes);
    let error = Log::open(store.clone(), LogConfig::default(), clock(0), None)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        error.starts_with("log corrupted at seq 4: chain broken: prev_hash "),
        "{error}"
    );
}

#[test]
fn a_tampered_fjall_record_is_refused_on_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = Arc::new(FjallStore::open(dir.path()).expect("open"));
        fill(&open(store.clone()), 20);
        let mut bytes = store.get(11).expect("get").expect("present");
        let middle = bytes.len() / 2 + 40;
        bytes[middle] ^= 0x01;
        store.overwrite_for_test(11, &bytes).expect("overwrite");
    }
    let store = Arc::new(FjallStore::open(dir.path()).expect("reopen"));
    let error = Log::open(store, LogConfig::default(), clock(0), None)
        .err()
        .expect("refused")
        .to_string();
    assert!(error.starts_with("log corrupted at seq 11: "), "{error}");
}

#[test]
fn fjall_log_survives_reopen_and_continues_the_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let head = {
        let log = open(Arc::new(FjallStore::open(dir.path()).expect("open")));
        fill(&log, 50);
        log.head_hash()
    };
    let store = Arc::new(FjallStore::open(dir.path()).expect("reopen"));
    let log = open(store.clone());
    assert_eq!(log.recovery().next_seq, 50);
    assert_eq!(log.recovery().tail_hash, head);
    log.append_blocking(vec![message("s", 50)]).expect("append");
    drop(log);
    crate::recovery::verify_chain(&*store, 0).expect("chain continues across the reopen");
}

#[test]
fn a_subscriber_catches_up_from_the_store_then_follows_live() {
    let log = Arc::new(open(Arc::new(MemoryStore::new())));
    fill(&log, 2_500);
    let mut subscription = log.subscribe(100);
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || {
            for n in 2_500..3_000 {
                log.append_blocking(vec![message("s", n)]).expect("append");
            }
        })
    };
    for expected in 100..3_000u64 {
        let envelope = subscription.blocking_recv().expect("receives");
        assert_eq!(envelope.seq, expected);
    }
    writer.join().expect("writer");
}

#[test]
fn a_lagging_subscriber_is_told_where_to_resume() {
    let config = LogConfig {
        subscriber_buffer_events: 16,
        ..LogConfig::default()
    };
    let log = Log::open(Arc::new(MemoryStore::new()), config, clock(0), None).expect("open");
    let mut slow = log.subscribe(0);
    fill(&log, 100);
    // The ring kept only the newest 16: the subscriber gets an explicit signal.
    let error = slow.blocking_recv().expect_err("lagged");
    assert_eq!(error, SubscriptionError::Lagged { resume_from: 0 });
    assert_eq!(
        error.to_string(),
        "subscriber lagged behind the live buffer; resume from seq 0"
    );
    // Resuming from the store delivers everything, in order.
    let mut resumed = log.subscribe(0);
    for expected in 0..100 {
        assert_eq!(resumed.blocking_recv().expect("receives").seq, expected);
    }
}

#[test]
fn subscribers_see_closed_after_the_log_closes() {
    let log = open(Arc::new(MemoryStore::new()));
    fill(&log, 3);
    let mut subscription = log.subscribe(0);
    log.close();
    for expected in 0..3 {
        assert_eq!(subscription.blocking_recv().expect("stored").seq, expected);
    }
    assert_eq!(
        subscription.blocking_recv().expect_err("closed"),
        SubscriptionError::Closed
    );
}

#[test]
fn multi_event_appends_are_atomic_and_contiguous() {
    let store: Arc<dyn LogStore> = Arc::new(MemoryStore::new());
    let log = Arc::new(open(store.clone()));
    let created = NewEvent::new(
        "agent:main:x",
        Actor::Cli,
        Event::SessionCreated(SessionCreated {
            session_key: "agent:main:x".to_owned(),
            session_id: "id".to_owned(),
            agent_id: "main".to_owned(),
            label: None,
            origin: None,
        }),
    );
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let log = log.clone();
            let created = created.clone();
            std::thread::spawn(move || {
                (0..50)
                    .map(|n| {
                        let committed = log
                            .append_blocking(vec![created.clone(), message("agent:main:x", n)])
                            .expect("append");
                        assert_eq!(committed.last_seq, committed.first_seq + 1);
                        committed.first_seq
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let starts: Mutex<Vec<u64>> = Mutex::new(Vec::new());
    for thread in threads {
        starts
            .lock()
            .expect("lock")
            .extend(thread.join().expect("join"));
    }
    for start in starts.into_inner().expect("lock") {
        let first = record::decode(start, &store.get(start).expect("get").expect("present"))
            .expect("decode");
        assert!(
            matches!(first.body.event, Event::SessionCreated(_)),
            "pairs are never interleaved"
        );
    }
}

/// The checked-in fixture: a log written by format 1 that must stay readable
/// for as long as clawback exists. Never regenerate it; add a new fixture
/// beside it for new event kinds or a new format.
#[test]
fn fixture_log_v1_decodes_and_re_encodes_byte_for_byte() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/log-v1.cblog");
    let file = std::fs::File::open(&path).expect("fixtures/log-v1.cblog is checked in");
    let mut input = std::io::BufReader::new(file);
    let mut expected_prev = crate::Digest::GENESIS;
    let mut expected_seq = 0;
    let mut kinds = std::collections::BTreeSet::new();
    crate::archive::read(&mut input, &mut |seq, bytes| {
        assert_eq!(seq, expected_seq);
        let envelope =
            record::decode(seq, bytes).unwrap_or_else(|error| panic!("seq {seq}: {error}"));
        assert_eq!(
            envelope.prev_hash, expected_prev,
            "seq {seq} links to its predecessor"
        );
        let (re_encoded, hash) = record::encode(seq, &envelope.prev_hash, &envelope.body);
        assert_eq!(re_encoded, bytes, "seq {seq} re-encodes to the same bytes");
        assert_eq!(hash, envelope.hash);
        kinds.insert(envelope.body.event.kind());
        expected_prev = envelope.hash;
        expected_seq += 1;
        std::ops::ControlFlow::Continue(())
    })
    .expect("archive reads");
    let all_kinds = [
        "agent.run.finished",
        "agent.run.started",
        "approval.expired",
        "approval.requested",
        "approval.resolved",
        "config.changed",
        "connection.closed",
        "connection.opened",
        "cron.job.added",
        "cron.job.finished",
        "cron.job.fired",
        "cron.job.removed",
        "delivery.failed",
        "delivery.prepared",
        "delivery.sent",
        "device.paired",
        "device.revoked",
        "gateway.started",
        "gateway.stopped",
        "llm.call.completed",
        "llm.call.requested",
        "message.appended",
        "node.paired",
        "node.unpaired",
        "presence.changed",
        "rpc.answered",
        "rpc.received",
        "session.compacted",
        "session.created",
        "session.deleted",
        "session.patched",
        "session.reset",
        "tool.call.finished",
        "tool.call.requested",
        "tool.call.started",
    ];
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        all_kinds,
        "the fixture holds every format-1 event kind"
    );
    assert_eq!(
        expected_prev.to_hex(),
        include_str!("../../fixtures/log-v1.head").trim(),
        "the fixture's head hash is pinned"
    );
}

mod hostile_bytes {
    //! Bad input gets an error, never a panic: records and archives come from
    //! disks that rot and from files people hand us.

    use proptest::prelude::*;

    use crate::envelope::{Actor, Body, Digest};
    use crate::event::{Event, MessageAppended, Role};
    use crate::record::{self, RecordError};

    fn valid_record(seq: u64, content: &str) -> Vec<u8> {
        let body = Body {
            ts_ms: 1_764_000_000_000,
            stream: "agent:main:main".to_owned(),
            actor: Actor::Cli,
            correlation: Some("req-1".to_owned()),
            causation: None,
            event: Event::MessageAppended(MessageAppended {
                session_key: "agent:main:main".to_owned(),
                message_id: "m1".to_owned(),
                role: Role::User,
                content: content.to_owned(),
                run_id: None,
                tool_call_id: None,
                origin: None,
            }),
        };
        record::encode(seq, &Digest::GENESIS, &body).0
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn decoding_arbitrary_bytes_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
            seq in any::<u64>(),
        ) {
            let _ = record::decode(seq, &bytes);
            let _ = record::decode_hash_verified(seq, &bytes);
        }

        /// Any single flipped bit anywhere in a record is caught.
        #[test]
        fn a_flipped_bit_is_always_detected(
            content in "[a-z ]{0,64}",
            position in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let mut bytes = valid_record(7, &content);
            prop_assert!(record::decode(7, &bytes).is_ok());
            let index = position.index(bytes.len());
            bytes[index] ^= 1 << bit;
            prop_assert!(record::decode(7, &bytes).is_err());
        }

        /// A record cut anywhere is refused, and a cut inside the body says so.
        #[test]
        fn a_cut_record_is_refused(content in "[a-z ]{1,64}", cut in any::<prop::sample::Index>()) {
            let bytes = valid_record(3, &content);
            let cut = cut.index(bytes.len());
            let error = record::decode(3, &bytes[..cut]).expect_err("a cut record");
            prop_assert!(
                matches!(error, RecordError::Truncated { .. }),
                "cut at {} of {}: {:?}", cut, bytes.len(), error
            );
        }

        #[test]
        fn reading_an_arbitrary_archive_never_panics(
            tail in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            // Past the magic, so the frame parser itself is exercised.
            let mut bytes = crate::archive::MAGIC.to_vec();
            bytes.extend_from_slice(&tail);
            let mut input = std::io::Cursor::new(bytes);
            let _ = crate::archive::read(&mut input, &mut |_, _| std::ops::ControlFlow::Continue(()));
        }
    }
}
