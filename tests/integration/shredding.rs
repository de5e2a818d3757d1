//! Crypto-shredding against the real gateway: session content is sealed in
//! the log under per-session keys (readable through the gateway and the
//! CLI while the key lives, absent from the log's bytes without it), and
//! `sessions.delete` with `purge` destroys one session's keys: its content
//! reads as purged everywhere, other sessions are untouched, the chain
//! still verifies and a rebuild still gives the live state hash.

use serde_json::{Value, json};

use crate::agent::{mock_gateway, request};
use crate::gateway::stop;
use crate::protocol::{connected, runtime};
use crate::support::{clawback, fixture, stderr, stdout};

const PURGED_SESSION: &str = "agent:main:purge-me";
const KEPT_SESSION: &str = "agent:main:keep-me";
const SECRET: &str = "aubergine-7731";
const KEPT: &str = "marigold-4410";
/// Set to rewrite `fixtures/sealed-v1.*` from this test's run.
const WRITE_FIXTURE: &str = "CLAWBACK_WRITE_SEALED_FIXTURE";
/// Said in the main session, which cannot be deleted: a reset with purge
/// forgets it.
const MAIN_SECRET: &str = "papaya-5521";

fn history_text(history: &Value) -> String {
    history["payload"]["messages"].to_string()
}

#[test]
fn a_purged_sessions_content_is_gone_and_the_log_still_verifies() {
    let (_server, dir, running, address) = mock_gateway();
    runtime().block_on(async {
        let (mut socket, _) = connected(&address, &["operator.write", "operator.admin"]).await;
        for (n, (session, word)) in [(PURGED_SESSION, SECRET), (KEPT_SESSION, KEPT)]
            .into_iter()
            .enumerate()
        {
            let (answers, _) = request(
                &mut socket,
                &format!("run-{n}"),
                "agent",
                json!({"message": format!("the word is {word}"), "sessionKey": session,
                       "idempotencyKey": format!("key-{n}")}),
                2,
            )
            .await;
            assert_eq!(answers[1]["payload"]["status"], "ok", "{answers:?}");
        }
        // While the key lives, the gateway reads the content back.
        let (history, _) = request(
            &mut socket,
            "h1",
            "chat.history",
            json!({"sessionKey": PURGED_SESSION}),
            1,
        )
        .await;
        assert!(history_text(&history[0]).contains(SECRET), "{history:?}");

        let (purged, _) = request(
            &mut socket,
            "d1",
            "sessions.delete",
            json!({"key": PURGED_SESSION, "purge": true}),
            1,
        )
        .await;
        let payload = &purged[0]["payload"];
        assert_eq!(payload["deleted"], true, "{purged:?}");
        assert_eq!(payload["purge"]["keysDestroyed"], 1, "{purged:?}");

        let (kept, _) = request(
            &mut socket,
            "h2",
            "chat.history",
            json!({"sessionKey": KEPT_SESSION}),
            1,
        )
        .await;
        assert!(history_text(&kept[0]).contains(KEPT), "{kept:?}");

        let (answers, _) = request(
            &mut socket,
            "run-main",
            "agent",
            json!({"message": format!("the word is {MAIN_SECRET}"), "idempotencyKey": "key-main"}),
            2,
        )
        .await;
        assert_eq!(answers[1]["payload"]["status"], "ok", "{answers:?}");
        let (reset, _) = request(
            &mut socket,
            "r1",
            "sessions.reset",
            json!({"key": "agent:main:main", "purge": true}),
            1,
        )
        .await;
        assert_eq!(
            reset[0]["payload"]["purge"]["keysDestroyed"], 1,
            "{reset:?}"
        );
        assert_eq!(reset[0]["payload"]["key"], "agent:main:main", "{reset:?}");
    });
    stop(running);
    let state = dir.path();

    // The purged session replays with its content marked, the other in full.
    let replay = stdout(&clawback(state, &["replay", PURGED_SESSION]));
    assert!(!replay.contains(SECRET), "{replay}");
    assert!(replay.contains("[purged]"), "{replay}");
    assert!(replay.contains("content purged"), "{replay}");
    assert!(replay.contains("session content purged"), "{replay}");
    let replay = stdout(&clawback(state, &["replay", KEPT_SESSION]));
    assert!(replay.contains(KEPT), "{replay}");

    // No copy of the purged content is left anywhere in the log (the RPC
    // params, the LLM exchange, the answer), the kept one reads back.
    let export = stdout(&clawback(state, &["audit", "export"]));
    assert!(!export.contains(SECRET), "purged content left in clear");
    assert!(
        !export.contains(MAIN_SECRET),
        "reset-purged content left in clear"
    );
    assert!(export.contains(KEPT));
    let purged_lines: Vec<Value> = export
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("JSON line"))
        .filter(|line| line["content"] == "purged")
        .collect();
    assert!(
        purged_lines
            .iter()
            .any(|line| line["kind"] == "message.appended")
            && purged_lines
                .iter()
                .any(|line| line["kind"] == "rpc.received")
            && purged_lines
                .iter()
                .any(|line| line["kind"] == "llm.call.requested"),
        "{purged_lines:?}"
    );

    // Without the keyring, nothing of either session is readable: the
    // log's bytes never held the content in clear.
    let keys = state.join("content-keys");
    let moved = state.join("content-keys-away");
    std::fs::rename(&keys, &moved).expect("move the keyring");
    let export = stdout(&clawback(state, &["audit", "export"]));
    assert!(!export.contains(SECRET) && !export.contains(KEPT));
    assert!(export.contains("\"content\":\"unreadable\""));
    std::fs::rename(&moved, &keys).expect("restore the keyring");

    // The chain, checkpoints and snapshots verify; a rebuild from seq 0
    // gives the live state hash.
    let audit = clawback(state, &["audit", "verify"]);
    assert!(audit.status.success(), "{}", stdout(&audit));
    let check = stdout(&clawback(state, &["snapshot", "restore", "--check"]));
    assert!(
        check.contains("check: a full rebuild from seq 0 gives the same state hash"),
        "{check}"
    );

    if std::env::var_os(WRITE_FIXTURE).is_some() {
        let archive = fixture("sealed-v1.cblog");
        let output = clawback(
            state,
            &["log", "archive", "-o", archive.to_str().expect("utf-8")],
        );
        assert!(output.status.success(), "{}", stderr(&output));
        let keys_fixture = fixture("sealed-v1.keys");
        let _ = std::fs::remove_dir_all(&keys_fixture);
        std::fs::create_dir_all(&keys_fixture).expect("keys fixture dir");
        for entry in std::fs::read_dir(&keys).expect("keyring") {
            let path = entry.expect("entry").path();
            let name = path.file_name().expect("name");
            std::fs::copy(&path, keys_fixture.join(name)).expect("copy a key file");
        }
    }
}

/// The checked-in sealed log (with its keyring: one live key, two purge
/// tombstones) reads back as it was recorded: sealed records keep decoding
/// and opening byte for byte in later builds, and purged stays purged.
#[test]
fn the_sealed_fixture_log_opens_what_is_kept_and_not_what_was_purged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = fixture("sealed-v1.cblog");
    let output = clawback(
        dir.path(),
        &["log", "import", archive.to_str().expect("utf-8")],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let keys = dir.path().join("content-keys");
    std::fs::create_dir_all(&keys).expect("keyring dir");
    for entry in std::fs::read_dir(fixture("sealed-v1.keys")).expect("keys fixture") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, keys.join(path.file_name().expect("name"))).expect("copy");
    }
    let replay = stdout(&clawback(
        dir.path(),
        &["replay", KEPT_SESSION, "--no-state"],
    ));
    assert!(replay.contains(KEPT), "{replay}");
    let replay = stdout(&clawback(dir.path(), &["replay", PURGED_SESSION]));
    assert!(
        replay.contains("[purged]") && !replay.contains(SECRET),
        "{replay}"
    );
    let export = stdout(&clawback(dir.path(), &["audit", "export"]));
    assert!(!export.contains(SECRET) && !export.contains(MAIN_SECRET));
    assert!(export.contains("\"content\":\"opened\""));
    let audit = clawback(dir.path(), &["audit", "verify"]);
    assert!(audit.status.success(), "{}", stdout(&audit));
}
