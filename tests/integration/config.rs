//! The config methods over the real protocol: a JSON5 file with comments
//! and secrets, read redacted, patched and set with optimistic concurrency,
//! recorded in the log without its secrets, and refused at start when
//! invalid, with the path named.

use serde_json::{Value, json};

use crate::gateway::{start_with, stop};
use crate::protocol::{TOKEN, call, connected, next_json, runtime};
use crate::support::{binary, clawback, stdout};

const PROVIDER_KEY: &str = "sk-provider-secret-77";

fn write_config(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("config.json5");
    let text = format!(
        "// clawback test config\n{{\n  gateway: {{ mode: 'local', auth: {{ mode: 'token', token: '{TOKEN}' }} }},\n  agents: {{ defaults: {{ model: {{ primary: 'mock/mock-model' }}, maxConcurrent: 8 }} }},\n  models: {{ mode: 'merge', providers: {{ mock: {{\n    baseUrl: 'http://127.0.0.1:18900/v1', apiKey: '{PROVIDER_KEY}', api: 'openai-completions',\n    models: [{{ id: 'mock-model', name: 'Mock', contextWindow: 120000, maxTokens: 8192 }}],\n  }} }} }},\n  channels: {{ telegram: {{ enabled: false }} }}, // kept, not acted on\n}}\n"
    );
    std::fs::write(&path, text).expect("config written");
    path
}

#[test]
fn config_is_read_redacted_patched_with_base_hash_and_recorded_without_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(dir.path());
    // No --token: the gateway takes it from the config.
    let (running, address, _) = start_with(dir.path(), &[]);
    runtime().block_on(async {
        let (mut admin, _) = connected(&address, &["operator.admin"]).await;
        let (mut reader, _) = connected(&address, &["operator.read"]).await;

        let got = call(&mut admin, "1", "config.get", None).await;
        let config = &got["payload"];
        assert_eq!(config["exists"], true, "{got}");
        assert_eq!(config["valid"], true);
        assert_eq!(config["path"], path.display().to_string());
        let raw = config["raw"].as_str().expect("raw");
        assert!(raw.starts_with("// clawback test config"), "comments kept: {raw}");
        assert!(!raw.contains(TOKEN) && !raw.contains(PROVIDER_KEY), "{raw}");
        assert!(raw.contains("__OPENCLAW_REDACTED__"));
        assert_eq!(
            config["config"]["gateway"]["auth"]["token"],
            "__OPENCLAW_REDACTED__"
        );
        assert_eq!(config["config"]["gateway"]["auth"]["mode"], "token");
        assert_eq!(config["warnings"][0]["path"], "channels");
        let hash = config["hash"].as_str().expect("hash").to_owned();
        assert_eq!(config["appliedConfigHash"], hash.as_str(), "recorded at start");

        let models = call(&mut admin, "2", "models.list", Some(json!({}))).await;
        assert_eq!(
            models["payload"]["models"][0],
            json!({"id": "mock-model", "name": "Mock", "provider": "mock", "reasoning": false,
                   "input": ["text"], "tags": ["default"], "available": true,
                   "contextWindow": 120000, "maxTokens": 8192, "api": "openai-completions"})
        );

        let patch = json!({"raw": "{ agents: { defaults: { maxConcurrent: 4 } } }"});
        let refused = call(&mut admin, "3", "config.patch", Some(patch.clone())).await;
        assert_eq!(
            refused["error"]["message"],
            "config base hash required for agents.defaults.maxConcurrent; re-run config.get and retry"
        );
        let mut stale = patch.clone();
        stale["baseHash"] = json!("blake3-keyed:v1:00");
        let refused = call(&mut admin, "4", "config.patch", Some(stale)).await;
        assert_eq!(
            refused["error"],
            json!({"code": "INVALID_REQUEST",
                   "message": "config changed since last load; re-run config.get and retry"})
        );
        let forbidden = call(&mut reader, "5", "config.patch", Some(patch.clone())).await;
        assert_eq!(forbidden["error"]["code"], "FORBIDDEN");

        let mut good = patch.clone();
        good["baseHash"] = json!(hash);
        let patched = call(&mut admin, "6", "config.patch", Some(good)).await;
        assert_eq!(patched["ok"], true, "{patched}");
        assert_eq!(
            patched["payload"]["changedPaths"],
            json!(["agents.defaults.maxConcurrent"])
        );
        assert_eq!(patched["payload"]["restart"]["required"], false);
        let new_hash = patched["payload"]["hash"].as_str().expect("hash").to_owned();
        assert_ne!(new_hash, hash);

        // Every read-scoped socket hears of it.
        let event = loop {
            let frame = next_json(&mut reader).await;
            if frame["type"] == "event" && frame["event"] == "config.changed" {
                break frame;
            }
        };
        assert_eq!(event["payload"]["hash"], new_hash.as_str());
        assert_eq!(event["payload"]["path"], path.display().to_string());

        // The same base twice: the second writer lost the race.
        let mut again = patch.clone();
        again["baseHash"] = json!(hash);
        let lost = call(&mut admin, "7", "config.patch", Some(again)).await;
        assert_eq!(lost["error"]["code"], "INVALID_REQUEST");

        // A whole document sent back with the redaction markers keeps the
        // secrets; a marker with nothing behind it is refused.
        let current = call(&mut admin, "8", "config.get", None).await;
        let mut document = current["payload"]["config"].clone();
        document["agents"]["defaults"]["timeoutSeconds"] = json!(600);
        let set = call(
            &mut admin,
            "9",
            "config.set",
            Some(json!({"raw": document.to_string(), "baseHash": new_hash})),
        )
        .await;
        assert_eq!(set["ok"], true, "{set}");
        let on_disk = std::fs::read_to_string(&path).expect("config");
        assert!(on_disk.contains(TOKEN) && on_disk.contains(PROVIDER_KEY), "{on_disk}");
        assert!(on_disk.contains("\"timeoutSeconds\": 600"));
        assert!(
            std::fs::read_to_string(format!("{}.bak", path.display()))
                .expect(".bak")
                .contains("maxConcurrent\": 4")
        );
        let set_hash = set["payload"]["hash"].clone();
        let mut orphan = document.clone();
        orphan["models"]["providers"]["other"] = json!({"apiKey": "__OPENCLAW_REDACTED__"});
        let refused = call(
            &mut admin,
            "10",
            "config.set",
            Some(json!({"raw": orphan.to_string(), "baseHash": set_hash})),
        )
        .await;
        assert!(
            refused["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("models.providers.other.apiKey:")),
            "{refused}"
        );

        let invalid = call(
            &mut admin,
            "11",
            "config.set",
            Some(json!({"raw": "{ gateway: { port: 'high' } }", "baseHash": set_hash})),
        )
        .await;
        assert_eq!(invalid["error"]["code"], "INVALID_REQUEST");
        assert_eq!(invalid["error"]["details"]["code"], "INVALID_CONFIG");
        assert_eq!(invalid["error"]["details"]["issues"][0]["path"], "gateway.port");

        let restart = call(
            &mut admin,
            "12",
            "config.patch",
            Some(json!({"raw": "{ gateway: { port: 18790 }, cron: { enabled: false } }", "baseHash": set_hash})),
        )
        .await;
        assert_eq!(restart["payload"]["restart"]["required"], true, "{restart}");
        assert_eq!(
            restart["payload"]["restart"]["paths"],
            json!(["cron", "gateway.port"])
        );

        // Edited by hand while running: the next read records the change.
        std::fs::write(&path, "{ gateway: { auth: { token: 'other-token' } } }").expect("edit");
        let edited = call(&mut admin, "13", "config.get", None).await;
        assert_eq!(edited["payload"]["exists"], true);
        assert_eq!(
            edited["payload"]["appliedConfigHash"],
            edited["payload"]["hash"],
            "{edited}"
        );

        let schema = call(&mut admin, "14", "config.schema", None).await;
        assert_eq!(
            schema["payload"]["schema"]["$schema"],
            "http://json-schema.org/draft-07/schema#"
        );
        let lookup = call(
            &mut admin,
            "15",
            "config.schema.lookup",
            Some(json!({"path": "gateway.auth"})),
        )
        .await;
        assert!(
            lookup["payload"]["schema"]["properties"]["token"].is_object(),
            "{lookup}"
        );
    });
    stop(running);

    let export = clawback(dir.path(), &["audit", "export"]);
    let text = stdout(&export);
    assert!(
        text.contains("config.changed") || text.contains("ConfigChanged"),
        "{text}"
    );
    for secret in [TOKEN, PROVIDER_KEY, "other-token"] {
        assert!(!text.contains(secret), "{secret} reached the log");
    }
    let sources: Vec<String> = text
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|record| {
            record["event"]["ConfigChanged"]["source"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(
        sources,
        [
            "file",
            "rpc:config.patch",
            "rpc:config.set",
            "rpc:config.patch",
            "file"
        ]
    );
}

#[test]
fn an_invalid_config_stops_the_start_with_the_path_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("config.json5"),
        "{ gateway: { auth: { mode: 'kerberos' } } }",
    )
    .expect("config");
    let output = std::process::Command::new(binary())
        .arg("--state-dir")
        .arg(dir.path())
        .args(["gateway", "run", "--bind", "127.0.0.1:0"])
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("is invalid: gateway.auth.mode:"),
        "{stderr}"
    );
}

#[test]
fn the_setup_wizard_configures_a_provider_that_then_answers() {
    use crate::llm_server::{API_KEY, LlmServer};
    let server = LlmServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (running, address, _) = start_with(dir.path(), &["--token", TOKEN]);
    runtime().block_on(async {
        let (mut socket, _) = connected(&address, &["operator.admin"]).await;
        let started = call(&mut socket, "s", "wizard.start", Some(json!({}))).await;
        let session = started["payload"]["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_owned();
        assert_eq!(started["payload"]["step"]["type"], "note", "{started}");
        // One setup at a time.
        let busy = call(&mut socket, "b", "wizard.start", Some(json!({}))).await;
        assert_eq!(busy["error"]["code"], "UNAVAILABLE", "{busy}");

        let answer = |step: &str, value: Value| {
            json!({"sessionId": session, "answer": {"stepId": step, "value": value}})
        };
        let mut steps = Vec::new();
        for (id, step, value) in [
            ("1", "intro", Value::Null),
            ("2", "provider", json!("nope")),
            ("3", "provider", json!("custom")),
            ("4", "baseUrl", json!("ftp://example.invalid")),
            ("5", "baseUrl", json!(server.base_url())),
            ("6", "apiKey", json!(API_KEY)),
            ("7", "model", json!("mock-model")),
        ] {
            let reply = call(&mut socket, id, "wizard.next", Some(answer(step, value))).await;
            assert_eq!(reply["ok"], true, "{reply}");
            steps.push(reply["payload"].clone());
        }
        assert_eq!(steps[0]["step"]["id"], "provider");
        assert!(steps[0]["step"]["options"].as_array().unwrap().len() >= 6);
        assert_eq!(
            steps[1]["step"]["id"], "provider",
            "a wrong choice asks again"
        );
        assert!(
            steps[1]["error"]
                .as_str()
                .unwrap()
                .contains("choose one of")
        );
        assert_eq!(steps[3]["step"]["id"], "baseUrl");
        assert!(steps[3]["error"].as_str().unwrap().contains("http"));
        assert_eq!(steps[4]["step"]["sensitive"], true, "{:?}", steps[4]);
        assert_eq!(steps[6]["step"]["type"], "confirm");
        // Out of order: refused.
        let wrong = call(&mut socket, "8", "wizard.next", Some(answer("model", json!("x")))).await;
        assert_eq!(wrong["error"]["code"], "INVALID_REQUEST", "{wrong}");
        let done = call(&mut socket, "9", "wizard.next", Some(answer("confirm", json!(true)))).await;
        assert_eq!(
            done["payload"],
            json!({"done": true, "status": "done", "preparedModelRef": "custom/mock-model"}),
            "{done}"
        );
        let gone = call(
            &mut socket,
            "10",
            "wizard.status",
            Some(json!({"sessionId": session})),
        )
        .await;
        assert_eq!(
            gone["error"]["details"]["code"], "WIZARD_NOT_FOUND",
            "{gone}"
        );

        // The configured provider answers.
        let (answers, _) = crate::agent::request(
            &mut socket,
            "a",
            "agent",
            json!({"message": "hello", "idempotencyKey": "wizard-run"}),
            2,
        )
        .await;
        assert_eq!(answers[1]["payload"]["status"], "ok", "{answers:?}");

        // A second wizard can be cancelled.
        let started = call(&mut socket, "s2", "wizard.start", Some(json!({}))).await;
        let second = started["payload"]["sessionId"].as_str().unwrap().to_owned();
        let cancelled = call(
            &mut socket,
            "c",
            "wizard.cancel",
            Some(json!({"sessionId": second})),
        )
        .await;
        assert_eq!(
            cancelled["payload"],
            json!({"status": "cancelled"}),
            "{cancelled}"
        );
        let channels = call(
            &mut socket,
            "ch",
            "wizard.start",
            Some(json!({"flow": "channels"})),
        )
        .await;
        assert_eq!(channels["error"]["code"], "UNAVAILABLE", "{channels}");
    });
    stop(running);
    let config = std::fs::read_to_string(dir.path().join("config.json5")).expect("config");
    assert!(config.contains(API_KEY), "the key is in the user's file");
    let export = stdout(&clawback(dir.path(), &["audit", "export"]));
    assert!(export.contains("wizard"), "the change is recorded");
    assert!(!export.contains(API_KEY), "the key reached the log");
}
