//! A local Slack: `apps.connections.open` (app token) hands out a Socket
//! Mode WebSocket URL; the socket says `hello`, delivers `events_api`
//! envelopes and records their acknowledgements, can redeliver an event
//! (as Slack retries one it thinks unacknowledged) and ask for a
//! `disconnect`; `auth.test` and `chat.postMessage` (bot token) answer as
//! the Web API does, including `ratelimited` with `Retry-After`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub const BOT_TOKEN: &str = "xoxb-test-bot-token";
pub const APP_TOKEN: &str = "xapp-test-app-token";
pub const BOT_USER: &str = "UBOT";

pub struct Slack {
    /// Every envelope pushed: (envelope id, payload event).
    envelopes: Mutex<Vec<Value>>,
    acks: Mutex<Vec<String>>,
    opens: Mutex<usize>,
    posts: Mutex<Vec<Value>>,
    send_failures: Mutex<VecDeque<u64>>,
    stall_sends: AtomicBool,
    live: tokio::sync::broadcast::Sender<Control>,
}

#[derive(Clone, Debug)]
enum Control {
    Deliver(usize, u32),
    Disconnect,
}

pub struct SlackServer {
    pub address: String,
    pub state: Arc<Slack>,
    _runtime: tokio::runtime::Runtime,
}

impl SlackServer {
    pub fn start() -> SlackServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let (live, _) = tokio::sync::broadcast::channel(64);
        let state = Arc::new(Slack {
            envelopes: Mutex::default(),
            acks: Mutex::default(),
            opens: Mutex::default(),
            posts: Mutex::default(),
            send_failures: Mutex::default(),
            stall_sends: AtomicBool::new(false),
            live,
        });
        let app = axum::Router::new()
            .route("/api/apps.connections.open", axum::routing::post(open))
            .route("/api/auth.test", axum::routing::post(auth_test))
            .route("/api/chat.postMessage", axum::routing::post(post_message))
            .route("/link", axum::routing::any(upgrade))
            .with_state((state.clone(), address.clone()));
        runtime.spawn(async move { axum::serve(listener, app).await.expect("serve") });
        SlackServer {
            address,
            state,
            _runtime: runtime,
        }
    }

    pub fn api_root(&self) -> String {
        format!("http://{}/api", self.address)
    }

    /// A message event from `user` in `channel` (`im` for a DM); the
    /// envelope's index.
    pub fn push_message(&self, channel: &str, channel_type: &str, user: &str, text: &str) -> usize {
        let mut envelopes = self.state.envelopes.lock().expect("envelopes");
        let index = envelopes.len();
        envelopes.push(json!({"type": "message", "channel": channel, "channel_type": channel_type,
            "user": user, "text": text, "ts": format!("1700000000.{:06}", index + 1), "team": "T1"}));
        drop(envelopes);
        let _ = self.state.live.send(Control::Deliver(index, 0));
        index
    }

    /// Delivers envelope `index` again, as Slack's retry.
    pub fn retry(&self, index: usize) {
        let _ = self.state.live.send(Control::Deliver(index, 1));
    }

    pub fn disconnect(&self) {
        let _ = self.state.live.send(Control::Disconnect);
    }

    pub fn acks(&self) -> Vec<String> {
        self.state.acks.lock().expect("acks").clone()
    }

    pub fn opens(&self) -> usize {
        *self.state.opens.lock().expect("opens")
    }

    pub fn posts(&self) -> Vec<Value> {
        self.state.posts.lock().expect("posts").clone()
    }

    pub fn texts_to(&self, channel: &str) -> Vec<String> {
        self.posts()
            .iter()
            .filter(|post| post["channel"] == channel)
            .filter_map(|post| post["text"].as_str().map(str::to_owned))
            .collect()
    }

    pub fn fail_next_sends(&self, retry_after: u64, times: usize) {
        let mut failures = self.state.send_failures.lock().expect("failures");
        for _ in 0..times {
            failures.push_back(retry_after);
        }
    }

    pub fn stall_sends(&self, stall: bool) {
        self.state.stall_sends.store(stall, Ordering::SeqCst);
    }

    pub fn wait_for(&self, what: &str, done: impl Fn(&SlackServer) -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !done(self) {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

type Shared = (Arc<Slack>, String);

fn bearer(headers: &HeaderMap) -> &str {
    headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default()
}

fn not_authed() -> Response {
    axum::Json(json!({"ok": false, "error": "not_authed"})).into_response()
}

async fn open(State((state, address)): State<Shared>, headers: HeaderMap) -> Response {
    if bearer(&headers) != APP_TOKEN {
        return not_authed();
    }
    let mut opens = state.opens.lock().expect("opens");
    *opens += 1;
    axum::Json(json!({"ok": true, "url": format!("ws://{address}/link?ticket={}", *opens)}))
        .into_response()
}

async fn auth_test(headers: HeaderMap) -> Response {
    if bearer(&headers) != BOT_TOKEN {
        return not_authed();
    }
    axum::Json(
        json!({"ok": true, "url": "https://test.slack.com/", "team": "Test", "user": "clawbot",
        "team_id": "T1", "user_id": BOT_USER, "bot_id": "B1"}),
    )
    .into_response()
}

async fn post_message(
    State((state, _)): State<Shared>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if bearer(&headers) != BOT_TOKEN {
        return not_authed();
    }
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    if let Some(retry_after) = state.send_failures.lock().expect("failures").pop_front() {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", retry_after.to_string())],
            axum::Json(json!({"ok": false, "error": "ratelimited"})),
        )
            .into_response();
    }
    let count = {
        let mut posts = state.posts.lock().expect("posts");
        posts.push(body.clone());
        posts.len()
    };
    if state.stall_sends.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    axum::Json(
        json!({"ok": true, "channel": body["channel"], "ts": format!("1800000000.{count:06}"),
        "message": {"text": body["text"], "user": BOT_USER}}),
    )
    .into_response()
}

async fn upgrade(State((state, _)): State<Shared>, upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(move |socket| session(state, socket))
}

async fn send(socket: &mut WebSocket, payload: Value) -> bool {
    socket
        .send(Message::Text(payload.to_string().into()))
        .await
        .is_ok()
}

async fn session(state: Arc<Slack>, mut socket: WebSocket) {
    let mut live = state.live.subscribe();
    if !send(
        &mut socket,
        json!({"type": "hello", "num_connections": 1,
        "connection_info": {"app_id": "A1"}, "debug_info": {"host": "local"}}),
    )
    .await
    {
        return;
    }
    loop {
        tokio::select! {
            control = live.recv() => match control {
                Ok(Control::Deliver(index, attempt)) => {
                    let event = state.envelopes.lock().expect("envelopes")[index].clone();
                    let envelope = json!({"envelope_id": format!("env-{index}-{attempt}"), "type": "events_api",
                        "accepts_response_payload": false, "retry_attempt": attempt,
                        "retry_reason": if attempt > 0 { "timeout" } else { "" },
                        "payload": {"token": "x", "team_id": "T1", "api_app_id": "A1", "type": "event_callback",
                                    "event_id": format!("Ev{index}"), "event": event}});
                    if !send(&mut socket, envelope).await { return; }
                }
                Ok(Control::Disconnect) => {
                    let _ = send(&mut socket, json!({"type": "disconnect", "reason": "refresh_requested"})).await;
                    return;
                }
                Err(_) => {}
            },
            frame = socket.recv() => {
                let Some(Ok(Message::Text(text))) = frame else { return };
                let ack: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                if let Some(id) = ack["envelope_id"].as_str() {
                    state.acks.lock().expect("acks").push(id.to_owned());
                }
            }
        }
    }
}
