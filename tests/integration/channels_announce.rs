//! Cron and hook results delivered to a chat (OpenClaw's cron
//! `delivery: {mode: "announce", channel, to, accountId}` and a hook's
//! `deliver`/`channel`/`to`), through the outbox, against the local
//! Telegram Bot API: `last` before anyone spoke is a clear error; after a
//! DM it is that chat; a named chat is used as named; a repeated hook
//! (same idempotency key) after a restart sends nothing again.

use serde_json::{Value, json};

use crate::agent::request;
use crate::gateway::{start_with, stop};
use crate::llm_server::{API_KEY, LlmServer};
use crate::protocol::{Socket, TOKEN, connected, runtime};
use crate::support::{http_client, log_records};
use crate::telegram_server::{BOT_TOKEN, TelegramServer};

const OWNER: i64 = 7;
const HOOK_TOKEN: &str = "hook-secret-announce-1";

async fn call(socket: &mut Socket, id: &str, method: &str, params: Value) -> Value {
    let (answers, _) = request(socket, id, method, params, 1).await;
    answers.into_iter().next().expect("an answer")
}

/// Adds an isolated job with `delivery`, runs it by hand and returns its
/// finished run entry from `cron.runs`.
async fn run_job(socket: &mut Socket, name: &str, delivery: Value) -> Value {
    let job = json!({
        "name": name, "schedule": {"kind": "every", "everyMs": 3_600_000},
        "sessionTarget": "isolated", "wakeMode": "now",
        "payload": {"kind": "agentTurn", "message": format!("report {name}")},
        "delivery": delivery,
    });
    let added = call(socket, "add", "cron.add", job).await;
    assert_eq!(added["ok"], true, "{added}");
    let id = added["payload"]["id"].as_str().expect("id").to_owned();
    let run = call(socket, "run", "cron.run", json!({"id": id})).await;
    assert_eq!(run["ok"], true, "{run}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let runs = call(socket, "runs", "cron.runs", json!({"id": id})).await;
        if let Some(entry) = runs["payload"]["entries"].get(0)
            && entry["status"].is_string()
            && entry.get("deliveryStatus").is_some()
        {
            return entry.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the run of {name} finishes"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[test]
fn cron_and_hook_results_reach_a_telegram_chat_once() {
    let llm = LlmServer::start();
    let telegram = TelegramServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        "{{ agents: {{ defaults: {{ model: {{ primary: 'mock/mock-model' }} }} }},
  models: {{ providers: {{ mock: {{ baseUrl: '{}', apiKey: '{API_KEY}', api: 'openai-completions',
    models: [{{ id: 'mock-model' }}] }} }} }},
  hooks: {{ enabled: true, token: '{HOOK_TOKEN}' }},
  channels: {{ telegram: {{ botToken: '{BOT_TOKEN}', apiRoot: '{}', dmPolicy: 'allowlist',
    allowFrom: ['tg:{OWNER}'] }} }} }}\n",
        llm.base_url(),
        telegram.api_root()
    );
    std::fs::write(dir.path().join("config.json5"), text).expect("config");
    let (running, address, _) = start_with(dir.path(), &["--token", TOKEN]);
    let hook_url = format!("http://{address}/hooks/agent");
    let client = http_client(std::time::Duration::from_secs(30));
    let hook = |body: Value| {
        let client = client.clone();
        let url = hook_url.clone();
        async move {
            let answer = client
                .post(&url)
                .header("authorization", format!("Bearer {HOOK_TOKEN}"))
                .json(&body)
                .send()
                .await
                .expect("hook answer");
            let status = answer.status().as_u16();
            (status, answer.json::<Value>().await.expect("json"))
        }
    };

    runtime().block_on(async {
        let (mut socket, _) = connected(&address, &["operator.admin"]).await;
        // Nobody spoke yet: `last` has nowhere to go, and says so.
        let nowhere = run_job(&mut socket, "early", json!({"mode": "announce"})).await;
        assert_eq!(nowhere["status"], "ok", "{nowhere}");
        assert_eq!(nowhere["deliveryStatus"], "not-delivered", "{nowhere}");
        let error = nowhere["deliveryError"].as_str().expect("deliveryError");
        assert!(error.contains("no last channel"), "{error}");
    });
    assert!(telegram.calls("sendMessage").is_empty());

    // The owner speaks: the main session's last chat is that DM.
    telegram.push_text(OWNER, OWNER, "hello");
    telegram.wait_for("the reply", |t| t.sent_to(OWNER).len() == 1);

    runtime().block_on(async {
        let (mut socket, _) = connected(&address, &["operator.admin"]).await;
        let last = run_job(
            &mut socket,
            "daily",
            json!({"mode": "announce", "channel": "last"}),
        )
        .await;
        assert_eq!(last["deliveryStatus"], "delivered", "{last}");
        let named = run_job(
            &mut socket,
            "named",
            json!({"mode": "announce", "channel": "telegram", "to": "tg:42"}),
        )
        .await;
        assert_eq!(named["deliveryStatus"], "delivered", "{named}");
        let unknown = call(
            &mut socket,
            "bad",
            "cron.add",
            json!({"name": "bad", "schedule": {"kind": "every", "everyMs": 60_000},
                   "sessionTarget": "isolated", "payload": {"kind": "agentTurn", "message": "x"},
                   "delivery": {"mode": "announce", "to": 42}}),
        )
        .await;
        assert_eq!(unknown["ok"], false, "{unknown}");
    });
    assert_eq!(
        telegram.sent_to(OWNER).len(),
        2,
        "{:?}",
        telegram.sent_to(OWNER)
    );
    assert!(telegram.sent_to(OWNER)[1].contains("report daily"));
    assert_eq!(telegram.sent_to(42).len(), 1);
    assert!(telegram.sent_to(42)[0].contains("report named"));

    runtime().block_on(async {
        // A hook naming a chat, waited for: delivered, and said so.
        let (status, body) = hook(
            json!({"message": "alert", "channel": "telegram", "to": "42",
            "idempotencyKey": "hook-1", "waitForCompletion": true}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["completion"]["delivered"], true, "{body}");
        assert_eq!(body["completion"]["deliveryAttempted"], true, "{body}");
        // No destination: the last chat, after the answer.
        let (status, body) = hook(json!({"message": "ping"})).await;
        assert_eq!(status, 200, "{body}");
        // A destination that does not exist is refused before any run.
        let (status, body) = hook(json!({"message": "x", "channel": "discord", "to": "1"})).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            body["error"].as_str().unwrap().contains("discord"),
            "{body}"
        );
    });
    telegram.wait_for("the hook's message to the last chat", |t| {
        t.sent_to(OWNER).len() == 3
    });
    assert_eq!(telegram.sent_to(42).len(), 2);
    stop(running);

    // The same hook again after a restart: the run is known, nothing is
    // sent twice.
    let (running, address, _) = start_with(dir.path(), &["--token", TOKEN]);
    let hook_url = format!("http://{address}/hooks/agent");
    runtime().block_on(async {
        let answer = client
            .post(&hook_url)
            .header("authorization", format!("Bearer {HOOK_TOKEN}"))
            .json(
                &json!({"message": "alert", "channel": "telegram", "to": "42",
                "idempotencyKey": "hook-1", "waitForCompletion": true}),
            )
            .send()
            .await
            .expect("hook answer");
        assert_eq!(answer.status().as_u16(), 200);
        let body: Value = answer.json().await.expect("json");
        assert_eq!(
            body["completion"]["delivered"], true,
            "the first delivery, as recorded: {body}"
        );
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(
        telegram.sent_to(42).len(),
        2,
        "a repeated hook sends nothing"
    );
    stop(running);

    let records = log_records(dir.path(), 600);
    let prepared: Vec<&Value> = records
        .iter()
        .filter(|record| record["kind"] == "delivery.prepared")
        .filter_map(|record| record["event"].as_object()?.values().next())
        .filter(|event| {
            event["idempotency_key"]
                .as_str()
                .is_some_and(|key| key.starts_with("announce:"))
        })
        .collect();
    assert_eq!(
        prepared.len(),
        4,
        "each announcement prepared once: {prepared:?}"
    );
}
