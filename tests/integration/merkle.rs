//! The Merkle tree end to end: a real gateway records events and signs
//! checkpoints (periodically and at stop); then, with it stopped, the CLI
//! proves a record and the log's growth, a second state dir with nothing
//! but the public key checks the bundles, and two attacks are caught: a
//! byte changed on disk (the chain breaks) and a record rewritten with the
//! whole chain recomputed after it (the chain holds; only the signed
//! checkpoints expose it), plus forged checkpoints.

use std::path::Path;
use std::time::Duration;

use clawback_events::store::{AppendRecord, Durability, FjallStore, LogStore};
use clawback_events::{event::Event, record};
use clawback_replay::merkle::note::{Checkpoint, NoteSigner};
use serde_json::{Value, json};

use crate::gateway::{start_with, stop};
use crate::protocol::{TOKEN, call, connected, runtime};
use crate::support::{clawback, install, log_records, printed, stderr, stdout};

/// Runs the outside verifier (`tests/outside_verifier/verify.py`, Python
/// written from the specs, sharing no code with clawback) on a bundle.
fn outside_verifier(python: &Path, key: &str, bundle: &Path) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/outside_verifier/verify.py");
    std::process::Command::new(python)
        .arg(script)
        .args(["--key", key])
        .arg(bundle)
        .output()
        .expect("python runs")
}

/// Replaces the log's records from `from` on with `rewrite(seq, bytes)`,
/// straight in the store: what someone with write access to the disk can do.
fn rewrite_records(state_dir: &Path, from: u64, rewrite: &mut dyn FnMut(u64, Vec<u8>) -> Vec<u8>) {
    let store = FjallStore::open(state_dir.join("log")).expect("store opens");
    let end = store.next_seq().expect("size");
    let mut records = Vec::new();
    for seq in from..end {
        let bytes = store.get(seq).expect("read").expect("present");
        let stream = record::decode(seq, &bytes).expect("decodes").body.stream;
        records.push((seq, stream, rewrite(seq, bytes)));
    }
    store.truncate_from(from).expect("truncate");
    let appends: Vec<AppendRecord<'_>> = records
        .iter()
        .map(|(seq, stream, bytes)| AppendRecord {
            seq: *seq,
            stream,
            bytes,
        })
        .collect();
    store.append(&appends, Durability::Sync).expect("append");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

#[test]
fn checkpoints_prove_records_offline_and_expose_tampering_and_forgery() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (running, address, _) = start_with(
        dir.path(),
        &[
            "--token",
            TOKEN,
            "--checkpoint-every",
            "10",
            "--checkpoint-interval",
            "1s",
        ],
    );
    runtime().block_on(async {
        let (mut socket, _) = connected(&address, &["operator.write"]).await;
        for n in 0..12 {
            let answer = call(
                &mut socket,
                &format!("p{n}"),
                "sessions.patch",
                Some(json!({"key": format!("agent:main:s{n}"), "label": format!("session {n}")})),
            )
            .await;
            assert_eq!(answer["ok"], true, "{answer}");
            if n == 5 {
                // Let the periodic checkpoint (every 10 records) land
                // between the two halves.
                tokio::time::sleep(Duration::from_millis(2_500)).await;
            }
        }
    });
    stop(running);

    let records = log_records(dir.path(), 1_000);
    let checkpoints: Vec<&Value> = records
        .iter()
        .filter(|record| record["kind"] == "merkle.checkpoint")
        .collect();
    assert!(
        checkpoints.len() >= 2,
        "periodic and final checkpoints: {records:?}"
    );
    let last = records.last().expect("records");
    assert_eq!(last["kind"], "merkle.checkpoint", "the stop is covered");
    let first_note = checkpoints[0]["event"]["MerkleCheckpoint"]["note"]
        .as_str()
        .expect("note")
        .to_owned();
    let old_checkpoint = dir.path().join("old.checkpoint");
    std::fs::write(&old_checkpoint, &first_note).expect("write");

    // The latest checkpoint, printed in the C2SP format, and the key.
    let printed_checkpoint = clawback(dir.path(), &["audit", "checkpoint"]);
    assert!(
        printed_checkpoint.status.success(),
        "{}",
        stderr(&printed_checkpoint)
    );
    let note = stdout(&printed_checkpoint);
    let key = stdout(&clawback(
        dir.path(),
        &["audit", "checkpoint", "--verifier-key"],
    ))
    .trim()
    .to_owned();
    let verifier = clawback_replay::merkle::note::NoteVerifier::parse(&key).expect("key");
    let latest = Checkpoint::open(&note, &verifier).expect("the printed checkpoint verifies");
    assert_eq!(
        latest.size,
        records.len() as u64 - 1,
        "covers all but itself"
    );
    let audit = clawback(dir.path(), &["audit", "verify"]);
    assert!(audit.status.success(), "{}", stdout(&audit));
    assert!(
        stdout(&audit).contains(&format!("checkpoints: OK, {} verified", checkpoints.len())),
        "{}",
        stdout(&audit)
    );

    // A record's proof, checked from a state dir that has no log.
    let patched_seq = records
        .iter()
        .find(|record| record["kind"] == "session.patched")
        .and_then(|record| record["seq"].as_u64())
        .expect("a session.patched record");
    let proof = dir.path().join("proof.json");
    let proved = clawback(
        dir.path(),
        &[
            "audit",
            "prove",
            &patched_seq.to_string(),
            "-o",
            proof.to_str().unwrap(),
        ],
    );
    assert!(proved.status.success(), "{}", stderr(&proved));
    let bundle_bytes = std::fs::metadata(&proof).expect("written").len();
    assert!(bundle_bytes < 8_192, "a few KB: {bundle_bytes}");
    let outsider = tempfile::tempdir().expect("tempdir");
    let checked = clawback(
        outsider.path(),
        &[
            "audit",
            "check-proof",
            proof.to_str().unwrap(),
            "--key",
            &key,
        ],
    );
    assert!(
        checked.status.success(),
        "{}{}",
        stdout(&checked),
        stderr(&checked)
    );
    assert!(
        stdout(&checked).starts_with(&format!(
            "OK: record {patched_seq} (session.patched on agent:main:s"
        )),
        "{}",
        stdout(&checked)
    );
    let no_key = clawback(
        outsider.path(),
        &["audit", "check-proof", proof.to_str().unwrap()],
    );
    assert_eq!(no_key.status.code(), Some(2));
    assert!(
        stderr(&no_key).contains("pass --key"),
        "{}",
        stderr(&no_key)
    );

    // The log only grew since the first checkpoint.
    let growth = dir.path().join("growth.json");
    let consistent = clawback(
        dir.path(),
        &[
            "audit",
            "consistency",
            "--from",
            old_checkpoint.to_str().unwrap(),
            "-o",
            growth.to_str().unwrap(),
        ],
    );
    assert!(consistent.status.success(), "{}", stdout(&consistent));
    assert!(
        stdout(&consistent).starts_with("consistent: "),
        "{}",
        stdout(&consistent)
    );
    let checked = clawback(
        outsider.path(),
        &[
            "audit",
            "check-proof",
            growth.to_str().unwrap(),
            "--key",
            &key,
        ],
    );
    assert!(checked.status.success(), "{}", stdout(&checked));

    // A verifier outside clawback agrees, from the bundles and the key.
    let python = printed(
        &install(
            "tests/outside_verifier/install.sh",
            "outside-verifier",
            "python3 with venv, and PyPI for blake3 and cryptography",
        ),
        "PYTHON=",
    );
    for bundle in [&proof, &growth] {
        let outside = outside_verifier(&python, &key, bundle);
        assert!(
            outside.status.success() && stdout(&outside).starts_with("OK: "),
            "{}{}",
            stdout(&outside),
            stderr(&outside)
        );
    }

    // Forgery: a checkpoint re-signed by another key under the log's name,
    // and one whose text was changed after signing.
    let forger = NoteSigner::from_seed(verifier.name(), &[0x42; 32]).expect("key");
    let mut bundle: Value =
        serde_json::from_str(&std::fs::read_to_string(&proof).unwrap()).expect("JSON");
    let genuine = Checkpoint::parse_unverified(bundle["checkpoint"].as_str().unwrap()).unwrap();
    bundle["checkpoint"] = json!(genuine.sign(&forger));
    let forged = dir.path().join("forged.json");
    std::fs::write(&forged, bundle.to_string()).unwrap();
    let refused = clawback(
        outsider.path(),
        &[
            "audit",
            "check-proof",
            forged.to_str().unwrap(),
            "--key",
            &key,
        ],
    );
    assert_eq!(refused.status.code(), Some(1), "{}", stdout(&refused));
    assert!(
        stdout(&refused).contains("FAILED: the checkpoint does not verify"),
        "{}",
        stdout(&refused)
    );
    let outside = outside_verifier(&python, &key, &forged);
    assert_eq!(outside.status.code(), Some(1), "{}", stdout(&outside));
    let altered_old = dir.path().join("altered.checkpoint");
    let mut lines: Vec<String> = first_note.lines().map(str::to_owned).collect();
    lines[1] = (genuine.size + 1).to_string();
    std::fs::write(&altered_old, format!("{}\n", lines.join("\n"))).unwrap();
    let refused = clawback(
        dir.path(),
        &[
            "audit",
            "consistency",
            "--from",
            altered_old.to_str().unwrap(),
        ],
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stdout(&refused).contains("does not verify"),
        "{}",
        stdout(&refused)
    );

    // Attack 1: one byte of a record changed on disk. The chain breaks at
    // that seq, and nothing is proven from a log that fails it.
    let flipped = tempfile::tempdir().expect("tempdir");
    copy_dir(dir.path(), flipped.path());
    rewrite_records(flipped.path(), patched_seq, &mut |seq, mut bytes| {
        if seq == patched_seq {
            let last = bytes.len() - 1;
            bytes[last] ^= 0x01;
        }
        bytes
    });
    let audit = clawback(flipped.path(), &["audit", "verify"]);
    assert_eq!(audit.status.code(), Some(1));
    assert!(
        stdout(&audit).contains(&format!("chain: FAILED at seq {patched_seq}")),
        "{}",
        stdout(&audit)
    );
    let refused = clawback(flipped.path(), &["audit", "prove", "1"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(stdout(&refused).contains(&format!("log record at seq {patched_seq} fails the chain")));

    // Attack 2: a record rewritten and every later hash recomputed, as
    // someone who knows the chain rule would. The chain verifies; the
    // checkpoints, signed before, do not.
    let rewritten = tempfile::tempdir().expect("tempdir");
    copy_dir(dir.path(), rewritten.path());
    let mut prev = None;
    rewrite_records(rewritten.path(), patched_seq, &mut |seq, bytes| {
        let mut envelope = record::decode(seq, &bytes).expect("decodes");
        if let Event::SessionPatched(patch) = &mut envelope.body.event
            && seq == patched_seq
        {
            for (_, value) in &mut patch.set {
                *value = value.replace("session", "SESSION");
            }
        }
        let (bytes, hash) =
            record::encode(seq, &prev.unwrap_or(envelope.prev_hash), &envelope.body);
        prev = Some(hash);
        bytes
    });
    // Snapshots describe the original chain; set them aside so the report
    // is about the tree alone.
    std::fs::remove_dir_all(rewritten.path().join("snapshots")).expect("remove snapshots");
    let audit = clawback(rewritten.path(), &["audit", "verify"]);
    let report = stdout(&audit);
    assert_eq!(audit.status.code(), Some(1), "{report}");
    assert!(report.contains("chain: OK"), "{report}");
    assert!(report.contains("checkpoints: FAILED"), "{report}");
    assert!(
        report.contains("were changed after it was signed"),
        "{report}"
    );
    let refused = clawback(rewritten.path(), &["audit", "prove", "1"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stdout(&refused).contains("the log changed after it was signed"),
        "{}",
        stdout(&refused)
    );
    let refused = clawback(
        rewritten.path(),
        &[
            "audit",
            "consistency",
            "--from",
            old_checkpoint.to_str().unwrap(),
        ],
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(stdout(&refused).contains("FAILED"), "{}", stdout(&refused));
    // The proof made before the rewrite still stands for what was recorded.
    let checked = clawback(
        outsider.path(),
        &[
            "audit",
            "check-proof",
            proof.to_str().unwrap(),
            "--key",
            &key,
        ],
    );
    assert!(checked.status.success());
}
