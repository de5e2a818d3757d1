//! Several accounts of one channel (OpenClaw's `channels.<ch>.accounts`):
//! two Telegram bots, each against its own local Bot API (`telegram_server`,
//! one token each, so a bot polled with the other's token would be refused),
//! sharing the root's allowlist; each polls, records and answers on its own
//! account, routed by `match.accountId` into per-account session keys;
//! `channels.status` lists both; `channels.stop`/`start` and `send` take an
//! `accountId`; after a restart each resumes from its own cursor.
//! `channels.logout` stops an account, deletes its Telegram webhook and
//! records who did it.

use std::time::Duration;

use serde_json::{Value, json};

use crate::agent::request;
use crate::gateway::{start_with, stop};
use crate::llm_server::{API_KEY, LlmServer};
use crate::protocol::{TOKEN, connected, runtime};
use crate::support::log_records;
use crate::telegram_server::TelegramServer;

const OWNER: i64 = 7;
const HOME_TOKEN: &str = "111:home-token";
const WORK_TOKEN: &str = "222:work-token";

fn received(dir: &std::path::Path) -> Vec<Value> {
    log_records(dir, 400)
        .iter()
        .filter(|record| record["kind"] == "channel.message.received")
        .filter_map(|record| record["event"].as_object()?.values().next().cloned())
        .collect()
}

#[test]
fn two_telegram_bots_run_side_by_side_each_on_its_own_account() {
    let llm = LlmServer::start();
    let home = TelegramServer::start_bot(HOME_TOKEN, 11, "home_bot");
    let work = TelegramServer::start_bot(WORK_TOKEN, 22, "work_bot");
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        "{{ agents: {{ defaults: {{ model: {{ primary: 'mock/mock-model' }} }}, entries: {{ main: {{}}, work: {{}} }} }},
  models: {{ providers: {{ mock: {{ baseUrl: '{}', apiKey: '{API_KEY}', api: 'openai-completions',
    models: [{{ id: 'mock-model' }}] }} }} }},
  session: {{ dmScope: 'per-account-channel-peer' }},
  bindings: [{{ agentId: 'work', match: {{ channel: 'telegram', accountId: 'work' }} }}],
  channels: {{ telegram: {{ dmPolicy: 'allowlist', allowFrom: ['tg:{OWNER}'],
    accounts: {{ default: {{ botToken: '{HOME_TOKEN}', apiRoot: '{}' }},
                 Work: {{ botToken: '{WORK_TOKEN}', apiRoot: '{}' }} }} }} }} }}\n",
        llm.base_url(),
        home.api_root(),
        work.api_root(),
    );
    std::fs::write(dir.path().join("config.json5"), text).expect("config");
    let (running, address, _) = start_with(dir.path(), &["--token", TOKEN]);

    home.push_text(OWNER, OWNER, "hi home");
    work.push_text(OWNER, OWNER, "hi work");
    home.wait_for("home's reply", |t| !t.sent_to(OWNER).is_empty());
    work.wait_for("work's reply", |t| !t.sent_to(OWNER).is_empty());
    assert_eq!(
        home.sent_to(OWNER),
        vec!["Hello from the mock. You said: hi home"]
    );
    assert_eq!(
        work.sent_to(OWNER),
        vec!["Hello from the mock. You said: hi work"]
    );

    runtime().block_on(async {
        let (mut socket, _) = connected(&address, &["operator.admin"]).await;
        let (answers, _) = request(&mut socket, "st", "channels.status", json!({}), 1).await;
        let status = &answers[0]["payload"];
        let accounts = status["channelAccounts"]["telegram"]
            .as_array()
            .expect("accounts");
        let ids: Vec<&str> = accounts
            .iter()
            .filter_map(|account| account["accountId"].as_str())
            .collect();
        assert_eq!(ids, vec!["default", "work"], "{status}");
        assert!(accounts.iter().all(|account| account["running"] == true));
        assert_eq!(status["channelDefaultAccountId"]["telegram"], "default");

        // Stopping one account leaves the other answering.
        let (stopped, _) = request(
            &mut socket,
            "stop",
            "channels.stop",
            json!({"channel": "telegram", "accountId": "work"}),
            1,
        )
        .await;
        assert_eq!(stopped[0]["payload"]["accountIds"], json!(["work"]));
        let (unknown, _) = request(
            &mut socket,
            "stop2",
            "channels.stop",
            json!({"channel": "telegram", "accountId": "play"}),
            1,
        )
        .await;
        assert_eq!(unknown[0]["ok"], false, "{unknown:?}");

        // `send` names the account whose bot sends.
        let (sent, _) = request(
            &mut socket,
            "send",
            "send",
            json!({"to": "tg:42", "message": "from work", "accountId": "work",
                   "channel": "telegram", "idempotencyKey": "acc-1"}),
            1,
        )
        .await;
        assert_eq!(sent[0]["ok"], true, "{sent:?}");
        let (sent, _) = request(
            &mut socket,
            "send2",
            "send",
            json!({"to": "tg:42", "message": "from home", "channel": "telegram",
                   "idempotencyKey": "acc-2"}),
            1,
        )
        .await;
        assert_eq!(sent[0]["ok"], true, "{sent:?}");
        let (missing, _) = request(
            &mut socket,
            "send3",
            "send",
            json!({"to": "tg:42", "message": "x", "accountId": "play",
                   "channel": "telegram", "idempotencyKey": "acc-3"}),
            1,
        )
        .await;
        assert_eq!(
            missing[0]["error"]["message"], "telegram has no account \"play\"",
            "{missing:?}"
        );
    });
    assert_eq!(work.sent_to(42), vec!["from work"]);
    assert_eq!(home.sent_to(42), vec!["from home"]);

    // While work is stopped its message waits at Telegram; home answers.
    let polls = work.calls("getUpdates").len();
    work.push_text(OWNER, OWNER, "work again");
    home.push_text(OWNER, OWNER, "home again");
    home.wait_for("home's second reply", |t| t.sent_to(OWNER).len() == 2);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        work.sent_to(OWNER).len(),
        1,
        "a stopped account answers nothing"
    );
    assert!(work.calls("getUpdates").len() <= polls + 1);

    runtime().block_on(async {
        let (mut socket, _) = connected(&address, &["operator.admin"]).await;
        let (started, _) = request(
            &mut socket,
            "start",
            "channels.start",
            json!({"channel": "telegram", "accountId": "work"}),
            1,
        )
        .await;
        assert_eq!(started[0]["payload"]["accountIds"], json!(["work"]));
    });
    work.wait_for("work's second reply", |t| t.sent_to(OWNER).len() == 2);
    stop(running);

    // After a restart, each account asks Telegram from its own cursor.
    let (running, _, _) = start_with(dir.path(), &["--token", TOKEN]);
    let (home_polls, work_polls) = (
        home.calls("getUpdates").len(),
        work.calls("getUpdates").len(),
    );
    home.wait_for("home polls again", |t| {
        t.calls("getUpdates").len() > home_polls
    });
    work.wait_for("work polls again", |t| {
        t.calls("getUpdates").len() > work_polls
    });
    assert_eq!(home.calls("getUpdates")[home_polls]["offset"], json!(3));
    assert_eq!(work.calls("getUpdates")[work_polls]["offset"], json!(3));
    stop(running);

    let received = received(dir.path());
    let by_account = |account: &str| -> Vec<&Value> {
        received
            .iter()
            .filter(|event| event["account_id"] == account)
            .collect()
    };
    assert_eq!(by_account("default").len(), 2, "{received:?}");
    assert_eq!(by_account("work").len(), 2, "{received:?}");
    assert_eq!(
        by_account("default")[0]["admission"]["Admitted"]["session_key"],
        "agent:main:telegram:default:direct:7"
    );
    assert_eq!(
        by_account("work")[0]["admission"]["Admitted"]["session_key"],
        "agent:work:telegram:work:direct:7"
    );
}

#[test]
fn logout_stops_an_account_deletes_its_webhook_and_is_recorded() {
    let llm = LlmServer::start();
    let work = TelegramServer::start_bot(WORK_TOKEN, 22, "work_bot");
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        "{{ agents: {{ defaults: {{ model: {{ primary: 'mock/mock-model' }} }} }},
  models: {{ providers: {{ mock: {{ baseUrl: '{}', apiKey: '{API_KEY}', api: 'openai-completions',
    models: [{{ id: 'mock-model' }}] }} }} }},
  channels: {{ telegram: {{ accounts: {{ work: {{ botToken: '{WORK_TOKEN}', apiRoot: '{}',
    webhookUrl: 'https://bot.example/tg', webhookSecret: 'work-secret-123' }} }} }} }} }}\n",
        llm.base_url(),
        work.api_root(),
    );
    std::fs::write(dir.path().join("config.json5"), text).expect("config");
    let (running, address, _) = start_with(dir.path(), &["--token", TOKEN]);
    work.wait_for("setWebhook", |t| !t.calls("setWebhook").is_empty());

    runtime().block_on(async {
        let (mut socket, _) = connected(&address, &["operator.admin"]).await;
        let (missing, _) = request(
            &mut socket,
            "l0",
            "channels.logout",
            json!({"channel": "telegram", "accountId": "home"}),
            1,
        )
        .await;
        assert_eq!(missing[0]["ok"], false, "{missing:?}");
        // Without accountId: the channel's default account, here its only one.
        let (answers, _) = request(
            &mut socket,
            "l1",
            "channels.logout",
            json!({"channel": "telegram"}),
            1,
        )
        .await;
        let answer = &answers[0]["payload"];
        assert_eq!(answers[0]["ok"], true, "{answers:?}");
        assert_eq!(answer["channel"], "telegram");
        assert_eq!(answer["accountId"], "work");
        assert_eq!(answer["cleared"], true);
        assert_eq!(answer["loggedOut"], true);
        assert!(
            answer["actions"].to_string().contains("deleteWebhook"),
            "{answer}"
        );
        let (status, _) = request(&mut socket, "st", "channels.status", json!({}), 1).await;
        let account = &status[0]["payload"]["channelAccounts"]["telegram"][0];
        assert_eq!(account["running"], false, "{account}");
    });
    assert_eq!(work.calls("deleteWebhook").len(), 1);
    stop(running);

    let logged_out: Vec<Value> = log_records(dir.path(), 200)
        .iter()
        .filter(|record| record["kind"] == "channel.logged.out")
        .filter_map(|record| record["event"].as_object()?.values().next().cloned())
        .collect();
    assert_eq!(logged_out.len(), 1, "{logged_out:?}");
    assert_eq!(logged_out[0]["account_id"], "work");
    assert_eq!(logged_out[0]["cleared"], true);
    assert!(
        !logged_out[0].to_string().contains(WORK_TOKEN),
        "no token in the record"
    );
}
