//! GitHub Copilot over the real protocol: a GitHub token from an auth
//! profile is exchanged at the (local) token endpoint, the Copilot token
//! is cached across runs and exchanged again when it nears expiry or the
//! endpoint refuses it, a refused GitHub token is a clear `auth` failure, and neither token
//! reaches the log.

use serde_json::json;

use crate::agent::request;
use crate::gateway::{start_with, stop};
use crate::llm_server::{COPILOT_TOKEN_PREFIX, GITHUB_TOKEN, GITHUB_TOKEN_SHORT, LlmServer};
use crate::protocol::{TOKEN, connected, runtime};
use crate::support::{clawback, stdout};

const BAD_TOKEN: &str = "ghu_revokedToken0000000000";

/// `clawback auth add ID --type token` with the token on stdin.
fn add_token(dir: &std::path::Path, id: &str, secret: &str) {
    crate::auth_profiles::add(dir, &[id, "--type", "token"], secret);
}

#[test]
fn copilot_exchanges_the_github_token_once_caches_it_and_keeps_both_out_of_the_log() {
    let server = LlmServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("config.json5"),
        format!(
            "{{ agents: {{ defaults: {{ model: {{ primary: 'github-copilot/mock-model@github-copilot:github' }} }} }},\n  models: {{ providers: {{ 'github-copilot': {{ baseUrl: 'http://{0}/copilot',\n    params: {{ tokenUrl: 'http://{0}/copilot_internal/v2/token' }}, models: [{{ id: 'mock-model' }}] }} }} }} }}\n",
            server.address
        ),
    )
    .expect("config");
    add_token(dir.path(), "github-copilot:github", GITHUB_TOKEN);
    add_token(dir.path(), "github-copilot:short", GITHUB_TOKEN_SHORT);
    add_token(dir.path(), "github-copilot:bad", BAD_TOKEN);
    let (running, address, _) = start_with(dir.path(), &["--token", TOKEN]);
    runtime().block_on(async {
        let (mut socket, _) = connected(&address, &["operator.write"]).await;
        let mut run = async |id: &str, message: &str, model: Option<&str>| {
            let mut params = json!({"message": message, "idempotencyKey": id,
                                    "sessionKey": "agent:main:copilot"});
            if let Some(model) = model {
                params["model"] = json!(model);
            }
            let (answers, _) = request(&mut socket, id, "agent", params, 2).await;
            answers[1]["payload"].clone()
        };
        // Two runs, one exchange.
        for (id, message) in [("cp-1", "first"), ("cp-2", "second")] {
            let last = run(id, message, None).await;
            assert_eq!(last["status"], "ok", "{last}");
            assert_eq!(
                last["result"]["payloads"][0]["text"],
                format!("Hello from the mock. You said: {message}")
            );
            assert_eq!(
                last["result"]["meta"]["agentMeta"]["provider"],
                "github-copilot"
            );
        }
        assert_eq!(server.exchanges(), [GITHUB_TOKEN]);
        assert_eq!(server.requests().len(), 2);

        // A Copilot token the endpoint refuses is dropped: the next run
        // exchanges again.
        let refused = run(
            "cp-r",
            "x",
            Some("github-copilot/fail-401@github-copilot:github"),
        )
        .await;
        assert_eq!(refused["error"]["kind"], "auth", "{refused}");
        assert_eq!(server.exchanges(), [GITHUB_TOKEN]);
        let after = run("cp-r2", "back", None).await;
        assert_eq!(after["status"], "ok", "{after}");
        assert_eq!(server.exchanges(), [GITHUB_TOKEN, GITHUB_TOKEN]);

        // A token within five minutes of expiry is exchanged again.
        let short = Some("github-copilot/mock-model@github-copilot:short");
        for id in ["cp-3", "cp-4"] {
            let last = run(id, "again", short).await;
            assert_eq!(last["status"], "ok", "{last}");
        }
        assert_eq!(
            server.exchanges(),
            [
                GITHUB_TOKEN,
                GITHUB_TOKEN,
                GITHUB_TOKEN_SHORT,
                GITHUB_TOKEN_SHORT
            ]
        );

        // A refused GitHub token: an auth failure that says what to do,
        // and no completion request.
        let last = run(
            "cp-5",
            "denied",
            Some("github-copilot/mock-model@github-copilot:bad"),
        )
        .await;
        assert_eq!(last["status"], "error", "{last}");
        assert_eq!(last["error"]["kind"], "auth", "{last}");
        let summary = last["summary"].as_str().unwrap_or("");
        assert!(summary.contains("HTTP 401"), "{summary}");
        assert!(summary.contains("COPILOT_GITHUB_TOKEN"), "{summary}");
        assert!(summary.contains("clawback auth add"), "{summary}");
        assert_eq!(server.requests().len(), 6);
    });
    stop(running);
    let export = stdout(&clawback(dir.path(), &["audit", "export"]));
    assert!(export.contains("\"class\":\"auth\""), "{export}");
    for secret in [
        GITHUB_TOKEN,
        GITHUB_TOKEN_SHORT,
        BAD_TOKEN,
        COPILOT_TOKEN_PREFIX,
    ] {
        assert!(!export.contains(secret), "{secret} reached the log");
    }
    assert_eq!(server.issued().len(), 4);
}

#[test]
fn copilot_without_a_github_token_says_how_to_give_one() {
    let server = LlmServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("config.json5"),
        format!(
            "{{ agents: {{ defaults: {{ model: {{ primary: 'github-copilot/mock-model' }} }} }},\n  models: {{ providers: {{ 'github-copilot': {{ params: {{ tokenUrl: 'http://{}/copilot_internal/v2/token' }}, models: [{{ id: 'mock-model' }}] }} }} }} }}\n",
            server.address
        ),
    )
    .expect("config");
    let (running, address, _) = start_with(dir.path(), &["--token", TOKEN]);
    runtime().block_on(async {
        let (mut socket, _) = connected(&address, &["operator.write"]).await;
        let (answers, _) = request(
            &mut socket,
            "nt",
            "agent",
            json!({"message": "hi", "idempotencyKey": "cp-none"}),
            2,
        )
        .await;
        let last = &answers[1]["payload"];
        assert_eq!(last["status"], "error", "{last}");
        let summary = last["summary"].as_str().unwrap_or("");
        assert!(summary.contains("COPILOT_GITHUB_TOKEN"), "{summary}");
    });
    stop(running);
    assert!(server.exchanges().is_empty());
}
