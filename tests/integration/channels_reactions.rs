//! OpenClaw's ack reaction (`messages.ackReaction`) on Telegram, Discord
//! and Slack doubles: set on an admitted message in scope before the reply,
//! taken away after it when `removeAckAfterReply`, recorded in the outbox
//! under the run's key, and never set again for a redelivered message.

use std::time::Duration;

use serde_json::{Value, json};

use crate::gateway::{start_with, stop};
use crate::llm_server::{API_KEY, LlmServer};
use crate::protocol::TOKEN;
use crate::support::log_records;

fn config(llm: &LlmServer, messages: &str, channels: &str) -> String {
    format!(
        "{{ agents: {{ defaults: {{ model: {{ primary: 'mock/mock-model' }} }} }},
  models: {{ providers: {{ mock: {{ baseUrl: '{}', apiKey: '{API_KEY}', api: 'openai-completions',
    models: [{{ id: 'mock-model' }}] }} }} }},
  messages: {{ {messages} }},
  channels: {{ {channels} }} }}\n",
        llm.base_url()
    )
}

fn prepared_keys(dir: &std::path::Path) -> Vec<(String, Value)> {
    log_records(dir, 400)
        .iter()
        .filter(|record| record["kind"] == "delivery.prepared")
        .filter_map(|record| record["event"].as_object()?.values().next().cloned())
        .map(|event| {
            let target: Value =
                serde_json::from_str(event["target"].as_str().unwrap_or("{}")).unwrap_or_default();
            (
                event["idempotency_key"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                target,
            )
        })
        .collect()
}

#[test]
fn telegram_acks_a_dm_before_the_reply_removes_it_after_and_never_twice() {
    use crate::telegram_server::{BOT_TOKEN, TelegramServer};
    let llm = LlmServer::start();
    let telegram = TelegramServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let text = config(
        &llm,
        "ackReaction: '👀', ackReactionScope: 'direct', removeAckAfterReply: true",
        &format!(
            "telegram: {{ botToken: '{BOT_TOKEN}', apiRoot: '{}', dmPolicy: 'allowlist', allowFrom: ['tg:7'] }}",
            telegram.api_root()
        ),
    );
    std::fs::write(dir.path().join("config.json5"), text).expect("config");
    let (running, _, _) = start_with(dir.path(), &["--token", TOKEN]);
    telegram.push_text(7, 7, "hello");
    telegram.wait_for("the reply and the removal", |t| {
        !t.sent_to(7).is_empty() && t.calls("setMessageReaction").len() == 2
    });
    let reactions = telegram.calls("setMessageReaction");
    assert_eq!(
        reactions[0],
        json!({"chat_id": 7, "message_id": 101, "reaction": [{"type": "emoji", "emoji": "👀"}]})
    );
    assert_eq!(
        reactions[1],
        json!({"chat_id": 7, "message_id": 101, "reaction": []})
    );
    stop(running);

    telegram.redeliver(true);
    let (running, _, _) = start_with(dir.path(), &["--token", TOKEN]);
    let polls = telegram.calls("getUpdates").len();
    telegram.wait_for("polls after the restart", |t| {
        t.calls("getUpdates").len() > polls + 3
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(telegram.calls("setMessageReaction").len(), 2, "never twice");
    stop(running);

    let keys = prepared_keys(dir.path());
    let ack = keys
        .iter()
        .find(|(key, _)| key.starts_with("ack:ch-"))
        .expect("the ack is recorded");
    assert_eq!(
        ack.1["reaction"],
        json!({"message_id": "7:101", "emoji": "👀"})
    );
    assert!(
        keys.iter()
            .any(|(key, target)| key.starts_with("ack-remove:ch-")
                && target["reaction"]["remove"] == true),
        "{keys:?}"
    );
}

#[test]
fn discord_and_slack_ack_in_scope_only() {
    use crate::discord_server::{BOT_ID, BOT_TOKEN as DISCORD_TOKEN, DiscordServer};
    use crate::slack_server::{APP_TOKEN, BOT_TOKEN as SLACK_TOKEN, BOT_USER, SlackServer};
    let llm = LlmServer::start();
    let discord = DiscordServer::start();
    let slack = SlackServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    // The default scope (group-mentions): a DM gets no ack, a mention in a
    // channel does.
    let text = config(
        &llm,
        "ackReaction: '👀'",
        &format!(
            "discord: {{ token: '{DISCORD_TOKEN}', apiRoot: '{}', dmPolicy: 'allowlist', allowFrom: ['discord:u7'],
               groupPolicy: 'open', guilds: {{ g1: {{ requireMention: true }} }} }},
             slack: {{ mode: 'socket', botToken: '{SLACK_TOKEN}', appToken: '{APP_TOKEN}', apiRoot: '{}',
               dmPolicy: 'allowlist', allowFrom: ['U7'], channels: {{ C1: {{ requireMention: true, users: ['*'] }} }} }}",
            discord.api_root(),
            slack.api_root()
        ),
    );
    std::fs::write(dir.path().join("config.json5"), text).expect("config");
    let (running, _, _) = start_with(dir.path(), &["--token", TOKEN]);
    discord.wait_for("identify", |d| !d.received(2).is_empty());
    slack.wait_for("the socket", |s| s.opens() == 1);
    std::thread::sleep(Duration::from_millis(300));

    discord.push_message("dm1", "u7", "a dm", None);
    discord.push_message("c1", "u9", &format!("<@{BOT_ID}> in the guild"), Some("g1"));
    discord.wait_for("both replies", |d| {
        !d.created("dm1").is_empty() && !d.created("c1").is_empty()
    });
    discord.wait_for("the ack", |d| !d.reactions().is_empty());
    let reactions = discord.reactions();
    assert_eq!(reactions.len(), 1, "the DM is out of scope: {reactions:?}");
    assert_eq!(
        reactions[0],
        (
            "PUT".to_owned(),
            "c1".to_owned(),
            "70002".to_owned(),
            "👀".to_owned()
        )
    );

    slack.push_message("D1", "im", "U7", "a dm");
    slack.push_message("C1", "channel", "U9", &format!("<@{BOT_USER}> hi"));
    slack.wait_for("both replies", |s| {
        !s.texts_to("D1").is_empty() && !s.texts_to("C1").is_empty()
    });
    slack.wait_for("the ack", |s| !s.reactions().is_empty());
    std::thread::sleep(Duration::from_millis(200));
    let reactions = slack.reactions();
    assert_eq!(reactions.len(), 1, "{reactions:?}");
    assert_eq!(reactions[0].0, "reactions.add");
    assert_eq!(
        reactions[0].1,
        json!({"channel": "C1", "timestamp": "1700000000.000002", "name": "eyes"})
    );
    stop(running);
}

#[test]
fn message_action_react_sets_and_removes_once_per_key() {
    use crate::agent::request;
    use crate::protocol::{connected, runtime};
    use crate::telegram_server::{BOT_TOKEN, TelegramServer};
    let llm = LlmServer::start();
    let telegram = TelegramServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let text = config(
        &llm,
        "",
        &format!(
            "telegram: {{ botToken: '{BOT_TOKEN}', apiRoot: '{}', dmPolicy: 'allowlist', allowFrom: ['tg:7'] }}",
            telegram.api_root()
        ),
    );
    std::fs::write(dir.path().join("config.json5"), text).expect("config");
    let (running, address, _) = start_with(dir.path(), &["--token", TOKEN]);
    telegram.wait_for("polling", |t| !t.calls("getUpdates").is_empty());
    runtime().block_on(async {
        let (mut socket, _) = connected(&address, &["operator.read", "operator.write"]).await;
        let react = json!({"channel": "telegram", "action": "react", "idempotencyKey": "r-1",
                           "params": {"chatId": "tg:42", "messageId": "5", "emoji": "👍"}});
        let (first, _) = request(&mut socket, "a1", "message.action", react.clone(), 1).await;
        assert_eq!(first[0]["ok"], true, "{first:?}");
        let (again, _) = request(&mut socket, "a2", "message.action", react, 1).await;
        assert_eq!(again[0]["ok"], true, "{again:?}");
        let remove = json!({"channel": "telegram", "action": "react", "idempotencyKey": "r-2",
                            "params": {"chatId": "42", "messageId": "5", "emoji": "👍", "remove": true}});
        let (removed, _) = request(&mut socket, "a3", "message.action", remove, 1).await;
        assert_eq!(removed[0]["ok"], true, "{removed:?}");
        let pin = json!({"channel": "telegram", "action": "pin", "idempotencyKey": "p-1",
                         "params": {"chatId": "42", "messageId": "5"}});
        let (refused, _) = request(&mut socket, "a4", "message.action", pin, 1).await;
        assert_eq!(refused[0]["ok"], false);
        let message = refused[0]["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("\"pin\" is not available"), "{message}");
    });
    stop(running);
    assert_eq!(
        telegram.calls("setMessageReaction"),
        vec![
            json!({"chat_id": 42, "message_id": 5, "reaction": [{"type": "emoji", "emoji": "👍"}]}),
            json!({"chat_id": 42, "message_id": 5, "reaction": []}),
        ],
        "one call per key"
    );
    let keys = prepared_keys(dir.path());
    assert!(keys.iter().any(|(key, _)| key == "react:r-1"), "{keys:?}");
}

#[test]
fn matrix_acks_with_an_annotation_and_takes_it_back_by_redaction() {
    use crate::synapse::{Synapse, wait_for};
    let synapse = Synapse::start(None);
    let llm = LlmServer::start();
    let (bot, alice) = (synapse.register("bot"), synapse.register("alice"));
    let dir = tempfile::tempdir().expect("tempdir");
    let text = config(
        &llm,
        "ackReaction: '👀', ackReactionScope: 'all', removeAckAfterReply: true",
        &format!(
            "matrix: {{ homeserver: '{}', accessToken: '{}', autoJoin: 'always',
               dm: {{ policy: 'allowlist', allowFrom: ['@alice:localhost'] }} }}",
            synapse.url(),
            bot.token
        ),
    );
    std::fs::write(dir.path().join("config.json5"), text).expect("config");
    let (running, _, _) = start_with(dir.path(), &["--token", TOKEN]);
    let room = synapse.create_dm(&alice, &bot);
    wait_for("the bot to join", Duration::from_secs(30), || {
        synapse.joined(&alice, &room).contains(&bot.id)
    });
    let said = synapse.say(&alice, &room, "hello");
    wait_for("the reply", Duration::from_secs(30), || {
        !synapse.said_by(&alice, &room, &bot).is_empty()
    });
    let path = format!(
        "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=50",
        room.replace('!', "%21").replace(':', "%3A")
    );
    let bot_reaction = || {
        synapse.call("GET", &path, Some(&alice.token), None)["chunk"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|event| event["type"] == "m.reaction" && event["sender"] == bot.id)
            .cloned()
    };
    wait_for("the ack to be redacted", Duration::from_secs(30), || {
        bot_reaction().is_some_and(|event| !event["unsigned"]["redacted_because"].is_null())
    });
    stop(running);
    let keys = prepared_keys(dir.path());
    let ack = keys
        .iter()
        .find(|(key, _)| key.starts_with("ack:"))
        .expect("the ack");
    assert_eq!(ack.1["reaction"]["message_id"], said);
    let removal = keys
        .iter()
        .find(|(key, _)| key.starts_with("ack-remove:"))
        .expect("the removal");
    assert_eq!(removal.1["reaction"]["undoes"], ack.0.as_str());
    let records = log_records(dir.path(), 400);
    assert!(
        !records
            .iter()
            .any(|record| record["kind"] == "delivery.failed"),
        "nothing failed"
    );
}
