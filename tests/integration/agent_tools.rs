//! The tool loop over the real protocol, once per wire format: the model
//! asks for `read` in its provider's own tool-call stream, clawback runs
//! it in the agent's workspace and sends the result back in that
//! provider's own result shape, and the model's final answer quotes it.
//! Each test checks the exact bodies the provider received, the recorded
//! events, `chat.history`, and the `tool` phases on the `agent` stream (to
//! a client that declared `caps: ["tool-events"]`). Then the log alone,
//! with no provider running, gives the same transcript.

use serde_json::{Value, json};

use crate::agent::{request, write_config};
use crate::gateway::stop;
use crate::llm_server::{AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, LlmServer, aws_env, tool_reply};
use crate::protocol::{Socket, TOKEN, connect_frame, next_json, open, runtime, send};
use crate::support::{clawback, stdout};

/// The registry's tools, in the order every provider is offered them.
const TOOL_NAMES: [&str; 8] = [
    "read",
    "write",
    "edit",
    "sessions_list",
    "sessions_send",
    "cron",
    "web_fetch",
    "exec",
];

const NOTE: &str = "the tide comes in at noon";
const QUESTION: &str = "what does notes.txt say?";
const READ_DESCRIPTION: &str = "Read a text file in the agent's workspace. `path` is relative to the workspace (absolute paths must lie inside it). Returns up to `limit` lines from line `offset` (1-based); long outputs are truncated.";

fn read_schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["path"],
        "properties": {
            "path": {"type": "string", "minLength": 1, "maxLength": 4096,
                     "description": "The file, relative to the workspace."},
            "offset": {"type": "integer", "minimum": 1,
                       "description": "The first line to return (1-based)."},
            "limit": {"type": "integer", "minimum": 1, "maximum": 100000,
                      "description": "How many lines to return."},
        },
    })
}

/// A connection that declared the `tool-events` cap, as the TUI does.
async fn connected_with_tool_events(address: &str) -> Socket {
    let (mut socket, _) = open(address).await;
    let mut frame = connect_frame(Some(TOKEN), &["operator.write", "operator.read"]);
    frame["params"]["caps"] = json!(["tool-events"]);
    send(&mut socket, frame).await;
    let hello = next_json(&mut socket).await;
    assert_eq!(hello["ok"], true, "{hello}");
    socket
}

struct RoundTrip {
    server: LlmServer,
    dir: tempfile::TempDir,
    session: String,
    /// The bodies `tool-model` received, in order.
    bodies: Vec<Value>,
    events: Vec<Value>,
    history: Value,
    tail: String,
}

/// One `agent` run of `provider/tool-model` that reads `notes.txt`.
fn round_trip(provider: &str) -> RoundTrip {
    let server = LlmServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), &server);
    std::fs::create_dir_all(dir.path().join("workspace")).expect("workspace");
    std::fs::write(dir.path().join("workspace/notes.txt"), format!("{NOTE}\n")).expect("note");
    let session = format!("agent:main:tools-{provider}");
    // Bedrock signs with the test key pair; the others ignore AWS.
    let (running, address, _) = if provider == "bedrock" {
        crate::gateway::start_with_aws(dir.path(), &["--token", TOKEN], &aws_env())
    } else {
        crate::gateway::start_with(dir.path(), &["--token", TOKEN])
    };
    let (events, history) = runtime().block_on(async {
        let mut socket = connected_with_tool_events(&address).await;
        let (answers, events) = request(
            &mut socket,
            "t1",
            "agent",
            json!({"message": QUESTION, "idempotencyKey": format!("tools-{provider}"),
                   "model": format!("{provider}/tool-model"), "sessionKey": session}),
            2,
        )
        .await;
        let last = &answers[1]["payload"];
        assert_eq!(last["status"], "ok", "{last}");
        assert_eq!(
            last["result"]["payloads"][0]["text"],
            tool_reply(NOTE),
            "{last}"
        );
        let (history, _) = request(
            &mut socket,
            "h1",
            "chat.history",
            json!({"sessionKey": session}),
            1,
        )
        .await;
        (events, history[0]["payload"].clone())
    });
    stop(running);
    let bodies: Vec<Value> = server
        .requests()
        .into_iter()
        .filter(|body| {
            body["model"] == "tool-model"
                || body["action"] == "tool-model:streamGenerateContent"
                || body["bedrock"] == "tool-model"
        })
        .map(|body| {
            if body["body"].is_object() {
                body["body"].clone()
            } else {
                body
            }
        })
        .collect();
    assert_eq!(
        bodies.len(),
        2,
        "one call for the tool, one with its result"
    );
    let tail = stdout(&clawback(
        dir.path(),
        &["log", "tail", "-n", "200", "--json"],
    ));
    RoundTrip {
        server,
        dir,
        session,
        bodies,
        events,
        history,
        tail,
    }
}

impl RoundTrip {
    /// The common checks: events recorded in order, tool phases streamed,
    /// the transcript in OpenClaw's shapes. Returns the tool call id.
    fn check(&self, text_before_call: Option<&str>) -> String {
        let kinds: Vec<String> = self
            .tail
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter_map(|record| record["kind"].as_str().map(str::to_owned))
            .filter(|kind| {
                kind.starts_with("llm.")
                    || kind.starts_with("tool.")
                    || kind.starts_with("agent.run")
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "agent.run.started",
                "llm.call.requested",
                "llm.call.completed",
                "tool.call.requested",
                "tool.call.started",
                "tool.call.finished",
                "llm.call.requested",
                "llm.call.completed",
                "agent.run.finished",
            ],
            "{}",
            self.tail
        );
        assert!(self.tail.contains(NOTE), "the tool's output is recorded");

        let tool_events: Vec<&Value> = self
            .events
            .iter()
            .filter(|e| e["event"] == "agent" && e["payload"]["stream"] == "tool")
            .map(|e| &e["payload"]["data"])
            .collect();
        assert_eq!(tool_events.len(), 2, "{:?}", self.events);
        let id = tool_events[0]["toolCallId"]
            .as_str()
            .expect("a tool call id")
            .to_owned();
        assert_eq!(
            *tool_events[0],
            json!({"phase": "start", "name": "read", "toolCallId": id,
                   "args": {"path": "notes.txt"}})
        );
        assert_eq!(
            *tool_events[1],
            json!({"phase": "result", "name": "read", "toolCallId": id, "isError": false,
                   "result": {"content": [{"type": "text", "text": NOTE}]}})
        );
        // Agent seqs stay in order across the tool phases.
        let seqs: Vec<u64> = self
            .events
            .iter()
            .filter(|e| e["event"] == "agent")
            .filter_map(|e| e["payload"]["seq"].as_u64())
            .collect();
        assert!(
            seqs.windows(2).all(|pair| pair[1] == pair[0] + 1),
            "{seqs:?}"
        );

        let messages = self.history["messages"].as_array().expect("messages");
        let shapes: Vec<Value> = messages
            .iter()
            .map(|m| {
                let mut m = m.clone();
                m.as_object_mut().map(|o| {
                    o.remove("timestamp");
                    o.remove("__openclaw")
                });
                m
            })
            .collect();
        let mut expected =
            vec![json!({"role": "user", "content": [{"type": "text", "text": QUESTION}]})];
        if let Some(text) = text_before_call {
            expected
                .push(json!({"role": "assistant", "content": [{"type": "text", "text": text}]}));
        }
        expected.extend([
            json!({"role": "assistant", "content": [{"type": "toolCall", "id": id, "name": "read",
                                                      "arguments": {"path": "notes.txt"}}]}),
            json!({"role": "toolResult", "toolCallId": id, "toolName": "read",
                   "content": [{"type": "text", "text": NOTE}], "isError": false}),
            json!({"role": "assistant", "content": [{"type": "text", "text": tool_reply(NOTE)}]}),
        ]);
        assert_eq!(shapes, expected, "{}", self.history);
        id
    }

    fn tools_offered(&self) -> &Value {
        &self.bodies[0]["tools"]
    }
}

fn tool_names(tools: &[Value], name_of: impl Fn(&Value) -> &Value) -> Vec<String> {
    tools
        .iter()
        .filter_map(|tool| name_of(tool).as_str().map(str::to_owned))
        .collect()
}

#[test]
fn openai_completions_tool_round_trip_and_the_next_turn_carries_it() {
    let trip = round_trip("mock");
    let id = trip.check(None);
    assert_eq!(id, "call_mock1", "the provider's call id is kept");
    let tools = trip.tools_offered().as_array().expect("tools");
    assert_eq!(
        tools[0],
        json!({"type": "function", "function": {"name": "read",
               "description": READ_DESCRIPTION, "parameters": read_schema()}})
    );
    assert_eq!(tool_names(tools, |t| &t["function"]["name"]), TOOL_NAMES);
    let sent = &trip.bodies[1]["messages"];
    assert_eq!(
        sent.as_array().map(|m| m[1..].to_vec()),
        Some(vec![
            json!({"role": "user", "content": QUESTION}),
            json!({"role": "assistant", "content": null, "tool_calls": [{"id": "call_mock1",
                   "type": "function", "function": {"name": "read",
                   "arguments": "{\"path\": \"notes.txt\"}"}}]}),
            json!({"role": "tool", "tool_call_id": "call_mock1", "content": NOTE}),
        ]),
        "{sent}"
    );

    // The next turn's context has the round, from the transcript.
    let (running, address, _) = crate::gateway::start_with(trip.dir.path(), &["--token", TOKEN]);
    let before = runtime().block_on(async {
        let mut socket = connected_with_tool_events(&address).await;
        let (answers, _) = request(
            &mut socket,
            "t2",
            "agent",
            json!({"message": "and again?", "idempotencyKey": "tools-next",
                   "model": "mock/tool-model", "sessionKey": trip.session}),
            2,
        )
        .await;
        assert_eq!(answers[1]["payload"]["status"], "ok", "{answers:?}");
        let (history, _) = request(
            &mut socket,
            "h2",
            "chat.history",
            json!({"sessionKey": trip.session}),
            1,
        )
        .await;
        history[0]["payload"].clone()
    });
    stop(running);
    let third = trip
        .server
        .requests()
        .last()
        .cloned()
        .expect("a third request");
    let roles: Vec<&str> = third["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["role"].as_str())
        .collect();
    assert_eq!(
        roles,
        ["system", "user", "assistant", "tool", "assistant", "user"],
        "{third}"
    );
    assert_eq!(third["messages"][2]["tool_calls"][0]["id"], "call_mock1");
    assert_eq!(third["messages"][3]["content"], NOTE);

    // With no provider running, the log alone gives the same transcript:
    // after a restart, in `clawback replay`, and in a full rebuild.
    drop(trip.server);
    let (running, address, _) = crate::gateway::start_with(trip.dir.path(), &["--token", TOKEN]);
    let after = runtime().block_on(async {
        let mut socket = connected_with_tool_events(&address).await;
        let (history, _) = request(
            &mut socket,
            "h3",
            "chat.history",
            json!({"sessionKey": trip.session}),
            1,
        )
        .await;
        history[0]["payload"].clone()
    });
    stop(running);
    assert_eq!(after["messages"], before["messages"]);
    assert_eq!(after["messages"].as_array().map(Vec::len), Some(6));
    let replay = stdout(&clawback(trip.dir.path(), &["replay", &trip.session]));
    assert!(replay.contains("read"), "{replay}");
    assert!(replay.contains(NOTE), "{replay}");
    let check = stdout(&clawback(
        trip.dir.path(),
        &["snapshot", "restore", "--check"],
    ));
    assert!(
        check.contains("check: a full rebuild from seq 0 gives the same state hash"),
        "{check}"
    );
    let audit = clawback(trip.dir.path(), &["audit", "verify"]);
    assert!(audit.status.success(), "{}", stdout(&audit));
}

#[test]
fn openai_responses_tool_round_trip() {
    let trip = round_trip("resp");
    let id = trip.check(None);
    assert_eq!(id, "call_resp1");
    let tools = trip.tools_offered().as_array().expect("tools");
    assert_eq!(
        tools[0],
        json!({"type": "function", "name": "read", "description": READ_DESCRIPTION,
               "parameters": read_schema(), "strict": false})
    );
    assert_eq!(tool_names(tools, |t| &t["name"]), TOOL_NAMES);
    assert_eq!(
        trip.bodies[1]["input"],
        json!([
            {"role": "user", "content": QUESTION},
            {"type": "function_call", "call_id": "call_resp1", "name": "read",
             "arguments": "{\"path\":\"notes.txt\"}"},
            {"type": "function_call_output", "call_id": "call_resp1", "output": NOTE},
        ])
    );
}

#[test]
fn anthropic_messages_tool_round_trip() {
    let trip = round_trip("claude");
    let id = trip.check(Some("Let me look."));
    assert_eq!(id, "toolu_mock1");
    let tools = trip.tools_offered().as_array().expect("tools");
    assert_eq!(
        tools[0],
        json!({"name": "read", "description": READ_DESCRIPTION, "input_schema": read_schema()})
    );
    assert_eq!(tool_names(tools, |t| &t["name"]), TOOL_NAMES);
    assert_eq!(
        trip.bodies[1]["messages"],
        json!([
            {"role": "user", "content": QUESTION},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "toolu_mock1", "name": "read",
                 "input": {"path": "notes.txt"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_mock1", "content": NOTE}]},
        ])
    );
}

/// With extended thinking on, the turn that called the tool goes back with
/// its thinking block first (the mock, like Anthropic, refuses it
/// otherwise).
#[test]
fn anthropic_thinking_survives_the_tool_round_trip() {
    let bodies = thinking_round_trip("claude", "tool-think");
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert_eq!(bodies[0]["thinking"]["type"], "enabled");
    assert_eq!(
        bodies[1]["messages"][1]["content"][0],
        json!({"type": "thinking", "thinking": "I should read the note.", "signature": "mock-sig"})
    );
}

#[test]
fn bedrock_tool_round_trip() {
    let trip = round_trip("bedrock");
    let id = trip.check(Some("Let me look."));
    assert_eq!(id, "tooluse_mock1");
    let tools = trip.bodies[0]["toolConfig"]["tools"]
        .as_array()
        .expect("tools");
    assert_eq!(
        tools[0],
        json!({"toolSpec": {"name": "read", "description": READ_DESCRIPTION,
                            "inputSchema": {"json": read_schema()}}})
    );
    assert_eq!(tool_names(tools, |t| &t["toolSpec"]["name"]), TOOL_NAMES);
    assert_eq!(
        trip.bodies[1]["messages"],
        json!([
            {"role": "user", "content": [{"text": QUESTION}]},
            {"role": "assistant", "content": [
                {"text": "Let me look."},
                {"toolUse": {"toolUseId": "tooluse_mock1", "name": "read",
                             "input": {"path": "notes.txt"}}}]},
            {"role": "user", "content": [
                {"toolResult": {"toolUseId": "tooluse_mock1", "content": [{"text": NOTE}],
                                "status": "success"}}]},
        ])
    );
    // Both calls were signed (the server recomputed each signature).
    let auths: Vec<Value> = trip
        .server
        .requests()
        .iter()
        .filter(|r| r["bedrock"] == "tool-model")
        .map(|r| r["auth"].clone())
        .collect();
    assert_eq!(auths, ["sigv4", "sigv4"]);
    for secret in [AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, "Signature="] {
        assert!(!trip.tail.contains(secret), "{secret} is in the log");
    }
}

#[test]
fn gemini_tool_round_trip() {
    let trip = round_trip("gem");
    let id = trip.check(None);
    assert!(
        id.starts_with("call_"),
        "Gemini gives no id: one of ours ({id})"
    );
    let mut read = read_schema();
    read.as_object_mut()
        .map(|o| o.remove("additionalProperties"));
    let tools = trip.tools_offered();
    assert_eq!(
        tools[0]["functionDeclarations"][0],
        json!({"name": "read", "description": READ_DESCRIPTION, "parameters": read})
    );
    assert_eq!(tools[0]["functionDeclarations"][3]["name"], "sessions_list");
    assert_eq!(
        trip.bodies[1]["contents"],
        json!([
            {"role": "user", "parts": [{"text": QUESTION}]},
            {"role": "model", "parts": [{"functionCall": {"name": "read",
                "args": {"path": "notes.txt"}}, "thoughtSignature": "c2lnLW1vY2s="}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "read",
                "response": {"result": NOTE}}}]},
        ])
    );
}

#[test]
fn ollama_tool_round_trip() {
    let trip = round_trip("local");
    let id = trip.check(None);
    assert!(
        id.starts_with("call_"),
        "Ollama gives no id: one of ours ({id})"
    );
    let tools = trip.tools_offered().as_array().expect("tools");
    assert_eq!(
        tools[0],
        json!({"type": "function", "function": {"name": "read",
               "description": READ_DESCRIPTION, "parameters": read_schema()}})
    );
    let sent = trip.bodies[1]["messages"].as_array().expect("messages");
    assert_eq!(
        sent[1..].to_vec(),
        vec![
            json!({"role": "user", "content": QUESTION}),
            json!({"role": "assistant", "content": "", "tool_calls": [{"function": {
                   "name": "read", "arguments": {"path": "notes.txt"}}}]}),
            json!({"role": "tool", "content": NOTE, "tool_name": "read"}),
        ]
    );
}

#[test]
fn a_client_without_the_tool_events_cap_gets_no_tool_phases() {
    let server = LlmServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), &server);
    std::fs::create_dir_all(dir.path().join("workspace")).expect("workspace");
    std::fs::write(dir.path().join("workspace/notes.txt"), NOTE).expect("note");
    let (running, address, _) = crate::gateway::start_with(dir.path(), &["--token", TOKEN]);
    runtime().block_on(async {
        let (mut socket, _) = crate::protocol::connected(&address, &["operator.write"]).await;
        let (answers, events) = request(
            &mut socket,
            "t1",
            "agent",
            json!({"message": "read ../config.json5", "idempotencyKey": "nocap",
                   "model": "mock/tool-model"}),
            2,
        )
        .await;
        assert_eq!(answers[1]["payload"]["status"], "ok", "{answers:?}");
        assert!(
            events
                .iter()
                .all(|e| !(e["event"] == "agent" && e["payload"]["stream"] == "tool")),
            "{events:?}"
        );
    });
    stop(running);
}

#[test]
fn a_model_that_never_stops_calling_tools_is_stopped_at_the_round_limit() {
    let server = LlmServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), &server);
    // No workspace: every read is a tool error the model reads, not a
    // failed run.
    let (running, address, _) = crate::gateway::start_with(dir.path(), &["--token", TOKEN]);
    runtime().block_on(async {
        let mut socket = connected_with_tool_events(&address).await;
        let (answers, events) = request(
            &mut socket,
            "t1",
            "agent",
            json!({"message": "loop", "idempotencyKey": "loop", "model": "mock/tool-loop"}),
            2,
        )
        .await;
        let payload = &answers[1]["payload"];
        assert_eq!(payload["status"], "error", "{payload}");
        assert!(
            payload["summary"]
                .as_str()
                .is_some_and(|s| s.contains("after 30 rounds")),
            "{payload}"
        );
        let results: Vec<&Value> = events
            .iter()
            .filter(|e| {
                e["payload"]["stream"] == "tool" && e["payload"]["data"]["phase"] == "result"
            })
            .collect();
        assert_eq!(results.len(), 30);
        assert_eq!(
            results[0]["payload"]["data"]["isError"], true,
            "{:?}",
            results[0]
        );
    });
    stop(running);
    // 30 rounds answered, then the 31st reply that still asks is refused.
    assert_eq!(server.requests().len(), 31);
    let audit = clawback(dir.path(), &["audit", "verify"]);
    assert!(audit.status.success(), "{}", stdout(&audit));
}

/// A reasoning model on the Responses API in a stateless tool loop: its
/// encrypted reasoning item goes back before the call it led to (OpenAI
/// refuses the call without it), and only when thinking asked for it.
#[test]
fn openai_responses_reasoning_items_go_back_with_their_calls() {
    let bodies = thinking_round_trip("resp", "tool-reason");
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert_eq!(bodies[0]["reasoning"], json!({"effort": "low"}));
    assert_eq!(bodies[0]["include"], json!(["reasoning.encrypted_content"]));
    assert_eq!(
        bodies[1]["input"],
        json!([
            {"role": "user", "content": QUESTION},
            {"id": "rs_1", "type": "reasoning", "summary": [],
             "encrypted_content": "gAAAA-mock-reasoning"},
            {"type": "function_call", "call_id": "call_resp1", "name": "read",
             "arguments": "{\"path\":\"notes.txt\"}"},
            {"type": "function_call_output", "call_id": "call_resp1", "output": NOTE},
        ])
    );
}

/// One tool round trip with thinking `low` on `provider/model`; the two
/// request bodies that model received.
fn thinking_round_trip(provider: &str, model: &str) -> Vec<Value> {
    let server = LlmServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), &server);
    std::fs::create_dir_all(dir.path().join("workspace")).expect("workspace");
    std::fs::write(dir.path().join("workspace/notes.txt"), format!("{NOTE}\n")).expect("note");
    let (running, address, _) = crate::gateway::start_with(dir.path(), &["--token", TOKEN]);
    runtime().block_on(async {
        let mut socket = connected_with_tool_events(&address).await;
        let (answers, _) = request(
            &mut socket,
            "t",
            "agent",
            json!({"message": QUESTION, "idempotencyKey": format!("think-{model}"),
                   "model": format!("{provider}/{model}"), "thinking": "low"}),
            2,
        )
        .await;
        let last = &answers[1]["payload"];
        assert_eq!(last["status"], "ok", "{last}");
        assert_eq!(last["result"]["payloads"][0]["text"], tool_reply(NOTE));
    });
    stop(running);
    server
        .requests()
        .into_iter()
        .filter(|body| body["model"] == model)
        .collect()
}
