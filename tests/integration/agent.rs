//! Agent runs over the real protocol against a local OpenAI-format server:
//! `agent` answers `accepted` then the final reply, the reply streams as
//! `chat` and `agent` events, a repeated idempotency key never runs the
//! model twice, the transcript carries the history into the next turn, and
//! failures are classified and recorded. Then the log alone replays it.

use serde_json::{Value, json};

use crate::gateway::stop;
use crate::llm_server::{API_KEY, LlmServer};
use crate::protocol::{Socket, TOKEN, connected, next_json, runtime, send};
use crate::support::{clawback, stdout};

pub(crate) fn write_config(dir: &std::path::Path, server: &LlmServer) {
    let text = format!(
        "{{ agents: {{ defaults: {{ model: {{ primary: 'mock/mock-model' }} }} }},\n  models: {{ providers: {{ mock: {{ baseUrl: '{}', apiKey: '{API_KEY}', api: 'openai-completions',\n    models: [{{ id: 'mock-model', cost: {{ input: 1, output: 2 }} }}, {{ id: 'fail-401' }}, {{ id: 'fail-429' }}, {{ id: 'slow-model' }}, {{ id: 'overflow-model' }}, {{ id: 'reasoner', reasoning: true }}, {{ id: 'small-window', contextWindow: 200 }}, {{ id: 'dense-window', contextWindow: 600 }}, {{ id: 'tool-model' }}, {{ id: 'tool-loop' }}, {{ id: 'exec-model' }}] }},\n    claude: {{ baseUrl: 'http://{}', apiKey: '{API_KEY}', api: 'anthropic-messages',\n    models: [{{ id: 'claude-mock', maxTokens: 1024 }}, {{ id: 'claude-429' }}, {{ id: 'tool-model' }}, {{ id: 'tool-think', reasoning: true, maxTokens: 4096 }}] }},\n    local: {{ baseUrl: 'http://{}', api: 'ollama', models: [{{ id: 'llama-mock' }}, {{ id: 'missing' }}, {{ id: 'tool-model' }}] }},\n    gem: {{ baseUrl: 'http://{}', apiKey: '{API_KEY}', api: 'google-generative-ai', models: [{{ id: 'gemini-mock' }}, {{ id: 'gemini-429' }}, {{ id: 'tool-model' }}] }},\n    resp: {{ baseUrl: '{}', apiKey: '{API_KEY}', api: 'openai-responses', models: [{{ id: 'resp-mock' }}, {{ id: 'tool-model' }}, {{ id: 'tool-reason', reasoning: true }}] }},\n    bedrock: {{ baseUrl: 'http://{}', api: 'bedrock-converse-stream', region: 'us-east-1', models: [{{ id: 'tool-model' }}] }} }} }} }}\n",
        server.base_url(),
        server.address,
        server.address,
        server.address,
        server.base_url(),
        server.address
    );
    std::fs::write(dir.join("config.json5"), text).expect("config");
}

/// A local model server, a state dir configured for it (`write_config`),
/// and a gateway running on that dir with the test token.
pub(crate) fn mock_gateway() -> (
    LlmServer,
    tempfile::TempDir,
    crate::gateway::Running,
    String,
) {
    let server = LlmServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), &server);
    let (running, address, _) = crate::gateway::start_with(dir.path(), &["--token", TOKEN]);
    (server, dir, running, address)
}

/// Sends a request and collects frames until `finals` answers with its id
/// have arrived; returns (answers, events in between).
pub(crate) async fn request(
    socket: &mut Socket,
    id: &str,
    method: &str,
    params: Value,
    finals: usize,
) -> (Vec<Value>, Vec<Value>) {
    send(
        socket,
        json!({"type": "req", "id": id, "method": method, "params": params}),
    )
    .await;
    let (mut answers, mut events) = (Vec::new(), Vec::new());
    while answers.len() < finals {
        let frame = next_json(socket).await;
        if frame["type"] == "res" && frame["id"] == id {
            answers.push(frame);
        } else if frame["type"] == "event" {
            events.push(frame);
        }
    }
    (answers, events)
}

#[test]
fn agent_runs_stream_record_and_never_run_twice() {
    let (server, dir, running, address) = mock_gateway();
    let session = "agent:main:main";
    runtime().block_on(async {
        let (mut socket, _) = connected(&address, &["operator.write"]).await;
        let (answers, events) = request(
            &mut socket,
            "a1",
            "agent",
            json!({"message": "hi there", "idempotencyKey": "run-1"}),
            2,
        )
        .await;
        let accepted = &answers[0]["payload"];
        assert_eq!(accepted["status"], "accepted", "{answers:?}");
        assert_eq!(accepted["runId"], "run-1");
        assert_eq!(accepted["sessionKey"], session);
        let last = &answers[1]["payload"];
        assert_eq!(last["status"], "ok", "{last}");
        let reply = "Hello from the mock. You said: hi there";
        assert_eq!(last["result"]["payloads"][0]["text"], reply);
        assert_eq!(last["result"]["meta"]["agentMeta"]["usage"]["input"], 12);
        assert_eq!(last["result"]["meta"]["agentMeta"]["model"], "mock-model");

        // The reply streamed: chat deltas add up to it, then a final.
        let chat: Vec<&Value> = events.iter().filter(|e| e["event"] == "chat").collect();
        let deltas: String = chat
            .iter()
            .filter(|e| e["payload"]["state"] == "delta")
            .filter_map(|e| e["payload"]["deltaText"].as_str())
            .collect();
        assert_eq!(deltas, reply, "{chat:?}");
        let final_event = chat
            .iter()
            .find(|e| e["payload"]["state"] == "final")
            .expect("final");
        assert_eq!(
            final_event["payload"]["message"]["content"][0]["text"],
            reply
        );
        let phases: Vec<&str> = events
            .iter()
            .filter(|e| e["event"] == "agent" && e["payload"]["stream"] == "lifecycle")
            .filter_map(|e| e["payload"]["data"]["phase"].as_str())
            .collect();
        assert_eq!(phases, ["start", "model", "end"]);

        // The same key again: the recorded answer, no second model call.
        let (again, _) = request(
            &mut socket,
            "a2",
            "agent",
            json!({"message": "hi there", "idempotencyKey": "run-1"}),
            1,
        )
        .await;
        assert_eq!(again[0]["payload"]["status"], "ok");
        assert_eq!(again[0]["payload"]["result"]["payloads"][0]["text"], reply);
        assert_eq!(server.requests().len(), 1);

        // A second turn carries the history.
        let (second, _) = request(
            &mut socket,
            "a3",
            "chat.send",
            json!({"sessionKey": session, "message": "and again", "idempotencyKey": "run-2"}),
            1,
        )
        .await;
        assert_eq!(
            second[0]["payload"],
            json!({"runId": "run-2", "status": "started"})
        );
        let (waited, _) = request(
            &mut socket,
            "a4",
            "agent.wait",
            json!({"runId": "run-2"}),
            1,
        )
        .await;
        assert_eq!(waited[0]["payload"]["status"], "ok", "{waited:?}");
        let sent = &server.requests()[1]["messages"];
        let roles: Vec<&str> = sent
            .as_array()
            .expect("messages")
            .iter()
            .filter_map(|m| m["role"].as_str())
            .collect();
        assert_eq!(roles, ["system", "user", "assistant", "user"], "{sent}");
        assert_eq!(sent[2]["content"], reply);

        let (history, _) = request(
            &mut socket,
            "a5",
            "chat.history",
            json!({"sessionKey": session}),
            1,
        )
        .await;
        let messages = history[0]["payload"]["messages"]
            .as_array()
            .expect("messages")
            .clone();
        assert_eq!(messages.len(), 4, "{history:?}");
        assert_eq!(messages[3]["role"], "assistant");
        assert_eq!(
            messages[3]["content"][0]["text"],
            "Hello from the mock. You said: and again"
        );

        // Failures are classified, answered and recorded.
        let (failed, _) = request(
            &mut socket,
            "a6",
            "agent",
            json!({"message": "x", "idempotencyKey": "run-3", "model": "mock/fail-401",
                   "sessionKey": "agent:main:errors"}),
            2,
        )
        .await;
        let payload = &failed[1]["payload"];
        assert_eq!(payload["status"], "error", "{payload}");
        assert_eq!(payload["error"]["kind"], "auth");
        assert!(
            payload["summary"]
                .as_str()
                .is_some_and(|s| s.contains("HTTP 401"))
        );
        let (unsupported, _) = request(
            &mut socket,
            "a7",
            "agent",
            json!({"message": "x", "idempotencyKey": "run-4", "deliver": true}),
            1,
        )
        .await;
        assert_eq!(unsupported[0]["error"]["code"], "UNAVAILABLE");

        // Usage is a fold of the recorded calls: two replies of 12 + 9
        // tokens at $1 and $2 per million tokens; the failed call cost none.
        let (cost, _) = request(&mut socket, "u", "usage.cost", json!({"days": 1}), 1).await;
        let totals = &cost[0]["payload"]["totals"];
        assert_eq!(
            (totals["input"].as_u64(), totals["output"].as_u64()),
            (Some(24), Some(18)),
            "{cost:?}"
        );
        assert_eq!(totals["calls"], 3);
        assert!((totals["totalCost"].as_f64().expect("cost") - 0.00006).abs() < 1e-12);
        assert_eq!(
            cost[0]["payload"]["daily"].as_array().map(Vec::len),
            Some(1)
        );
    });
    stop(running);

    let tail = stdout(&clawback(
        dir.path(),
        &["log", "tail", "-n", "200", "--json"],
    ));
    let kinds: Vec<String> = tail
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|record| record["kind"].as_str().map(str::to_owned))
        .filter(|kind| kind.starts_with("llm.") || kind.starts_with("agent.run"))
        .collect();
    assert_eq!(
        kinds,
        [
            "agent.run.started",
            "llm.call.requested",
            "llm.call.completed",
            "agent.run.finished",
            "agent.run.started",
            "llm.call.requested",
            "llm.call.completed",
            "agent.run.finished",
            "agent.run.started",
            "llm.call.requested",
            "llm.call.completed",
            "agent.run.finished",
        ]
    );
    assert!(
        !tail.contains(API_KEY),
        "the provider key never reaches the log"
    );
    // Replay needs no provider: the transcript comes from the log.
    let replay = stdout(&clawback(dir.path(), &["replay", session]));
    assert!(
        replay.contains("Hello from the mock. You said: and again"),
        "{replay}"
    );
    let audit = clawback(dir.path(), &["audit", "verify"]);
    assert!(audit.status.success(), "{}", stdout(&audit));
}

#[test]
fn without_a_configured_model_a_run_fails_with_the_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (running, address, _) = crate::gateway::start_with(dir.path(), &["--token", TOKEN]);
    runtime().block_on(async {
        let (mut socket, _) = connected(&address, &["operator.write"]).await;
        let (answers, _) = request(
            &mut socket,
            "1",
            "agent",
            json!({"message": "hi", "idempotencyKey": "k"}),
            2,
        )
        .await;
        let payload = &answers[1]["payload"];
        assert_eq!(payload["status"], "error");
        let summary = payload["summary"].as_str().expect("summary");
        assert!(
            summary.starts_with("No model is configured.") && summary.contains("config.json5"),
            "{summary}"
        );
    });
    stop(running);
}

#[test]
fn chat_abort_stops_a_run_mid_reply_and_keeps_what_was_said() {
    let (_server, dir, running, address) = mock_gateway();
    let session = "agent:main:slow";
    runtime().block_on(async {
        let (mut socket, _) = connected(&address, &["operator.write"]).await;
        let (mut controller, _) = connected(&address, &["operator.write"]).await;
        // The session's own model setting is what its runs use.
        let (patched, _) = request(
            &mut controller,
            "p",
            "sessions.patch",
            json!({"key": session, "model": "mock/slow-model"}),
            1,
        )
        .await;
        assert_eq!(patched[0]["ok"], true, "{patched:?}");
        send(
            &mut socket,
            json!({"type": "req", "id": "r", "method": "agent",
                   "params": {"message": "tell me a long story", "idempotencyKey": "slow-1",
                              "sessionKey": session}}),
        )
        .await;
        // Wait until some of the reply has streamed.
        loop {
            let frame = next_json(&mut socket).await;
            if frame["event"] == "chat" && frame["payload"]["state"] == "delta" {
                break;
            }
        }
        let (stopped, _) = request(
            &mut controller,
            "s",
            "chat.abort",
            json!({"sessionKey": session}),
            1,
        )
        .await;
        assert_eq!(
            stopped[0]["payload"],
            json!({"ok": true, "aborted": true, "runIds": ["slow-1"]}),
            "{stopped:?}"
        );
        let (mut aborted_event, mut last) = (None, None);
        while last.is_none() {
            let frame = next_json(&mut socket).await;
            if frame["event"] == "chat" && frame["payload"]["state"] == "aborted" {
                aborted_event = Some(frame);
            } else if frame["type"] == "res"
                && frame["id"] == "r"
                && frame["payload"]["status"] != "accepted"
            {
                last = Some(frame);
            }
        }
        let last = last.expect("final");
        assert_eq!(last["payload"]["status"], "error", "{last}");
        assert_eq!(last["payload"]["error"]["kind"], "aborted");
        assert!(
            aborted_event.is_some(),
            "the chat stream says aborted before the answer"
        );
        let (history, _) = request(
            &mut controller,
            "h",
            "chat.history",
            json!({"sessionKey": session}),
            1,
        )
        .await;
        let messages = history[0]["payload"]["messages"]
            .as_array()
            .expect("messages")
            .clone();
        assert_eq!(messages.len(), 2, "{history:?}");
        let partial = messages[1]["content"][0]["text"].as_str().expect("text");
        assert!(
            partial.starts_with("Hello")
                && partial.len() < "Hello from the mock. You said: tell me a long story".len(),
            "{partial}"
        );
        let (nothing, _) = request(
            &mut controller,
            "n",
            "chat.abort",
            json!({"sessionKey": session}),
            1,
        )
        .await;
        assert_eq!(nothing[0]["payload"]["aborted"], false);
    });
    stop(running);
    let tail = stdout(&clawback(
        dir.path(),
        &["log", "tail", "-n", "100", "--json"],
    ));
    assert!(
        tail.contains("\"Aborted\""),
        "the run is recorded as aborted: {tail}"
    );
}

#[test]
fn compaction_summarizes_old_turns_on_request_and_on_overflow() {
    let (server, dir, running, address) = mock_gateway();
    let session = "agent:main:long";
    runtime().block_on(async {
        let (mut socket, _) = connected(&address, &["operator.admin"]).await;
        let (patched, _) = request(
            &mut socket,
            "p",
            "sessions.patch",
            json!({"key": session, "model": "mock/overflow-model"}),
            1,
        )
        .await;
        assert_eq!(patched[0]["ok"], true);
        let turn = |n: u32| json!({"message": format!("message {n}"), "idempotencyKey": format!("t{n}"), "sessionKey": session});
        for n in 1..=3 {
            let (answers, _) = request(&mut socket, &format!("t{n}"), "agent", turn(n), 2).await;
            assert_eq!(answers[1]["payload"]["status"], "ok", "turn {n}: {answers:?}");
        }
        // Six messages: compacting keeps the newest four, summarizes two.
        let (compacted, _) =
            request(&mut socket, "c", "sessions.compact", json!({"key": session}), 1).await;
        assert_eq!(
            compacted[0]["payload"],
            json!({"ok": true, "key": session, "compacted": true, "messagesCompacted": 2}),
            "{compacted:?}"
        );
        // The next turn sends the summary instead of the two messages.
        let (answers, _) = request(&mut socket, "t4", "agent", turn(4), 2).await;
        assert_eq!(answers[1]["payload"]["status"], "ok", "{answers:?}");
        let sent = server.requests().last().cloned().expect("request");
        let sent = sent["messages"].as_array().expect("messages").clone();
        assert_eq!(sent.len(), 7, "system, summary, four kept, the new one: {sent:?}");
        assert!(sent[1]["content"].as_str().is_some_and(|c| c.contains("SUMMARY of")), "{sent:?}");
        // Turn 5 overflows the seven-message window: the run compacts and
        // retries once, by itself.
        let before = server.requests().len();
        let (answers, events) = request(&mut socket, "t5", "agent", turn(5), 2).await;
        assert_eq!(answers[1]["payload"]["status"], "ok", "{answers:?}");
        assert_eq!(
            answers[1]["payload"]["result"]["payloads"][0]["text"],
            "Hello from the mock. You said: message 5"
        );
        assert_eq!(server.requests().len() - before, 3, "overflow, summary, retry");
        let deltas: String = events
            .iter()
            .filter(|e| e["event"] == "chat" && e["payload"]["state"] == "delta")
            .filter_map(|e| e["payload"]["deltaText"].as_str())
            .collect();
        assert_eq!(deltas, "Hello from the mock. You said: message 5");
        let (history, _) =
            request(&mut socket, "h", "chat.history", json!({"sessionKey": session}), 1).await;
        assert_eq!(
            history[0]["payload"]["totalMessages"], 10,
            "the transcript keeps every message; only the context is compacted"
        );
    });
    stop(running);
    let tail = stdout(&clawback(
        dir.path(),
        &["log", "tail", "-n", "300", "--json"],
    ));
    let compactions = tail
        .lines()
        .filter(|line| line.contains("\"session.compacted\""))
        .count();
    assert_eq!(compactions, 2, "{tail}");
    let audit = clawback(dir.path(), &["audit", "verify"]);
    assert!(audit.status.success(), "{}", stdout(&audit));
}

#[test]
fn workspace_files_are_edited_over_the_protocol_and_feed_the_prompt() {
    let (server, dir, running, address) = mock_gateway();
    runtime().block_on(async {
        let (mut socket, _) = connected(&address, &["operator.admin"]).await;
        let (set, _) = request(
            &mut socket,
            "s",
            "agents.files.set",
            json!({"agentId": "main", "name": "SOUL.md", "content": "Always answer in French."}),
            1,
        )
        .await;
        assert_eq!(set[0]["payload"]["ok"], true, "{set:?}");
        let workspace = dir.path().join("workspace");
        assert_eq!(
            set[0]["payload"]["workspace"],
            workspace.display().to_string()
        );
        let (got, _) = request(
            &mut socket,
            "g",
            "agents.files.get",
            json!({"agentId": "main", "name": "SOUL.md"}),
            1,
        )
        .await;
        let file = &got[0]["payload"]["file"];
        assert_eq!(file["content"], "Always answer in French.");
        let (stale, _) = request(
            &mut socket,
            "x",
            "agents.files.set",
            json!({"agentId": "main", "name": "SOUL.md", "content": "y", "expectedHash": "00"}),
            1,
        )
        .await;
        assert_eq!(stale[0]["error"]["code"], "INVALID_REQUEST");
        let (escape, _) = request(
            &mut socket,
            "e",
            "agents.files.get",
            json!({"agentId": "main", "name": "../config.json5"}),
            1,
        )
        .await;
        assert!(
            escape[0]["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("unknown workspace file")),
            "{escape:?}"
        );
        let (listed, _) = request(
            &mut socket,
            "l",
            "agents.files.list",
            json!({"agentId": "main"}),
            1,
        )
        .await;
        let files = listed[0]["payload"]["files"]
            .as_array()
            .expect("files")
            .clone();
        assert_eq!(files.len(), 8);
        assert!(
            files
                .iter()
                .any(|f| f["name"] == "SOUL.md" && f["missing"] == false)
        );

        // A skill in the workspace: listed with its requirements, and in
        // the prompt's catalog while it is eligible.
        let skill_dir = workspace.join("skills").join("weather");
        std::fs::create_dir_all(&skill_dir).expect("skill dir");
        std::fs::write(
            skill_dir.join("SKILL.md"),
            "---\nname: weather\ndescription: Get the forecast\nmetadata: {\"openclaw\": {\"requires\": {\"bins\": [\"sh\"]}}}\n---\nRun curl wttr.in.\n",
        )
        .expect("skill");
        let (skills, _) = request(&mut socket, "k", "skills.status", json!({}), 1).await;
        let skill = &skills[0]["payload"]["skills"][0];
        assert_eq!(skill["name"], "weather", "{skills:?}");
        assert_eq!(skill["eligible"], true);
        assert_eq!(skill["requirements"]["bins"], json!(["sh"]));

        let (answers, _) = request(
            &mut socket,
            "r",
            "agent",
            json!({"message": "hi", "idempotencyKey": "ws-1"}),
            2,
        )
        .await;
        assert_eq!(answers[1]["payload"]["status"], "ok");
        let sent = server.requests().last().cloned().expect("request");
        let system = sent["messages"][0]["content"].as_str().expect("system");
        assert!(
            system.contains("## SOUL.md\n\nAlways answer in French."),
            "{system}"
        );
        let location = skill_dir.join("SKILL.md").display().to_string();
        assert!(
            system.contains(&format!(
                "<name>weather</name>\n    <description>Get the forecast</description>\n    <location>{location}</location>"
            )),
            "{system}"
        );
    });
    stop(running);
}

#[test]
fn a_restarted_gateway_serves_the_same_transcript_with_no_provider_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    let session = "agent:main:main";
    let before = {
        let server = LlmServer::start();
        write_config(dir.path(), &server);
        let (running, address, _) = crate::gateway::start_with(dir.path(), &["--token", TOKEN]);
        let history = runtime().block_on(async {
            let (mut socket, _) = connected(&address, &["operator.write"]).await;
            for n in 0..3 {
                let (answers, _) = request(
                    &mut socket,
                    &format!("r{n}"),
                    "agent",
                    json!({"message": format!("turn {n}"), "idempotencyKey": format!("r{n}")}),
                    2,
                )
                .await;
                assert_eq!(answers[1]["payload"]["status"], "ok");
            }
            let (history, _) = request(
                &mut socket,
                "h",
                "chat.history",
                json!({"sessionKey": session}),
                1,
            )
            .await;
            history[0]["payload"].clone()
        });
        stop(running);
        history
        // The provider stops here, with its runtime.
    };
    // Nothing answers at the provider's address any more; the transcript
    // comes from the log alone.
    let (running, address, _) = crate::gateway::start_with(dir.path(), &["--token", TOKEN]);
    let after = runtime().block_on(async {
        let (mut socket, _) = connected(&address, &["operator.read"]).await;
        let (history, _) = request(
            &mut socket,
            "h",
            "chat.history",
            json!({"sessionKey": session}),
            1,
        )
        .await;
        history[0]["payload"].clone()
    });
    stop(running);
    assert_eq!(after["messages"], before["messages"]);
    assert_eq!(after["messages"].as_array().map(Vec::len), Some(6));
    let audit = clawback(dir.path(), &["audit", "verify"]);
    assert!(audit.status.success(), "{}", stdout(&audit));
}
