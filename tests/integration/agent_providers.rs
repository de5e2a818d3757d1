//! Provider wire formats and failover, over the real protocol against
//! local servers speaking each provider's documented stream: Anthropic
//! Messages, Ollama's native chat, Gemini, OpenAI Responses, thinking
//! levels, and a rate-limited model falling back while its provider cools
//! down.

use serde_json::{Value, json};

use crate::agent::request;
use crate::gateway::stop;
use crate::llm_server::{API_KEY, LlmServer};
use crate::protocol::{TOKEN, connected, runtime};
use crate::support::{clawback, stdout};

#[test]
fn anthropic_messages_stream_and_their_errors_are_classified() {
    let (server, _dir, running, address) = crate::agent::mock_gateway();
    runtime().block_on(async {
        let (mut socket, _) = connected(&address, &["operator.write"]).await;
        let (answers, events) = request(
            &mut socket,
            "c1",
            "agent",
            json!({"message": "bonjour", "idempotencyKey": "claude-1",
                   "model": "claude/claude-mock", "sessionKey": "agent:main:claude"}),
            2,
        )
        .await;
        let last = &answers[1]["payload"];
        assert_eq!(last["status"], "ok", "{last}");
        assert_eq!(
            last["result"]["payloads"][0]["text"],
            "Claude mock here. You said: bonjour"
        );
        assert_eq!(last["result"]["meta"]["agentMeta"]["usage"]["input"], 25);
        assert_eq!(last["result"]["meta"]["agentMeta"]["usage"]["output"], 11);
        let streamed: String = events
            .iter()
            .filter(|e| e["event"] == "chat" && e["payload"]["state"] == "delta")
            .filter_map(|e| e["payload"]["deltaText"].as_str())
            .collect();
        assert_eq!(streamed, "Claude mock here. You said: bonjour");
        let sent = server.requests().last().cloned().expect("a request");
        assert_eq!(sent["max_tokens"], 1024);
        assert!(
            sent["system"].as_str().is_some_and(|s| !s.is_empty()),
            "{sent}"
        );
        assert_eq!(
            sent["messages"],
            json!([{"role": "user", "content": "bonjour"}])
        );

        let (limited, _) = request(
            &mut socket,
            "c2",
            "agent",
            json!({"message": "again", "idempotencyKey": "claude-2",
                   "model": "claude/claude-429", "sessionKey": "agent:main:claude"}),
            2,
        )
        .await;
        let payload = &limited[1]["payload"];
        assert_eq!(payload["error"]["kind"], "rate_limit", "{payload}");
        assert!(
            payload["summary"]
                .as_str()
                .is_some_and(|s| s.contains("rate_limit_error"))
        );
    });
    stop(running);
}

#[test]
fn a_rate_limited_model_falls_back_and_its_provider_cools_down() {
    let server = LlmServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("config.json5"),
        format!(
            "{{ agents: {{ defaults: {{ model: {{ primary: 'claude/claude-429', fallbacks: ['mock/mock-model'] }} }} }},\n  models: {{ providers: {{\n    mock: {{ baseUrl: '{}', apiKey: '{API_KEY}', models: [{{ id: 'mock-model' }}] }},\n    claude: {{ baseUrl: 'http://{}', apiKey: '{API_KEY}', api: 'anthropic-messages', models: [{{ id: 'claude-429' }}] }} }} }} }}\n",
            server.base_url(),
            server.address
        ),
    )
    .expect("config");
    let (running, address, _) = crate::gateway::start_with(dir.path(), &["--token", TOKEN]);
    runtime().block_on(async {
        let (mut socket, _) = connected(&address, &["operator.write"]).await;
        let (answers, events) = request(
            &mut socket,
            "f1",
            "agent",
            json!({"message": "first", "idempotencyKey": "fb-1"}),
            2,
        )
        .await;
        let last = &answers[1]["payload"];
        assert_eq!(last["status"], "ok", "{last}");
        assert_eq!(
            last["result"]["payloads"][0]["text"],
            "Hello from the mock. You said: first"
        );
        assert_eq!(last["result"]["meta"]["agentMeta"]["provider"], "mock");
        let step = events
            .iter()
            .find(|e| e["event"] == "agent" && e["payload"]["data"]["phase"] == "fallback_step")
            .expect("a fallback step is announced");
        assert_eq!(
            step["payload"]["data"]["fallbackStepFromModel"],
            "claude/claude-429"
        );
        assert_eq!(
            step["payload"]["data"]["fallbackStepFromFailureReason"],
            "rate_limit"
        );
        assert_eq!(server.requests().len(), 2, "one try each");

        // The limited provider is skipped while it cools down.
        let (again, _) = request(
            &mut socket,
            "f2",
            "agent",
            json!({"message": "second", "idempotencyKey": "fb-2"}),
            2,
        )
        .await;
        assert_eq!(again[1]["payload"]["status"], "ok");
        let models: Vec<String> = server
            .requests()
            .iter()
            .filter_map(|r| r["model"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(models, ["claude-429", "mock-model", "mock-model"]);
    });
    stop(running);
    let tail = stdout(&clawback(
        dir.path(),
        &["log", "tail", "-n", "100", "--json"],
    ));
    let kinds: Vec<String> = tail
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|record| record["kind"].as_str().map(str::to_owned))
        .filter(|kind| {
            kind.starts_with("llm.") || kind.starts_with("model.") || kind.starts_with("agent.run")
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "agent.run.started",
            "llm.call.requested",
            "llm.call.completed",
            "model.cooldown",
            "llm.call.requested",
            "llm.call.completed",
            "agent.run.finished",
            "agent.run.started",
            "llm.call.requested",
            "llm.call.completed",
            "agent.run.finished",
        ],
        "{tail}"
    );
    assert!(
        tail.contains("\"attempt\":2"),
        "the fallback is attempt 2: {tail}"
    );
}

#[test]
fn ollama_gemini_and_responses_stream_in_their_own_formats() {
    let (server, _dir, running, address) = crate::agent::mock_gateway();
    runtime().block_on(async {
        let (mut socket, _) = connected(&address, &["operator.write"]).await;
        let run = |id: &str, model: &str, message: &str| {
            json!({"message": message, "idempotencyKey": id, "model": model,
                   "sessionKey": format!("agent:main:{id}")})
        };
        let (llama, _) = request(
            &mut socket,
            "o1",
            "agent",
            run("o1", "local/llama-mock", "ciao"),
            2,
        )
        .await;
        let payload = &llama[1]["payload"];
        assert_eq!(
            payload["result"]["payloads"][0]["text"], "Llama mock here. You said: ciao",
            "{payload}"
        );
        assert_eq!(payload["result"]["meta"]["agentMeta"]["usage"]["input"], 31);
        let (missing, _) = request(
            &mut socket,
            "o2",
            "agent",
            run("o2", "local/missing", "x"),
            2,
        )
        .await;
        assert!(
            missing[1]["payload"]["summary"]
                .as_str()
                .is_some_and(|s| s.contains("model 'missing' not found")),
            "{missing:?}"
        );

        let (gemini, _) = request(
            &mut socket,
            "g1",
            "agent",
            run("g1", "gem/gemini-mock", "hola"),
            2,
        )
        .await;
        let payload = &gemini[1]["payload"];
        assert_eq!(
            payload["result"]["payloads"][0]["text"], "Gemini mock here. You said: hola",
            "{payload}"
        );
        assert_eq!(payload["result"]["meta"]["agentMeta"]["usage"]["output"], 6);
        let sent = server
            .requests()
            .into_iter()
            .find(|r| r["action"] == "gemini-mock:streamGenerateContent")
            .expect("gemini request");
        assert!(
            sent["body"]["systemInstruction"]["parts"][0]["text"].is_string(),
            "{sent}"
        );
        assert_eq!(sent["body"]["contents"][0]["role"], "user");
        let (limited, _) = request(
            &mut socket,
            "g2",
            "agent",
            run("g2", "gem/gemini-429", "x"),
            2,
        )
        .await;
        assert_eq!(
            limited[1]["payload"]["error"]["kind"], "rate_limit",
            "{limited:?}"
        );
    });
    stop(running);
}
