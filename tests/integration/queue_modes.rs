//! `chat.send` queue modes `steer` and `collect` over the real protocol: a
//! message steered into a running tool loop reaches the model at the next
//! model call, three collected messages become one turn in OpenClaw's
//! format, a full queue refuses, and the transcript read after a restart
//! (rebuilt from the log) equals the live one.

use serde_json::{Value, json};

use crate::agent::request;
use crate::gateway::{start_with, stop};
use crate::llm_server::{API_KEY, LlmServer, tool_reply};
use crate::protocol::{Socket, TOKEN, connected, next_json, runtime};

fn write_config(dir: &std::path::Path, server: &LlmServer, model: &str) {
    std::fs::create_dir_all(dir.join("workspace")).expect("workspace");
    std::fs::write(dir.join("workspace/notes.txt"), "the launch is at noon\n").expect("note");
    std::fs::write(
        dir.join("config.json5"),
        format!(
            "{{ agents: {{ defaults: {{ model: {{ primary: 'mock/{model}' }} }} }},\n  models: {{ providers: {{ mock: {{ baseUrl: '{}', apiKey: '{API_KEY}', api: 'openai-completions',\n    models: [{{ id: '{model}' }}] }} }} }} }}\n",
            server.base_url()
        ),
    )
    .expect("config");
}

async fn chat_send(
    socket: &mut Socket,
    id: &str,
    session: &str,
    message: &str,
    mode: &str,
) -> Value {
    chat_send_seen(socket, id, session, message, mode).await.0
}

/// `chat.send`, with the events that arrived before its answer.
async fn chat_send_seen(
    socket: &mut Socket,
    id: &str,
    session: &str,
    message: &str,
    mode: &str,
) -> (Value, Vec<Value>) {
    let (answers, events) = request(
        socket,
        id,
        "chat.send",
        json!({"sessionKey": session, "message": message, "idempotencyKey": id,
               "queueMode": mode}),
        1,
    )
    .await;
    (answers[0].clone(), events)
}

/// Reads frames until run `run_id` announces its start (which may be among
/// the events `seen` already).
async fn started(socket: &mut Socket, run_id: &str, seen: &[Value]) {
    let is_start = |frame: &Value| {
        frame["event"] == "agent"
            && frame["payload"]["runId"] == run_id
            && frame["payload"]["data"]["phase"] == "start"
    };
    if seen.iter().any(is_start) {
        return;
    }
    while !is_start(&next_json(socket).await) {}
}

async fn wait(socket: &mut Socket, run_id: &str) -> Value {
    let (answers, _) = request(
        socket,
        &format!("wait-{run_id}"),
        "agent.wait",
        json!({"runId": run_id, "timeoutMs": 20_000}),
        1,
    )
    .await;
    answers[0]["payload"].clone()
}

async fn history(socket: &mut Socket, session: &str) -> Value {
    let (answers, _) = request(
        socket,
        "history",
        "chat.history",
        json!({"sessionKey": session}),
        1,
    )
    .await;
    answers[0]["payload"]["messages"].clone()
}

/// The transcript as (role, text) pairs, tool parts by their kind.
fn transcript(messages: &Value) -> Vec<(String, String)> {
    messages
        .as_array()
        .expect("messages")
        .iter()
        .map(|message| {
            let text = message["content"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|part| {
                    part["text"]
                        .as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| part["type"].as_str().unwrap_or("").to_owned())
                })
                .collect::<Vec<_>>()
                .join("|");
            (message["role"].as_str().unwrap_or("").to_owned(), text)
        })
        .collect()
}

/// The transcript of `session` read from a fresh start of the gateway.
fn transcript_after_restart(dir: &std::path::Path, session: &str) -> Value {
    let (running, address, _) = start_with(dir, &["--token", TOKEN]);
    let messages = runtime().block_on(async {
        let (mut socket, _) = connected(&address, &["operator.read"]).await;
        history(&mut socket, session).await
    });
    stop(running);
    messages
}

#[test]
fn a_steered_message_joins_the_running_tool_loop_at_its_next_model_call() {
    let server = LlmServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), &server, "slow-tool");
    let session = "agent:main:steer";
    let (running, address, _) = start_with(dir.path(), &["--token", TOKEN]);
    let live = runtime().block_on(async {
        let (mut socket, _) = connected(&address, &["operator.write", "operator.read"]).await;
        let (first, seen) =
            chat_send_seen(&mut socket, "s-1", session, "read my notes", "steer").await;
        assert_eq!(
            first["payload"],
            json!({"runId": "s-1", "status": "started"})
        );
        started(&mut socket, "s-1", &seen).await;
        // The model is still asking for the tool: the message waits for
        // the boundary after the tool round.
        let steered = chat_send(&mut socket, "s-2", session, "also, be brief", "steer").await;
        assert_eq!(
            steered["payload"],
            json!({"runId": "s-2", "status": "started"}),
            "{steered}"
        );
        // The same key again is the same message, not a second one.
        let again = chat_send(&mut socket, "s-2", session, "also, be brief", "steer").await;
        assert_eq!(again["payload"]["runId"], "s-2");
        // A waiting message can be withdrawn by its id; the run goes on.
        let withdrawn = chat_send(&mut socket, "s-3", session, "never mind", "steer").await;
        assert_eq!(withdrawn["payload"]["status"], "started");
        let (aborted, _) = request(
            &mut socket,
            "abort-s-3",
            "chat.abort",
            json!({"sessionKey": session, "runId": "s-3"}),
            1,
        )
        .await;
        assert_eq!(
            aborted[0]["payload"],
            json!({"ok": true, "aborted": true, "runIds": ["s-3"]})
        );
        let done = wait(&mut socket, "s-1").await;
        assert_eq!(done["status"], "ok", "{done}");
        // The steered message answers as the run it joined.
        assert_eq!(wait(&mut socket, "s-2").await["status"], "ok");

        let bodies = server.requests();
        assert_eq!(bodies.len(), 2, "one run, two model calls: {bodies:?}");
        let roles: Vec<&str> = bodies[1]["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .filter_map(|m| m["role"].as_str())
            .collect();
        assert_eq!(roles, ["system", "user", "assistant", "tool", "user"]);
        let messages = history(&mut socket, session).await;
        let expected_reply = format!(
            "{} / then you said: also, be brief",
            tool_reply("the launch is at noon")
        );
        let live = transcript(&messages);
        assert_eq!(live.first().map(|m| m.1.as_str()), Some("read my notes"));
        assert_eq!(
            live[live.len() - 2],
            ("user".to_owned(), "also, be brief".to_owned()),
            "{live:?}"
        );
        assert_eq!(live.last().map(|m| m.1.clone()), Some(expected_reply));
        messages
    });
    stop(running);
    let replayed = transcript_after_restart(dir.path(), session);
    assert_eq!(transcript(&replayed), transcript(&live));
    assert_eq!(replayed, live);
}

#[test]
fn collected_messages_become_one_turn_after_the_run_and_the_queue_is_bounded() {
    let server = LlmServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), &server, "slow-model");
    let session = "agent:main:collect";
    let (running, address, _) = start_with(dir.path(), &["--token", TOKEN]);
    let live = runtime().block_on(async {
        let (mut socket, _) = connected(&address, &["operator.write", "operator.read"]).await;
        let (first, seen) =
            chat_send_seen(&mut socket, "c-1", session, "tell me a story", "collect").await;
        assert_eq!(first["payload"], json!({"runId": "c-1", "status": "started"}));
        started(&mut socket, "c-1", &seen).await;
        for (id, text) in [("c-2", "about a cat"), ("c-3", "in Paris"), ("c-4", "short")] {
            let queued = chat_send(&mut socket, id, session, text, "collect").await;
            assert_eq!(queued["payload"], json!({"runId": id, "status": "started"}));
        }
        // Waiting for a collected message waits for the turn it joins.
        let combined = wait(&mut socket, "c-4").await;
        assert_eq!(combined["status"], "ok", "{combined}");
        assert_eq!(wait(&mut socket, "c-1").await["status"], "ok");

        let bodies = server.requests();
        assert_eq!(bodies.len(), 2, "the story, then one collected turn");
        let prompt = "[Queued messages while agent was busy]\n\n---\nQueued #1\nabout a cat\n\n---\nQueued #2\nin Paris\n\n---\nQueued #3\nshort";
        let last = bodies[1]["messages"]
            .as_array()
            .and_then(|messages| messages.last())
            .cloned()
            .expect("a message");
        assert_eq!(last, json!({"role": "user", "content": prompt}));
        let messages = history(&mut socket, session).await;
        let live = transcript(&messages);
        assert_eq!(live.len(), 4, "{live:?}");
        assert_eq!(live[2], ("user".to_owned(), prompt.to_owned()));

        // A full queue refuses, clearly; the waiting messages still run.
        let (long, seen) =
            chat_send_seen(&mut socket, "f-0", "agent:main:full", "go", "collect").await;
        assert_eq!(long["payload"]["status"], "started");
        started(&mut socket, "f-0", &seen).await;
        for n in 1..=20 {
            let id = format!("f-{n}");
            let queued = chat_send(&mut socket, &id, "agent:main:full", "more", "collect").await;
            assert_eq!(queued["payload"]["status"], "started", "{queued}");
        }
        let refused = chat_send(&mut socket, "f-21", "agent:main:full", "more", "steer").await;
        assert_eq!(refused["ok"], false, "{refused}");
        assert_eq!(refused["error"]["code"], "UNAVAILABLE");
        assert!(
            refused["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("20 messages waiting")),
            "{refused}"
        );
        assert_eq!(wait(&mut socket, "f-20").await["status"], "ok");
        messages
    });
    stop(running);
    let replayed = transcript_after_restart(dir.path(), session);
    assert_eq!(replayed, live);
}
