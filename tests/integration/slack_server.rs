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

/// An outbound file: (file id, filename, declared length, bytes uploaded,
/// the completeUploadExternal body once completed).
pub type Upload = (String, String, usize, Option<Vec<u8>>, Option<Value>);

pub struct Slack {
    /// Every envelope pushed: (envelope id, payload event).
    envelopes: Mutex<Vec<Value>>,
    acks: Mutex<Vec<String>>,
    opens: Mutex<usize>,
    posts: Mutex<Vec<Value>>,
    send_failures: Mutex<VecDeque<u64>>,
    stall_sends: AtomicBool,
    live: tokio::sync::broadcast::Sender<Control>,
    /// Files: (file id, bytes); and the ids downloaded with the bot token.
    files: Mutex<Vec<(String, Vec<u8>)>>,
    downloads: Mutex<Vec<String>>,
    /// Outbound files: (file id, filename, declared length, bytes uploaded,
    /// the completeUploadExternal body once completed).
    uploads: Mutex<Vec<Upload>>,
    /// reactions.add / reactions.remove calls: (method, body).
    reactions: Mutex<Vec<(String, Value)>>,
    /// Files answered with the sign-in page, as Slack does for a token
    /// without the `files:read` scope.
    files_unreadable: AtomicBool,
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
        let (live, _) = tokio::sync::broadcast::channel(64);
        let state = Arc::new(Slack {
            envelopes: Mutex::default(),
            acks: Mutex::default(),
            opens: Mutex::default(),
            posts: Mutex::default(),
            send_failures: Mutex::default(),
            stall_sends: AtomicBool::new(false),
            live,
            files: Mutex::default(),
            downloads: Mutex::default(),
            uploads: Mutex::default(),
            reactions: Mutex::default(),
            files_unreadable: AtomicBool::new(false),
        });
        let (address, runtime) = crate::support::serve(|address| {
            axum::Router::new()
                .route("/api/apps.connections.open", axum::routing::post(open))
                .route("/api/auth.test", axum::routing::post(auth_test))
                .route("/api/chat.postMessage", axum::routing::post(post_message))
                .route(
                    "/api/files.getUploadURLExternal",
                    axum::routing::post(get_upload_url),
                )
                .route("/upload/{file}", axum::routing::post(upload))
                .route("/api/reactions.add", axum::routing::post(reaction_add))
                .route(
                    "/api/reactions.remove",
                    axum::routing::post(reaction_remove),
                )
                .route(
                    "/api/files.completeUploadExternal",
                    axum::routing::post(complete_upload),
                )
                .route("/link", axum::routing::any(upgrade))
                .route(
                    "/files-pri/{team_file}/download/{name}",
                    axum::routing::get(private_file),
                )
                .with_state((state.clone(), address.to_owned()))
        });
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

    /// A `file_share` message event carrying one file, as the Events API
    /// describes it (`id`, `name`, `mimetype`, `size`, `url_private`,
    /// `url_private_download`); the envelope's index.
    pub fn push_file(
        &self,
        channel: &str,
        user: &str,
        text: &str,
        (name, mimetype, bytes): (&str, &str, &[u8]),
    ) -> usize {
        let mut files = self.state.files.lock().expect("files");
        let id = format!("F{}", files.len() + 1);
        files.push((id.clone(), bytes.to_vec()));
        drop(files);
        let url = format!("http://{}/files-pri/T1-{id}/{name}", self.address);
        let download = format!("http://{}/files-pri/T1-{id}/download/{name}", self.address);
        let mut envelopes = self.state.envelopes.lock().expect("envelopes");
        let index = envelopes.len();
        envelopes.push(
            json!({"type": "message", "subtype": "file_share", "channel": channel,
            "channel_type": "im", "user": user, "text": text, "upload": false,
            "ts": format!("1700000000.{:06}", index + 1), "team": "T1",
            "files": [{"id": id, "name": name, "title": name, "mimetype": mimetype,
                       "filetype": "png", "size": bytes.len(), "url_private": url,
                       "url_private_download": download}]}),
        );
        drop(envelopes);
        let _ = self.state.live.send(Control::Deliver(index, 0));
        index
    }

    /// Outbound files: (file id, filename, declared length, bytes
    /// uploaded, the completion's body).
    pub fn uploads(&self) -> Vec<Upload> {
        self.state.uploads.lock().expect("uploads").clone()
    }

    /// Answers file downloads with the sign-in page (a token without
    /// `files:read`).
    pub fn files_unreadable(&self, unreadable: bool) {
        self.state
            .files_unreadable
            .store(unreadable, Ordering::SeqCst);
    }

    /// reactions.add / reactions.remove calls: (method, body).
    pub fn reactions(&self) -> Vec<(String, Value)> {
        self.state.reactions.lock().expect("reactions").clone()
    }

    /// The file ids downloaded, in order.
    pub fn downloads(&self) -> Vec<String> {
        self.state.downloads.lock().expect("downloads").clone()
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
        crate::support::wait_until(what, || done(self));
    }
}

type Shared = (Arc<Slack>, String);

/// A private file URL: the bytes with the bot token, a refusal without.
async fn private_file(
    State((state, _)): State<Shared>,
    axum::extract::Path((team_file, _)): axum::extract::Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        != Some(&format!("Bearer {BOT_TOKEN}"))
    {
        return StatusCode::FORBIDDEN.into_response();
    }
    if state.files_unreadable.load(Ordering::SeqCst) {
        return (
            [("content-type", "text/html; charset=utf-8")],
            "<!DOCTYPE html><html><title>Sign in | Slack</title></html>",
        )
            .into_response();
    }
    let id = team_file.trim_start_matches("T1-").to_owned();
    let found = state
        .files
        .lock()
        .expect("files")
        .iter()
        .find(|(known, _)| *known == id)
        .map(|(_, bytes)| bytes.clone());
    match found {
        Some(bytes) => {
            state.downloads.lock().expect("downloads").push(id);
            bytes.into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

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

async fn reaction_add(state: State<Shared>, headers: HeaderMap, body: String) -> Response {
    reaction("reactions.add", state, headers, body)
}

async fn reaction_remove(state: State<Shared>, headers: HeaderMap, body: String) -> Response {
    reaction("reactions.remove", state, headers, body)
}

/// `reactions.add` / `reactions.remove` (`channel`, `timestamp`, `name`).
fn reaction(
    method: &str,
    State((state, _)): State<Shared>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if bearer(&headers) != BOT_TOKEN {
        return not_authed();
    }
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    if body["name"]
        .as_str()
        .is_none_or(|name| name.is_empty() || name.contains(':'))
    {
        return axum::Json(json!({"ok": false, "error": "invalid_name"})).into_response();
    }
    state
        .reactions
        .lock()
        .expect("reactions")
        .push((method.to_owned(), body));
    axum::Json(json!({"ok": true})).into_response()
}

/// `files.getUploadURLExternal?filename=&length=`: an upload URL and a
/// file id.
async fn get_upload_url(
    State((state, address)): State<Shared>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    let query: std::collections::BTreeMap<String, String> =
        reqwest::Url::parse(&format!("http://slack{uri}"))
            .map(|url| url.query_pairs().into_owned().collect())
            .unwrap_or_default();
    if bearer(&headers) != BOT_TOKEN {
        return not_authed();
    }
    let (Some(filename), Some(length)) = (
        query.get("filename"),
        query
            .get("length")
            .and_then(|length| length.parse::<usize>().ok()),
    ) else {
        return axum::Json(json!({"ok": false, "error": "invalid_arguments"})).into_response();
    };
    let mut uploads = state.uploads.lock().expect("uploads");
    let id = format!("FOUT{}", uploads.len() + 1);
    uploads.push((id.clone(), filename.clone(), length, None, None));
    axum::Json(
        json!({"ok": true, "upload_url": format!("http://{address}/upload/{id}"),
                      "file_id": id}),
    )
    .into_response()
}

/// The upload URL: the bytes (their length must be the declared one).
async fn upload(
    State((state, _)): State<Shared>,
    axum::extract::Path(file): axum::extract::Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let mut uploads = state.uploads.lock().expect("uploads");
    match uploads.iter_mut().find(|upload| upload.0 == file) {
        Some(upload) if upload.2 == body.len() => {
            upload.3 = Some(body.to_vec());
            (StatusCode::OK, format!("OK - {}", body.len())).into_response()
        }
        Some(_) => (StatusCode::BAD_REQUEST, "length mismatch").into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `files.completeUploadExternal`: every file uploaded, then shared.
async fn complete_upload(
    State((state, _)): State<Shared>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if bearer(&headers) != BOT_TOKEN {
        return not_authed();
    }
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let mut uploads = state.uploads.lock().expect("uploads");
    let ids: Vec<String> = body["files"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|file| file["id"].as_str().map(str::to_owned))
        .collect();
    for id in &ids {
        match uploads.iter_mut().find(|upload| upload.0 == *id) {
            Some(upload) if upload.3.is_some() => upload.4 = Some(body.clone()),
            _ => {
                return axum::Json(json!({"ok": false, "error": "file_not_found"})).into_response();
            }
        }
    }
    axum::Json(
        json!({"ok": true, "files": ids.iter().map(|id| json!({"id": id})).collect::<Vec<_>>()}),
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
