//! The operator commands, run on the checked-in fixture log.

use crate::support::{clawback, fixture, state_dir_with_fixture, stderr, stdout};

const SESSION: &str = "agent:main:telegram:dm:42";

#[test]
fn audit_verify_passes_on_the_fixture_and_names_the_head() {
    let dir = state_dir_with_fixture();
    let output = clawback(dir.path(), &["audit", "verify"]);
    let text = stdout(&output);
    assert!(output.status.success(), "{text}{}", stderr(&output));
    assert!(
        text.starts_with("chain: OK, 44 records verified, head hash "),
        "{text}"
    );
    assert!(text.trim_end().ends_with("audit: OK"), "{text}");
}

#[test]
fn audit_export_writes_one_json_object_per_record() {
    let dir = state_dir_with_fixture();
    let output = clawback(dir.path(), &["audit", "export"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let lines: Vec<serde_json::Value> = stdout(&output)
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), 44);
    assert_eq!(lines[0]["seq"], 0);
    assert_eq!(lines[0]["kind"], "gateway.started");
    assert_eq!(lines[0]["prevHash"], "0".repeat(64));
    assert_eq!(
        lines[1]["prevHash"], lines[0]["hash"],
        "the export carries the chain"
    );

    let output = clawback(
        dir.path(),
        &[
            "audit",
            "export",
            "--session",
            SESSION,
            "--since",
            "8",
            "--until",
            "12",
        ],
    );
    let seqs: Vec<u64> = stdout(&output)
        .lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).expect("JSON")["seq"]
                .as_u64()
                .expect("seq")
        })
        .collect();
    assert_eq!(seqs, vec![8, 9, 10, 11, 12]);
}

#[test]
fn replay_prints_the_sessions_timeline_in_order() {
    let dir = state_dir_with_fixture();
    let output = clawback(dir.path(), &["replay", SESSION]);
    let text = stdout(&output);
    assert!(output.status.success(), "{}", stderr(&output));
    let expected_in_order = [
        "session created (id sess-1, agent main, from telegram)",
        "user [telegram from 42]: What is in /tmp?",
        "run run-1 started by channel (model openai/gpt-5)",
        "LLM request openai/gpt-5 attempt 1",
        "tool exec requested (call-1): {\"command\":\"ls /tmp\"}",
        "approval appr-1 requested for `ls /tmp`",
        "approval appr-1: allow-always by dev1",
        "tool call call-1 ok in 12 ms: a.txt b.txt",
        "LLM call openai/gpt-5 failed: rate_limit (HTTP 429) after 95 ms",
        "assistant: Two files: a.txt and b.txt.",
        "run run-1 completed",
        "delivery d1 sent (platform id tg-1002)",
        "session reset (reset), new id sess-2",
    ];
    let mut position = 0;
    for expected in expected_in_order {
        let found = text[position..]
            .find(expected)
            .unwrap_or_else(|| panic!("missing or out of order: {expected}\n{text}"));
        position += found + expected.len();
    }
    assert!(
        !text.contains("gateway.started"),
        "other streams stay out of a session replay"
    );
}

#[test]
fn replay_until_stops_at_the_seq_and_json_is_machine_readable() {
    let dir = state_dir_with_fixture();
    let output = clawback(dir.path(), &["replay", SESSION, "--until", "9", "--json"]);
    let seqs: Vec<u64> = stdout(&output)
        .lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).expect("JSON")["seq"]
                .as_u64()
                .expect("seq")
        })
        .collect();
    assert_eq!(seqs, vec![6, 7, 8, 9]);
}

#[test]
fn replay_ends_with_the_sessions_state_at_the_stop_point() {
    let dir = state_dir_with_fixture();
    let output = clawback(dir.path(), &["replay", SESSION, "--until", "20"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let state = &text[text.find("\nsession ").expect("state block")..];
    for expected in [
        "(id sess-1, agent main), state as of seq 20",
        // The fixture records the tool's result twice, as the tool call's
        // finish (seq 15) and as a role-tool message (seq 16); the tool call
        // (seq 11) and its finish are transcript entries since the tool loop.
        "transcript: 5 messages; model context: 5 messages",
        "     7 user: What is in /tmp?",
        "    11 assistant: [tool exec({\"command\":\"ls /tmp\"})]",
        "    15 tool: a.txt b.txt",
        "    20 assistant: Two files: a.txt and b.txt.",
        "run run-1 open since seq 8 (2 LLM calls, 1 tool calls)",
        "usage: 3 LLM calls (1 failed), 280 in / 27 out tokens, $0.000927",
    ] {
        assert!(state.contains(expected), "missing {expected:?} in\n{state}");
    }

    let output = clawback(dir.path(), &["replay", SESSION]);
    let text = stdout(&output);
    let state = &text[text.find("\nsession ").expect("state block")..];
    assert!(
        state.contains("(id sess-2, agent main), state as of seq 43"),
        "{state}"
    );
    assert!(state.contains("transcript: 0 messages"), "{state}");
    assert!(
        state.contains("last finished run run-1: completed at seq 21"),
        "{state}"
    );
}

#[test]
fn replay_of_an_unknown_session_says_what_to_do() {
    let dir = state_dir_with_fixture();
    let output = clawback(dir.path(), &["replay", "agent:main:nope"]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output).trim(),
        "error: no recorded events for session `agent:main:nope`; `clawback log tail` shows recent streams"
    );
}

#[test]
fn snapshots_are_created_listed_and_restore_to_the_rebuilt_state() {
    let dir = state_dir_with_fixture();
    let created = clawback(dir.path(), &["snapshot", "create"]);
    assert!(created.status.success(), "{}", stderr(&created));
    assert!(stdout(&created).starts_with(
        "snapshot snapshot-00000000000000000044.cbsnap written: covers seqs below 44"
    ));
    let listed = stdout(&clawback(dir.path(), &["snapshot", "list"]));
    assert!(
        listed.contains("snapshot-00000000000000000044.cbsnap  seqs below         44")
            && listed.contains("OK"),
        "{listed}"
    );
    let restored = clawback(dir.path(), &["snapshot", "restore", "--check"]);
    let text = stdout(&restored);
    assert!(restored.status.success(), "{text}");
    assert!(
        text.starts_with("restored from snapshot at seq 44 + 0 tail records"),
        "{text}"
    );
    assert!(
        text.contains("check: a full rebuild from seq 0 gives the same state hash"),
        "{text}"
    );
    let audit = stdout(&clawback(dir.path(), &["audit", "verify"]));
    assert!(
        audit.contains("snapshot snapshot-00000000000000000044.cbsnap: OK"),
        "{audit}"
    );
}

#[test]
fn a_damaged_snapshot_is_skipped_by_restore_and_failed_by_audit() {
    let dir = state_dir_with_fixture();
    assert!(
        clawback(dir.path(), &["snapshot", "create"])
            .status
            .success()
    );
    let path = dir
        .path()
        .join("snapshots/snapshot-00000000000000000044.cbsnap");
    let mut bytes = std::fs::read(&path).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&path, bytes).expect("write");
    let restored = stdout(&clawback(dir.path(), &["snapshot", "restore"]));
    assert!(
        restored.starts_with("skipped snapshot snapshot-00000000000000000044.cbsnap: snapshot-00000000000000000044.cbsnap: checksum mismatch, the file is damaged\nno valid snapshot: rebuilt 44 records from seq 0"),
        "{restored}"
    );
    let audit = clawback(dir.path(), &["audit", "verify"]);
    assert_eq!(audit.status.code(), Some(1));
    assert!(
        stdout(&audit).contains("FAILED: snapshot-00000000000000000044.cbsnap: checksum mismatch")
    );
}

#[test]
fn log_tail_shows_the_newest_records() {
    let dir = state_dir_with_fixture();
    let output = clawback(dir.path(), &["log", "tail", "-n", "2"]);
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].trim_start().starts_with("42  ") && lines[0].contains("conn:c1"),
        "{text}"
    );
    assert!(
        lines[1].trim_start().starts_with("43  ") && lines[1].ends_with("gateway.stopped"),
        "{text}"
    );
}

#[test]
fn importing_a_tampered_archive_is_refused_with_the_seq() {
    let mut bytes = std::fs::read(fixture("log-v1.cblog")).expect("fixture");
    // Change one character of the user's message at seq 7 ("What" -> "That").
    let position = bytes
        .windows(4)
        .position(|window| window == b"What")
        .expect("message in fixture");
    bytes[position] = b'T';
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = dir.path().join("tampered.cblog");
    std::fs::write(&archive, bytes).expect("write");
    let state = tempfile::tempdir().expect("tempdir");
    let output = clawback(
        state.path(),
        &["log", "import", archive.to_str().expect("utf-8")],
    );
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    assert!(
        text.contains("is not a valid log: log corrupted at seq 7: stored hash "),
        "{text}"
    );
}

#[test]
fn commands_on_a_missing_state_dir_say_how_to_fix_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = clawback(&dir.path().join("nothing-here"), &["audit", "verify"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output)
            .contains("start the gateway once (`clawback gateway run`) or pass --state-dir DIR")
    );
}

#[test]
fn truncate_requires_confirmation_and_then_cuts() {
    let dir = state_dir_with_fixture();
    let refused = clawback(dir.path(), &["log", "truncate", "--from", "40"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        stderr(&refused)
            .contains("this deletes 4 records (seqs 40..43) for good; run again with --yes")
    );
    let cut = clawback(dir.path(), &["log", "truncate", "--from", "40", "--yes"]);
    assert!(stdout(&cut).starts_with("removed 4 records"));
    let audit = stdout(&clawback(dir.path(), &["audit", "verify"]));
    assert!(
        audit.starts_with("chain: OK, 40 records verified"),
        "{audit}"
    );
}

#[test]
fn the_offline_demo_converses_approves_replays_and_verifies() {
    let output = std::process::Command::new(crate::support::binary())
        .arg("demo")
        .env_remove("CLAWBACK_STATE_DIR")
        .output()
        .expect("clawback demo runs");
    let printed = crate::support::stdout(&output);
    assert!(
        output.status.success(),
        "{printed}\n{}",
        crate::support::stderr(&output)
    );
    for expected in [
        "you:        Which files are in my workspace?",
        "approval:   the agent asks to run `ls -1`: approved once by demo-operator",
        "agent:      Your workspace holds 2 files: notes.md, plan.txt.",
        "tool exec requested (call_demo_1): {\"command\":\"ls -1\"}",
        "allow-once by",
        "audit: OK",
    ] {
        assert!(
            printed.contains(expected),
            "missing {expected:?} in:\n{printed}"
        );
    }
}
