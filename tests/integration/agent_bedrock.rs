//! Amazon Bedrock (`bedrock-converse-stream`) over the real protocol,
//! against the local server's ConverseStream endpoint, which recomputes
//! each request's SigV4 signature from the test key pair and answers in
//! binary event-stream frames: a streamed reply with the exact body
//! recorded and no secret in the log, a throttling exception falling back
//! to another provider, a Bedrock API key, and AWS keys from a profile
//! file, then a wrong secret refused as `auth`.

use serde_json::{Value, json};

use crate::agent::request;
use crate::gateway::{start_with_aws, stop};
use crate::llm_server::{
    API_KEY, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, BEDROCK_API_KEY,
    LlmServer, aws_env,
};
use crate::protocol::{TOKEN, connected, runtime};
use crate::support::{clawback, stdout};

const CLAUDE: &str = "anthropic.claude-mock-v1:0";

/// A config with Bedrock signed (`bedrock`), Bedrock with an API key
/// (`bedrock-key`), and the OpenAI-style mock to fall back to.
fn write_config(dir: &std::path::Path, server: &LlmServer, region: Option<&str>) {
    let region = region.map_or_else(String::new, |region| format!("region: '{region}', "));
    std::fs::write(
        dir.join("config.json5"),
        format!(
            "{{ agents: {{ defaults: {{ model: {{ primary: 'bedrock/throttled', fallbacks: ['mock/mock-model'] }} }} }},\n  models: {{ providers: {{\n    mock: {{ baseUrl: '{}', apiKey: '{API_KEY}', models: [{{ id: 'mock-model' }}] }},\n    bedrock: {{ baseUrl: 'http://{}', api: 'bedrock-converse-stream', {region}models: [{{ id: '{CLAUDE}', maxTokens: 512 }}, {{ id: 'throttled' }}, {{ id: 'anthropic.claude-tool-v1:0', reasoning: true }}] }},\n    'bedrock-key': {{ baseUrl: 'http://{}', api: 'bedrock-converse-stream', apiKey: '{BEDROCK_API_KEY}', models: [{{ id: '{CLAUDE}' }}] }} }} }} }}\n",
            server.base_url(),
            server.address,
            server.address,
        ),
    )
    .expect("config");
}

fn kinds(tail: &str) -> Vec<String> {
    tail.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|record| record["kind"].as_str().map(str::to_owned))
        .filter(|kind| {
            kind.starts_with("llm.") || kind.starts_with("model.") || kind.starts_with("agent.run")
        })
        .collect()
}

#[test]
fn bedrock_streams_signed_falls_back_when_throttled_and_keeps_secrets_out_of_the_log() {
    let server = LlmServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), &server, Some("us-east-1"));
    let (running, address, _) = start_with_aws(dir.path(), &["--token", TOKEN], &aws_env());
    let session = "agent:main:bedrock";
    let history = runtime().block_on(async {
        let (mut socket, _) = connected(&address, &["operator.write", "operator.read"]).await;
        let (answers, events) = request(
            &mut socket,
            "b1",
            "agent",
            json!({"message": "bonjour", "idempotencyKey": "bedrock-1",
                   "model": format!("bedrock/{CLAUDE}"), "sessionKey": session}),
            2,
        )
        .await;
        let last = &answers[1]["payload"];
        assert_eq!(last["status"], "ok", "{last}");
        assert_eq!(
            last["result"]["payloads"][0]["text"],
            "Bedrock mock here. You said: bonjour"
        );
        assert_eq!(last["result"]["meta"]["agentMeta"]["usage"]["input"], 19);
        assert_eq!(last["result"]["meta"]["agentMeta"]["usage"]["output"], 8);
        let streamed: Vec<&str> = events
            .iter()
            .filter(|e| e["event"] == "chat" && e["payload"]["state"] == "delta")
            .filter_map(|e| e["payload"]["deltaText"].as_str())
            .collect();
        assert_eq!(streamed.concat(), "Bedrock mock here. You said: bonjour");
        assert!(streamed.len() > 1, "the reply streams in pieces");
        let (history, _) = request(
            &mut socket,
            "h1",
            "chat.history",
            json!({"sessionKey": session}),
            1,
        )
        .await;

        // The default chain: Bedrock throttles in the stream, the mock
        // answers, and the throttled credential cools down.
        let (answers, events) = request(
            &mut socket,
            "b2",
            "agent",
            json!({"message": "again", "idempotencyKey": "bedrock-2",
                   "sessionKey": "agent:main:fallback"}),
            2,
        )
        .await;
        let last = &answers[1]["payload"];
        assert_eq!(last["status"], "ok", "{last}");
        assert_eq!(last["result"]["meta"]["agentMeta"]["provider"], "mock");
        let step = events
            .iter()
            .find(|e| e["event"] == "agent" && e["payload"]["data"]["phase"] == "fallback_step")
            .expect("a fallback step is announced");
        assert_eq!(
            step["payload"]["data"]["fallbackStepFromModel"],
            "bedrock/throttled"
        );
        assert_eq!(
            step["payload"]["data"]["fallbackStepFromFailureReason"],
            "rate_limit"
        );

        // A Bedrock API key goes as a bearer token, unsigned.
        let (answers, _) = request(
            &mut socket,
            "b3",
            "agent",
            json!({"message": "key", "idempotencyKey": "bedrock-3",
                   "model": format!("bedrock-key/{CLAUDE}"), "sessionKey": "agent:main:key"}),
            2,
        )
        .await;
        assert_eq!(answers[1]["payload"]["status"], "ok", "{answers:?}");
        history[0]["payload"].clone()
    });
    stop(running);

    let bedrock: Vec<Value> = server
        .requests()
        .into_iter()
        .filter(|r| r["bedrock"].is_string())
        .collect();
    let auths: Vec<&str> = bedrock.iter().filter_map(|r| r["auth"].as_str()).collect();
    assert_eq!(auths, ["sigv4", "sigv4", "bearer"]);
    // The model id's `:` travels encoded in the path.
    assert_eq!(
        bedrock[0]["path"],
        "/model/anthropic.claude-mock-v1%3A0/converse-stream"
    );
    let sent = &bedrock[0]["body"];
    assert!(
        sent["system"][0]["text"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{sent}"
    );
    let mut without_system = sent.clone();
    let object = without_system.as_object_mut().expect("object");
    object.remove("system");
    // The registry's tools are offered in Bedrock's shape.
    let tools = object.remove("toolConfig").expect("toolConfig");
    assert_eq!(tools["tools"][0]["toolSpec"]["name"], "read", "{tools}");
    assert!(tools["tools"][0]["toolSpec"]["inputSchema"]["json"].is_object());
    assert_eq!(
        without_system,
        json!({"messages": [{"role": "user", "content": [{"text": "bonjour"}]}],
               "inferenceConfig": {"maxTokens": 512}})
    );

    let messages: Vec<Value> = history["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| json!({"role": m["role"], "content": m["content"]}))
        .collect();
    assert_eq!(
        messages,
        [
            json!({"role": "user", "content": [{"type": "text", "text": "bonjour"}]}),
            json!({"role": "assistant", "content": [{"type": "text",
                   "text": "Bedrock mock here. You said: bonjour"}]}),
        ]
    );

    let tail = stdout(&clawback(
        dir.path(),
        &["log", "tail", "-n", "200", "--json"],
    ));
    assert_eq!(
        kinds(&tail),
        [
            "agent.run.started",
            "llm.call.requested",
            "llm.call.completed",
            "agent.run.finished",
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
    // The recorded request is the body sent, byte for byte.
    let requested: Vec<Value> = tail
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|record| record["kind"] == "llm.call.requested")
        .collect();
    let recorded = requested[0].to_string();
    assert!(recorded.contains(&serde_json::to_string(&sent.to_string()).expect("json")));
    // Frames are recorded as event type and payload, exceptions included.
    assert!(tail.contains("contentBlockDelta: {"), "{tail}");
    assert!(tail.contains("throttlingException"), "{tail}");
    for secret in [
        AWS_SECRET_ACCESS_KEY,
        AWS_SESSION_TOKEN,
        BEDROCK_API_KEY,
        "Signature=",
        "AWS4-HMAC-SHA256",
    ] {
        assert!(!tail.contains(secret), "{secret} is in the log");
    }
}

#[test]
fn aws_keys_come_from_a_profile_file_and_a_wrong_secret_is_an_auth_failure() {
    let server = LlmServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    // No region in the provider: the profile's, from the config file.
    write_config(dir.path(), &server, None);
    let credentials = dir.path().join("aws-credentials");
    let config = dir.path().join("aws-config");
    let profile = |secret: &str| {
        format!(
            "[default]\naws_access_key_id = AKIDOTHER\naws_secret_access_key = other\n\n\
             # the one in use\n[work]\naws_access_key_id = {AWS_ACCESS_KEY_ID}\n\
             aws_secret_access_key = {secret}\naws_session_token = {AWS_SESSION_TOKEN}\n"
        )
    };
    std::fs::write(&credentials, profile(AWS_SECRET_ACCESS_KEY)).expect("credentials");
    std::fs::write(&config, "[profile work]\nregion = us-east-1\n").expect("config");
    let (running, address, _) = start_with_aws(
        dir.path(),
        &["--token", TOKEN],
        &[
            ("AWS_PROFILE", "work"),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                credentials.to_str().expect("path"),
            ),
            ("AWS_CONFIG_FILE", config.to_str().expect("path")),
        ],
    );
    runtime().block_on(async {
        let (mut socket, _) = connected(&address, &["operator.write"]).await;
        let run = |id: &str| {
            json!({"message": "hi", "idempotencyKey": id,
                   "model": format!("bedrock/{CLAUDE}"), "sessionKey": format!("agent:main:{id}")})
        };
        let (answers, _) = request(&mut socket, "p1", "agent", run("p1"), 2).await;
        assert_eq!(answers[1]["payload"]["status"], "ok", "{answers:?}");

        // The chain is read per run: the file now holds a wrong secret.
        std::fs::write(&credentials, profile("not-the-secret")).expect("credentials");
        let (answers, events) = request(&mut socket, "p2", "agent", run("p2"), 2).await;
        // Refused as `auth`: the chain moves on to the configured fallback.
        let payload = &answers[1]["payload"];
        assert_eq!(payload["result"]["meta"]["agentMeta"]["provider"], "mock");
        let step = events
            .iter()
            .find(|e| e["event"] == "agent" && e["payload"]["data"]["phase"] == "fallback_step")
            .expect("a fallback step is announced");
        assert_eq!(
            step["payload"]["data"]["fallbackStepFromFailureReason"], "auth",
            "{step}"
        );
    });
    stop(running);
    let tail = stdout(&clawback(
        dir.path(),
        &["log", "tail", "-n", "100", "--json"],
    ));
    assert!(
        tail.contains("HTTP 403: InvalidSignatureException: The request signature we calculated"),
        "{tail}"
    );
    // AWS echoes the canonical request, session token included: scrubbed.
    assert!(tail.contains("x-amz-security-token:<redacted>"), "{tail}");
    for secret in ["not-the-secret", AWS_SESSION_TOKEN, AWS_ACCESS_KEY_ID] {
        assert!(!tail.contains(secret), "{secret} is in the log");
    }
    let auths: Vec<Value> = server
        .requests()
        .iter()
        .map(|r| r["auth"].clone())
        .collect();
    assert_eq!(auths[..2], ["sigv4", "refused"]);
}

#[test]
fn without_aws_credentials_the_error_says_what_to_set() {
    let server = LlmServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), &server, Some("us-east-1"));
    let (running, address, _) = start_with_aws(dir.path(), &["--token", TOKEN], &[]);
    runtime().block_on(async {
        let (mut socket, _) = connected(&address, &["operator.write"]).await;
        let (answers, _) = request(
            &mut socket,
            "n1",
            "agent",
            json!({"message": "hi", "idempotencyKey": "n1",
                   "model": format!("bedrock/{CLAUDE}"), "sessionKey": "agent:main:n1"}),
            2,
        )
        .await;
        let text = answers
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        assert!(text.contains("AWS_ACCESS_KEY_ID"), "{text}");
        assert!(text.contains("IMDS"), "{text}");
    });
    stop(running);
    assert!(server.requests().is_empty(), "nothing was sent unsigned");
}

#[test]
fn a_thinking_claude_gets_its_reasoning_back_with_the_tool_result() {
    let server = LlmServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), &server, Some("us-east-1"));
    std::fs::create_dir_all(dir.path().join("workspace")).expect("workspace");
    std::fs::write(dir.path().join("workspace/notes.txt"), "low tide\n").expect("note");
    let (running, address, _) = start_with_aws(dir.path(), &["--token", TOKEN], &aws_env());
    runtime().block_on(async {
        let (mut socket, _) = connected(&address, &["operator.write"]).await;
        let (answers, events) = request(
            &mut socket,
            "r1",
            "agent",
            json!({"message": "read notes.txt", "idempotencyKey": "r1", "thinking": "low",
                   "model": "bedrock/anthropic.claude-tool-v1:0", "sessionKey": "agent:main:r1"}),
            2,
        )
        .await;
        let last = &answers[1]["payload"];
        assert_eq!(last["status"], "ok", "{last}");
        assert_eq!(
            last["result"]["payloads"][0]["text"],
            crate::llm_server::tool_reply("low tide"),
            "{last}"
        );
        // Reasoning is not reply text.
        let streamed: String = events
            .iter()
            .filter(|e| e["event"] == "chat" && e["payload"]["state"] == "delta")
            .filter_map(|e| e["payload"]["deltaText"].as_str())
            .collect();
        assert!(!streamed.contains("I should read"), "{streamed}");
    });
    stop(running);
    let bodies: Vec<Value> = server
        .requests()
        .into_iter()
        .filter(|r| r["bedrock"] == "anthropic.claude-tool-v1:0")
        .map(|r| r["body"].clone())
        .collect();
    assert_eq!(bodies.len(), 2);
    for body in &bodies {
        assert_eq!(
            body["additionalModelRequestFields"],
            json!({"thinking": {"type": "enabled", "budget_tokens": 2048},
                   "anthropic_beta": ["interleaved-thinking-2025-05-14"]})
        );
        assert_eq!(body["inferenceConfig"]["maxTokens"], 2048 + 4096);
    }
    assert_eq!(
        bodies[1]["messages"][1],
        json!({"role": "assistant", "content": [
            {"reasoningContent": {"reasoningText": {"text": "I should read the file.",
                                                    "signature": "sig-mock-1"}}},
            {"text": "Let me look."},
            {"toolUse": {"toolUseId": "tooluse_mock1", "name": "read",
                         "input": {"path": "notes.txt"}}}]})
    );
}
