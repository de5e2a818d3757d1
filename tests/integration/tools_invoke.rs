//! OpenClaw's `POST /tools/invoke` over real HTTP on loopback: bearer
//! gateway token, deny list and `gateway.tools`, argument errors,
//! idempotency across a restart, the calls in the audit log, and the tools
//! that act through the gateway's own methods (`sessions_send`, `cron`).

use serde_json::{Value, json};

use crate::gateway::{start_with, stop};
use crate::http_hooks::{client, exported, json_of, post, verify, write_config};
use crate::llm_server::LlmServer;
use crate::protocol::{TOKEN, call, connected, runtime};
use crate::support::{clawback, stdout};

#[test]
fn tools_invoke_runs_allowed_tools_denies_the_rest_replays_keys_and_is_audited() {
    let server = LlmServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), &server, "");
    std::fs::write(dir.path().join("ws/notes.txt"), "first version").expect("file");
    let (running, address, _) = start_with(dir.path(), &["--token", TOKEN]);
    let url = format!("http://{address}/tools/invoke");
    let bearer = format!("Bearer {TOKEN}");
    let auth = [("authorization", bearer.as_str())];
    runtime().block_on(async {
        let client = client();
        let invoke = |body: Value| post(&client, &url, &auth, body.to_string());

        // Auth: none, wrong, then the gateway token.
        let (status, _, body) = post(&client, &url, &[], "{}".to_owned()).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(json_of(&body)["error"]["type"], "unauthorized");
        let wrong = [("authorization", "Bearer nope")];
        assert_eq!(post(&client, &url, &wrong, "{}".to_owned()).await.0, 401);

        let (status, _, body) = invoke(json!({"tool": "read", "args": {"path": "notes.txt"}})).await;
        assert_eq!(status, 200, "{body}");
        let body = json_of(&body);
        assert_eq!(body["ok"], true);
        assert_eq!(
            body["result"]["content"][0],
            json!({"type": "text", "text": "first version"})
        );

        let (status, _, body) = invoke(json!({"name": "sessions_list", "args": {}})).await;
        assert_eq!(status, 200, "{body}");
        let details = &json_of(&body)["result"]["details"];
        assert!(
            details["sessions"]
                .as_array()
                .is_some_and(|rows| rows.iter().any(|row| row["key"] == "agent:main:main")),
            "the invocation's own session is listed: {details}"
        );

        // The deny list, and tools that do not exist, are both 404.
        for tool in ["exec", "sessions_send", "gateway", "nope"] {
            let (status, _, body) = invoke(json!({"tool": tool})).await;
            assert_eq!(status, 404, "{tool}: {body}");
            assert_eq!(
                json_of(&body),
                json!({"ok": false, "error": {"type": "not_found",
                       "message": format!("Tool not available: {tool}")}})
            );
        }

        // Argument and request errors, in OpenClaw's shapes.
        let (status, _, body) = invoke(json!({"tool": "read", "args": {}})).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(
            json_of(&body)["error"],
            json!({"type": "tool_error",
                   "message": "invalid arguments for read: at /: must have required property 'path'"})
        );
        let (status, _, body) = invoke(json!({"args": {}})).await;
        assert_eq!(status, 400);
        assert_eq!(
            json_of(&body)["error"],
            json!({"type": "invalid_request", "message": "tools.invoke requires name"})
        );
        let (status, _, body) = post(&client, &url, &auth, "{not json".to_owned()).await;
        assert_eq!(status, 400);
        assert_eq!(json_of(&body)["error"]["type"], "invalid_request_error");
        let big = format!(
            "{{\"tool\":\"read\",\"args\":{{\"path\":\"{}\"}}}}",
            "a".repeat(2 * 1024 * 1024)
        );
        let (status, _, body) = post(&client, &url, &auth, big).await;
        assert_eq!(status, 413, "{body}");
        let get = client.get(&url).header("authorization", &bearer).send().await;
        assert_eq!(get.expect("answer").status().as_u16(), 405);

        // A repeated idempotency key answers what was recorded.
        let keyed = json!({"tool": "read", "args": {"path": "notes.txt"}, "idempotencyKey": "k-1"});
        let (status, _, first) = invoke(keyed.clone()).await;
        assert_eq!(status, 200, "{first}");
        std::fs::write(dir.path().join("ws/notes.txt"), "second version").expect("file");
        let (status, _, again) = invoke(keyed.clone()).await;
        assert_eq!((status, json_of(&again)), (200, json_of(&first)));
        let other_tool = json!({"tool": "sessions_list", "idempotencyKey": "k-1"});
        assert_eq!(invoke(other_tool).await.0, 409, "a key names one call");

        // Wrong secrets share the WebSocket connect limit (10 a minute per
        // address; two were spent above); the right one still passes.
        for attempt in 2..10 {
            let (status, _, _) = post(&client, &url, &wrong, "{}".to_owned()).await;
            assert_eq!(status, 401, "attempt {attempt}");
        }
        let (status, headers, body) = post(&client, &url, &wrong, "{}".to_owned()).await;
        assert_eq!(status, 429, "{body}");
        assert_eq!(json_of(&body)["error"]["type"], "rate_limited");
        assert!(headers.contains_key("retry-after"));
        let listed = json!({"tool": "sessions_list"});
        assert_eq!(invoke(listed).await.0, 200);
    });
    stop(running);

    // After a restart the key still answers from the log; the file is not
    // read again.
    let (running, address, _) = start_with(dir.path(), &["--token", TOKEN]);
    let url = format!("http://{address}/tools/invoke");
    runtime().block_on(async {
        let keyed = json!({"tool": "read", "args": {"path": "notes.txt"}, "idempotencyKey": "k-1"});
        let (status, _, body) = post(&client(), &url, &auth, keyed.to_string()).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            json_of(&body)["result"]["content"][0]["text"],
            "first version"
        );
    });
    stop(running);

    // The log holds every call, denied ones too, as coming over HTTP, and
    // none of them is a transcript entry of the session.
    let records = exported(dir.path());
    let http_actor = json!({"Http": {"endpoint": "/tools/invoke"}});
    let requested: Vec<&Value> = records
        .iter()
        .filter(|record| record["kind"] == "tool.call.requested")
        .collect();
    assert!(requested.iter().all(|record| record["actor"] == http_actor));
    let tools: Vec<&str> = requested
        .iter()
        .filter_map(|record| record["event"]["ToolCallRequested"]["tool"].as_str())
        .collect();
    for tool in [
        "read",
        "sessions_list",
        "exec",
        "sessions_send",
        "gateway",
        "nope",
    ] {
        assert!(tools.contains(&tool), "{tool} recorded: {tools:?}");
    }
    let denied = records.iter().any(|record| {
        record["kind"] == "tool.call.finished"
            && record["event"]["ToolCallFinished"]["tool_call_id"]
                .as_str()
                .is_some()
            && record["event"]["ToolCallFinished"]["outcome"]["Denied"]["reason"]
                == "Tool not available: exec"
    });
    assert!(denied, "the refused exec is in the audit trail");
    let keyed_runs = records
        .iter()
        .filter(|record| {
            record["kind"] == "agent.run.started"
                && record["event"]["AgentRunStarted"]["run_id"] == "tools.invoke:k-1"
        })
        .count();
    assert_eq!(keyed_runs, 1, "the keyed call ran once");
    assert!(
        !records
            .iter()
            .any(|record| record.to_string().contains(TOKEN)),
        "the gateway token is never recorded"
    );
    let history = clawback(dir.path(), &["replay", "agent:main:main"]);
    assert!(history.status.success(), "{}", stdout(&history));
    verify(dir.path());

    // gateway.tools: deny adds to the list, allow takes a default off it.
    write_config(
        dir.path(),
        &server,
        "gateway: { tools: { deny: ['read'], allow: ['sessions_send'] } }",
    );
    let (running, address, _) = start_with(dir.path(), &["--token", TOKEN]);
    let url = format!("http://{address}/tools/invoke");
    runtime().block_on(async {
        let body = json!({"tool": "read", "args": {"path": "notes.txt"}}).to_string();
        assert_eq!(post(&client(), &url, &auth, body).await.0, 404);
        let body = json!({"tool": "sessions_list"}).to_string();
        assert_eq!(post(&client(), &url, &auth, body).await.0, 200);
        // A change of gateway.tools applies at once, and says so.
        let (mut socket, _) = connected(&address, &["operator.admin"]).await;
        let got = call(&mut socket, "g", "config.get", Some(json!({}))).await;
        let hash = got["payload"]["hash"].as_str().expect("hash").to_owned();
        let patch = json!({"gateway": {"tools": {"deny": []}}}).to_string();
        let patched = call(
            &mut socket,
            "p",
            "config.patch",
            Some(json!({"raw": patch, "baseHash": hash})),
        )
        .await;
        assert_eq!(
            patched["payload"]["restart"]["required"], false,
            "{patched}"
        );
        let body = json!({"tool": "read", "args": {"path": "notes.txt"}}).to_string();
        assert_eq!(post(&client(), &url, &auth, body).await.0, 200);
    });
    stop(running);
}

#[test]
fn without_gateway_auth_on_loopback_tools_invoke_needs_no_bearer() {
    let server = LlmServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), &server, "");
    let (running, address, _) = start_with(dir.path(), &[]);
    runtime().block_on(async {
        let url = format!("http://{address}/tools/invoke");
        let body = json!({"tool": "sessions_list"}).to_string();
        let (status, _, text) = post(&client(), &url, &[], body).await;
        assert_eq!(status, 200, "{text}");
    });
    stop(running);
}

/// `sessions_send` and `cron` act through the gateway's methods: taken off
/// the deny list, they run a turn in another session and manage jobs, and
/// the log records each method call as made by the tool's run.
#[test]
fn sessions_send_and_cron_tools_act_through_the_gateway_methods() {
    let server = LlmServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(
        dir.path(),
        &server,
        "gateway: { tools: { allow: ['sessions_send', 'cron'] } }",
    );
    let (running, address, _) = start_with(dir.path(), &["--token", TOKEN]);
    let url = format!("http://{address}/tools/invoke");
    let bearer = format!("Bearer {TOKEN}");
    let auth = [("authorization", bearer.as_str())];
    runtime().block_on(async {
        let client = client();
        let invoke = |body: Value| post(&client, &url, &auth, body.to_string());
        let (status, _, body) = invoke(json!({"tool": "sessions_send", "sessionKey": "agent:main:main",
            "args": {"sessionKey": "research", "message": "hello there"}}))
        .await;
        assert_eq!(status, 200, "{body}");
        let sent = &json_of(&body)["result"]["details"];
        assert_eq!(sent["status"], "ok", "{body}");
        assert_eq!(sent["sessionKey"], "agent:main:research");
        assert_eq!(sent["reply"], "Hello from the mock. You said: hello there");
        // Not to itself, not to another agent's session.
        for (target, expected) in [("main", "answer here instead"), ("agent:other:main", "this agent's sessions only")] {
            let (status, _, body) = invoke(json!({"tool": "sessions_send", "sessionKey": "agent:main:main",
                "args": {"sessionKey": target, "message": "x"}}))
            .await;
            assert_eq!(status, 400, "{body}");
            assert!(body.contains(expected), "{body}");
        }

        let job = json!({"name": "daily-check", "schedule": {"kind": "every", "everyMs": 3_600_000},
            "sessionTarget": "isolated", "wakeMode": "now", "payload": {"kind": "agentTurn", "message": "check"},
            "delivery": {"mode": "none"}});
        let (status, _, body) = invoke(json!({"tool": "cron", "args": {"action": "add", "job": job}})).await;
        assert_eq!(status, 200, "{body}");
        let added = &json_of(&body)["result"]["details"];
        assert_eq!(added["agentId"], "main", "the calling agent owns the job: {added}");
        let id = added["id"].as_str().expect("job id").to_owned();
        let (_, _, body) = invoke(json!({"tool": "cron", "args": {"action": "list"}})).await;
        assert!(body.contains("daily-check"), "{body}");
        let (status, _, body) = invoke(json!({"tool": "cron", "args": {"action": "remove", "id": id}})).await;
        assert_eq!(status, 200, "{body}");
        // A job the gateway cannot run is refused by the method, with why.
        let (status, _, body) = invoke(json!({"tool": "cron", "args": {"action": "add",
            "job": {"name": "bad", "schedule": {"kind": "every", "everyMs": 1000}}}}))
        .await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("invalid cron.add params"), "{body}");
    });
    stop(running);
    let records = exported(dir.path());
    let tool_calls: Vec<(&str, &str)> = records
        .iter()
        .filter(|record| record["kind"] == "rpc.received")
        .filter_map(|record| {
            let received = &record["event"]["RpcReceived"];
            let conn = received["conn_id"].as_str()?;
            conn.starts_with("tool:")
                .then(|| (conn, received["method"].as_str().unwrap_or("")))
        })
        .collect();
    let methods: Vec<&str> = tool_calls.iter().map(|(_, method)| *method).collect();
    assert_eq!(
        methods,
        ["agent", "cron.add", "cron.list", "cron.remove", "cron.add"],
        "{tool_calls:?}"
    );
    verify(dir.path());
}
