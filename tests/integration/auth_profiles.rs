//! Auth profiles end to end: `clawback auth` keeps keys encrypted (the file
//! never holds a key in clear, nor does the log), and a run tries a
//! provider's credentials in order, moving to the next profile when one is
//! refused.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::json;

use crate::agent::request;
use crate::gateway::{start_with, stop};
use crate::llm_server::{API_KEY, LlmServer};
use crate::protocol::{TOKEN, connected, runtime};
use crate::support::{binary, clawback, stdout};

/// `clawback auth add ID` with the secret on stdin.
fn add_profile(dir: &std::path::Path, id: &str, secret: &str) {
    add(dir, &[id], secret);
}

/// `clawback auth add ARGS...` with the secret on stdin.
pub(crate) fn add(dir: &std::path::Path, args: &[&str], secret: &str) {
    let mut child = Command::new(binary())
        .arg("--state-dir")
        .arg(dir)
        .args(["auth", "add"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("clawback auth add");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(secret.as_bytes())
        .expect("secret written");
    let output = child.wait_with_output().expect("exit");
    assert!(output.status.success(), "{}", stdout(&output));
}

#[test]
fn runs_try_auth_profiles_in_order_and_keys_stay_encrypted() {
    let server = LlmServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    // The provider has no key in the config: the profiles supply it, the
    // revoked one first as auth.order says.
    std::fs::write(
        dir.path().join("config.json5"),
        format!(
            "{{ agents: {{ defaults: {{ model: {{ primary: 'mock/mock-model' }} }} }},\n  auth: {{ order: {{ mock: ['mock:revoked', 'mock:good'] }} }},\n  models: {{ providers: {{ mock: {{ baseUrl: '{}', api: 'openai-completions', models: [{{ id: 'mock-model' }}] }} }} }} }}\n",
            server.base_url()
        ),
    )
    .expect("config");
    add_profile(dir.path(), "mock:good", API_KEY);
    add_profile(dir.path(), "mock:revoked", "sk-revoked-0000");
    let listed = stdout(&clawback(dir.path(), &["auth", "list"]));
    assert!(listed.contains("mock:good  mock  api_key"), "{listed}");
    assert!(!listed.contains(API_KEY), "{listed}");
    let sealed = std::fs::read(dir.path().join("auth-profiles.enc")).expect("profile file");
    assert!(
        !String::from_utf8_lossy(&sealed).contains(API_KEY),
        "the profile file holds the key in clear"
    );

    let (running, address, _) = start_with(dir.path(), &["--token", TOKEN]);
    runtime().block_on(async {
        let (mut socket, _) = connected(&address, &["operator.write"]).await;
        let (answers, _) = request(
            &mut socket,
            "a",
            "agent",
            json!({"message": "hi", "idempotencyKey": "profiles-1"}),
            2,
        )
        .await;
        let last = &answers[1]["payload"];
        assert_eq!(last["status"], "ok", "the second profile answered: {last}");
        assert_eq!(
            last["result"]["payloads"][0]["text"],
            "Hello from the mock. You said: hi"
        );
    });
    stop(running);
    // Both attempts are in the log, the first classified; no key is.
    let export = stdout(&clawback(dir.path(), &["audit", "export"]));
    assert_eq!(export.matches("LlmCallRequested").count(), 2, "{export}");
    assert!(export.contains("\"class\":\"auth\""), "{export}");
    for secret in [API_KEY, "sk-revoked-0000"] {
        assert!(!export.contains(secret), "{secret} reached the log");
    }

    // OpenClaw's file imports; a removed profile is gone.
    let openclaw = dir.path().join("openclaw-auth-profiles.json");
    std::fs::write(
        &openclaw,
        r#"{"version":1,"profiles":{"anthropic:default":{"type":"api_key","provider":"anthropic","key":"sk-ant-1"}},"lastGood":{}}"#,
    )
    .expect("openclaw file");
    let imported = clawback(dir.path(), &["auth", "import", openclaw.to_str().unwrap()]);
    assert!(imported.status.success(), "{}", stdout(&imported));
    let removed = clawback(dir.path(), &["auth", "remove", "mock:revoked"]);
    assert!(removed.status.success());
    let listed = stdout(&clawback(dir.path(), &["auth", "list"]));
    assert!(
        listed.contains("anthropic:default  anthropic  api_key"),
        "{listed}"
    );
    assert!(!listed.contains("mock:revoked"), "{listed}");
    // Without its key the file does not open, and says what to do.
    std::fs::remove_file(dir.path().join("auth-profiles.key")).expect("key removed");
    let locked = clawback(dir.path(), &["auth", "list"]);
    assert_eq!(locked.status.code(), Some(2));
    let message = String::from_utf8_lossy(&locked.stderr);
    assert!(message.contains("CLAWBACK_AUTH_KEY"), "{message}");
}
