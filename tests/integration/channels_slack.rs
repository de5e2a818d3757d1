//! Slack against a local Socket Mode + Web API server (`slack_server`):
//! envelopes acknowledged after the record, a retried event answered once,
//! a refresh `disconnect` followed by a new connection, channel rules and
//! mentions, replies in the message's thread, a 429 waited out, and a post
//! cut short by a crash reported rather than repeated.

use std::time::Duration;

use serde_json::Value;

use crate::gateway::{start_with, stop};
use crate::llm_server::{API_KEY, LlmServer};
use crate::protocol::TOKEN;
use crate::slack_server::{APP_TOKEN, BOT_TOKEN, BOT_USER, SlackServer};
use crate::support::log_records;

const REPLY: &str = "Hello from the mock. You said: ";

fn write_config(dir: &std::path::Path, llm: &LlmServer, slack: &SlackServer) {
    let text = format!(
        "{{ agents: {{ defaults: {{ model: {{ primary: 'mock/mock-model' }} }} }},
  models: {{ providers: {{ mock: {{ baseUrl: '{}', apiKey: '{API_KEY}', api: 'openai-completions',
    models: [{{ id: 'mock-model' }}] }} }} }},
  channels: {{ slack: {{ mode: 'socket', botToken: '{BOT_TOKEN}', appToken: '{APP_TOKEN}', apiRoot: '{}',
    dmPolicy: 'allowlist', allowFrom: ['U7'], channels: {{ C1: {{ requireMention: true, users: ['*'] }} }} }} }} }}\n",
        llm.base_url(),
        slack.api_root()
    );
    std::fs::write(dir.join("config.json5"), text).expect("config");
}

#[test]
fn events_are_acknowledged_after_the_record_and_answered_once() {
    let llm = LlmServer::start();
    let slack = SlackServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), &llm, &slack);
    let (running, _, _) = start_with(dir.path(), &["--token", TOKEN]);
    slack.wait_for("the socket", |s| s.opens() == 1);
    std::thread::sleep(Duration::from_millis(300));

    let first = slack.push_message("D1", "im", "U7", "hello slack");
    slack.wait_for("the reply", |s| !s.texts_to("D1").is_empty());
    slack.wait_for("the acknowledgement", |s| {
        s.acks().contains(&"env-0-0".to_owned())
    });
    slack.retry(first);
    slack.wait_for("the retry's acknowledgement", |s| {
        s.acks().contains(&"env-0-1".to_owned())
    });

    slack.disconnect();
    slack.wait_for("a new connection", |s| s.opens() == 2);
    std::thread::sleep(Duration::from_millis(300));
    slack.push_message("C1", "channel", "U9", "no mention");
    let mention = format!("<@{BOT_USER}> in the channel");
    slack.push_message("C1", "channel", "U9", &mention);
    slack.push_message("D2", "im", "U8", "a stranger");
    slack.wait_for("the channel reply", |s| !s.texts_to("C1").is_empty());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        slack.texts_to("D1"),
        vec![format!("{REPLY}hello slack")],
        "the retry is not answered"
    );
    assert_eq!(slack.texts_to("C1"), vec![format!("{REPLY}U9: {mention}")]);
    assert!(slack.texts_to("D2").is_empty(), "not in allowFrom");
    assert_eq!(llm.requests().len(), 2);
    stop(running);
    let records = log_records(dir.path(), 400);
    let sessions: Vec<&str> = records
        .iter()
        .filter_map(|r| {
            r["event"]["ChannelMessageReceived"]["admission"]["Admitted"]["session_key"].as_str()
        })
        .collect();
    assert_eq!(sessions, ["agent:main:main", "agent:main:slack:channel:c1"]);
    let refused = records
        .iter()
        .filter(|r| r["event"]["ChannelMessageReceived"]["admission"]["Refused"].is_object())
        .count();
    assert_eq!(
        refused, 2,
        "the unmentioned channel message and the stranger"
    );
}

#[test]
fn a_rate_limit_is_waited_out_and_a_cut_short_post_is_reported() {
    let llm = LlmServer::start();
    let slack = SlackServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), &llm, &slack);
    slack.fail_next_sends(1, 1);
    let (running, _, _) = start_with(dir.path(), &["--token", TOKEN]);
    slack.wait_for("the socket", |s| s.opens() == 1);
    std::thread::sleep(Duration::from_millis(300));
    let started = std::time::Instant::now();
    slack.push_message("D1", "im", "U7", "one");
    slack.wait_for("the reply after a 429", |s| !s.texts_to("D1").is_empty());
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );

    slack.stall_sends(true);
    slack.push_message("D1", "im", "U7", "two");
    slack.wait_for("the stalled post", |s| s.texts_to("D1").len() == 2);
    drop(running); // SIGKILL between the post and its answer
    slack.stall_sends(false);
    let (running, _, _) = start_with(dir.path(), &["--token", TOKEN]);
    slack.wait_for("the new socket", |s| s.opens() == 2);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(slack.texts_to("D1").len(), 2, "not posted a second time");
    stop(running);
    let records = log_records(dir.path(), 300);
    let failed: Vec<&Value> = records
        .iter()
        .filter(|r| r["kind"] == "delivery.failed")
        .collect();
    assert_eq!(
        failed.len(),
        2,
        "the 429 and the unconfirmed post: {failed:?}"
    );
    let last = failed[1]["event"]["DeliveryFailed"]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(
        last.contains("cannot tell whether a message was posted"),
        "{last}"
    );
}
