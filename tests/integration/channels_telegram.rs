//! Telegram against a local Bot API server (`telegram_server`): a DM is
//! answered once, across a restart that redelivers it; refused senders are
//! recorded and not answered; a 429 is waited out; a send cut short by a
//! crash is reported, never repeated; `send` is idempotent; webhook mode
//! records an update before answering 200.

use std::time::Duration;

use serde_json::{Value, json};

use crate::agent::request;
use crate::gateway::{start_with, stop};
use crate::llm_server::{API_KEY, LlmServer};
use crate::protocol::{TOKEN, connected, runtime};
use crate::support::{http_client, log_records};
use crate::telegram_server::{BOT_TOKEN, TelegramServer};

const OWNER: i64 = 7;
const STRANGER: i64 = 8;

fn write_config(dir: &std::path::Path, llm: &LlmServer, telegram: &TelegramServer, extra: &str) {
    write_config_for(dir, llm, telegram, "mock-model", extra);
}

fn write_config_for(
    dir: &std::path::Path,
    llm: &LlmServer,
    telegram: &TelegramServer,
    model: &str,
    extra: &str,
) {
    let text = format!(
        "{{ agents: {{ defaults: {{ model: {{ primary: 'mock/{model}' }} }} }},
  models: {{ providers: {{ mock: {{ baseUrl: '{}', apiKey: '{API_KEY}', api: 'openai-completions',
    models: [{{ id: 'mock-model' }}, {{ id: 'slow-model' }}] }} }} }},
  channels: {{ telegram: {{ botToken: '{BOT_TOKEN}', apiRoot: '{}', dmPolicy: 'allowlist',
    allowFrom: ['tg:{OWNER}'], {extra} }} }} }}\n",
        llm.base_url(),
        telegram.api_root()
    );
    std::fs::write(dir.join("config.json5"), text).expect("config");
}

fn kinds(records: &[Value], kind: &str) -> Vec<Value> {
    records
        .iter()
        .filter(|record| record["kind"] == kind)
        // Events are externally tagged: `{"ChannelMessageReceived": {...}}`.
        .filter_map(|record| record["event"].as_object()?.values().next().cloned())
        .collect()
}

fn llm_calls(llm: &LlmServer) -> usize {
    llm.requests().len()
}

#[test]
fn a_dm_is_answered_once_across_a_restart_that_redelivers_it() {
    let llm = LlmServer::start();
    let telegram = TelegramServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), &llm, &telegram, "");
    let (running, _, _) = start_with(dir.path(), &["--token", TOKEN]);

    telegram.push_text(OWNER, OWNER, "hello bot");
    telegram.push_text(STRANGER, STRANGER, "let me in");
    telegram.wait_for("the reply", |t| !t.sent_to(OWNER).is_empty());
    assert_eq!(
        telegram.sent_to(OWNER),
        vec!["Hello from the mock. You said: hello bot"]
    );
    // The poll after both updates acknowledges them (offset past the last).
    telegram.wait_for("the acknowledgement", |t| {
        t.calls("getUpdates")
            .iter()
            .any(|body| body["offset"] == json!(3))
    });
    let calls_before = llm_calls(&llm);
    stop(running);

    // Telegram lost the acknowledgement: both updates come again.
    telegram.redeliver(true);
    let (running, _, _) = start_with(dir.path(), &["--token", TOKEN]);
    let polls = telegram.calls("getUpdates").len();
    telegram.wait_for("polls after the restart", |t| {
        t.calls("getUpdates").len() > polls + 3
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        telegram.sent_to(OWNER).len(),
        1,
        "the redelivered DM is not answered again"
    );
    assert!(
        telegram.sent_to(STRANGER).is_empty(),
        "a refused sender gets nothing"
    );
    assert_eq!(llm_calls(&llm), calls_before, "no second model call");
    stop(running);

    let records = log_records(dir.path(), 400);
    let received = kinds(&records, "channel.message.received");
    assert_eq!(
        received.len(),
        2,
        "each message recorded once: {received:?}"
    );
    let owner = received
        .iter()
        .find(|e| e["sender_id"] == "7")
        .expect("owner's message");
    assert_eq!(owner["platform_message_id"], "7:101");
    assert_eq!(owner["cursor"], "2");
    assert_eq!(
        owner["admission"]["Admitted"]["session_key"],
        "agent:main:main"
    );
    let stranger = received
        .iter()
        .find(|e| e["sender_id"] == "8")
        .expect("stranger's message");
    let reason = stranger["admission"]["Refused"]["reason"]
        .as_str()
        .expect("refused");
    assert!(reason.contains("allowFrom"), "{reason}");
    assert_eq!(kinds(&records, "delivery.sent").len(), 1);
    assert_eq!(
        kinds(&records, "channel.reply.completed")[0]["outcome"],
        "replied"
    );
    let user_message = kinds(&records, "message.appended")
        .into_iter()
        .find(|e| e["role"] == "User")
        .expect("user message");
    assert_eq!(user_message["origin"]["channel"], "telegram");
}

#[test]
fn a_rate_limit_is_waited_out_and_recorded() {
    let llm = LlmServer::start();
    let telegram = TelegramServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), &llm, &telegram, "");
    telegram.fail_next_sends(429, Some(1), 1);
    let (running, _, _) = start_with(dir.path(), &["--token", TOKEN]);
    let started = std::time::Instant::now();
    telegram.push_text(OWNER, OWNER, "are you there");
    telegram.wait_for("the reply after the rate limit", |t| {
        t.calls("sendMessage").len() == 2
    });
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "retry_after honoured"
    );
    stop(running);
    let records = log_records(dir.path(), 200);
    let failed = kinds(&records, "delivery.failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["retryable"], true);
    assert!(
        failed[0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("429")
    );
    assert_eq!(kinds(&records, "delivery.sent").len(), 1);
}

#[test]
fn a_send_cut_short_by_a_crash_is_reported_not_repeated() {
    let llm = LlmServer::start();
    let telegram = TelegramServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), &llm, &telegram, "");
    telegram.stall_sends(true);
    let (running, _, _) = start_with(dir.path(), &["--token", TOKEN]);
    telegram.push_text(OWNER, OWNER, "hello");
    telegram.wait_for("the stalled send", |t| !t.calls("sendMessage").is_empty());
    // Killed (SIGKILL) between delivery.prepared and any outcome.
    drop(running);
    telegram.stall_sends(false);
    let (running, _, _) = start_with(dir.path(), &["--token", TOKEN]);
    let polls = telegram.calls("getUpdates").len();
    // Unconfirmed sends are settled before the first poll.
    telegram.wait_for("a poll after the restart", |t| {
        t.calls("getUpdates").len() > polls
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        telegram.calls("sendMessage").len(),
        1,
        "not sent a second time"
    );
    stop(running);
    let records = log_records(dir.path(), 200);
    let failed = kinds(&records, "delivery.failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["retryable"], false);
    let error = failed[0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("unconfirmed") && error.contains("not resent"),
        "{error}"
    );
}

#[test]
fn send_status_and_webhook_mode() {
    let llm = LlmServer::start();
    let telegram = TelegramServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(
        dir.path(),
        &llm,
        &telegram,
        "webhookUrl: 'https://bot.example/telegram-webhook', webhookSecret: 'hook-secret-123'",
    );
    let (running, address, _) = start_with(dir.path(), &["--token", TOKEN]);
    telegram.wait_for("setWebhook", |t| !t.calls("setWebhook").is_empty());
    assert_eq!(
        telegram.calls("setWebhook")[0]["secret_token"],
        "hook-secret-123"
    );

    runtime().block_on(async {
        let (mut socket, _) = connected(&address, &["operator.read", "operator.write"]).await;
        let (answers, _) = request(&mut socket, "st", "channels.status", json!({}), 1).await;
        let status = &answers[0]["payload"];
        assert_eq!(status["channelOrder"][0], "telegram");
        let account = &status["channelAccounts"]["telegram"][0];
        assert_eq!(account["mode"], "webhook");
        assert_eq!(account["running"], true);
        assert_eq!(account["connected"], true);
        assert!(
            !status.to_string().contains(BOT_TOKEN),
            "no token in the status"
        );

        let params = json!({"to": "tg:42", "message": "ping", "idempotencyKey": "s-1"});
        let (first, _) = request(&mut socket, "s1", "send", params.clone(), 1).await;
        assert_eq!(first[0]["ok"], true, "{first:?}");
        assert_eq!(first[0]["payload"]["runId"], "s-1");
        assert_eq!(first[0]["payload"]["chatId"], "42");
        let (again, _) = request(&mut socket, "s2", "send", params, 1).await;
        assert_eq!(
            again[0]["payload"]["messageId"],
            first[0]["payload"]["messageId"]
        );
        assert_eq!(
            telegram.sent_to(42),
            vec!["ping"],
            "one message for one key"
        );
        let (empty, _) = request(
            &mut socket,
            "s3",
            "send",
            json!({"to": "42", "idempotencyKey": "s-2"}),
            1,
        )
        .await;
        assert_eq!(
            empty[0]["error"]["message"],
            "invalid send params: text or media is required"
        );

        let url = format!("http://{address}/telegram-webhook");
        let client = http_client(Duration::from_secs(10));
        let update_id = telegram.push_text(OWNER, OWNER, "via webhook");
        let update = telegram.update(update_id);
        let wrong = client
            .post(&url)
            .header("x-telegram-bot-api-secret-token", "nope")
            .json(&update)
            .send()
            .await
            .expect("post");
        assert_eq!(wrong.status(), 401);
        for _ in 0..2 {
            let right = client
                .post(&url)
                .header("x-telegram-bot-api-secret-token", "hook-secret-123")
                .json(&update)
                .send()
                .await
                .expect("post");
            assert_eq!(right.status(), 200);
            assert_eq!(right.headers()["x-openclaw-delivery-accepted"], "durable");
        }
    });
    telegram.wait_for("the webhook reply", |t| !t.sent_to(OWNER).is_empty());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        telegram.sent_to(OWNER),
        vec!["Hello from the mock. You said: via webhook"]
    );
    assert!(
        telegram.calls("getUpdates").is_empty(),
        "webhook mode does not poll"
    );
    stop(running);
}

#[test]
fn a_turn_cut_short_by_a_crash_is_answered_with_a_notice_after_the_restart() {
    let llm = LlmServer::start();
    let telegram = TelegramServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    write_config_for(dir.path(), &llm, &telegram, "slow-model", "");
    let (running, _, _) = start_with(dir.path(), &["--token", TOKEN]);
    telegram.push_text(OWNER, OWNER, "take your time");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while llm_calls(&llm) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the model was never called"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(running); // SIGKILL mid-reply
    let (running, _, _) = start_with(dir.path(), &["--token", TOKEN]);
    telegram.wait_for("the notice", |t| !t.sent_to(OWNER).is_empty());
    let sent = telegram.sent_to(OWNER);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(
        sent[0].contains("restarted before this reply was finished"),
        "{sent:?}"
    );
    assert_eq!(llm_calls(&llm), 1, "the turn is not run a second time");
    stop(running);
    let records = log_records(dir.path(), 300);
    assert_eq!(
        kinds(&records, "channel.reply.completed")[0]["outcome"],
        "interrupted"
    );
}

#[test]
fn block_streaming_sends_the_reply_in_blocks_as_it_streams() {
    let llm = LlmServer::start();
    let telegram = TelegramServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    write_config_for(
        dir.path(),
        &llm,
        &telegram,
        "slow-model",
        "blockStreaming: true, blockStreamingChunk: { minChars: 5, maxChars: 20, idleMs: 100 }",
    );
    let (running, _, _) = start_with(dir.path(), &["--token", TOKEN]);
    telegram.push_text(OWNER, OWNER, "stream it");
    telegram.wait_for("the reply settled", |t| {
        t.sent_to(OWNER).join(" ").contains("stream it")
    });
    let sent = telegram.sent_to(OWNER);
    assert!(sent.len() >= 2, "several blocks: {sent:?}");
    for block in &sent {
        assert!(block.chars().count() <= 20, "{block:?}");
    }
    let words: Vec<&str> = sent
        .iter()
        .flat_map(|block| block.split_whitespace())
        .collect();
    assert_eq!(words.join(" "), "Hello from the mock. You said: stream it");
    stop(running);
}

#[test]
fn a_require_approval_policy_holds_each_reply_for_an_operator() {
    let llm = LlmServer::start();
    let telegram = TelegramServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(
        dir.path(),
        &llm,
        &telegram,
        "deliveryPolicy: 'require-approval'",
    );
    let (running, address, _) = start_with(dir.path(), &["--token", TOKEN]);
    runtime().block_on(async {
        let (mut socket, _) = connected(&address, &["operator.read", "operator.approvals"]).await;
        for (n, (text, decision)) in [("please approve", "allow-once"), ("deny this", "deny")]
            .into_iter()
            .enumerate()
        {
            telegram.push_text(OWNER, OWNER, text);
            let pending = loop {
                let (answers, _) = request(
                    &mut socket,
                    &format!("l{n}"),
                    "exec.approval.list",
                    json!({}),
                    1,
                )
                .await;
                if let Some(first) = answers[0]["payload"]
                    .as_array()
                    .and_then(|list| list.first())
                {
                    break first.clone();
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            let command = pending["request"]["command"].as_str().unwrap_or_default();
            assert_eq!(
                command,
                format!("send to telegram {OWNER}: Hello from the mock. You said: {text}")
            );
            assert_eq!(telegram.sent_to(OWNER).len(), n, "held until decided");
            let id = pending["id"].as_str().expect("id");
            let (resolved, _) = request(
                &mut socket,
                &format!("r{n}"),
                "exec.approval.resolve",
                json!({"id": id, "decision": decision}),
                1,
            )
            .await;
            assert_eq!(resolved[0]["ok"], true, "{resolved:?}");
        }
    });
    telegram.wait_for("the approved reply", |t| !t.sent_to(OWNER).is_empty());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        telegram.sent_to(OWNER),
        vec!["Hello from the mock. You said: please approve"]
    );
    stop(running);
    let records = log_records(dir.path(), 400);
    let failed = kinds(&records, "delivery.failed");
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("denied by an operator")
    );
}
