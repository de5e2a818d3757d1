//! Gemini's thought signatures across turns: the signature a reply gave
//! its `functionCall` goes back with that call on later turns (runs), not
//! only within the run, because the transcript points each call at the
//! recorded reply that asked for it. The mock refuses any `functionCall`
//! sent back without its signature, as Gemini 3 does for the current turn.

use serde_json::{Value, json};

use crate::agent::{request, write_config};
use crate::gateway::{start_with, stop};
use crate::llm_server::{LlmServer, tool_reply};
use crate::protocol::{TOKEN, connected, runtime};
use crate::support::{clawback, stdout};

const NOTE: &str = "low tide at six";

#[test]
fn later_turns_send_back_the_signatures_of_earlier_turns_calls() {
    let server = LlmServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), &server);
    std::fs::create_dir_all(dir.path().join("workspace")).expect("workspace");
    std::fs::write(dir.path().join("workspace/notes.txt"), NOTE).expect("note");
    let session = "agent:main:signatures";
    let (running, address, _) = start_with(dir.path(), &["--token", TOKEN]);
    runtime().block_on(async {
        let (mut socket, _) = connected(&address, &["operator.write"]).await;
        for (turn, message) in ["what do the notes say?", "and now?"].iter().enumerate() {
            let (answers, _) = request(
                &mut socket,
                &format!("t{turn}"),
                "agent",
                json!({"message": message, "idempotencyKey": format!("sig-{turn}"),
                       "model": "gem/tool-model", "sessionKey": session}),
                2,
            )
            .await;
            let last = &answers[1]["payload"];
            assert_eq!(last["status"], "ok", "turn {turn}: {last}");
            assert_eq!(last["result"]["payloads"][0]["text"], tool_reply(NOTE));
        }
    });
    stop(running);
    let bodies: Vec<Value> = server
        .requests()
        .into_iter()
        .filter(|body| body["action"] == "tool-model:streamGenerateContent")
        .map(|body| body["body"].clone())
        .collect();
    assert_eq!(bodies.len(), 4, "two rounds a turn");
    // Turn 2's first request holds turn 1's round, signature included.
    let call = json!({"functionCall": {"name": "read", "args": {"path": "notes.txt"}},
                      "thoughtSignature": "c2lnLW1vY2s="});
    let contents = bodies[2]["contents"].as_array().expect("contents");
    assert_eq!(contents[1], json!({"role": "model", "parts": [call]}));
    assert_eq!(
        contents.last(),
        Some(&json!({"role": "user", "parts": [{"text": "and now?"}]}))
    );
    // The live state (snapshotted at the stop) is what the log alone gives.
    let check = stdout(&clawback(dir.path(), &["snapshot", "restore", "--check"]));
    assert!(
        check.contains("check: a full rebuild from seq 0 gives the same state hash"),
        "{check}"
    );
}
