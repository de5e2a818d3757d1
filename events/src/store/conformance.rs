//! The conformance suite every [`LogStore`] must pass.
//!
//! Public (not `cfg(test)`) so a backend living in another crate runs the
//! very same checks: `conformance::run_all(&|| Box::new(MyStore::new()))`.
//! Each check gets a fresh, empty store from the factory.

use std::ops::ControlFlow;

use super::{AppendRecord, Durability, LogStore, StoreError};

pub type StoreFactory<'a> = &'a dyn Fn() -> Box<dyn LogStore>;

/// Runs every check; panics with the name of the first one that fails.
pub fn run_all(factory: StoreFactory<'_>) {
    appends_continue_the_sequence(factory());
    gaps_and_rewrites_are_refused(factory());
    scan_yields_records_in_order_and_stops_on_break(factory());
    stream_index_lists_only_that_streams_seqs(factory());
    truncate_removes_the_tail_and_its_index(factory());
    an_empty_batch_is_a_no_op(factory());
}

fn append_range(
    store: &dyn LogStore,
    range: std::ops::Range<u64>,
    stream_of: fn(u64) -> &'static str,
) {
    let payloads: Vec<Vec<u8>> = range
        .clone()
        .map(|seq| format!("record-{seq}").into_bytes())
        .collect();
    let batch: Vec<AppendRecord<'_>> = range
        .zip(payloads.iter())
        .map(|(seq, bytes)| AppendRecord {
            seq,
            stream: stream_of(seq),
            bytes,
        })
        .collect();
    store
        .append(&batch, Durability::Sync)
        .expect("append succeeds");
}

fn collect(store: &dyn LogStore, from: u64) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    store
        .scan(from, &mut |seq, bytes| {
            out.push((seq, bytes.to_vec()));
            ControlFlow::Continue(())
        })
        .expect("scan succeeds");
    out
}

fn stream_seqs(store: &dyn LogStore, stream: &str, from: u64) -> Vec<u64> {
    let mut out = Vec::new();
    store
        .scan_stream(stream, from, &mut |seq| {
            out.push(seq);
            ControlFlow::Continue(())
        })
        .expect("stream scan succeeds");
    out
}

fn even_odd(seq: u64) -> &'static str {
    if seq.is_multiple_of(2) { "even" } else { "odd" }
}

fn appends_continue_the_sequence(store: Box<dyn LogStore>) {
    assert_eq!(
        store.next_seq().expect("next_seq"),
        0,
        "empty store starts at 0"
    );
    append_range(&*store, 0..3, even_odd);
    append_range(&*store, 3..5, even_odd);
    assert_eq!(store.next_seq().expect("next_seq"), 5);
    let all = collect(&*store, 0);
    assert_eq!(all.len(), 5);
    assert_eq!(all[4], (4, b"record-4".to_vec()));
    assert_eq!(store.get(2).expect("get"), Some(b"record-2".to_vec()));
    assert_eq!(store.get(5).expect("get"), None);
}

fn gaps_and_rewrites_are_refused(store: Box<dyn LogStore>) {
    append_range(&*store, 0..2, even_odd);
    let gap = store.append(
        &[AppendRecord {
            seq: 3,
            stream: "s",
            bytes: b"x",
        }],
        Durability::Sync,
    );
    assert!(
        matches!(
            gap,
            Err(StoreError::OutOfOrder {
                expected: 2,
                got: 3
            })
        ),
        "gap refused: {gap:?}"
    );
    let rewrite = store.append(
        &[AppendRecord {
            seq: 1,
            stream: "s",
            bytes: b"x",
        }],
        Durability::Sync,
    );
    assert!(
        matches!(
            rewrite,
            Err(StoreError::OutOfOrder {
                expected: 2,
                got: 1
            })
        ),
        "rewrite refused"
    );
    let inner_gap = store.append(
        &[
            AppendRecord {
                seq: 2,
                stream: "s",
                bytes: b"a",
            },
            AppendRecord {
                seq: 4,
                stream: "s",
                bytes: b"b",
            },
        ],
        Durability::Sync,
    );
    assert!(inner_gap.is_err(), "a gap inside a batch is refused");
    assert_eq!(
        store.next_seq().expect("next_seq"),
        2,
        "a refused batch writes nothing"
    );
    assert_eq!(collect(&*store, 0).len(), 2);
}

fn scan_yields_records_in_order_and_stops_on_break(store: Box<dyn LogStore>) {
    // Enough records to cross the byte boundary of big-endian keys (255 -> 256).
    append_range(&*store, 0..300, even_odd);
    let from_250: Vec<u64> = collect(&*store, 250)
        .into_iter()
        .map(|(seq, _)| seq)
        .collect();
    assert_eq!(from_250, (250..300).collect::<Vec<_>>());
    let mut seen = Vec::new();
    store
        .scan(10, &mut |seq, _| {
            seen.push(seq);
            if seen.len() == 3 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .expect("scan");
    assert_eq!(seen, vec![10, 11, 12]);
}

fn stream_index_lists_only_that_streams_seqs(store: Box<dyn LogStore>) {
    append_range(&*store, 0..300, even_odd);
    // "odd" must not match a stream that merely starts with it.
    append_range(&*store, 300..301, |_| "oddity");
    let odd = stream_seqs(&*store, "odd", 0);
    assert_eq!(odd, (0..300).filter(|seq| seq % 2 == 1).collect::<Vec<_>>());
    assert_eq!(
        stream_seqs(&*store, "even", 290),
        vec![290, 292, 294, 296, 298]
    );
    assert_eq!(stream_seqs(&*store, "oddity", 0), vec![300]);
    assert!(stream_seqs(&*store, "missing", 0).is_empty());
}

fn truncate_removes_the_tail_and_its_index(store: Box<dyn LogStore>) {
    append_range(&*store, 0..10, even_odd);
    assert_eq!(store.truncate_from(7).expect("truncate"), 3);
    assert_eq!(store.next_seq().expect("next_seq"), 7);
    assert_eq!(collect(&*store, 0).len(), 7);
    assert_eq!(stream_seqs(&*store, "odd", 0), vec![1, 3, 5]);
    append_range(&*store, 7..8, even_odd);
    assert_eq!(
        stream_seqs(&*store, "odd", 0),
        vec![1, 3, 5, 7],
        "appends resume at the cut"
    );
    assert_eq!(store.truncate_from(100).expect("truncate past end"), 0);
}

fn an_empty_batch_is_a_no_op(store: Box<dyn LogStore>) {
    store.append(&[], Durability::Sync).expect("empty append");
    assert_eq!(store.next_seq().expect("next_seq"), 0);
}
