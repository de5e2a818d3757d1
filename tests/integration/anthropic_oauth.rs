//! Claude Pro/Max sign-ins end to end: an OAuth profile imported from
//! OpenClaw whose access token has expired is refreshed at the (local)
//! token endpoint before the call, once for concurrent runs, written back
//! to the encrypted store (so a restarted gateway uses the new token), and
//! put on record without any token; a refused refresh is an `auth` failure
//! that falls over to the next model.

use serde_json::{Value, json};

use crate::agent::request;
use crate::gateway::{start_with, stop};
use crate::llm_server::{API_KEY, LlmServer, OAUTH_REFRESH_TOKEN};
use crate::protocol::{TOKEN, connected, runtime};
use crate::support::{clawback, log_records, stdout};

const EXPIRED_ACCESS: &str = "sk-ant-oat01-expired-access";

/// A state dir with an Anthropic OAuth profile (expired, with
/// `refresh`) imported from OpenClaw's file, and a config whose primary
/// model is Anthropic's, refreshing at the mock's token endpoint, with an
/// OpenAI-compatible fallback.
fn signed_in(server: &LlmServer, refresh: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("config.json5"),
        format!(
            "{{ agents: {{ defaults: {{ model: {{ primary: 'anthropic/claude-mock', fallbacks: ['mock/mock-model'] }} }} }},\n  models: {{ providers: {{\n    anthropic: {{ baseUrl: '{}', api: 'anthropic-messages', params: {{ oauthTokenUrl: '{}' }}, models: [{{ id: 'claude-mock' }}] }},\n    mock: {{ baseUrl: '{}', apiKey: '{API_KEY}', models: [{{ id: 'mock-model' }}] }} }} }} }}\n",
            server.base_url(),
            server.oauth_token_url(),
            server.base_url()
        ),
    )
    .expect("config");
    let openclaw = dir.path().join("openclaw-auth-profiles.json");
    std::fs::write(
        &openclaw,
        json!({"version": 1, "profiles": {"anthropic:max": {"type": "oauth", "provider": "anthropic",
               "access": EXPIRED_ACCESS, "refresh": refresh, "expires": 1_700_000_000_000_i64}}})
        .to_string(),
    )
    .expect("openclaw file");
    let imported = clawback(dir.path(), &["auth", "import", openclaw.to_str().unwrap()]);
    assert!(imported.status.success(), "{}", stdout(&imported));
    dir
}

/// Runs one `agent` turn on `session` and returns its final payload.
async fn turn(address: &str, session: &str, message: &str) -> Value {
    let (mut socket, _) = connected(address, &["operator.write"]).await;
    let (answers, _) = request(
        &mut socket,
        session,
        "agent",
        json!({"sessionKey": session, "message": message, "idempotencyKey": format!("{session}-{message}")}),
        2,
    )
    .await;
    answers[1]["payload"].clone()
}

fn reply(payload: &Value) -> &str {
    payload["result"]["payloads"][0]["text"]
        .as_str()
        .unwrap_or("")
}

/// Every `auth.profile.refreshed` record's body.
fn refresh_records(records: &[Value]) -> Vec<Value> {
    records
        .iter()
        .filter(|record| record["kind"] == "auth.profile.refreshed")
        .cloned()
        .collect()
}

#[test]
fn an_expired_sign_in_is_refreshed_once_for_concurrent_runs_and_survives_a_restart() {
    let server = LlmServer::start();
    let dir = signed_in(&server, OAUTH_REFRESH_TOKEN);
    let (running, address, _) = start_with(dir.path(), &["--token", TOKEN]);
    let (first, second) = runtime().block_on(async {
        tokio::join!(
            turn(&address, "agent:main:one", "hi"),
            turn(&address, "agent:main:two", "hello")
        )
    });
    for (payload, said) in [(&first, "hi"), (&second, "hello")] {
        assert_eq!(payload["status"], "ok", "{payload}");
        assert_eq!(
            reply(payload),
            format!("Claude mock here. You said: {said}"),
            "{payload}"
        );
    }
    // One refresh for both runs; both sent the new token as a bearer.
    assert_eq!(server.oauth_refreshes(), [OAUTH_REFRESH_TOKEN]);
    let issued = server.oauth_issued();
    assert_eq!(issued, ["sk-ant-oat01-mock-1"]);
    assert_eq!(
        server.oauth_bearers(),
        [issued[0].clone(), issued[0].clone()]
    );
    // The identity block opens the recorded (and sent) system prompt.
    let sent = server.requests();
    assert_eq!(
        sent[0]["system"][0]["text"],
        "You are Claude Code, Anthropic's official CLI for Claude."
    );
    stop(running);

    // A restart reads the refreshed profile: no second refresh.
    let (running, address, _) = start_with(dir.path(), &["--token", TOKEN]);
    let third = runtime().block_on(turn(&address, "agent:main:one", "again"));
    assert_eq!(third["status"], "ok", "{third}");
    assert_eq!(server.oauth_refreshes().len(), 1);
    assert_eq!(server.oauth_bearers().len(), 3);
    stop(running);

    let records = log_records(dir.path(), 500);
    let refreshed = refresh_records(&records);
    assert_eq!(refreshed.len(), 1, "{refreshed:?}");
    let text = refreshed[0].to_string();
    assert!(
        text.contains("anthropic:max") && text.contains("Refreshed"),
        "{text}"
    );
    let all = serde_json::to_string(&records).expect("records");
    let export = stdout(&clawback(dir.path(), &["audit", "export"]));
    for secret in [
        EXPIRED_ACCESS,
        OAUTH_REFRESH_TOKEN,
        "sk-ant-oat01-mock",
        "sk-ant-ort01-mock",
    ] {
        assert!(!all.contains(secret), "{secret} reached the log");
        assert!(!export.contains(secret), "{secret} reached the export");
    }
    let listed = stdout(&clawback(dir.path(), &["auth", "list"]));
    assert!(
        listed.contains("anthropic:max  anthropic  oauth"),
        "{listed}"
    );
}

#[test]
fn a_refused_refresh_falls_over_to_the_next_model_and_is_recorded() {
    let server = LlmServer::start();
    let dir = signed_in(&server, "sk-ant-ort01-revoked");
    let (running, address, _) = start_with(dir.path(), &["--token", TOKEN]);
    let payload = runtime().block_on(turn(&address, "agent:main:main", "hi"));
    assert_eq!(payload["status"], "ok", "{payload}");
    assert_eq!(reply(&payload), "Hello from the mock. You said: hi");
    // A second run does not ask again with the refused token.
    let again = runtime().block_on(turn(&address, "agent:main:main", "more"));
    assert_eq!(again["status"], "ok", "{again}");
    stop(running);
    assert_eq!(server.oauth_refreshes(), ["sk-ant-ort01-revoked"]);
    assert!(server.oauth_bearers().is_empty());

    let records = log_records(dir.path(), 500);
    let refreshed = refresh_records(&records);
    assert_eq!(refreshed.len(), 1, "{refreshed:?}");
    let text = refreshed[0].to_string();
    assert!(
        text.contains("invalid_grant") && text.contains("400"),
        "{text}"
    );
    // The Anthropic attempt failed as `auth`, naming the profile and why.
    let failed: Vec<&Value> = records
        .iter()
        .filter(|record| {
            record["kind"] == "llm.call.completed" && record.to_string().contains("\"auth\"")
        })
        .collect();
    assert_eq!(failed.len(), 2, "{records:?}");
    assert!(
        failed[0]
            .to_string()
            .contains("auth profile anthropic:max could not be refreshed: invalid_grant"),
        "{}",
        failed[0]
    );
    let all = serde_json::to_string(&records).expect("records");
    assert!(
        !all.contains("sk-ant-ort01-revoked"),
        "the refresh token reached the log"
    );
    assert!(!all.contains(EXPIRED_ACCESS));
}
