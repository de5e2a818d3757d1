//! The custom webhook channel: signed messages in, signed replies out to a
//! callback, a redelivered message answered once, a reply whose send a
//! crash cut short resent under the same `Idempotency-Key` (the receiver
//! deduplicates by it), and one conversation across two channels (the
//! webhook and the gateway's own chat) replayed from the log.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use ring::hmac;
use serde_json::{Value, json};

use crate::agent::request;
use crate::gateway::{start_with, stop};
use crate::llm_server::{API_KEY, LlmServer};
use crate::protocol::{TOKEN, connected, runtime};
use crate::support::{clawback, http_client, stdout};

const SECRET: &str = "webhook-secret-0123456789";

/// Collects the gateway's reply posts; can hold the next ones unanswered.
struct Callback {
    address: String,
    posts: Arc<Mutex<Vec<(HeaderMap, Value)>>>,
    stall: Arc<Mutex<VecDeque<bool>>>,
    _runtime: tokio::runtime::Runtime,
}

impl Callback {
    fn start() -> Callback {
        let posts = Arc::new(Mutex::new(Vec::new()));
        let stall = Arc::new(Mutex::new(VecDeque::new()));
        let (address, runtime) = crate::support::serve(|_| {
            axum::Router::new().route(
                "/replies",
                axum::routing::post({
                    let posts = posts.clone();
                    let stall = stall.clone();
                    move |headers: HeaderMap, body: String| {
                        let posts = posts.clone();
                        let stall = stall.clone();
                        async move {
                            let value: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                            let count = {
                                let mut posts = posts.lock().expect("posts");
                                posts.push((headers, value));
                                posts.len()
                            };
                            if stall.lock().expect("stall").pop_front() == Some(true) {
                                tokio::time::sleep(Duration::from_secs(3600)).await;
                            }
                            (
                                StatusCode::OK,
                                axum::Json(json!({"messageId": format!("cb-{count}")})),
                            )
                        }
                    }
                }),
            )
        });
        Callback {
            address,
            posts,
            stall,
            _runtime: runtime,
        }
    }

    fn posts(&self) -> Vec<(HeaderMap, Value)> {
        self.posts.lock().expect("posts").clone()
    }

    fn wait_for_posts(&self, n: usize) {
        crate::support::wait_until(&format!("{n} posts"), || self.posts().len() >= n);
    }
}

fn write_config(dir: &std::path::Path, llm: &LlmServer, callback: &Callback) {
    let text = format!(
        "{{ agents: {{ defaults: {{ model: {{ primary: 'mock/mock-model' }} }} }},
  models: {{ providers: {{ mock: {{ baseUrl: '{}', apiKey: '{API_KEY}', api: 'openai-completions',
    models: [{{ id: 'mock-model' }}] }} }} }},
  channels: {{ webhook: {{ secret: '{SECRET}', callbackUrl: 'http://{}/replies',
    dmPolicy: 'allowlist', allowFrom: ['alice'] }} }} }}\n",
        llm.base_url(),
        callback.address
    );
    std::fs::write(dir.join("config.json5"), text).expect("config");
}

fn sign(timestamp: i64, body: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET.as_bytes());
    let tag = hmac::sign(&key, format!("{timestamp}.{body}").as_bytes());
    let hex: String = tag
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("sha256={hex}")
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

async fn post(
    address: &str,
    body: &Value,
    timestamp: i64,
    signature: Option<String>,
) -> (u16, Value) {
    let body = body.to_string();
    let signature = signature.unwrap_or_else(|| sign(timestamp, &body));
    let response = http_client(Duration::from_secs(10))
        .post(format!("http://{address}/channels/webhook"))
        .header("content-type", "application/json")
        .header("x-clawback-timestamp", timestamp.to_string())
        .header("x-clawback-signature", signature)
        .body(body)
        .send()
        .await
        .expect("post");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn message(id: &str, text: &str) -> Value {
    json!({"messageId": id, "chatId": "alice", "senderId": "alice", "senderName": "Alice", "text": text})
}

#[test]
fn signed_messages_in_signed_replies_out_once() {
    let llm = LlmServer::start();
    let callback = Callback::start();
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), &llm, &callback);
    let (running, address, _) = start_with(dir.path(), &["--token", TOKEN]);
    runtime().block_on(async {
        let hello = message("m-1", "hello over http");
        let (status, answer) = post(&address, &hello, now_s(), Some("sha256=00".to_owned())).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (401, Some("signature mismatch"))
        );
        let (status, _) = post(&address, &hello, now_s() - 3600, None).await;
        assert_eq!(status, 401, "a stale timestamp is refused");
        let (status, answer) = post(&address, &json!({"chatId": "x"}), now_s(), None).await;
        assert_eq!(status, 400, "{answer}");
        let (status, answer) = post(&address, &hello, now_s(), None).await;
        assert_eq!(
            (status, &answer),
            (
                200,
                &json!({"ok": true, "duplicate": false, "admitted": true})
            )
        );
        let (status, answer) = post(&address, &hello, now_s(), None).await;
        assert_eq!(
            (status, &answer),
            (200, &json!({"ok": true, "duplicate": true}))
        );
    });
    callback.wait_for_posts(1);
    std::thread::sleep(Duration::from_millis(300));
    let posts = callback.posts();
    assert_eq!(posts.len(), 1, "one reply for one message");
    let (headers, body) = &posts[0];
    assert_eq!(
        body["text"],
        "Hello from the mock. You said: hello over http"
    );
    assert_eq!(body["chatId"], "alice");
    let key = headers["idempotency-key"].to_str().expect("key");
    assert_eq!(body["idempotencyKey"], key);
    assert!(key.starts_with("ch-") && key.ends_with("#0"), "{key}");
    let timestamp: i64 = headers["x-clawback-timestamp"]
        .to_str()
        .expect("ts")
        .parse()
        .expect("ts");
    assert_eq!(
        headers["x-clawback-signature"].to_str().expect("signature"),
        sign(timestamp, &body.to_string()),
        "the reply is signed with the shared secret"
    );
    stop(running);
}

#[test]
fn a_reply_cut_short_by_a_crash_is_resent_under_its_key_and_the_log_replays_both_channels() {
    let llm = LlmServer::start();
    let callback = Callback::start();
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), &llm, &callback);
    callback.stall.lock().expect("stall").push_back(true);
    let (running, address, _) = start_with(dir.path(), &["--token", TOKEN]);
    runtime().block_on(async {
        let (status, _) = post(
            &address,
            &message("m-1", "first over webhook"),
            now_s(),
            None,
        )
        .await;
        assert_eq!(status, 200);
    });
    callback.wait_for_posts(1);
    drop(running); // SIGKILL while the callback holds the reply
    let (running, address, _) = start_with(dir.path(), &["--token", TOKEN]);
    callback.wait_for_posts(2);
    let posts = callback.posts();
    assert_eq!(
        posts[0].0["idempotency-key"], posts[1].0["idempotency-key"],
        "the resend carries the same key, so the receiver can drop it"
    );
    // The same conversation continues in the gateway's own chat.
    runtime().block_on(async {
        let (mut socket, _) = connected(&address, &["operator.write", "operator.read"]).await;
        let params = json!({"sessionKey": "agent:main:main", "message": "second from the web chat",
                            "idempotencyKey": "web-1"});
        let (answers, _) = request(&mut socket, "c1", "chat.send", params, 1).await;
        assert_eq!(answers[0]["ok"], true);
        let (answers, _) = request(
            &mut socket,
            "w1",
            "agent.wait",
            json!({"runId": "web-1", "timeoutMs": 10_000}),
            1,
        )
        .await;
        assert_eq!(answers[0]["payload"]["status"], "ok", "{answers:?}");
    });
    stop(running);
    let replay = stdout(&clawback(
        dir.path(),
        &["replay", "agent:main:main", "--no-state"],
    ));
    let inbound = replay
        .find("webhook message from Alice alice")
        .expect("the webhook message in the timeline");
    let web = replay
        .find("second from the web chat")
        .expect("the web chat message in the timeline");
    assert!(inbound < web, "{replay}");
    assert!(replay.contains("You said: first over webhook"), "{replay}");
    assert!(
        replay.contains("You said: second from the web chat"),
        "{replay}"
    );
    assert!(replay.contains("reply of run"), "{replay}");
}
