//! The OpenAI-compatible HTTP surface against a real gateway on loopback:
//! `/v1/chat/completions` (plain and SSE, from reqwest, `curl -N` and
//! OpenAI's own Python client), `/v1/responses`, `/v1/models`, the auth
//! and validation answers, and `Idempotency-Key` retries that never run
//! the model twice, across a restart too.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::agent::write_config;
use crate::gateway::{Running, start_with, stop};
use crate::llm_server::LlmServer;
use crate::protocol::{TOKEN, runtime};
use crate::support::{install, log_records, printed};

const REPLY: &str = "Hello from the mock. You said: hi there";

/// A mock model server and a state dir whose config enables both
/// endpoints (unless `enabled` is false).
fn configured(enabled: bool) -> (LlmServer, tempfile::TempDir) {
    let server = LlmServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), &server);
    if enabled {
        let path = dir.path().join("config.json5");
        let text = std::fs::read_to_string(&path).expect("config");
        let text = text.replacen(
            "{ agents:",
            "{ gateway: { http: { endpoints: { chatCompletions: { enabled: true }, responses: { enabled: true } } } },\n  agents:",
            1,
        );
        std::fs::write(&path, text).expect("config");
    }
    (server, dir)
}

fn start(dir: &tempfile::TempDir) -> (Running, String) {
    let (running, address, _) = start_with(dir.path(), &["--token", TOKEN]);
    (running, address)
}

fn client() -> reqwest::Client {
    crate::support::http_client(std::time::Duration::from_secs(30))
}

async fn post(
    address: &str,
    path: &str,
    body: Value,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut request = client()
        .post(format!("http://{address}{path}"))
        .bearer_auth(TOKEN)
        .json(&body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.expect("body"))
}

fn chat_body(stream: bool) -> Value {
    json!({"model": "openclaw", "stream": stream,
           "messages": [{"role": "system", "content": "Be brief."},
                        {"role": "user", "content": "hi there"}]})
}

/// The `data:` payloads of an SSE body, in order.
fn data_lines(body: &str) -> Vec<String> {
    assert!(
        body.ends_with("\n\n"),
        "SSE events end with a blank line: {body:?}"
    );
    body.split("\n\n")
        .filter(|event| !event.is_empty())
        .map(|event| {
            event
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data line: {event:?}"))
                .to_owned()
        })
        .collect()
}

/// Checks a Chat Completions stream's shape and returns its text.
fn check_chat_stream(body: &str, include_usage: bool, several: bool) -> String {
    let lines = data_lines(body);
    assert_eq!(lines.last().map(String::as_str), Some("[DONE]"), "{body}");
    let chunks: Vec<Value> = lines[..lines.len() - 1]
        .iter()
        .map(|line| serde_json::from_str(line).expect("chunk is JSON"))
        .collect();
    let id = chunks[0]["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("chatcmpl_"), "{id}");
    for chunk in &chunks {
        assert_eq!(chunk["id"], id.as_str());
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["model"], "openclaw");
        assert!(chunk["created"].is_i64());
    }
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant"})
    );
    assert_eq!(chunks[0]["choices"][0]["finish_reason"], Value::Null);
    let usage_chunks = usize::from(include_usage);
    let finish = &chunks[chunks.len() - 1 - usage_chunks];
    assert_eq!(finish["choices"][0]["delta"], json!({}));
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    if include_usage {
        let usage = &chunks[chunks.len() - 1];
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(usage["usage"]["prompt_tokens"], 12);
        assert_eq!(usage["usage"]["completion_tokens"], 9);
        assert_eq!(usage["usage"]["total_tokens"], 21);
    }
    let content = &chunks[1..chunks.len() - 1 - usage_chunks];
    assert!(
        !several || content.len() > 1,
        "the reply streams in several chunks: {body}"
    );
    content
        .iter()
        .map(|chunk| {
            chunk["choices"][0]["delta"]["content"]
                .as_str()
                .expect("content delta")
        })
        .collect()
}

#[test]
fn off_by_default_then_token_gated_and_validated() {
    let (_server, dir) = configured(false);
    let (running, address) = start(&dir);
    runtime().block_on(async {
        let (status, _, _) = post(&address, "/v1/chat/completions", chat_body(false), &[]).await;
        assert_eq!(status, 404, "disabled endpoints are not there");
    });
    stop(running);

    let (_server, dir) = configured(true);
    let (running, address) = start(&dir);
    runtime().block_on(async {
        let url = format!("http://{address}/v1/chat/completions");
        let response = client().post(&url).json(&chat_body(false)).send().await.expect("send");
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.expect("json");
        assert_eq!(body, json!({"error": {"message": "Unauthorized", "type": "unauthorized"}}));
        let response = client().post(&url).bearer_auth("wrong").json(&chat_body(false)).send().await.expect("send");
        assert_eq!(response.status(), 401);
        let response = client().get(&url).bearer_auth(TOKEN).send().await.expect("send");
        assert_eq!(response.status(), 405);
        assert_eq!(response.headers()["allow"], "POST");

        let models: Value = client()
            .get(format!("http://{address}/v1/models"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("models")
            .json()
            .await
            .expect("json");
        let ids: Vec<&str> = models["data"].as_array().expect("data").iter().filter_map(|model| model["id"].as_str()).collect();
        assert_eq!(ids, ["openclaw", "openclaw/default", "openclaw/main"]);
        assert_eq!(models["data"][0], json!({"id": "openclaw", "object": "model", "created": 0, "owned_by": "openclaw", "permission": []}));
        let one = client().get(format!("http://{address}/v1/models/openclaw%2Fmain")).bearer_auth(TOKEN).send().await.expect("one");
        assert_eq!(one.status(), 200);
        let missing = client().get(format!("http://{address}/v1/models/openclaw%2Fnobody")).bearer_auth(TOKEN).send().await.expect("missing");
        assert_eq!(missing.status(), 404);

        let refusals = [
            (json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}), "Invalid `model`"),
            (json!({"model": "openclaw"}), "messages"),
            (json!({"model": "openclaw/ghost", "messages": [{"role": "user", "content": "x"}]}), "Unknown agent 'ghost'"),
            (json!({"messages": [{"role": "system", "content": "only system"}]}), "Missing user message"),
            (json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}]}]}), "image_url"),
            (json!({"messages": [{"role": "user", "content": "x"}], "temperature": 3}), "`temperature` must be between 0 and 2."),
            (json!({"messages": [{"role": "user", "content": "x"}], "stop": ["a", "b", "c", "d", "e"]}), "at most 4"),
            (json!({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "f"}}]}), "client function tools"),
        ];
        for (body, expected) in refusals {
            let (status, _, text) = post(&address, "/v1/chat/completions", body.clone(), &[]).await;
            assert_eq!(status, 400, "{body}: {text}");
            let error: Value = serde_json::from_str(&text).expect("json error");
            assert_eq!(error["error"]["type"], "invalid_request_error", "{text}");
            let message = error["error"]["message"].as_str().expect("message");
            assert!(message.contains(expected), "{body}: {message}");
        }
let other_agent = [("x-openclaw-session-key", "agent:ghost:main")];
        let body = json!({"model": "openclaw/main", "messages": [{"role": "user", "content": "x"}]});
        let (status, _, text) = post(&address, "/v1/chat/completions", body, &other_agent).await;
        assert_eq!(status, 400, "{text}");
        assert!(text.contains("belongs to agent 'ghost'"), "{text}");
                let response = client().post(&url).bearer_auth(TOKEN).header("content-type", "application/json").body("{not json").send().await.expect("send");
        assert_eq!(response.status(), 400);
        let (status, _, text) = post(&address, "/v1/chat/completions", chat_body(false), &[("idempotency-key", "")]).await;
        assert_eq!(status, 400, "{text}");
    });
    stop(running);
}

#[test]
fn chat_completions_answer_and_stream_and_are_runs_in_the_log() {
    let (server, dir) = configured(true);
    let (running, address) = start(&dir);
    runtime().block_on(async {
        let (status, headers, text) = post(&address, "/v1/chat/completions", chat_body(false), &[]).await;
        assert_eq!(status, 200, "{text}");
        assert_eq!(headers["content-type"], "application/json; charset=utf-8");
        let answer: Value = serde_json::from_str(&text).expect("json");
        assert!(answer["id"].as_str().is_some_and(|id| id.starts_with("chatcmpl_")));
        assert_eq!(answer["object"], "chat.completion");
        assert_eq!(answer["model"], "openclaw");
        assert_eq!(answer["choices"], json!([{"index": 0, "message": {"role": "assistant", "content": REPLY}, "finish_reason": "stop"}]));
        assert_eq!(answer["usage"], json!({"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21}));

        // The OpenAI `user` field keeps a conversation in one session.
        for _ in 0..2 {
            let mut body = chat_body(false);
            body["user"] = json!("ada");
            let (status, _, text) = post(&address, "/v1/chat/completions", body, &[]).await;
            assert_eq!(status, 200, "{text}");
        }

        // A bare session name is the agent's.
        let named = [("x-openclaw-session-key", "research")];
        let (status, _, text) = post(&address, "/v1/chat/completions", chat_body(false), &named).await;
        assert_eq!(status, 200, "{text}");

        let mut body = chat_body(true);
        body["stream_options"] = json!({"include_usage": true});
        body["temperature"] = json!(0.2);
        body["max_tokens"] = json!(64);
        body["stop"] = json!("END");
        body["seed"] = json!(7);
        let slow = [("x-openclaw-model", "mock/slow-model")];
        let (status, headers, text) = post(&address, "/v1/chat/completions", body, &slow).await;
        assert_eq!(status, 200);
        assert_eq!(headers["content-type"], "text/event-stream; charset=utf-8");
        assert_eq!(headers["cache-control"], "no-cache");
        assert!(headers.get("x-clawback-ignored").is_none(), "Chat Completions carries them all");
        assert_eq!(check_chat_stream(&text, true, true), REPLY);
        // The sampling settings reached the model in its format's words.
        let sent = server.requests();
        let slow_call = sent.iter().rev().find(|body| body["model"] == "slow-model").expect("a call");
        assert_eq!(
            (&slow_call["temperature"], &slow_call["max_completion_tokens"], &slow_call["stop"], &slow_call["seed"]),
            (&json!(0.2), &json!(64), &json!(["END"]), &json!(7))
        );
        // A model whose format has no place for some: named back.
        let mut body = chat_body(false);
        body["seed"] = json!(7);
        body["temperature"] = json!(0.5);
        let responses_model = [("x-openclaw-model", "resp/resp-mock")];
        let (status, headers, text) = post(&address, "/v1/chat/completions", body, &responses_model).await;
        assert_eq!(status, 200, "{text}");
        assert_eq!(headers["x-clawback-ignored"], "seed");
    });

    // curl -N, as the issue and OpenClaw's docs show it.
    let output = Command::new("curl")
        .args([
            "-sS",
            "-N",
            &format!("http://{address}/v1/chat/completions"),
            "-H",
            &format!("Authorization: Bearer {TOKEN}"),
            "-H",
            "Content-Type: application/json",
            "-H",
            "x-openclaw-model: mock/slow-model",
            "-d",
            &chat_body(true).to_string(),
        ])
        .output()
        .expect("curl runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        check_chat_stream(&String::from_utf8_lossy(&output.stdout), false, true),
        REPLY
    );

    // The system message reached the model as part of the system prompt.
    let sent = server.requests();
    let last = sent
        .iter()
        .rev()
        .find(|body| body["messages"].is_array())
        .expect("a model request");
    let system = last["messages"][0]["content"]
        .as_str()
        .expect("system prompt");
    assert!(system.contains("Be brief."), "{system}");
    stop(running);

    let records = log_records(dir.path(), 300);
    let started: Vec<&Value> = records
        .iter()
        .filter(|record| record["kind"] == "agent.run.started")
        .collect();
    assert_eq!(started.len(), 7, "one run per request");
    let key_of = |run: &Value| {
        run["event"]["AgentRunStarted"]["session_key"]
            .as_str()
            .map(str::to_owned)
    };
    assert_eq!(
        key_of(started[1]).as_deref(),
        Some("agent:main:openai-user:ada")
    );
    assert_eq!(
        key_of(started[2]),
        key_of(started[1]),
        "same user, same session"
    );
    assert_eq!(key_of(started[3]).as_deref(), Some("agent:main:research"));
    for run in [started[0], started[4], started[5], started[6]] {
        assert_eq!(
            run["event"]["AgentRunStarted"]["trigger"], "openai-chat",
            "{run}"
        );
        let key = run["event"]["AgentRunStarted"]["session_key"]
            .as_str()
            .expect("key");
        assert!(
            key.starts_with("agent:main:openai:"),
            "a session per request: {key}"
        );
        assert_eq!(
            run["actor"],
            json!({"Http": {"endpoint": "chat.completions"}}),
            "{run}"
        );
    }
    let check = crate::support::stdout(&crate::support::clawback(
        dir.path(),
        &["snapshot", "restore", "--check"],
    ));
    assert!(
        check.contains("check: a full rebuild from seq 0 gives the same state hash"),
        "{check}"
    );
}

#[test]
fn idempotency_key_answers_once_even_across_a_restart() {
    let (server, dir) = configured(true);
    let (running, address) = start(&dir);
    let key = [("idempotency-key", "order-42")];
    let first = runtime().block_on(async {
        let (status, _, first) =
            post(&address, "/v1/chat/completions", chat_body(false), &key).await;
        assert_eq!(status, 200, "{first}");
        let (status, _, again) =
            post(&address, "/v1/chat/completions", chat_body(false), &key).await;
        assert_eq!(status, 200);
        assert_eq!(again, first, "a retry gets the recorded answer");
        // Same key, other body: a client bug, refused.
        let mut other = chat_body(false);
        other["messages"][1]["content"] = json!("something else");
        let (status, _, text) = post(&address, "/v1/chat/completions", other, &key).await;
        assert_eq!(status, 409, "{text}");
        assert!(text.contains("different request body"), "{text}");
        // Concurrent requests with one key (a slow model): one run.
        let slow =
            json!({"model": "openclaw", "messages": [{"role": "user", "content": "slowly"}]});
        let slow_key = [("idempotency-key", "slow-1")];
        let (a, b) = tokio::join!(
            post(&address, "/v1/chat/completions", slow.clone(), &slow_key),
            post(&address, "/v1/chat/completions", slow.clone(), &slow_key),
        );
        assert_eq!((a.0, b.0), (200, 200));
        let (a, b): (Value, Value) = (
            serde_json::from_str(&a.2).expect("a"),
            serde_json::from_str(&b.2).expect("b"),
        );
        assert_eq!(a["id"], b["id"], "both get the one run's answer");
        // A streamed request retried replays the recorded answer as SSE.
        let stream_key = [("idempotency-key", "stream-7")];
        let (_, _, streamed) = post(
            &address,
            "/v1/chat/completions",
            chat_body(true),
            &stream_key,
        )
        .await;
        let (_, _, replayed) = post(
            &address,
            "/v1/chat/completions",
            chat_body(true),
            &stream_key,
        )
        .await;
        assert_eq!(check_chat_stream(&streamed, false, false), REPLY);
        assert_eq!(check_chat_stream(&replayed, false, false), REPLY);
        let id = |body: &str| -> Value {
            serde_json::from_str::<Value>(&data_lines(body)[0]).expect("chunk")["id"].clone()
        };
        assert_eq!(id(&streamed), id(&replayed));
        first
    });
    let calls_before_restart = server.requests().len();
    assert_eq!(calls_before_restart, 3, "three keys, three model calls");
    stop(running);

    let (running, address) = start(&dir);
    runtime().block_on(async {
        let (status, _, after) =
            post(&address, "/v1/chat/completions", chat_body(false), &key).await;
        assert_eq!(status, 200);
        assert_eq!(after, first, "the recorded answer survives a restart");
    });
    assert_eq!(
        server.requests().len(),
        calls_before_restart,
        "no model call for a retry"
    );
    stop(running);
    let kinds: Vec<String> = log_records(dir.path(), 400)
        .iter()
        .filter_map(|record| record["kind"].as_str().map(str::to_owned))
        .filter(|kind| kind.starts_with("http."))
        .collect();
    assert_eq!(
        kinds,
        ["http.request.accepted", "http.request.answered"].repeat(3)
    );
}

#[test]
fn responses_answer_and_stream_named_events() {
    let (_server, dir) = configured(true);
    let (running, address) = start(&dir);
    runtime().block_on(async {
        let body = json!({"model": "openclaw", "input": "hi there", "instructions": "Be brief."});
        let (status, _, text) = post(&address, "/v1/responses", body.clone(), &[]).await;
        assert_eq!(status, 200, "{text}");
        let answer: Value = serde_json::from_str(&text).expect("json");
        let id = answer["id"].as_str().expect("id").to_owned();
        assert!(id.starts_with("resp_"));
        assert_eq!(answer["object"], "response");
        assert_eq!(answer["status"], "completed");
        assert_eq!(answer["output"][0]["type"], "message");
        assert_eq!(
            answer["output"][0]["content"],
            json!([{"type": "output_text", "text": REPLY}])
        );
        assert_eq!(answer["output"][0]["phase"], "final_answer");
        assert_eq!(answer["usage"]["input_tokens"], 12);
        assert_eq!(answer["usage"]["output_tokens"], 9);
        assert_eq!(answer["usage"]["total_tokens"], 21);

        let mut streamed = body.clone();
        streamed["stream"] = json!(true);
        streamed["previous_response_id"] = json!(id);
        let (status, headers, text) = post(&address, "/v1/responses", streamed, &[]).await;
        assert_eq!(status, 200);
        assert_eq!(headers["content-type"], "text/event-stream; charset=utf-8");
        let events: Vec<&str> = text
            .split("\n\n")
            .filter(|event| !event.is_empty())
            .collect();
        assert_eq!(events.last(), Some(&"data: [DONE]"));
        let mut names = Vec::new();
        let mut deltas = String::new();
        for event in &events[..events.len() - 1] {
            let (name, data) = event.split_once('\n').expect("event and data lines");
            let name = name.strip_prefix("event: ").expect("event line");
            let data: Value = serde_json::from_str(data.strip_prefix("data: ").expect("data line"))
                .expect("json");
            assert_eq!(data["type"], name);
            if name == "response.output_text.delta" {
                deltas.push_str(data["delta"].as_str().expect("delta"));
            } else {
                names.push(name.to_owned());
            }
            if name == "response.completed" {
                assert_eq!(data["response"]["output"][0]["content"][0]["text"], REPLY);
            }
        }
        assert_eq!(
            names,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed"
            ]
        );
        assert_eq!(deltas, REPLY);
        let (status, _, text) = post(
            &address,
            "/v1/responses",
            json!({"input": "x", "previous_response_id": "resp_unknown"}),
            &[],
        )
        .await;
        assert_eq!(status, 400, "{text}");
    });
    stop(running);
    // previous_response_id kept the first response's session.
    let keys: Vec<String> = log_records(dir.path(), 200)
        .into_iter()
        .filter(|record| record["kind"] == "agent.run.started")
        .filter_map(|record| {
            record["event"]["AgentRunStarted"]["session_key"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0], keys[1]);
    assert!(keys[0].starts_with("agent:main:openresponses:"), "{keys:?}");
}

/// OpenAI's Python client (PyPI `openai`), installed into the target dir
/// by tests/openai/install.sh on first use.
fn python() -> &'static PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let text = install(
            "tests/openai/install.sh",
            "openai-py",
            "python3 with venv and PyPI",
        );
        printed(&text, "PYTHON=")
    })
}

const PYTHON_CLIENT: &str = r#"
import json, sys
from openai import OpenAI
client = OpenAI(base_url=sys.argv[1], api_key=sys.argv[2])
answer = client.chat.completions.create(model="openclaw", messages=[{"role": "user", "content": "hi there"}])
pieces = []
for chunk in client.chat.completions.create(model="openclaw/main", messages=[{"role": "user", "content": "hi there"}], stream=True, stream_options={"include_usage": True}, extra_headers={"x-openclaw-model": "mock/slow-model"}):
    if chunk.choices and chunk.choices[0].delta.content:
        pieces.append(chunk.choices[0].delta.content)
    if chunk.usage:
        usage = chunk.usage.total_tokens
models = [model.id for model in client.models.list()]
response = client.responses.create(model="openclaw", input="hi there")
print(json.dumps({"answer": answer.choices[0].message.content, "id": answer.id,
                  "streamed": "".join(pieces), "chunks": len(pieces), "usage": usage,
                  "models": models, "response": response.output_text}))
"#;

#[test]
fn openai_python_client_talks_to_the_gateway() {
    let python = python();
    let (_server, dir) = configured(true);
    let (running, address) = start(&dir);
    let output = Command::new(python)
        .args(["-c", PYTHON_CLIENT, &format!("http://{address}/v1"), TOKEN])
        .output()
        .expect("python runs");
    stop(running);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_slice(&output.stdout).expect("json line");
    assert_eq!(result["answer"], REPLY);
    assert!(
        result["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("chatcmpl_"))
    );
    assert_eq!(result["streamed"], REPLY);
    assert!(
        result["chunks"].as_u64().is_some_and(|chunks| chunks > 1),
        "{result}"
    );
    assert_eq!(result["usage"], 21);
    assert_eq!(
        result["models"],
        json!(["openclaw", "openclaw/default", "openclaw/main"])
    );
    assert_eq!(result["response"], REPLY);
}

#[test]
fn a_client_that_leaves_an_unkeyed_stream_aborts_its_run() {
    let (_server, dir) = configured(true);
    let (running, address) = start(&dir);
    runtime().block_on(async {
        let mut response = client()
            .post(format!("http://{address}/v1/chat/completions"))
            .bearer_auth(TOKEN)
            .header("x-openclaw-model", "mock/slow-model")
            .json(&chat_body(true))
            .send()
            .await
            .expect("send");
        let first = response
            .chunk()
            .await
            .expect("chunk")
            .expect("a first chunk");
        assert!(String::from_utf8_lossy(&first).contains("\"role\":\"assistant\""));
        drop(response);
        // The slow model needs about two seconds; the abort lands first.
        tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    });
    stop(running);
    let finished: Vec<Value> = log_records(dir.path(), 100)
        .into_iter()
        .filter(|record| record["kind"] == "agent.run.finished")
        .collect();
    assert_eq!(finished.len(), 1, "{finished:?}");
    assert_eq!(
        finished[0]["event"]["AgentRunFinished"]["status"]["Aborted"]["reason"],
        "the HTTP client disconnected",
        "{}",
        finished[0]
    );
}

#[test]
fn failed_runs_answer_with_the_failure_class() {
    let (_server, dir) = configured(true);
    let (running, address) = start(&dir);
    runtime().block_on(async {
        let limited = [("x-openclaw-model", "mock/fail-429")];
        let (status, _, text) =
            post(&address, "/v1/chat/completions", chat_body(false), &limited).await;
        assert_eq!(status, 429, "{text}");
        let error: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(error["error"]["type"], "rate_limit_error", "{text}");
        assert!(
            error["error"]["message"]
                .as_str()
                .is_some_and(|message| !message.is_empty())
        );

        let (status, _, text) =
            post(&address, "/v1/chat/completions", chat_body(true), &limited).await;
        assert_eq!(status, 200, "a stream has started before the run fails");
        let lines = data_lines(&text);
        assert_eq!(lines.last().map(String::as_str), Some("[DONE]"));
        let error: Value = serde_json::from_str(&lines[lines.len() - 2]).expect("error chunk");
        assert_eq!(error["error"]["type"], "rate_limit_error", "{text}");

        let (status, _, text) =
            post(&address, "/v1/responses", json!({"input": "hi"}), &limited).await;
        assert_eq!(status, 429, "{text}");
        let failed: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(failed["status"], "failed");
        assert_eq!(failed["error"]["code"], "rate_limit_error");

        let unknown = [("x-openclaw-model", "nowhere/none")];
        let (status, _, text) =
            post(&address, "/v1/chat/completions", chat_body(false), &unknown).await;
        assert_eq!(status, 400, "{text}");
        assert!(text.contains("x-openclaw-model"), "{text}");
    });
    stop(running);
}
