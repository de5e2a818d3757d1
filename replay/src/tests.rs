//! Snapshots, restore, audit and export against logs built in memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use clawback_events::event::{Event, MessageAppended, Role, SessionCreated};
use clawback_events::store::{LogStore, MemoryStore};
use clawback_events::{Actor, Clock, Log, LogConfig, NewEvent};
use clawback_projections::State;

use crate::snapshot::{SnapshotError, SnapshotStore};
use crate::{rebuild_from, restore};

struct StepClock(AtomicI64);

impl Clock for StepClock {
    fn now_ms(&self) -> i64 {
        self.0.fetch_add(10, Ordering::SeqCst)
    }
}

fn log_with(store: Arc<MemoryStore>, sessions: u64, messages: u64) {
    log_at(store, sessions, messages, 1_000);
}

/// Like [`log_with`], with the clock starting at `start_ms`: two logs with
/// the same events but different times have different chains.
fn log_at(store: Arc<MemoryStore>, sessions: u64, messages: u64, start_ms: i64) {
    let log = Log::open(
        store,
        LogConfig::default(),
        Arc::new(StepClock(AtomicI64::new(start_ms))),
        None,
    )
    .expect("open");
    for session in 0..sessions {
        let key = format!("agent:main:s{session}");
        log.append_blocking(vec![NewEvent::new(
            key.clone(),
            Actor::Cli,
            Event::SessionCreated(SessionCreated {
                session_key: key.clone(),
                session_id: format!("id{session}"),
                agent_id: "main".to_owned(),
                label: None,
                origin: None,
            }),
        )])
        .expect("append");
        for n in 0..messages {
            log.append_blocking(vec![NewEvent::new(
                key.clone(),
                Actor::Cli,
                Event::MessageAppended(MessageAppended {
                    session_key: key.clone(),
                    message_id: format!("m{n}"),
                    role: if n.is_multiple_of(2) {
                        Role::User
                    } else {
                        Role::Assistant
                    },
                    content: format!("message {n} of session {session}"),
                    run_id: None,
                    tool_call_id: None,
                    origin: None,
                }),
            )])
            .expect("append");
        }
    }
}

fn rebuilt(store: &dyn LogStore, until: Option<u64>) -> State {
    let mut state = State::default();
    rebuild_from(store, &mut state, until, &mut |_, _| {}).expect("rebuild");
    state
}

#[test]
fn restore_from_a_snapshot_plus_tail_equals_a_full_rebuild() {
    let store = Arc::new(MemoryStore::new());
    log_with(store.clone(), 3, 10);
    let dir = tempfile::tempdir().expect("tempdir");
    let snapshots = SnapshotStore::new(dir.path());
    snapshots
        .create(&rebuilt(&*store, Some(12)), 0)
        .expect("snapshot");
    let restored = restore(&*store, &snapshots, None, &mut |_, _| {}).expect("restore");
    assert_eq!(restored.snapshot_seq, Some(12));
    assert_eq!(restored.tail_records, 33 - 12);
    assert_eq!(restored.state, rebuilt(&*store, None));
    assert_eq!(
        restored.state.state_hash(),
        rebuilt(&*store, None).state_hash()
    );
}

#[test]
fn restore_until_uses_only_snapshots_at_or_below_it() {
    let store = Arc::new(MemoryStore::new());
    log_with(store.clone(), 2, 10);
    let dir = tempfile::tempdir().expect("tempdir");
    let snapshots = SnapshotStore::new(dir.path());
    snapshots
        .create(&rebuilt(&*store, Some(5)), 0)
        .expect("snapshot");
    snapshots
        .create(&rebuilt(&*store, Some(20)), 0)
        .expect("snapshot");
    let restored = restore(&*store, &snapshots, Some(9), &mut |_, _| {}).expect("restore");
    assert_eq!(restored.snapshot_seq, Some(5));
    assert_eq!(restored.state, rebuilt(&*store, Some(9)));
}

#[test]
fn a_snapshot_of_another_log_is_refused() {
    let ours = Arc::new(MemoryStore::new());
    log_with(ours.clone(), 1, 10);
    let theirs = Arc::new(MemoryStore::new());
    log_at(theirs.clone(), 2, 10, 5_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let snapshots = SnapshotStore::new(dir.path());
    let info = snapshots
        .create(&rebuilt(&*theirs, Some(8)), 0)
        .expect("snapshot");
    match snapshots.load_verified(&info, &*ours) {
        Err(SnapshotError::ChainMismatch { seq: 7, .. }) => {}
        other => panic!("expected a chain mismatch at seq 7, got {other:?}"),
    }
    let longer = snapshots
        .create(&rebuilt(&*theirs, None), 0)
        .expect("snapshot");
    let error = snapshots
        .load_verified(&longer, &*ours)
        .expect_err("beyond the log");
    assert!(error.to_string().ends_with("covers seqs below 22 but the log has only 11 records: it belongs to another or a longer log"), "{error}");
    let restored = restore(&*ours, &snapshots, None, &mut |_, _| {}).expect("restore");
    assert_eq!(
        restored.snapshot_seq, None,
        "both foreign snapshots were skipped"
    );
    assert_eq!(restored.skipped.len(), 2);
    assert_eq!(restored.state, rebuilt(&*ours, None));
}

#[test]
fn every_byte_of_a_snapshot_is_covered_by_its_checks() {
    let store = Arc::new(MemoryStore::new());
    log_with(store.clone(), 1, 3);
    let dir = tempfile::tempdir().expect("tempdir");
    let snapshots = SnapshotStore::new(dir.path());
    let info = snapshots
        .create(&rebuilt(&*store, None), 0)
        .expect("snapshot");
    let original = std::fs::read(&info.path).expect("read");
    for index in 0..original.len() {
        let mut damaged = original.clone();
        damaged[index] ^= 0x01;
        std::fs::write(&info.path, &damaged).expect("write");
        assert!(
            snapshots.load_verified(&info, &*store).is_err(),
            "flip at byte {index} went unnoticed"
        );
    }
    std::fs::write(&info.path, &original[..original.len() - 1]).expect("write");
    assert!(
        snapshots.load(&info).is_err(),
        "a cut-off snapshot is refused"
    );
}

#[test]
fn audit_verify_reports_the_first_bad_seq_and_what_differs() {
    let store = Arc::new(MemoryStore::new());
    log_with(store.clone(), 1, 9);
    let dir = tempfile::tempdir().expect("tempdir");
    let snapshots = SnapshotStore::new(dir.path());
    snapshots
        .create(&rebuilt(&*store, Some(8)), 0)
        .expect("snapshot");
    let clean = crate::audit::verify(&*store, &snapshots, None, &mut |_, _| {}).expect("verify");
    assert!(clean.is_ok(), "{clean}");
    assert_eq!(clean.records_verified, 10);

    let mut damaged = store.get(4).expect("get").expect("present");
    let last = damaged.len() - 1;
    damaged[last] ^= 0x20;
    store.overwrite_for_test(4, damaged);
    let report = crate::audit::verify(&*store, &snapshots, None, &mut |_, _| {}).expect("verify");
    let text = report.to_string();
    assert!(!report.is_ok());
    assert!(
        text.starts_with("chain: FAILED at seq 4: stored hash "),
        "{text}"
    );
    assert!(
        text.contains("(4 of 10 records verified before it)"),
        "{text}"
    );
    assert!(
        text.contains("FAILED: covers seqs up to 7, past the chain failure at seq 4"),
        "{text}"
    );
    assert!(text.ends_with("audit: FAILED"), "{text}");
}

/// A snapshot that matches the chain but not the state the log folds to
/// (written from diverged live state) must fail the audit, or a restore
/// would carry the divergence forward unnoticed.
#[test]
fn audit_verify_fails_a_snapshot_whose_state_differs_from_the_fold() {
    let store = Arc::new(MemoryStore::new());
    log_with(store.clone(), 2, 5);
    let dir = tempfile::tempdir().expect("tempdir");
    let snapshots = SnapshotStore::new(dir.path());
    snapshots
        .create(&rebuilt(&*store, Some(4)), 0)
        .expect("snapshot");
    let mut diverged = rebuilt(&*store, Some(9));
    diverged
        .sessions
        .by_key
        .get_mut("agent:main:s0")
        .expect("session")
        .transcript
        .pop();
    snapshots.create(&diverged, 0).expect("snapshot");

    let report = crate::audit::verify(&*store, &snapshots, None, &mut |_, _| {}).expect("verify");
    let text = report.to_string();
    assert!(!report.is_ok(), "{text}");
    assert!(text.starts_with("chain: OK, 12 records verified"), "{text}");
    assert!(
        text.contains("snapshot-00000000000000000004.cbsnap: OK (covers seqs below 4)"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "snapshot-00000000000000000009.cbsnap: FAILED: state hash {} differs from {}, \
             the state the log folds to at seq 9",
            diverged.state_hash().short(),
            rebuilt(&*store, Some(9)).state_hash().short()
        )),
        "{text}"
    );
}

#[test]
fn export_filters_by_seq_range_and_session() {
    let store = Arc::new(MemoryStore::new());
    log_with(store.clone(), 2, 4);
    let mut out = Vec::new();
    let filter = crate::export::ExportFilter {
        since_seq: Some(3),
        until_seq: Some(7),
        session: Some("agent:main:s1".to_owned()),
    };
    let count = crate::export::export(&*store, &clawback_events::sealed::NoKeys, &filter, &mut out)
        .expect("export");
    let lines: Vec<serde_json::Value> = String::from_utf8(out)
        .expect("utf-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("json"))
        .collect();
    assert_eq!(count, 3);
    assert_eq!(
        lines
            .iter()
            .map(|line| line["seq"].as_u64().expect("seq"))
            .collect::<Vec<_>>(),
        vec![5, 6, 7]
    );
    assert_eq!(lines[0]["kind"], "session.created");
    assert_eq!(
        lines[1]["event"]["MessageAppended"]["content"],
        "message 0 of session 1"
    );
}

mod live_equals_rebuild {
    //! The engineering rule "rebuilding from the log gives the same state hash
    //! as the live server", checked on generated histories: the live state is
    //! folded by the log's commit hook exactly as the gateway does it.

    use std::sync::{Arc, Mutex};

    use clawback_events::store::MemoryStore;
    use clawback_events::{Log, LogConfig, NewEvent};
    use clawback_projections::State;
    use clawback_projections::testing::{new_event, timed_events};
    use proptest::prelude::*;

    use super::{StepClock, rebuilt};
    use crate::restore;
    use crate::snapshot::SnapshotStore;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn live_state_equals_rebuild_and_snapshot_plus_tail(
            events in timed_events(150),
            batch in 1usize..12,
            cut in any::<prop::sample::Index>(),
        ) {
            let store = Arc::new(MemoryStore::new());
            let live = Arc::new(Mutex::new(State::default()));
            let hook_state = live.clone();
            let log = Log::open(
                store.clone(),
                LogConfig::default(),
                Arc::new(StepClock(std::sync::atomic::AtomicI64::new(0))),
                Some(Box::new(move |committed| {
                    let mut state = hook_state.lock().unwrap();
                    for envelope in committed {
                        state.apply(envelope);
                    }
                })),
            )
            .unwrap();
            let new_events: Vec<NewEvent> =
                events.into_iter().map(|(_, event)| new_event(event)).collect();
            for chunk in new_events.chunks(batch) {
                log.append_blocking(chunk.to_vec()).unwrap();
            }
            log.close();
            let live = live.lock().unwrap().clone();
            prop_assert_eq!(live.next_seq, new_events.len() as u64);

            let full = rebuilt(&*store, None);
            prop_assert_eq!(full.state_hash(), live.state_hash());

            let dir = tempfile::tempdir().unwrap();
            let snapshots = SnapshotStore::new(dir.path());
            let cut = cut.index(new_events.len() + 1) as u64;
            snapshots.create(&rebuilt(&*store, Some(cut)), 0).unwrap();
            let restored = restore(&*store, &snapshots, None, &mut |_, _| {}).unwrap();
            prop_assert_eq!(restored.snapshot_seq, Some(cut));
            prop_assert_eq!(restored.state.state_hash(), live.state_hash());
            prop_assert_eq!(restored.state, live);
        }
    }
}

/// The state the fixture log folds to, pinned. If a change to a reducer or to
/// a projection's shape moves this hash, old snapshots no longer describe the
/// state this build would compute: bump `STATE_FORMAT_VERSION` (so they are
/// refused and restore replays the log) and update the pin in the same commit.
#[test]
fn the_fixture_log_folds_to_the_pinned_state_hash() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/log-v1.cblog");
    let file = std::fs::File::open(&path).expect("fixtures/log-v1.cblog is checked in");
    let mut input = std::io::BufReader::new(file);
    let mut state = State::default();
    clawback_events::archive::read(&mut input, &mut |seq, bytes| {
        let envelope = clawback_events::record::decode(seq, bytes).expect("fixture decodes");
        state.apply(&envelope);
        std::ops::ControlFlow::Continue(())
    })
    .expect("archive reads");
    assert_eq!(state.next_seq, 44);
    // The fixture records a failure of a delivery it never prepared (seq 24):
    // the reducer must keep it out of the outbox and say so.
    let anomalies: Vec<(u64, &str)> = state
        .anomalies
        .recent
        .iter()
        .map(|anomaly| (anomaly.seq, anomaly.kind.as_str()))
        .collect();
    assert_eq!(anomalies, [(24, "delivery.not_pending")]);
    assert_eq!(
        (
            clawback_projections::STATE_FORMAT_VERSION,
            state.state_hash().to_hex().as_str()
        ),
        // Version 3 added pending pairings and device tokens to `Devices`;
        // version 4 per-day usage totals; version 5 the exec policy;
        // version 6 voice wake words; version 7 cron job definitions and run
        // results, and nodes moved out of `Devices` into `Nodes` (approved
        // and pending surfaces, connected sessions); version 8 tool calls and
        // their results as transcript entries (the tool loop); version 9
        // the idempotency keys of HTTP requests; version 10 the reply a
        // transcript's tool call came from (`reply_seq`, for Gemini's
        // thought signatures on later turns); version 11 the same for the
        // model's text (the context guard reads that reply's usage);
        // version 12 channels (seen platform messages, cursors, unsettled
        // replies); version 13 DM pairing requests and paired senders;
        // version 14 the content keys destroyed by session purges; version
        // 15 where a session's history starts and what it was forked from
        // (`session.forked`); version 16 each session's last chat
        // (`channel: "last"`) and cursors recorded without a message.
        (
            16,
            "d12a4d14c7a1f7e8cb6c646eee25acfcf5ef7c7f043e1811a04d1164e11016c4"
        ),
    );
}

/// The pipelined rebuild stops at a damaged record with its seq, having
/// applied exactly the records before it, and does not hang.
#[test]
fn rebuild_stops_at_a_damaged_record_with_everything_before_it_applied() {
    let store = Arc::new(MemoryStore::new());
    log_with(store.clone(), 3, 1_000);
    let mut damaged = store.get(2_500).expect("get").expect("present");
    let last = damaged.len() - 1;
    damaged[last] ^= 0x01;
    store.overwrite_for_test(2_500, damaged);
    let mut state = State::default();
    let error = rebuild_from(&*store, &mut state, None, &mut |_, _| {}).expect_err("damaged");
    assert!(
        error
            .to_string()
            .starts_with("log record at seq 2500 cannot be replayed: "),
        "{error}"
    );
    assert_eq!(state.next_seq, 2_500);
    assert_eq!(state, rebuilt(&*store, Some(2_500)));
}

/// The gateway's restore trusts the hashes recovery verified, and only those:
/// below `hashes_verified_from` every hash is still checked.
#[test]
fn restore_after_recovery_checks_hashes_below_the_verified_range() {
    let store = Arc::new(MemoryStore::new());
    log_with(store.clone(), 2, 50);
    let dir = tempfile::tempdir().expect("tempdir");
    let snapshots = SnapshotStore::new(dir.path());
    let full = restore(&*store, &snapshots, None, &mut |_, _| {}).expect("restore");
    let trusted = crate::restore_after_recovery(&*store, &snapshots, None, 40, &mut |_, _| {})
        .expect("restore");
    assert_eq!(trusted.state, full.state);

    let mut damaged = store.get(20).expect("get").expect("present");
    let last = damaged.len() - 1;
    damaged[last] ^= 0x01;
    store.overwrite_for_test(20, damaged);
    let error = crate::restore_after_recovery(&*store, &snapshots, None, 40, &mut |_, _| {})
        .expect_err("seq 20 is below the verified range, so its hash is checked");
    assert!(error.to_string().contains("seq 20"), "{error}");
}

/// Pages of a session's timeline, read one after another from the last seq
/// each gave, are the whole timeline, in order, with `more` false only on
/// the last; `until` and a run filter bound them as they bound the whole.
#[test]
fn timeline_pages_concatenate_to_the_whole_timeline() {
    use crate::timeline::{TimelineFilter, session_timeline, session_timeline_page};
    let store = Arc::new(MemoryStore::new());
    log_with(store.clone(), 3, 25);
    let key = "agent:main:s1";
    for filter in [
        TimelineFilter::default(),
        TimelineFilter {
            until_seq: Some(40),
            run_id: None,
        },
        TimelineFilter {
            until_seq: None,
            run_id: Some("no-such-run".to_owned()),
        },
    ] {
        let whole: Vec<u64> =
            session_timeline(&*store, &clawback_events::sealed::NoKeys, key, &filter)
                .expect("timeline")
                .iter()
                .map(|entry| entry.envelope.seq)
                .collect();
        for limit in [1, 7, 26, 1000] {
            let (mut paged, mut after, mut pages) = (Vec::new(), None, 0);
            loop {
                let page = session_timeline_page(
                    &*store,
                    &clawback_events::sealed::NoKeys,
                    key,
                    &filter,
                    after,
                    limit,
                )
                .expect("page");
                pages += 1;
                assert!(page.entries.len() <= limit);
                paged.extend(page.entries.iter().map(|entry| entry.envelope.seq));
                after = paged.last().copied();
                if !page.more {
                    break;
                }
                assert!(pages < 100, "pages always advance");
            }
            assert_eq!(paged, whole, "limit {limit}, filter {filter:?}");
        }
    }
    assert_eq!(
        session_timeline(
            &*store,
            &clawback_events::sealed::NoKeys,
            key,
            &TimelineFilter::default()
        )
        .expect("timeline")
        .len(),
        26
    );
}
