//! Matrix against a real Synapse (installed from PyPI by
//! `tests/matrix/install.sh`): a user DMs the bot and gets the agent's
//! reply; the gateway restarts mid-conversation and neither loses nor
//! repeats a message; a room answers only when the bot is mentioned; a
//! reply whose send was cut short by a SIGKILL is sent again under the
//! same transaction id and shows once; Synapse's 429s are waited out; an
//! encrypted message is refused with its reason; an image is downloaded
//! through authenticated media and noted for the model once, and `send`
//! uploads a file and posts it as an `m.image`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::agent::request;
use crate::gateway::{start_with, stop};
use crate::llm_server::{API_KEY, LlmServer};
use crate::protocol::{TOKEN, connected, runtime};
use crate::support::log_records;
use crate::synapse::{Limits, Proxy, Synapse, User, wait_for};

const REPLY_WITHIN: Duration = Duration::from_secs(30);

/// `auth` is the account's credentials (`accessToken: ...` or `userId`
/// and `password`).
fn write_config(dir: &std::path::Path, llm: &LlmServer, homeserver: &str, auth: &str, extra: &str) {
    let text = format!(
        "{{ agents: {{ defaults: {{ model: {{ primary: 'mock/mock-model' }} }} }},
  models: {{ providers: {{ mock: {{ baseUrl: '{}', apiKey: '{API_KEY}', api: 'openai-completions',
    models: [{{ id: 'mock-model' }}] }} }} }},
  session: {{ dmScope: 'per-channel-peer' }},
  channels: {{ matrix: {{ homeserver: '{homeserver}', {auth}, autoJoin: 'always',
    dm: {{ policy: 'allowlist', allowFrom: ['@alice:localhost'] }},
    groupPolicy: 'open', {extra} }} }} }}\n",
        llm.base_url(),
    );
    std::fs::write(dir.join("config.json5"), text).expect("config");
}

fn kinds(records: &[Value], kind: &str) -> Vec<Value> {
    records
        .iter()
        .filter(|record| record["kind"] == kind)
        .filter_map(|record| record["event"].as_object()?.values().next().cloned())
        .collect()
}

fn reply_to(text: &str) -> String {
    format!("Hello from the mock. You said: {text}")
}

/// Invites the bot into a DM from `alice` and waits until it has joined.
fn dm_with_bot(synapse: &Synapse, alice: &User, bot: &User) -> String {
    let room = synapse.create_dm(alice, bot);
    wait_for("the bot to accept the DM invite", REPLY_WITHIN, || {
        synapse.joined(alice, &room).contains(&bot.id)
    });
    room
}

#[test]
fn a_dm_and_a_room_are_answered_once_across_restarts() {
    let synapse = Synapse::start(None);
    let llm = LlmServer::start();
    let (bot, alice, bob) = (
        synapse.register("bot"),
        synapse.register("alice"),
        synapse.register("bob"),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let auth = format!("userId: '{}', password: '{}'", bot.id, bot.password);
    write_config(
        dir.path(),
        &llm,
        &synapse.url(),
        &auth,
        "groups: { '*': { requireMention: true } }",
    );
    let (running, address, _) = start_with(dir.path(), &["--token", TOKEN]);

    let dm = dm_with_bot(&synapse, &alice, &bot);
    synapse.say(&alice, &dm, "hello bot");
    wait_for("the reply in the DM", REPLY_WITHIN, || {
        !synapse.said_by(&alice, &dm, &bot).is_empty()
    });
    assert_eq!(
        synapse.said_by(&alice, &dm, &bot),
        vec![reply_to("hello bot")]
    );

    runtime().block_on(async {
        let (mut socket, _) = connected(&address, &["operator.read"]).await;
        let (answers, _) = request(&mut socket, "st", "channels.status", json!({}), 1).await;
        let account = &answers[0]["payload"]["channelAccounts"]["matrix"][0];
        assert_eq!(account["connected"], true, "{account}");
        assert_eq!(account["mode"], "sync");
        assert!(
            !answers[0].to_string().contains(&bot.password),
            "no password in the status"
        );
    });
    stop(running);

    // Said while the gateway was down: answered after the restart.
    synapse.say(&alice, &dm, "are you back");
    let (running, _, _) = start_with(dir.path(), &["--token", TOKEN]);
    wait_for("the reply after the restart", REPLY_WITHIN, || {
        synapse.said_by(&alice, &dm, &bot).len() == 2
    });

    // A room: answered only when the bot is mentioned.
    let room = synapse.create_room(&alice, &[&bot, &bob]);
    synapse.join(&bob, &room);
    wait_for("the bot to join the room", REPLY_WITHIN, || {
        synapse.joined(&alice, &room).contains(&bot.id)
    });
    synapse.say(&alice, &room, "just chatting among ourselves");
    let root = synapse.say(&alice, &room, &format!("{} what is up", bot.id));
    wait_for("the reply in the room", REPLY_WITHIN, || {
        !synapse.said_by(&alice, &room, &bot).is_empty()
    });
    // A thread in the room: its own session, and the reply goes into it.
    let threaded = json!({"msgtype": "m.text", "body": format!("{} and in here?", bot.id),
        "m.relates_to": {"rel_type": "m.thread", "event_id": root}});
    synapse.send(&alice, &room, "m.room.message", threaded);
    wait_for("the reply in the thread", REPLY_WITHIN, || {
        synapse.said_by(&alice, &room, &bot).len() == 2
    });
    let in_thread = synapse
        .events(&alice, &room)
        .into_iter()
        .rfind(|event| event["sender"] == bot.id.as_str())
        .expect("the bot's reply");
    assert_eq!(in_thread["content"]["m.relates_to"]["rel_type"], "m.thread");
    assert_eq!(
        in_thread["content"]["m.relates_to"]["event_id"],
        root.as_str()
    );
    stop(running);

    // A third start syncs from the recorded cursor: nothing is answered twice.
    let (running, _, _) = start_with(dir.path(), &["--token", TOKEN]);
    std::thread::sleep(Duration::from_secs(3));
    stop(running);
    assert_eq!(
        synapse.said_by(&alice, &dm, &bot),
        vec![reply_to("hello bot"), reply_to("are you back")]
    );
    let in_room = synapse.said_by(&alice, &room, &bot);
    assert_eq!(in_room.len(), 2, "{in_room:?}");
    assert!(in_room[0].ends_with("what is up"), "{in_room:?}");
    assert!(in_room[1].ends_with("and in here?"), "{in_room:?}");
    assert_eq!(
        llm.requests().len(),
        4,
        "one model call per answered message"
    );

    let records = log_records(dir.path(), 600);
    let received = kinds(&records, "channel.message.received");
    assert_eq!(
        received.len(),
        5,
        "each message recorded once: {received:#?}"
    );
    let first = &received[0];
    assert_eq!(first["channel"], "matrix");
    assert_eq!(first["chat_kind"], "direct");
    assert_eq!(first["sender_id"], alice.id);
    assert!(
        first["platform_message_id"]
            .as_str()
            .is_some_and(|id| id.starts_with('$'))
    );
    assert_eq!(
        first["admission"]["Admitted"]["session_key"],
        "agent:main:matrix:direct:@alice:localhost"
    );
    let refused = &received[2];
    assert_eq!(refused["chat_kind"], "channel");
    assert!(
        refused["admission"]["Refused"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("mentioned")),
        "{refused}"
    );
    assert_eq!(
        received[3]["admission"]["Admitted"]["session_key"],
        format!("agent:main:matrix:channel:{}", room.to_lowercase())
    );
    assert_eq!(
        received[4]["admission"]["Admitted"]["session_key"],
        format!(
            "agent:main:matrix:channel:{}:thread:{}",
            room.to_lowercase(),
            root.to_lowercase()
        )
    );
    // The last message of a sync batch carries Synapse's next_batch.
    assert!(
        received[4]["cursor"]
            .as_str()
            .is_some_and(|cursor| cursor.starts_with('s')),
        "{}",
        received[4]
    );
    assert_eq!(kinds(&records, "delivery.sent").len(), 4);
    let log = records.iter().map(Value::to_string).collect::<String>();
    assert!(
        !log.contains(&bot.password),
        "the password never enters the log"
    );
}

#[test]
fn a_send_cut_short_by_a_sigkill_is_resent_under_its_txn_id_and_shows_once() {
    let synapse = Synapse::start(None);
    let proxy = Proxy::start(&synapse.url());
    let llm = LlmServer::start();
    let (bot, alice) = (synapse.register("bot"), synapse.register("alice"));
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(
        dir.path(),
        &llm,
        &proxy.url(),
        &format!("accessToken: '{}'", bot.token),
        "",
    );
    let (running, _, _) = start_with(dir.path(), &["--token", TOKEN]);
    let dm = dm_with_bot(&synapse, &alice, &bot);

    proxy.stall_sends(true);
    synapse.say(&alice, &dm, "hello");
    // Synapse made the event; the gateway never heard back.
    wait_for("the stalled send to reach synapse", REPLY_WITHIN, || {
        !synapse.said_by(&alice, &dm, &bot).is_empty()
    });
    drop(running); // SIGKILL between delivery.prepared and its outcome
    proxy.stall_sends(false);

    let (running, _, _) = start_with(dir.path(), &["--token", TOKEN]);
    wait_for("the resend under the same txn id", REPLY_WITHIN, || {
        proxy.sends.load(std::sync::atomic::Ordering::SeqCst) >= 2
    });
    std::thread::sleep(Duration::from_millis(500));
    stop(running);

    let replies = synapse.messages(&alice, &dm);
    let from_bot: Vec<_> = replies
        .iter()
        .filter(|(sender, _, _)| *sender == bot.id)
        .collect();
    assert_eq!(from_bot.len(), 1, "sent twice, shown once: {replies:?}");
    assert_eq!(from_bot[0].1, reply_to("hello"));
    assert_eq!(llm.requests().len(), 1, "the turn is not run again");
    let records = log_records(dir.path(), 300);
    assert_eq!(kinds(&records, "delivery.prepared").len(), 1);
    let sent = kinds(&records, "delivery.sent");
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        sent[0]["platform_message_id"],
        from_bot[0].2.as_str(),
        "Synapse answered the first event again"
    );
    assert!(kinds(&records, "delivery.failed").is_empty());
    let log = records.iter().map(Value::to_string).collect::<String>();
    assert!(
        !log.contains(&bot.token),
        "the access token never enters the log"
    );
}

#[test]
fn synapse_rate_limits_are_waited_out_and_encrypted_messages_refused() {
    // Two sends at once, then one every 2 s: a reply in three parts meets
    // M_LIMIT_EXCEEDED on its third.
    let synapse = Synapse::start(Some(Limits {
        per_second: 0.5,
        burst: 2,
    }));
    let llm = LlmServer::start();
    let (bot, alice) = (synapse.register("bot"), synapse.register("alice"));
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(
        dir.path(),
        &llm,
        &synapse.url(),
        &format!("accessToken: '{}'", bot.token),
        "textChunkLimit: 16",
    );
    let (running, _, _) = start_with(dir.path(), &["--token", TOKEN]);
    let dm = dm_with_bot(&synapse, &alice, &bot);

    let encrypted = json!({"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgAEpAB", "session_id": "s", "device_id": "D", "sender_key": "k"});
    synapse.send(&alice, &dm, "m.room.encrypted", encrypted);
    let started = std::time::Instant::now();
    synapse.say(&alice, &dm, "rate me");
    let expected = reply_to("rate me");
    wait_for("every part of the reply", REPLY_WITHIN, || {
        synapse
            .said_by(&alice, &dm, &bot)
            .concat()
            .split_whitespace()
            .collect::<String>()
            == expected.split_whitespace().collect::<String>()
    });
    let parts = synapse.said_by(&alice, &dm, &bot);
    assert!(parts.len() >= 3, "{parts:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the 429's wait was honoured"
    );
    stop(running);

    let records = log_records(dir.path(), 400);
    let failed = kinds(&records, "delivery.failed");
    assert!(!failed.is_empty(), "a part met the rate limit");
    for failure in &failed {
        assert_eq!(failure["retryable"], true, "{failure}");
        assert!(
            failure["error"]
                .as_str()
                .is_some_and(|e| e.contains("M_LIMIT_EXCEEDED")),
            "{failure}"
        );
    }
    assert_eq!(kinds(&records, "delivery.sent").len(), parts.len());
    let received = kinds(&records, "channel.message.received");
    assert_eq!(received.len(), 2, "{received:#?}");
    let reason = received[0]["admission"]["Refused"]["reason"]
        .as_str()
        .unwrap_or_default();
    assert!(reason.contains("encrypt"), "{reason}");
    assert_eq!(
        llm.requests().len(),
        1,
        "the encrypted message is not answered"
    );
}

#[test]
fn messages_missed_past_one_sync_are_read_back_not_skipped() {
    let synapse = Synapse::start(None);
    let llm = LlmServer::start();
    let (bot, alice, bob) = (
        synapse.register("bot"),
        synapse.register("alice"),
        synapse.register("bob"),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(
        dir.path(),
        &llm,
        &synapse.url(),
        &format!("accessToken: '{}'", bot.token),
        "groups: { '*': { requireMention: true } }",
    );
    let (running, _, _) = start_with(dir.path(), &["--token", TOKEN]);
    let room = synapse.create_room(&alice, &[&bot, &bob]);
    synapse.join(&bob, &room);
    wait_for("the bot to join the room", REPLY_WITHIN, || {
        synapse.joined(&alice, &room).contains(&bot.id)
    });
    synapse.say(&alice, &room, &format!("{} first", bot.id));
    wait_for("the first reply", REPLY_WITHIN, || {
        !synapse.said_by(&alice, &room, &bot).is_empty()
    });
    stop(running);

    // More than one sync returns (100 a room) while the gateway is down.
    let missed = 130;
    for n in 0..missed {
        synapse.say(&bob, &room, &format!("chatter {n}"));
    }
    synapse.say(&alice, &room, &format!("{} last", bot.id));
    let (running, _, _) = start_with(dir.path(), &["--token", TOKEN]);
    wait_for("the reply to the last message", REPLY_WITHIN, || {
        synapse.said_by(&alice, &room, &bot).len() == 2
    });
    stop(running);

    let records = log_records(dir.path(), 2_000);
    let received = kinds(&records, "channel.message.received");
    let texts: Vec<&str> = received
        .iter()
        .map(|event| event["text"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(texts.len(), missed + 2, "every message recorded once");
    for n in 0..missed {
        assert_eq!(texts[n + 1], format!("chatter {n}"), "in order");
    }
    assert_eq!(llm.requests().len(), 2);
}

#[test]
fn logout_revokes_a_password_login_and_leaves_a_configured_token() {
    let synapse = Synapse::start(None);
    let llm = LlmServer::start();
    let (bot, alice) = (synapse.register("bot"), synapse.register("alice"));
    let dir = tempfile::tempdir().expect("tempdir");
    let auth = format!("userId: '{}', password: '{}'", bot.id, bot.password);
    write_config(dir.path(), &llm, &synapse.url(), &auth, "");
    let (running, address, _) = start_with(dir.path(), &["--token", TOKEN]);
    // The bot accepting the invite proves it logged in and syncs.
    dm_with_bot(&synapse, &alice, &bot);
    let clawback_devices = || -> Vec<String> {
        synapse.call("GET", "/_matrix/client/v3/devices", Some(&bot.token), None)["devices"]
            .as_array()
            .expect("devices")
            .iter()
            .filter_map(|device| device["device_id"].as_str())
            .filter(|id| id.starts_with("CLAWBACK"))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(clawback_devices().len(), 1, "the login made one device");

    runtime().block_on(async {
        let (mut socket, _) = connected(&address, &["operator.admin"]).await;
        let (answers, _) = request(
            &mut socket,
            "out",
            "channels.logout",
            json!({"channel": "matrix", "accountId": "default"}),
            1,
        )
        .await;
        assert_eq!(answers[0]["ok"], true, "{answers:?}");
        let answer = &answers[0]["payload"];
        assert_eq!(answer["cleared"], true, "{answer}");
        assert!(
            answer["actions"].to_string().contains("logged out device"),
            "{answer}"
        );
    });
    assert!(
        clawback_devices().is_empty(),
        "the device and its token are gone"
    );
    stop(running);

    // A configured access token is the operator's: logout leaves it valid.
    write_config(
        dir.path(),
        &llm,
        &synapse.url(),
        &format!("accessToken: '{}'", bot.token),
        "",
    );
    let (running, address, _) = start_with(dir.path(), &["--token", TOKEN]);
    runtime().block_on(async {
        let (mut socket, _) = connected(&address, &["operator.admin"]).await;
        let (answers, _) = request(
            &mut socket,
            "out2",
            "channels.logout",
            json!({"channel": "matrix"}),
            1,
        )
        .await;
        assert_eq!(answers[0]["payload"]["cleared"], false, "{answers:?}");
    });
    synapse.call(
        "GET",
        "/_matrix/client/v3/account/whoami",
        Some(&bot.token),
        None,
    );
    stop(running);
    let records = log_records(dir.path(), 400);
    let logged_out = kinds(&records, "channel.logged.out");
    assert_eq!(logged_out.len(), 2, "{logged_out:?}");
    assert!(!logged_out[0].to_string().contains(&bot.password));
}

#[test]
fn invites_are_recorded_and_decided_by_policy_and_a_restart_before_any_message_resumes() {
    let synapse = Synapse::start(None);
    let llm = LlmServer::start();
    let (bot, alice, mallory) = (
        synapse.register("bot"),
        synapse.register("alice"),
        synapse.register("mallory"),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(
        dir.path(),
        &llm,
        &synapse.url(),
        &format!("accessToken: '{}'", bot.token),
        "",
    );
    let (running, _, _) = start_with(dir.path(), &["--token", TOKEN]);
    // A DM from someone the DM policy does not admit is not joined...
    let refused = synapse.create_dm(&mallory, &bot);
    // ...and one from an allowed sender is.
    let dm = dm_with_bot(&synapse, &alice, &bot);
    assert!(!synapse.joined(&mallory, &refused).contains(&bot.id));
    stop(running);

    // Said before the bot ever answered anything: the restart resumes from
    // the recorded first-sync position, not from "now".
    synapse.say(&alice, &dm, "are you there");
    let (running, _, _) = start_with(dir.path(), &["--token", TOKEN]);
    wait_for("the reply after the restart", REPLY_WITHIN, || {
        !synapse.said_by(&alice, &dm, &bot).is_empty()
    });
    assert_eq!(
        synapse.said_by(&alice, &dm, &bot),
        vec![reply_to("are you there")]
    );
    stop(running);

    let records = log_records(dir.path(), 400);
    let invites = kinds(&records, "channel.invite.received");
    let by_room = |room: &str| -> Vec<&Value> {
        invites
            .iter()
            .filter(|invite| invite["room_id"] == room)
            .collect()
    };
    let mallorys = by_room(&refused);
    assert_eq!(mallorys.len(), 1, "recorded once: {invites:?}");
    assert_eq!(mallorys[0]["joined"], false);
    assert_eq!(mallorys[0]["inviter"], mallory.id.as_str());
    assert!(
        mallorys[0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("allowFrom"),
        "{mallorys:?}"
    );
    let alices = by_room(&dm);
    assert_eq!(alices.len(), 1, "{invites:?}");
    assert_eq!(alices[0]["joined"], true);
    assert_eq!(alices[0]["direct"], true);
    let positions = kinds(&records, "channel.cursor.recorded");
    assert!(
        (1..=3).contains(&positions.len()),
        "the first sync and the invite batches record their position: {positions:?}"
    );
}

#[test]
fn images_come_in_through_authenticated_media_and_go_out_as_uploads() {
    let synapse = Synapse::start(None);
    let llm = LlmServer::start();
    let (bot, alice) = (synapse.register("bot"), synapse.register("alice"));
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(
        dir.path(),
        &llm,
        &synapse.url(),
        &format!("accessToken: '{}'", bot.token),
        "",
    );
    let (running, _, _) = start_with(dir.path(), &["--token", TOKEN]);
    let dm = dm_with_bot(&synapse, &alice, &bot);
    let png = b"\x89PNG\r\n\x1a\n a tiny picture";
    let mxc = synapse.upload(&alice, "cat.png", "image/png", png);
    let image_event = synapse.send(
        &alice,
        &dm,
        "m.room.message",
        json!({"msgtype": "m.image", "body": "what is this?", "filename": "cat.png", "url": mxc,
               "info": {"mimetype": "image/png", "size": png.len()}}),
    );
    wait_for("the reply", REPLY_WITHIN, || {
        !synapse.said_by(&alice, &dm, &bot).is_empty()
    });
    let hash = {
        use sha2::Digest;
        format!("{:x}", sha2::Sha256::digest(png))
    };
    let stored = dir.path().join("media").join(&hash);
    assert_eq!(std::fs::read(&stored).expect("stored"), png);
    let note = format!(
        "[media attached: {} (image/png, {} bytes, name \"cat.png\", matrix file {mxc})]",
        stored.display(),
        png.len()
    );
    assert_eq!(
        synapse.said_by(&alice, &dm, &bot),
        vec![reply_to(&format!("what is this?\n{note}"))]
    );
    stop(running);

    // A restart syncs from the recorded cursor: nothing again.
    let (running, address, _) = start_with(dir.path(), &["--token", TOKEN]);
    synapse.say(&alice, &dm, "and now?");
    wait_for("the second reply", REPLY_WITHIN, || {
        synapse.said_by(&alice, &dm, &bot).len() == 2
    });

    // And a file back: uploaded, then an m.image whose body is the caption.
    let reply_png = b"\x89PNG\r\n\x1a\n the answer";
    runtime().block_on(async {
        use base64::Engine;
        let (mut socket, _) = connected(&address, &["operator.read", "operator.write"]).await;
        let params = json!({"channel": "matrix", "to": format!("room:{dm}"), "message": "here",
            "buffer": base64::engine::general_purpose::STANDARD.encode(reply_png),
            "filename": "answer.png", "idempotencyKey": "file-1"});
        let (sent, _) = request(&mut socket, "f1", "send", params, 1).await;
        assert_eq!(sent[0]["ok"], true, "{sent:?}");
        // And a reaction on alice's image: an m.annotation.
        let react = json!({"channel": "matrix", "action": "react", "idempotencyKey": "r-1",
            "params": {"to": format!("room:{dm}"), "messageId": image_event, "emoji": "👍"}});
        let (reacted, _) = request(&mut socket, "r1", "message.action", react, 1).await;
        assert_eq!(reacted[0]["ok"], true, "{reacted:?}");
    });
    let reactions = synapse.call(
        "GET",
        &format!(
            "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=50",
            dm.replace('!', "%21").replace(':', "%3A")
        ),
        Some(&alice.token),
        None,
    );
    let annotation = reactions["chunk"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|event| event["type"] == "m.reaction" && event["sender"] == bot.id)
        .expect("the bot's reaction");
    assert_eq!(
        annotation["content"]["m.relates_to"],
        json!({"rel_type": "m.annotation", "event_id": image_event, "key": "👍"})
    );
    stop(running);
    let image = synapse
        .events(&alice, &dm)
        .into_iter()
        .find(|event| event["sender"] == bot.id && event["content"]["msgtype"] == "m.image")
        .expect("the bot's image");
    assert_eq!(image["content"]["body"], "here");
    assert_eq!(image["content"]["filename"], "answer.png");
    assert_eq!(image["content"]["info"]["mimetype"], "image/png");
    let url = image["content"]["url"].as_str().expect("mxc url");
    assert_eq!(synapse.download(&alice, url), reply_png);
    let records = log_records(dir.path(), 400);
    let received = kinds(&records, "channel.message.received");
    assert_eq!(received.len(), 2, "{received:#?}");
    assert_eq!(received[0]["text"], format!("what is this?\n{note}"));
}
