//! Discord against a local gateway and REST server (`discord_server`):
//! Identify with the message intents, heartbeats, a reply per DM, a resume
//! after op 7 and after a gateway restart (from the cursor in the log) that
//! answers what was missed and nothing twice, guild rules, a 429 waited out,
//! and a send cut short by a crash resent under its nonce (Discord creates
//! it once).

use std::time::Duration;

use serde_json::{Value, json};

use crate::discord_server::{BOT_ID, BOT_TOKEN, DiscordServer};
use crate::gateway::{start_with, stop};
use crate::llm_server::{API_KEY, LlmServer};
use crate::protocol::TOKEN;
use crate::support::log_records;

fn write_config(dir: &std::path::Path, llm: &LlmServer, discord: &DiscordServer) {
    let text = format!(
        "{{ agents: {{ defaults: {{ model: {{ primary: 'mock/mock-model' }} }} }},
  models: {{ providers: {{ mock: {{ baseUrl: '{}', apiKey: '{API_KEY}', api: 'openai-completions',
    models: [{{ id: 'mock-model' }}] }} }} }},
  channels: {{ discord: {{ token: '{BOT_TOKEN}', apiRoot: '{}', dmPolicy: 'allowlist',
    allowFrom: ['discord:u7'], guilds: {{ g1: {{ requireMention: true }} }} }} }} }}\n",
        llm.base_url(),
        discord.api_root()
    );
    std::fs::write(dir.join("config.json5"), text).expect("config");
}

const REPLY: &str = "Hello from the mock. You said: ";

#[test]
fn dms_are_answered_once_across_reconnects_and_restarts() {
    let llm = LlmServer::start();
    let discord = DiscordServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), &llm, &discord);
    let (running, _, _) = start_with(dir.path(), &["--token", TOKEN]);
    discord.wait_for("identify", |d| !d.received(2).is_empty());
    let identify = &discord.received(2)[0];
    let intents = identify["intents"].as_u64().expect("intents");
    assert_eq!(intents & (1 << 15), 1 << 15, "the Message Content intent");
    assert_eq!(intents & (1 << 12), 1 << 12, "direct messages");

    discord.push_message("dm1", "u7", "first", None);
    discord.wait_for("the first reply", |d| !d.created("dm1").is_empty());
    discord.wait_for("heartbeats", |d| d.received(1).len() >= 2);

    // Discord asks for a reconnect: the client resumes the session.
    discord.ask_reconnect();
    discord.wait_for("a resume", |d| !d.received(6).is_empty());
    assert_eq!(discord.received(6)[0]["session_id"], "session-1");
    discord.push_message("dm1", "u7", "second", None);
    discord.wait_for("the second reply", |d| d.created("dm1").len() == 2);
    stop(running);

    // A message while the gateway is down: the next process resumes from
    // the log's cursor and Discord replays it.
    discord.push_message("dm1", "u7", "third", None);
    let (running, _, _) = start_with(dir.path(), &["--token", TOKEN]);
    discord.wait_for("the third reply", |d| d.created("dm1").len() == 3);
    let resumes = discord.received(6);
    assert_eq!(
        resumes.last().expect("resume")["seq"],
        json!(2),
        "resumed after the last recorded message"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        discord.created("dm1"),
        vec![
            format!("{REPLY}first"),
            format!("{REPLY}second"),
            format!("{REPLY}third")
        ]
    );
    assert_eq!(llm.requests().len(), 3, "one model call per message");

    // Guild messages: only in a listed guild, only when mentioned.
    discord.push_message("c5", "u9", "no mention here", Some("g1"));
    discord.push_message(
        "c5",
        "u9",
        &format!("<@{BOT_ID}> with a mention"),
        Some("g1"),
    );
    discord.push_message("c6", "u9", &format!("<@{BOT_ID}> other guild"), Some("g2"));
    discord.wait_for("the guild reply", |d| !d.created("c5").is_empty());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        discord.created("c5"),
        vec![format!("{REPLY}useru9: <@{BOT_ID}> with a mention")]
    );
    assert!(discord.created("c6").is_empty());
    stop(running);

    let records = log_records(dir.path(), 500);
    let received: Vec<&Value> = records
        .iter()
        .filter(|r| r["kind"] == "channel.message.received")
        .collect();
    assert_eq!(received.len(), 6, "each message recorded once");
    let guild_session = received
        .iter()
        .find_map(|r| {
            r["event"]["ChannelMessageReceived"]["admission"]["Admitted"]["session_key"]
                .as_str()
                .filter(|key| key.contains("discord"))
        })
        .expect("a guild session");
    assert_eq!(guild_session, "agent:main:discord:channel:c5");
}

#[test]
fn a_rate_limit_is_waited_out_and_a_cut_short_send_is_resent_under_its_nonce() {
    let llm = LlmServer::start();
    let discord = DiscordServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), &llm, &discord);
    discord.fail_next_sends(0.5, 1);
    let (running, _, _) = start_with(dir.path(), &["--token", TOKEN]);
    discord.wait_for("identify", |d| !d.received(2).is_empty());
    discord.push_message("dm1", "u7", "one", None);
    discord.wait_for("the reply after a 429", |d| d.created("dm1").len() == 1);
    assert_eq!(discord.posts().len(), 2, "one refused, one created");

    discord.stall_sends(true);
    discord.push_message("dm1", "u7", "two", None);
    discord.wait_for("the stalled send", |d| d.posts().len() == 3);
    drop(running); // SIGKILL: prepared, created on Discord's side, never confirmed
    discord.stall_sends(false);
    let (running, _, _) = start_with(dir.path(), &["--token", TOKEN]);
    discord.wait_for("the resend", |d| d.posts().len() == 4);
    let posts = discord.posts();
    assert_eq!(posts[2].1, posts[3].1, "resent under the same nonce");
    assert_eq!(posts[2].1.len(), 25);
    assert_eq!(
        discord.created("dm1").len(),
        2,
        "Discord created the message once"
    );
    stop(running);
    let records = log_records(dir.path(), 300);
    let failed: Vec<&Value> = records
        .iter()
        .filter(|r| r["kind"] == "delivery.failed")
        .collect();
    assert_eq!(failed.len(), 1, "only the 429: {failed:?}");
    assert_eq!(
        records
            .iter()
            .filter(|r| r["kind"] == "delivery.sent")
            .count(),
        2
    );
}
