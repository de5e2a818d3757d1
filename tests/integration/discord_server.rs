//! A local Discord: the gateway WebSocket (Hello with a short heartbeat
//! interval, Identify -> READY, Resume -> the missed dispatches then
//! RESUMED, heartbeats answered with ACKs, op 7 Reconnect on request) and
//! the REST calls the adapter makes (`GET /gateway/bot`, `POST
//! /channels/{id}/messages` with `enforce_nonce`, typing), with Discord's
//! 429 body (`retry_after` in seconds) on request.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub const BOT_TOKEN: &str = "discord-bot-token-test";
pub const BOT_ID: &str = "990000000000000001";

pub struct Discord {
    /// Every dispatch ever sent, with its seq (1-based index).
    dispatches: Mutex<Vec<Value>>,
    /// Every op a client sent: (op, d).
    received: Mutex<Vec<(u64, Value)>>,
    /// Created messages: (channel, nonce, content).
    created: Mutex<Vec<(String, String, String)>>,
    /// Every POST to create a message: (channel, nonce).
    posts: Mutex<Vec<(String, String)>>,
    send_failures: Mutex<VecDeque<f64>>,
    stall_sends: AtomicBool,
    live: tokio::sync::broadcast::Sender<Control>,
    /// Attachments on the CDN: (attachment id, bytes); and the ids fetched.
    attachments: Mutex<Vec<(String, Vec<u8>)>>,
    fetched: Mutex<Vec<String>>,
    /// Messages created with files: (channel, payload_json with `files`).
    uploads: Mutex<Vec<(String, Value)>>,
    /// The bot's reaction calls: (PUT or DELETE, channel, message, emoji).
    reactions: Mutex<Vec<(String, String, String, String)>>,
}

#[derive(Clone, Debug)]
enum Control {
    Dispatch(u64),
    Reconnect,
}

pub struct DiscordServer {
    pub address: String,
    pub state: Arc<Discord>,
    _runtime: tokio::runtime::Runtime,
}

impl DiscordServer {
    pub fn start() -> DiscordServer {
        let (live, _) = tokio::sync::broadcast::channel(64);
        let state = Arc::new(Discord {
            dispatches: Mutex::default(),
            received: Mutex::default(),
            created: Mutex::default(),
            posts: Mutex::default(),
            send_failures: Mutex::default(),
            stall_sends: AtomicBool::new(false),
            live,
            attachments: Mutex::default(),
            fetched: Mutex::default(),
            uploads: Mutex::default(),
            reactions: Mutex::default(),
        });
        let (address, runtime) = crate::support::serve(|address| {
            axum::Router::new()
                .route("/gateway", axum::routing::any(upgrade))
                .route("/api/v10/gateway/bot", axum::routing::get(gateway_bot))
                .route("/api/v10/users/@me", axum::routing::get(me))
                .route(
                    "/api/v10/channels/{channel}/messages",
                    axum::routing::post(create),
                )
                .route(
                    "/api/v10/channels/{channel}/typing",
                    axum::routing::post(typing),
                )
                .route(
                    "/api/v10/channels/{channel}/messages/{message}/reactions/{emoji}/@me",
                    axum::routing::put(react).delete(react),
                )
                .route(
                    "/attachments/{channel}/{id}/{name}",
                    axum::routing::get(attachment),
                )
                .with_state((state.clone(), address.to_owned()))
        });
        DiscordServer {
            address,
            state,
            _runtime: runtime,
        }
    }

    pub fn api_root(&self) -> String {
        format!("http://{}/api/v10", self.address)
    }

    /// A MESSAGE_CREATE from `author` in `channel` (a DM unless `guild`).
    pub fn push_message(
        &self,
        channel: &str,
        author: &str,
        content: &str,
        guild: Option<&str>,
    ) -> u64 {
        let mut dispatches = self.state.dispatches.lock().expect("dispatches");
        let seq = dispatches.len() as u64 + 1;
        let mut message = json!({"id": format!("7000{seq}"), "channel_id": channel, "content": content,
            "author": {"id": author, "username": format!("user{author}")}, "mentions": [], "attachments": []});
        if let Some(guild) = guild {
            message["guild_id"] = json!(guild);
        }
        if content.contains(&format!("<@{BOT_ID}>")) {
            message["mentions"] = json!([{"id": BOT_ID}]);
        }
        dispatches.push(json!({"op": 0, "t": "MESSAGE_CREATE", "s": seq, "d": message}));
        drop(dispatches);
        let _ = self.state.live.send(Control::Dispatch(seq));
        seq
    }

    /// A MESSAGE_CREATE carrying one attachment, as Discord describes it
    /// (`id`, `filename`, `size`, `url` and `proxy_url` on its CDN,
    /// `content_type`).
    pub fn push_attachment(
        &self,
        channel: &str,
        author: &str,
        content: &str,
        (name, content_type, bytes): (&str, &str, &[u8]),
    ) -> u64 {
        let mut attachments = self.state.attachments.lock().expect("attachments");
        let id = format!("8000{}", attachments.len() + 1);
        attachments.push((id.clone(), bytes.to_vec()));
        drop(attachments);
        let url = format!("http://{}/attachments/{channel}/{id}/{name}", self.address);
        let mut dispatches = self.state.dispatches.lock().expect("dispatches");
        let seq = dispatches.len() as u64 + 1;
        let message = json!({"id": format!("7000{seq}"), "channel_id": channel, "content": content,
            "author": {"id": author, "username": format!("user{author}")}, "mentions": [],
            "attachments": [{"id": id, "filename": name, "size": bytes.len(), "url": url,
                             "proxy_url": url, "content_type": content_type}]});
        dispatches.push(json!({"op": 0, "t": "MESSAGE_CREATE", "s": seq, "d": message}));
        drop(dispatches);
        let _ = self.state.live.send(Control::Dispatch(seq));
        seq
    }

    /// The bot's reaction calls: (PUT or DELETE, channel, message, emoji).
    pub fn reactions(&self) -> Vec<(String, String, String, String)> {
        self.state.reactions.lock().expect("reactions").clone()
    }

    /// Messages created with files: (channel, payload with `files`).
    pub fn uploads(&self) -> Vec<(String, Value)> {
        self.state.uploads.lock().expect("uploads").clone()
    }

    /// The attachment ids fetched from the CDN, in order.
    pub fn fetched(&self) -> Vec<String> {
        self.state.fetched.lock().expect("fetched").clone()
    }

    pub fn ask_reconnect(&self) {
        let _ = self.state.live.send(Control::Reconnect);
    }

    pub fn received(&self, op: u64) -> Vec<Value> {
        self.state
            .received
            .lock()
            .expect("received")
            .iter()
            .filter(|(received, _)| *received == op)
            .map(|(_, d)| d.clone())
            .collect()
    }

    pub fn created(&self, channel: &str) -> Vec<String> {
        self.state
            .created
            .lock()
            .expect("created")
            .iter()
            .filter(|(to, _, _)| to == channel)
            .map(|(_, _, text)| text.clone())
            .collect()
    }

    pub fn posts(&self) -> Vec<(String, String)> {
        self.state.posts.lock().expect("posts").clone()
    }

    pub fn fail_next_sends(&self, retry_after: f64, times: usize) {
        let mut failures = self.state.send_failures.lock().expect("failures");
        for _ in 0..times {
            failures.push_back(retry_after);
        }
    }

    pub fn stall_sends(&self, stall: bool) {
        self.state.stall_sends.store(stall, Ordering::SeqCst);
    }

    pub fn wait_for(&self, what: &str, done: impl Fn(&DiscordServer) -> bool) {
        crate::support::wait_until(what, || done(self));
    }
}

type Shared = (Arc<Discord>, String);

/// `PUT`/`DELETE /channels/{c}/messages/{m}/reactions/{emoji}/@me`: 204,
/// as Discord answers (the emoji arrives percent-decoded by the router).
async fn react(
    State((state, _)): State<Shared>,
    method: axum::http::Method,
    Path((channel, message, emoji)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    state
        .reactions
        .lock()
        .expect("reactions")
        .push((method.to_string(), channel, message, emoji));
    StatusCode::NO_CONTENT.into_response()
}

/// The CDN: an attachment's bytes by its URL (no token, as Discord's
/// signed CDN URLs).
async fn attachment(
    State((state, _)): State<Shared>,
    Path((_, id, _)): Path<(String, String, String)>,
) -> Response {
    let found = state
        .attachments
        .lock()
        .expect("attachments")
        .iter()
        .find(|(known, _)| *known == id)
        .map(|(_, bytes)| bytes.clone());
    match found {
        Some(bytes) => {
            state.fetched.lock().expect("fetched").push(id);
            bytes.into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn authorized(headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        == Some(&format!("Bot {BOT_TOKEN}"))
}

async fn gateway_bot(State((_, address)): State<Shared>, headers: HeaderMap) -> Response {
    if !authorized(&headers) {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"message": "401: Unauthorized", "code": 0})),
        )
            .into_response();
    }
    axum::Json(json!({"url": format!("ws://{address}/gateway"), "shards": 1,
        "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 14_400_000, "max_concurrency": 1}}))
        .into_response()
}

async fn create(
    State((state, _)): State<Shared>,
    Path(channel): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !authorized(&headers) {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"message": "401: Unauthorized", "code": 0})),
        )
            .into_response();
    }
    let content_type = headers
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    // A file upload: `payload_json` holds the message, `files[n]` the
    // files (kept, by channel, for the test to read).
    let body: Value = match content_type.strip_prefix("multipart/form-data; boundary=") {
        Some(boundary) => {
            let Some(form) = crate::support::multipart(&body, boundary) else {
                return StatusCode::BAD_REQUEST.into_response();
            };
            let mut payload: Value =
                serde_json::from_str(form["payload_json"].as_str().unwrap_or_default())
                    .unwrap_or(Value::Null);
            payload["files"] = form["files"].clone();
            state
                .uploads
                .lock()
                .expect("uploads")
                .push((channel.clone(), payload.clone()));
            payload
        }
        None => serde_json::from_slice(&body).unwrap_or(Value::Null),
    };
    let nonce = body["nonce"].as_str().unwrap_or_default().to_owned();
    state
        .posts
        .lock()
        .expect("posts")
        .push((channel.clone(), nonce.clone()));
    if state.stall_sends.load(Ordering::SeqCst) {
        // Created, but the answer never comes (the client dies waiting).
        state.created.lock().expect("created").push((
            channel,
            nonce,
            body["content"].as_str().unwrap_or_default().to_owned(),
        ));
        tokio::time::sleep(Duration::from_secs(3600)).await;
        return StatusCode::OK.into_response();
    }
    if let Some(retry_after) = state.send_failures.lock().expect("failures").pop_front() {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(json!({"message": "You are being rate limited.",
            "retry_after": retry_after, "global": false})),
        )
            .into_response();
    }
    let mut created = state.created.lock().expect("created");
    // enforce_nonce: a nonce already used answers the message it created.
    let existing = created.iter().position(|(_, used, _)| {
        body["enforce_nonce"] == true && !nonce.is_empty() && *used == nonce
    });
    let index = match existing {
        Some(index) => index,
        None => {
            created.push((
                channel.clone(),
                nonce,
                body["content"].as_str().unwrap_or_default().to_owned(),
            ));
            created.len() - 1
        }
    };
    axum::Json(
        json!({"id": format!("8000{index}"), "channel_id": channel, "content": created[index].2}),
    )
    .into_response()
}

async fn me(headers: HeaderMap) -> Response {
    if !authorized(&headers) {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"message": "401: Unauthorized", "code": 0})),
        )
            .into_response();
    }
    axum::Json(json!({"id": BOT_ID, "username": "clawbot", "bot": true})).into_response()
}

async fn typing() -> StatusCode {
    StatusCode::NO_CONTENT
}

async fn upgrade(State((state, address)): State<Shared>, upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(move |socket| session(state, address, socket))
}

async fn send(socket: &mut WebSocket, payload: Value) -> bool {
    socket
        .send(Message::Text(payload.to_string().into()))
        .await
        .is_ok()
}

async fn session(state: Arc<Discord>, address: String, mut socket: WebSocket) {
    let mut live = state.live.subscribe();
    if !send(
        &mut socket,
        json!({"op": 10, "d": {"heartbeat_interval": 400}}),
    )
    .await
    {
        return;
    }
    let mut ready = false;
    loop {
        tokio::select! {
            control = live.recv() => {
                match control {
                    Ok(Control::Dispatch(seq)) if ready => {
                        let dispatch = state.dispatches.lock().expect("dispatches")[(seq - 1) as usize].clone();
                        if !send(&mut socket, dispatch).await { return; }
                    }
                    Ok(Control::Reconnect) => {
                        let _ = send(&mut socket, json!({"op": 7, "d": null})).await;
                    }
                    _ => {}
                }
            }
            frame = socket.recv() => {
                let Some(Ok(Message::Text(text))) = frame else { return };
                let payload: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                let op = payload["op"].as_u64().unwrap_or(99);
                state.received.lock().expect("received").push((op, payload["d"].clone()));
                match op {
                    1 => {
                        let acked = send(&mut socket, json!({"op": 11})).await;
                        if !acked { return; }
                    }
                    2 => {
                        if payload["d"]["token"] != BOT_TOKEN {
                            let _ = socket.send(Message::Close(Some(axum::extract::ws::CloseFrame {
                                code: 4004, reason: "Authentication failed.".into() }))).await;
                            return;
                        }
                        ready = true;
                        let seq = state.dispatches.lock().expect("dispatches").len() as u64;
                        let ready_event = json!({"op": 0, "t": "READY", "s": seq, "d": {"v": 10,
                            "user": {"id": BOT_ID, "username": "clawbot", "bot": true},
                            "session_id": "session-1", "resume_gateway_url": format!("ws://{address}/gateway"),
                            "guilds": []}});
                        if !send(&mut socket, ready_event).await { return; }
                    }
                    6 => {
                        ready = true;
                        let from = payload["d"]["seq"].as_u64().unwrap_or(0);
                        let missed: Vec<Value> = state.dispatches.lock().expect("dispatches")
                            .iter().skip(from as usize).cloned().collect();
                        for dispatch in missed {
                            if !send(&mut socket, dispatch).await { return; }
                        }
                        let seq = state.dispatches.lock().expect("dispatches").len() as u64;
                        if !send(&mut socket, json!({"op": 0, "t": "RESUMED", "s": seq, "d": {}})).await { return; }
                    }
                    _ => {}
                }
            }
        }
    }
}
