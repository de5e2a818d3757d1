//! The context-window guard: before a turn whose context would not fit
//! the model's window, the session is compacted (summarized through the
//! model) instead of waiting for the provider to refuse. The context is
//! sized as OpenClaw sizes it: the last reply's reported usage plus a
//! characters/4 estimate of what came after.

use serde_json::json;

use crate::agent::{mock_gateway, request};
use crate::gateway::stop;
use crate::llm_server::LlmServer;
use crate::protocol::{connected, runtime};
use crate::support::{clawback, stdout};

/// Four turns of about 190 characters each on one session of `model`.
fn four_turns(model: &str) -> (LlmServer, tempfile::TempDir) {
    let (server, dir, running, address) = mock_gateway();
    runtime().block_on(async {
        let (mut socket, _) = connected(&address, &["operator.write"]).await;
        for n in 0..4 {
            let message = format!("turn {n}: {}", "words ".repeat(30));
            let (answers, _) = request(
                &mut socket,
                &format!("c{n}"),
                "agent",
                json!({"message": message, "idempotencyKey": format!("c{n}"),
                       "model": model, "sessionKey": "agent:main:guarded"}),
                2,
            )
            .await;
            assert_eq!(
                answers[1]["payload"]["status"], "ok",
                "turn {n}: {answers:?}"
            );
        }
    });
    stop(running);
    (server, dir)
}

/// How many summaries the model was asked for.
fn summaries(server: &LlmServer) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| {
            r["messages"][0]["content"]
                .as_str()
                .is_some_and(|c| c.starts_with("Summarize the conversation"))
        })
        .count()
}

#[test]
fn the_context_guard_compacts_before_a_turn_outgrows_the_window() {
    let (server, dir) = four_turns("mock/small-window");
    // The 200-token window is outgrown by the fourth turn: the old turns
    // were summarized before the call, not after a refusal.
    assert_eq!(summaries(&server), 1);
    let tail = stdout(&clawback(
        dir.path(),
        &["log", "tail", "-n", "200", "--json"],
    ));
    assert_eq!(
        tail.lines()
            .filter(|l| l.contains("\"session.compacted\""))
            .count(),
        1,
        "{tail}"
    );
}

#[test]
fn the_guard_counts_the_tokens_the_provider_reported() {
    // `dense-window` reports a token per character (four times what
    // characters/4 guesses) and has a 600-token window: by characters the
    // four turns (about 400 tokens) fit, by its own count they do not.
    let (server, dir) = four_turns("mock/dense-window");
    assert_eq!(summaries(&server), 1);
    let check = stdout(&clawback(dir.path(), &["snapshot", "restore", "--check"]));
    assert!(
        check.contains("check: a full rebuild from seq 0 gives the same state hash"),
        "{check}"
    );
}
