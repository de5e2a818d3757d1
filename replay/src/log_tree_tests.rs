//! The tree over real logs: the checked-in fixture (format 1, every event
//! kind of its time) and logs written by the log writer, with checkpoints.

use std::sync::Arc;

use clawback_events::event::Event;
use clawback_events::store::{AppendRecord, Durability, LogStore, MemoryStore};
use clawback_events::{Actor, Log, LogConfig, NewEvent, SystemClock};

use crate::log_tree::{
    CHECKPOINT_STREAM, LogTree, TreeError, latest_checkpoint, prove_consistency, prove_inclusion,
    stored_checkpoints,
};
use crate::merkle::note::{Checkpoint, NoteSigner};
use crate::merkle::proof::{verify_consistency, verify_inclusion};
use crate::merkle::to_base64;

/// The fixture log, loaded into a memory store.
fn fixture_store() -> Arc<MemoryStore> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/log-v1.cblog");
    let file = std::fs::File::open(&path).expect("fixtures/log-v1.cblog is checked in");
    let store = Arc::new(MemoryStore::new());
    clawback_events::archive::read(&mut std::io::BufReader::new(file), &mut |seq, bytes| {
        let envelope = clawback_events::record::decode(seq, bytes).expect("fixture decodes");
        store
            .append(
                &[AppendRecord {
                    seq,
                    stream: &envelope.body.stream,
                    bytes,
                }],
                Durability::Sync,
            )
            .expect("append");
        std::ops::ControlFlow::Continue(())
    })
    .expect("archive reads");
    store
}

fn signer() -> NoteSigner {
    NoteSigner::from_seed("clawback/test", &[3; 32]).expect("key")
}

/// The fixture's tree root is pinned: the tree is a function of the chain
/// hashes, which never change, so neither may this. The pin was checked
/// against an independent computation (Python's hashlib, RFC 9162's
/// recursive MTH over bytes 33..65 of each archived record).
#[test]
fn the_tree_over_the_fixture_log_has_the_pinned_root_and_proves_every_record() {
    let store = fixture_store();
    let mut tree = LogTree::new();
    tree.extend(&*store, store.next_seq().unwrap())
        .expect("the fixture chain holds");
    assert_eq!(tree.size(), 44);
    assert_eq!(
        to_base64(&tree.root()),
        "mFSZRIXooe+U6lDZggCoUO5U3+ieH1BAEHk79kmLYYo="
    );
    for seq in 0..44 {
        let proof = prove_inclusion(&*store, seq, 44).expect("proof");
        assert_eq!(proof.root, tree.root());
        verify_inclusion(seq, 44, &proof.leaf, &proof.path, &tree.root()).expect("verifies");
    }
    for old in 0..=44 {
        let proof = prove_consistency(&*store, old, 44).expect("proof");
        verify_consistency(old, 44, &proof.path, &proof.old_root, &proof.new_root)
            .expect("verifies");
        let mut prefix = LogTree::new();
        prefix.extend(&*store, old).expect("prefix");
        assert_eq!(proof.old_root, prefix.root());
    }
}

/// A log with checkpoints appended by the writer, as the gateway does.
fn log_with_checkpoints(store: Arc<MemoryStore>, rounds: u64) -> Log {
    let log = Log::open(
        store.clone(),
        LogConfig::default(),
        Arc::new(SystemClock),
        None,
    )
    .expect("open");
    let mut tree = LogTree::new();
    for round in 0..rounds {
        for n in 0..5 {
            log.append_blocking(vec![NewEvent::new(
                "gateway",
                Actor::Cli,
                Event::GatewayStopped(clawback_events::event::GatewayStopped {
                    reason: format!("round {round} event {n}"),
                }),
            )])
            .expect("append");
        }
        tree.extend(&*store, log.next_seq()).expect("extend");
        let event = tree.checkpoint(&signer(), 1_764_000_000_000 + round as i64);
        log.append_blocking(vec![NewEvent::new(
            CHECKPOINT_STREAM,
            Actor::System,
            Event::MerkleCheckpoint(event),
        )])
        .expect("append checkpoint");
    }
    log
}

#[test]
fn stored_checkpoints_are_found_verified_and_resumed() {
    let store = Arc::new(MemoryStore::new());
    let _log = log_with_checkpoints(store.clone(), 4);
    let stored = stored_checkpoints(&*store).expect("read");
    assert_eq!(
        stored.iter().map(|c| c.seq).collect::<Vec<_>>(),
        [5, 11, 17, 23]
    );
    let verifier = signer().verifier();
    for checkpoint in &stored {
        let opened = Checkpoint::open(&checkpoint.event.note, &verifier).expect("signed");
        assert_eq!(Ok(opened.clone()), checkpoint.parsed);
        // Each covers exactly the records before it.
        assert_eq!(opened.size, checkpoint.seq);
        let mut full = LogTree::new();
        full.extend(&*store, opened.size).expect("extend");
        assert_eq!(full.root(), opened.root);
        let resumed = LogTree::resume(&*store, &checkpoint.event, &opened).expect("resumes");
        assert_eq!(resumed, full);
    }
    let latest = latest_checkpoint(&*store).expect("read").expect("one");
    assert_eq!(latest.seq, 23);
    // Every checkpoint's tree is a prefix of the next one's.
    for pair in stored.windows(2) {
        let (old, new) = (
            pair[0].parsed.as_ref().unwrap(),
            pair[1].parsed.as_ref().unwrap(),
        );
        let proof = prove_consistency(&*store, old.size, new.size).expect("proof");
        verify_consistency(old.size, new.size, &proof.path, &old.root, &new.root)
            .expect("the log only grew");
    }
}

#[test]
fn a_checkpoint_that_does_not_describe_this_log_is_not_resumed() {
    let store = Arc::new(MemoryStore::new());
    let _log = log_with_checkpoints(store.clone(), 2);
    let stored = latest_checkpoint(&*store).expect("read").expect("one");
    let parsed = stored.parsed.clone().expect("parses");

    let mut wrong_frontier = stored.event.clone();
    wrong_frontier.frontier[0][0] ^= 1;
    let error = LogTree::resume(&*store, &wrong_frontier, &parsed).expect_err("refused");
    assert!(
        error.contains("does not lead to its signed root"),
        "{error}"
    );

    let mut wrong_chain = stored.event.clone();
    wrong_chain.chain_hash.0[0] ^= 1;
    let error = LogTree::resume(&*store, &wrong_chain, &parsed).expect_err("refused");
    assert!(error.contains("is not the log's"), "{error}");
}

#[test]
fn a_damaged_record_stops_the_tree_and_every_proof_that_reads_it() {
    let store = Arc::new(MemoryStore::new());
    let _log = log_with_checkpoints(store.clone(), 2);
    let mut damaged = store.get(3).expect("get").expect("present");
    let last = damaged.len() - 1;
    damaged[last] ^= 0x01;
    store.overwrite_for_test(3, damaged);

    let mut tree = LogTree::new();
    let error = tree.extend(&*store, 12).expect_err("damaged");
    assert!(
        matches!(error, TreeError::Corrupt { seq: 3, .. }),
        "{error}"
    );
    assert_eq!(tree.size(), 3, "the records before the damage are kept");
    assert!(matches!(
        prove_inclusion(&*store, 9, 12),
        Err(TreeError::Corrupt { seq: 3, .. })
    ));
    assert!(matches!(
        prove_consistency(&*store, 5, 12),
        Err(TreeError::Corrupt { seq: 3, .. })
    ));
    assert!(matches!(
        prove_inclusion(&*store, 1, 13),
        Err(TreeError::TooShort { .. })
    ));
}

fn audit(
    store: &MemoryStore,
    key: Option<&crate::merkle::note::NoteVerifier>,
) -> crate::audit::AuditReport {
    let dir = tempfile::tempdir().expect("tempdir");
    crate::audit::verify(
        store,
        &crate::SnapshotStore::new(dir.path()),
        key,
        &mut |_, _| {},
    )
    .expect("verify runs")
}

#[test]
fn audit_verify_checks_every_checkpoint_against_the_recomputed_tree() {
    let store = Arc::new(MemoryStore::new());
    let _log = log_with_checkpoints(store.clone(), 3);
    let verifier = signer().verifier();
    let report = audit(&store, Some(&verifier));
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.tree.checkpoints.len(), 3);
    let text = report.to_string();
    assert!(text.contains("checkpoints: OK, 3 verified"), "{text}");
    assert!(
        text.contains("signatures checked with clawback/test+"),
        "{text}"
    );
    // Without the key the trees are still compared, and the report says
    // what was not checked.
    let unkeyed = audit(&store, None);
    assert!(unkeyed.is_ok());
    assert!(unkeyed.to_string().contains("signatures NOT checked"));
}

#[test]
fn audit_verify_names_the_first_forged_or_diverged_checkpoint() {
    // A checkpoint signed by another key (a forgery).
    let store = Arc::new(MemoryStore::new());
    let log = log_with_checkpoints(store.clone(), 2);
    let mut tree = LogTree::new();
    tree.extend(&*store, log.next_seq()).expect("extend");
    let forger = NoteSigner::from_seed("clawback/test", &[4; 32]).expect("key");
    let forged = log
        .append_blocking(vec![NewEvent::new(
            CHECKPOINT_STREAM,
            Actor::System,
            Event::MerkleCheckpoint(tree.checkpoint(&forger, 1)),
        )])
        .expect("append");
    let report = audit(&store, Some(&signer().verifier()));
    assert!(!report.is_ok());
    let text = report.to_string();
    assert!(
        text.contains(&format!(
            "checkpoints: FAILED, 1 of 3; the first bad one is at seq {}",
            forged.first_seq
        )),
        "{text}"
    );
    assert!(
        text.contains("is not signed by the key clawback/test+"),
        "{text}"
    );

    // A checkpoint signed with the right key over another history: what a
    // log that was rewritten and re-signed would hold.
    let other = Arc::new(MemoryStore::new());
    let other_log = log_with_checkpoints(other.clone(), 1);
    drop(other_log);
    let foreign = latest_checkpoint(&*other).expect("read").expect("one");
    let diverged = log
        .append_blocking(vec![NewEvent::new(
            CHECKPOINT_STREAM,
            Actor::System,
            Event::MerkleCheckpoint(foreign.event),
        )])
        .expect("append");
    let report = audit(&store, Some(&signer().verifier()));
    let failure = report
        .tree
        .checkpoints
        .iter()
        .find(|check| check.seq == diverged.first_seq)
        .expect("checked");
    let reason = failure.result.as_ref().expect_err("diverged");
    assert!(
        reason.contains("differs from") && reason.contains("records below seq 5 were changed"),
        "{reason}"
    );
}

#[test]
fn audit_verify_does_not_vouch_for_checkpoints_past_a_damaged_record() {
    let store = Arc::new(MemoryStore::new());
    let _log = log_with_checkpoints(store.clone(), 3);
    let mut damaged = store.get(8).expect("get").expect("present");
    let last = damaged.len() - 1;
    damaged[last] ^= 0x01;
    store.overwrite_for_test(8, damaged);
    let report = audit(&store, Some(&signer().verifier()));
    assert_eq!(report.first_failure.as_ref().map(|f| f.seq), Some(8));
    let results: Vec<bool> = report
        .tree
        .checkpoints
        .iter()
        .map(|check| check.result.is_ok())
        .collect();
    // The first covers seqs 0..5, before the damage; the others do not.
    assert_eq!(results, [true, false, false]);
    assert!(
        report.tree.checkpoints[1]
            .result
            .as_ref()
            .expect_err("past the damage")
            .contains("past the chain failure at seq 8")
    );
}

#[test]
fn a_proof_bundle_verifies_offline_and_any_altered_part_is_refused() {
    use crate::proof_bundle::{
        BundleError, ConsistencyBundle, InclusionBundle, Verified, verify_bundle,
    };
    let store = Arc::new(MemoryStore::new());
    let _log = log_with_checkpoints(store.clone(), 2);
    let stored = stored_checkpoints(&*store).expect("read");
    let (first, latest) = (&stored[0], &stored[1]);
    let size = latest.parsed.as_ref().expect("parses").size;
    let inclusion = prove_inclusion(&*store, 7, size).expect("proof");
    let bundle = InclusionBundle::new(&inclusion, &latest.event.note).expect("bundle");
    let text = serde_json::to_string_pretty(&bundle).expect("json");
    assert!(text.len() < 4_096, "a few KB: {}", text.len());
    let key = signer().verifier();
    match verify_bundle(&text, &key).expect("verifies") {
        Verified::Inclusion { seq, kind, .. } => {
            assert_eq!((seq, kind.as_str()), (7, "gateway.stopped"));
        }
        other => panic!("{other:?}"),
    }

    // Every byte of the record, every proof hash, the readable event and
    // the checkpoint are bound.
    let record = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(&bundle.record)
            .unwrap()
    };
    for at in 0..record.len() {
        let mut altered = bundle.clone();
        let mut bytes = record.clone();
        bytes[at] ^= 0x01;
        altered.record = to_base64(&bytes);
        let text = serde_json::to_string(&altered).unwrap();
        assert!(verify_bundle(&text, &key).is_err(), "record byte {at}");
    }
    for at in 0..bundle.inclusion_path.len() {
        let mut altered = bundle.clone();
        let mut hash = crate::merkle::hash_from_base64(&altered.inclusion_path[at]).unwrap();
        hash[31] ^= 0x80;
        altered.inclusion_path[at] = to_base64(&hash);
        let text = serde_json::to_string(&altered).unwrap();
        assert!(matches!(
            verify_bundle(&text, &key),
            Err(BundleError::Proof(_))
        ));
    }
    let mut lying = bundle.clone();
    lying.event["stream"] = serde_json::json!("somewhere else");
    let error = verify_bundle(&serde_json::to_string(&lying).unwrap(), &key).expect_err("lies");
    assert!(
        error.to_string().contains("readable `event` differs"),
        "{error}"
    );
    let mut older = bundle.clone();
    older.checkpoint = first.event.note.clone();
    assert!(verify_bundle(&serde_json::to_string(&older).unwrap(), &key).is_err());
    let stranger = NoteSigner::from_seed("clawback/test", &[5; 32])
        .unwrap()
        .verifier();
    assert!(matches!(
        verify_bundle(&text, &stranger),
        Err(BundleError::Checkpoint(_))
    ));
    assert!(matches!(
        verify_bundle("{\"format\": \"zip\"}", &key),
        Err(BundleError::Unreadable(_))
    ));

    let old = first.parsed.as_ref().unwrap().size;
    let consistency = prove_consistency(&*store, old, size).expect("proof");
    let bundle = ConsistencyBundle::new(&consistency, &first.event.note, &latest.event.note);
    let text = serde_json::to_string(&bundle).unwrap();
    assert!(matches!(
        verify_bundle(&text, &key),
        Ok(Verified::Consistency { .. })
    ));
    let mut swapped = bundle.clone();
    std::mem::swap(&mut swapped.old_checkpoint, &mut swapped.new_checkpoint);
    assert!(verify_bundle(&serde_json::to_string(&swapped).unwrap(), &key).is_err());
}
