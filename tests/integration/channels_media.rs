//! Files arriving on chat channels: downloaded under `mediaMaxMb` into
//! `<state-dir>/media/<sha256>`, noted in the text the model reads and the
//! log records, never downloaded for a refused sender, never downloaded
//! again for a redelivered message; a file over the cap is noted, not
//! fetched. Telegram against the local Bot API (`getFile` and the file
//! root).

use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::gateway::{start_with, stop};
use crate::llm_server::{API_KEY, LlmServer};
use crate::protocol::TOKEN;
use crate::support::log_records;
use crate::telegram_server::{BOT_TOKEN, TelegramServer};

const OWNER: i64 = 7;
const STRANGER: i64 = 8;

fn received(records: &[Value]) -> Vec<Value> {
    records
        .iter()
        .filter(|record| record["kind"] == "channel.message.received")
        .filter_map(|record| record["event"].as_object()?.values().next().cloned())
        .collect()
}

#[test]
fn telegram_files_are_stored_by_hash_noted_for_the_model_and_never_fetched_twice() {
    let llm = LlmServer::start();
    let telegram = TelegramServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    // 0.01 MB = 10485 bytes: the photo fits, the document does not.
    let config = format!(
        "{{ agents: {{ defaults: {{ model: {{ primary: 'mock/mock-model' }} }} }},
  models: {{ providers: {{ mock: {{ baseUrl: '{}', apiKey: '{API_KEY}', api: 'openai-completions',
    models: [{{ id: 'mock-model' }}] }} }} }},
  channels: {{ telegram: {{ botToken: '{BOT_TOKEN}', apiRoot: '{}', dmPolicy: 'allowlist',
    allowFrom: ['tg:{OWNER}'], mediaMaxMb: 0.01 }} }} }}\n",
        llm.base_url(),
        telegram.api_root()
    );
    std::fs::write(dir.path().join("config.json5"), config).expect("config");
    let photo: Vec<u8> = (0..2000u32).map(|i| (i % 251) as u8).collect();
    let hash = format!("{:x}", Sha256::digest(&photo));
    let stored = dir.path().join("media").join(&hash);

    let (running, _, _) = start_with(dir.path(), &["--token", TOKEN]);
    telegram.push_photo(STRANGER, STRANGER, b"not for us", None);
    telegram.push_photo(OWNER, OWNER, &photo, Some("what is this?"));
    telegram.push_document(OWNER, OWNER, "big.pdf", "application/pdf", &[1u8; 20_000]);
    telegram.wait_for("both replies", |t| t.sent_to(OWNER).len() == 2);
    let replies = telegram.sent_to(OWNER);
    let expected_note = format!(
        "[media attached: {} (image/jpeg, 2000 bytes, telegram file FILE2)]",
        stored.display()
    );
    assert_eq!(
        replies[0],
        format!("Hello from the mock. You said: what is this?\n{expected_note}"),
        "the model read the caption and the stored file's path"
    );
    assert!(
        replies[1].contains("[media not downloaded: big.pdf (application/pdf, 20000 bytes")
            && replies[1].contains("larger than the 0.01 MB limit (mediaMaxMb)"),
        "{}",
        replies[1]
    );
    assert_eq!(std::fs::read(&stored).expect("stored file"), photo);
    assert_eq!(
        telegram.downloads(),
        vec!["photos/file_2.jpg"],
        "only the admitted photo is fetched: not the stranger's, not the one over the cap"
    );
    let get_files = telegram.calls("getFile");
    assert_eq!(get_files, vec![json!({"file_id": "FILE2"})]);
    telegram.wait_for("the acknowledgement", |t| {
        t.calls("getUpdates")
            .iter()
            .any(|body| body["offset"] == json!(4))
    });
    stop(running);

    // Telegram lost the acknowledgement: everything comes again.
    telegram.redeliver(true);
    let (running, _, _) = start_with(dir.path(), &["--token", TOKEN]);
    let polls = telegram.calls("getUpdates").len();
    telegram.wait_for("polls after the restart", |t| {
        t.calls("getUpdates").len() > polls + 3
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        telegram.downloads().len(),
        1,
        "a redelivery downloads nothing"
    );
    assert_eq!(telegram.calls("getFile").len(), 1);
    assert_eq!(telegram.sent_to(OWNER).len(), 2, "nor is it answered again");
    stop(running);

    let records = log_records(dir.path(), 400);
    let received = received(&records);
    assert_eq!(received.len(), 3, "each message recorded once");
    let photo_message = received
        .iter()
        .find(|event| event["platform_message_id"] == "7:102")
        .expect("the photo message");
    assert_eq!(
        photo_message["text"],
        format!("what is this?\n{expected_note}"),
        "the log records the reference (hash, mime, size, platform id), not the bytes"
    );
    let refused = received
        .iter()
        .find(|event| event["sender_id"] == "8")
        .expect("the stranger's photo");
    assert_eq!(
        refused["text"], "",
        "a refused message's file is not even noted"
    );
    assert!(refused["admission"]["Refused"].is_object());
}

/// Sends `what`, waits for one reply, and returns it.
fn one_reply(what: &str, replies: impl Fn() -> Vec<String>) -> String {
    crate::support::wait_until(what, || !replies().is_empty());
    replies().remove(0)
}

#[test]
fn discord_attachments_are_fetched_from_the_cdn_once() {
    use crate::discord_server::{BOT_TOKEN, DiscordServer};
    let llm = LlmServer::start();
    let discord = DiscordServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "{{ agents: {{ defaults: {{ model: {{ primary: 'mock/mock-model' }} }} }},
  models: {{ providers: {{ mock: {{ baseUrl: '{}', apiKey: '{API_KEY}', api: 'openai-completions',
    models: [{{ id: 'mock-model' }}] }} }} }},
  channels: {{ discord: {{ token: '{BOT_TOKEN}', apiRoot: '{}', dmPolicy: 'allowlist',
    allowFrom: ['discord:u7'] }} }} }}\n",
        llm.base_url(),
        discord.api_root()
    );
    std::fs::write(dir.path().join("config.json5"), config).expect("config");
    let (running, _, _) = start_with(dir.path(), &["--token", TOKEN]);
    discord.wait_for("identify", |d| !d.received(2).is_empty());
    let voice = b"OggS voice bytes";
    discord.push_attachment("dm9", "u8", "", ("x.ogg", "audio/ogg", b"stranger"));
    discord.push_attachment("dm1", "u7", "", ("voice.ogg", "audio/ogg", voice));
    let reply = one_reply("the reply", || discord.created("dm1"));
    let stored = dir
        .path()
        .join("media")
        .join(format!("{:x}", Sha256::digest(voice)));
    assert_eq!(
        reply,
        format!(
            "Hello from the mock. You said: [media attached: {} (audio/ogg, 16 bytes, name \"voice.ogg\", discord file 80002)]",
            stored.display()
        )
    );
    assert_eq!(std::fs::read(&stored).expect("stored"), voice);
    assert_eq!(
        discord.fetched(),
        vec!["80002"],
        "the stranger's is not fetched"
    );
    stop(running);

    // The next process resumes from the log's cursor: nothing again.
    let (running, _, _) = start_with(dir.path(), &["--token", TOKEN]);
    discord.wait_for("a resume", |d| !d.received(6).is_empty());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(discord.fetched().len(), 1);
    assert_eq!(discord.created("dm1").len(), 1);
    stop(running);
}

#[test]
fn slack_files_are_fetched_with_the_bot_token_once() {
    use crate::slack_server::{APP_TOKEN, BOT_TOKEN, SlackServer};
    let llm = LlmServer::start();
    let slack = SlackServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "{{ agents: {{ defaults: {{ model: {{ primary: 'mock/mock-model' }} }} }},
  models: {{ providers: {{ mock: {{ baseUrl: '{}', apiKey: '{API_KEY}', api: 'openai-completions',
    models: [{{ id: 'mock-model' }}] }} }} }},
  channels: {{ slack: {{ mode: 'socket', botToken: '{BOT_TOKEN}', appToken: '{APP_TOKEN}', apiRoot: '{}',
    dmPolicy: 'allowlist', allowFrom: ['U7'] }} }} }}\n",
        llm.base_url(),
        slack.api_root()
    );
    std::fs::write(dir.path().join("config.json5"), config).expect("config");
    let (running, _, _) = start_with(dir.path(), &["--token", TOKEN]);
    slack.wait_for("the socket", |s| s.opens() == 1);
    std::thread::sleep(Duration::from_millis(300));
    let png = b"\x89PNG\r\n\x1a\n fake image";
    let first = slack.push_file("D1", "U7", "see this", ("shot.png", "image/png", png));
    let reply = one_reply("the reply", || slack.texts_to("D1"));
    let stored = dir
        .path()
        .join("media")
        .join(format!("{:x}", Sha256::digest(png)));
    assert_eq!(
        reply,
        format!(
            "Hello from the mock. You said: see this\n[media attached: {} (image/png, {} bytes, name \"shot.png\", slack file F1)]",
            stored.display(),
            png.len()
        )
    );
    assert_eq!(std::fs::read(&stored).expect("stored"), png);
    slack.wait_for("the acknowledgement", |s| {
        s.acks().contains(&"env-0-0".to_owned())
    });
    // Slack retries the event: recognised, not fetched nor answered again.
    slack.retry(first);
    slack.wait_for("the retry's acknowledgement", |s| {
        s.acks().contains(&"env-0-1".to_owned())
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(slack.downloads(), vec!["F1"]);
    assert_eq!(slack.texts_to("D1").len(), 1);

    // A token without files:read gets Slack's sign-in page: noted, not
    // stored as if it were the file.
    slack.files_unreadable(true);
    slack.push_file("D1", "U7", "", ("other.png", "image/png", b"other"));
    slack.wait_for("the second reply", |s| s.texts_to("D1").len() == 2);
    let reply = &slack.texts_to("D1")[1];
    assert!(
        reply.contains("[media not downloaded: other.png (image/png, 5 bytes")
            && reply.contains("files:read"),
        "{reply}"
    );
    stop(running);
    let stored = std::fs::read_dir(dir.path().join("media"))
        .expect("media")
        .count();
    assert_eq!(stored, 1, "the sign-in page is not stored");
}

#[test]
fn send_delivers_a_file_from_a_url_or_a_buffer_once_and_refuses_what_it_must() {
    use crate::agent::request;
    use crate::protocol::{connected, runtime};
    let llm = LlmServer::start();
    let telegram = TelegramServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "{{ agents: {{ defaults: {{ model: {{ primary: 'mock/mock-model' }} }} }},
  models: {{ providers: {{ mock: {{ baseUrl: '{}', apiKey: '{API_KEY}', api: 'openai-completions',
    models: [{{ id: 'mock-model' }}] }} }} }},
  tools: {{ web: {{ fetch: {{ ssrfPolicy: {{ allowedHostnames: ['127.0.0.1'] }} }} }} }},
  channels: {{ telegram: {{ botToken: '{BOT_TOKEN}', apiRoot: '{}', dmPolicy: 'allowlist',
    allowFrom: ['tg:{OWNER}'] }} }} }}\n",
        llm.base_url(),
        telegram.api_root()
    );
    std::fs::write(dir.path().join("config.json5"), config).expect("config");
    let picture: Vec<u8> = (0..3000u32).map(|i| (i % 253) as u8).collect();
    let url = telegram.serve_file(&picture);
    let (running, address, _) = start_with(dir.path(), &["--token", TOKEN]);
    telegram.wait_for("polling", |t| !t.calls("getUpdates").is_empty());

    runtime().block_on(async {
        let (mut socket, _) = connected(&address, &["operator.read", "operator.write"]).await;
        let params = json!({"to": "tg:42", "message": "a picture", "mediaUrl": url,
                            "idempotencyKey": "m-1"});
        let (first, _) = request(&mut socket, "m1", "send", params.clone(), 1).await;
        assert_eq!(first[0]["ok"], true, "{first:?}");
        let (again, _) = request(&mut socket, "m2", "send", params, 1).await;
        assert_eq!(
            again[0]["payload"]["messageId"],
            first[0]["payload"]["messageId"]
        );

        let buffer = {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(b"%PDF-1.4 notes")
        };
        let params = json!({"to": "42", "message": "the notes", "buffer": buffer,
                            "filename": "notes.pdf", "idempotencyKey": "m-3"});
        let (document, _) = request(&mut socket, "m3", "send", params, 1).await;
        assert_eq!(document[0]["ok"], true, "{document:?}");
        let voice = {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(b"OggS voice")
        };
        let params = json!({"to": "42", "buffer": voice, "filename": "note.ogg",
                            "asVoice": true, "idempotencyKey": "m-4"});
        let (voiced, _) = request(&mut socket, "m4", "send", params, 1).await;
        assert_eq!(voiced[0]["ok"], true, "{voiced:?}");

        // Refused before anything is recorded: a host that resolves to a
        // private address without being allowed, a path outside the
        // workspace, two files at once.
        let private = url.replace("127.0.0.1", "localhost");
        let config_path = dir.path().join("config.json5");
        for (id, params, says) in [
            (
                "r1",
                json!({"to": "42", "mediaUrl": private, "idempotencyKey": "r-1"}),
                "private or local address",
            ),
            (
                "r2",
                json!({"to": "42", "mediaUrl": config_path, "idempotencyKey": "r-2"}),
                "outside the agent's workspace",
            ),
            (
                "r3",
                json!({"to": "42", "mediaUrls": [url, url], "idempotencyKey": "r-3"}),
                "one file per send",
            ),
        ] {
            let (refused, _) = request(&mut socket, id, "send", params, 1).await;
            assert_eq!(refused[0]["ok"], false, "{refused:?}");
            let message = refused[0]["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains(says), "{id}: {message}");
        }
    });
    stop(running);

    let photos = telegram.calls("sendPhoto");
    assert_eq!(photos.len(), 1, "one photo for one key");
    assert_eq!(photos[0]["chat_id"], "42");
    assert_eq!(photos[0]["caption"], "a picture");
    assert_eq!(photos[0]["files"]["photo"]["filename"], "file_1.jpg");
    assert_eq!(photos[0]["files"]["photo"]["content_type"], "image/jpeg");
    assert_eq!(photos[0]["files"]["photo"]["bytes"], json!(picture));
    let documents = telegram.calls("sendDocument");
    assert_eq!(documents.len(), 1);
    assert_eq!(documents[0]["caption"], "the notes");
    assert_eq!(documents[0]["files"]["document"]["filename"], "notes.pdf");
    assert_eq!(
        documents[0]["files"]["document"]["content_type"],
        "application/pdf"
    );

    let voices = telegram.calls("sendVoice");
    assert_eq!(voices.len(), 1, "asVoice sends a voice note");
    assert_eq!(voices[0]["files"]["voice"]["content_type"], "audio/ogg");
    assert!(voices[0].get("caption").is_none());

    let records = log_records(dir.path(), 400);
    let prepared: Vec<Value> = records
        .iter()
        .filter(|record| record["kind"] == "delivery.prepared")
        .filter_map(|record| record["event"].as_object()?.values().next().cloned())
        .collect();
    assert_eq!(prepared.len(), 3, "refusals record nothing: {prepared:#?}");
    let target: Value =
        serde_json::from_str(prepared[0]["target"].as_str().expect("target")).expect("json");
    assert_eq!(
        target["media"],
        json!({"sha256": format!("{:x}", Sha256::digest(&picture)), "mime": "image/jpeg",
               "name": "file_1.jpg", "size": 3000}),
        "the reference is recorded, not the bytes"
    );
    assert_eq!(target["chat"], "42");
    assert_eq!(prepared[0]["text"], "a picture");
}

#[test]
fn send_uploads_a_file_to_discord_as_files_0_with_payload_json() {
    use crate::agent::request;
    use crate::discord_server::{BOT_TOKEN, DiscordServer};
    use crate::protocol::{connected, runtime};
    let llm = LlmServer::start();
    let discord = DiscordServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "{{ agents: {{ defaults: {{ model: {{ primary: 'mock/mock-model' }} }} }},
  models: {{ providers: {{ mock: {{ baseUrl: '{}', apiKey: '{API_KEY}', api: 'openai-completions',
    models: [{{ id: 'mock-model' }}] }} }} }},
  channels: {{ discord: {{ token: '{BOT_TOKEN}', apiRoot: '{}', dmPolicy: 'allowlist',
    allowFrom: ['discord:u7'] }} }} }}\n",
        llm.base_url(),
        discord.api_root()
    );
    std::fs::write(dir.path().join("config.json5"), config).expect("config");
    let (running, address, _) = start_with(dir.path(), &["--token", TOKEN]);
    discord.wait_for("identify", |d| !d.received(2).is_empty());
    let voice = b"OggS a voice note";
    runtime().block_on(async {
        use base64::Engine;
        let (mut socket, _) = connected(&address, &["operator.read", "operator.write"]).await;
        let params = json!({"channel": "discord", "to": "channel:c5", "message": "listen",
            "buffer": base64::engine::general_purpose::STANDARD.encode(voice),
            "filename": "note.ogg", "idempotencyKey": "d-1"});
        let (sent, _) = request(&mut socket, "d1", "send", params, 1).await;
        assert_eq!(sent[0]["ok"], true, "{sent:?}");
    });
    stop(running);
    let uploads = discord.uploads();
    assert_eq!(uploads.len(), 1, "{uploads:?}");
    let (channel, payload) = &uploads[0];
    assert_eq!(channel, "c5");
    assert_eq!(payload["content"], "listen");
    assert_eq!(payload["enforce_nonce"], true);
    assert_eq!(
        payload["attachments"],
        json!([{"id": 0, "filename": "note.ogg"}])
    );
    let file = &payload["files"]["files[0]"];
    assert_eq!(file["filename"], "note.ogg");
    assert_eq!(file["content_type"], "audio/ogg");
    assert_eq!(file["bytes"], json!(voice.to_vec()));
}

#[test]
fn send_uploads_a_file_to_slack_in_its_three_steps() {
    use crate::agent::request;
    use crate::protocol::{connected, runtime};
    use crate::slack_server::{APP_TOKEN, BOT_TOKEN, SlackServer};
    let llm = LlmServer::start();
    let slack = SlackServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "{{ agents: {{ defaults: {{ model: {{ primary: 'mock/mock-model' }} }} }},
  models: {{ providers: {{ mock: {{ baseUrl: '{}', apiKey: '{API_KEY}', api: 'openai-completions',
    models: [{{ id: 'mock-model' }}] }} }} }},
  channels: {{ slack: {{ mode: 'socket', botToken: '{BOT_TOKEN}', appToken: '{APP_TOKEN}', apiRoot: '{}',
    dmPolicy: 'allowlist', allowFrom: ['U7'] }} }} }}\n",
        llm.base_url(),
        slack.api_root()
    );
    std::fs::write(dir.path().join("config.json5"), config).expect("config");
    let (running, address, _) = start_with(dir.path(), &["--token", TOKEN]);
    slack.wait_for("the socket", |s| s.opens() == 1);
    let report = b"date,total\n2026-12-07,42\n";
    runtime().block_on(async {
        use base64::Engine;
        let (mut socket, _) = connected(&address, &["operator.read", "operator.write"]).await;
        let params = json!({"channel": "slack", "to": "C9", "message": "the report",
            "buffer": base64::engine::general_purpose::STANDARD.encode(report),
            "filename": "report.csv", "idempotencyKey": "s-1"});
        let (sent, _) = request(&mut socket, "s1", "send", params, 1).await;
        assert_eq!(sent[0]["ok"], true, "{sent:?}");
        assert_eq!(sent[0]["payload"]["messageId"], "FOUT1");
    });
    stop(running);
    let uploads = slack.uploads();
    assert_eq!(uploads.len(), 1, "{uploads:?}");
    let (id, name, length, bytes, completed) = &uploads[0];
    assert_eq!(
        (id.as_str(), name.as_str(), *length),
        ("FOUT1", "report.csv", report.len())
    );
    assert_eq!(bytes.as_deref(), Some(&report[..]));
    assert_eq!(
        completed.clone().expect("completed"),
        json!({"files": [{"id": "FOUT1", "title": "report.csv"}], "channel_id": "C9",
               "initial_comment": "the report"})
    );
}

#[test]
fn a_reply_with_media_lines_sends_the_files_after_its_text() {
    let llm = LlmServer::start();
    let telegram = TelegramServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "{{ agents: {{ defaults: {{ model: {{ primary: 'mock/mock-model' }} }} }},
  models: {{ providers: {{ mock: {{ baseUrl: '{}', apiKey: '{API_KEY}', api: 'openai-completions',
    models: [{{ id: 'mock-model' }}] }} }} }},
  channels: {{ telegram: {{ botToken: '{BOT_TOKEN}', apiRoot: '{}', dmPolicy: 'allowlist',
    allowFrom: ['tg:{OWNER}'] }} }} }}\n",
        llm.base_url(),
        telegram.api_root()
    );
    std::fs::write(dir.path().join("config.json5"), config).expect("config");
    let workspace = dir.path().join("workspace");
    std::fs::create_dir_all(&workspace).expect("workspace");
    let chart = workspace.join("chart.png");
    std::fs::write(&chart, b"\x89PNG chart").expect("chart");
    let secret = dir.path().join("config.json5");
    let (running, _, _) = start_with(dir.path(), &["--token", TOKEN]);
    // The mock model repeats the user's text: its reply carries the lines.
    telegram.push_text(
        OWNER,
        OWNER,
        &format!(
            "here\nMEDIA:{}\nMEDIA:{}",
            chart.display(),
            secret.display()
        ),
    );
    telegram.wait_for("the text, the photo and the notice", |t| {
        t.sent_to(OWNER).len() == 2 && t.calls("sendPhoto").len() == 1
    });
    stop(running);
    let texts = telegram.sent_to(OWNER);
    assert_eq!(texts[0], "Hello from the mock. You said: here");
    assert!(
        texts[1].starts_with(&format!("⚠️ Could not attach {}", secret.display()))
            && texts[1].contains("outside the agent's workspace"),
        "{}",
        texts[1]
    );
    let photo = &telegram.calls("sendPhoto")[0];
    assert_eq!(photo["files"]["photo"]["filename"], "chart.png");
    assert_eq!(
        photo["files"]["photo"]["bytes"],
        json!(b"\x89PNG chart".to_vec())
    );
    assert!(photo.get("caption").is_none());
}
