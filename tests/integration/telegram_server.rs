//! A local Telegram Bot API: `POST /bot<token>/<method>` with JSON bodies,
//! answered `{ok, result}` or `{ok: false, error_code, description,
//! parameters}` as <https://core.telegram.org/bots/api> documents.
//! `getUpdates` long-polls (returns as soon as an update at or past the
//! offset exists, else after its `timeout`), so the gateway's polling loop
//! runs against it exactly as against Telegram.
//!
//! Test controls: push updates, make the next sends answer 429 with a
//! `retry_after`, stall sends (never answer) to cut a delivery short, and
//! redeliver everything regardless of the offset (a Telegram that lost the
//! acknowledgement).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub const BOT_TOKEN: &str = "123456:TEST-token";
pub const BOT_USERNAME: &str = "claw_bot";

pub struct Bot {
    /// The token this bot answers to (another is 401, as Telegram).
    token: String,
    /// `getMe`'s id and username.
    id: i64,
    username: String,
    updates: Mutex<Vec<Value>>,
    /// Every call: (method, body).
    calls: Mutex<Vec<(String, Value)>>,
    /// Statuses the next sendMessage calls answer with (429, 500...).
    send_failures: Mutex<VecDeque<(u16, Option<u64>)>>,
    stall_sends: AtomicBool,
    redeliver: AtomicBool,
    pushed: tokio::sync::Notify,
    /// Files by `file_id`: (file_path, bytes).
    files: Mutex<Vec<(String, String, Vec<u8>)>>,
    /// Downloads served: file paths.
    downloads: Mutex<Vec<String>>,
}

pub struct TelegramServer {
    pub address: String,
    pub bot: Arc<Bot>,
    _runtime: tokio::runtime::Runtime,
}

impl TelegramServer {
    pub fn start() -> TelegramServer {
        TelegramServer::start_bot(BOT_TOKEN, 99, BOT_USERNAME)
    }

    /// A Bot API serving one bot of this token and identity (a second bot
    /// account is a second server).
    pub fn start_bot(token: &str, id: i64, username: &str) -> TelegramServer {
        let bot = Arc::new(Bot {
            token: token.to_owned(),
            id,
            username: username.to_owned(),
            updates: Mutex::default(),
            calls: Mutex::default(),
            send_failures: Mutex::default(),
            stall_sends: AtomicBool::default(),
            redeliver: AtomicBool::default(),
            pushed: tokio::sync::Notify::default(),
            files: Mutex::default(),
            downloads: Mutex::default(),
        });
        let (address, runtime) = crate::support::serve(|_| {
            axum::Router::new()
                .route("/{bot}/{method}", axum::routing::post(call))
                .route("/file/{bot}/{*path}", axum::routing::get(file))
                .with_state(bot.clone())
        });
        TelegramServer {
            address,
            bot,
            _runtime: runtime,
        }
    }

    pub fn api_root(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Queues a text message from `from` in `chat` (private when equal).
    pub fn push_text(&self, chat: i64, from: i64, text: &str) -> i64 {
        let mut updates = self.bot.updates.lock().expect("updates");
        let update_id = updates.len() as i64 + 1;
        let kind = if chat == from {
            "private"
        } else {
            "supergroup"
        };
        updates.push(json!({"update_id": update_id, "message": {
            "message_id": 100 + update_id, "date": 1_700_000_000,
            "from": {"id": from, "is_bot": false, "first_name": format!("User{from}")},
            "chat": {"id": chat, "type": kind}, "text": text}}));
        drop(updates);
        self.bot.pushed.notify_waiters();
        update_id
    }

    /// Queues a photo (as Telegram sends one: sizes, largest last, no mime
    /// type) whose largest size is `bytes`, with `caption`.
    pub fn push_photo(&self, chat: i64, from: i64, bytes: &[u8], caption: Option<&str>) -> i64 {
        let file_id = self.add_file("photos", "jpg", bytes);
        let mut message = json!({"date": 1_700_000_000,
            "from": {"id": from, "is_bot": false, "first_name": format!("User{from}")},
            "chat": {"id": chat, "type": "private"},
            "photo": [{"file_id": "thumb", "file_unique_id": "t", "width": 90, "height": 90, "file_size": 10},
                      {"file_id": file_id, "file_unique_id": "u", "width": 800, "height": 600,
                       "file_size": bytes.len()}]});
        if let Some(caption) = caption {
            message["caption"] = json!(caption);
        }
        self.push_message(message)
    }

    /// Queues a document (`file_name`, `mime_type`, `file_size` as given).
    pub fn push_document(&self, chat: i64, from: i64, name: &str, mime: &str, bytes: &[u8]) -> i64 {
        let file_id = self.add_file("documents", "pdf", bytes);
        self.push_message(json!({"date": 1_700_000_000,
            "from": {"id": from, "is_bot": false, "first_name": format!("User{from}")},
            "chat": {"id": chat, "type": "private"},
            "document": {"file_id": file_id, "file_unique_id": "d", "file_name": name,
                         "mime_type": mime, "file_size": bytes.len()}}))
    }

    /// A file at `<folder>/file_<n>.<extension>`, as Telegram names them.
    fn add_file(&self, folder: &str, extension: &str, bytes: &[u8]) -> String {
        let mut files = self.bot.files.lock().expect("files");
        let n = files.len() + 1;
        let file_id = format!("FILE{n}");
        let path = format!("{folder}/file_{n}.{extension}");
        files.push((file_id.clone(), path, bytes.to_vec()));
        file_id
    }

    fn push_message(&self, mut message: Value) -> i64 {
        let mut updates = self.bot.updates.lock().expect("updates");
        let update_id = updates.len() as i64 + 1;
        message["message_id"] = json!(100 + update_id);
        updates.push(json!({"update_id": update_id, "message": message}));
        drop(updates);
        self.bot.pushed.notify_waiters();
        update_id
    }

    /// Registers a file under the file root (for a `mediaUrl` to fetch).
    pub fn serve_file(&self, bytes: &[u8]) -> String {
        let file_id = self.add_file("photos", "jpg", bytes);
        let files = self.bot.files.lock().expect("files");
        let (_, path, _) = files
            .iter()
            .find(|(id, _, _)| *id == file_id)
            .expect("file");
        format!("{}/file/bot{}/{path}", self.api_root(), self.bot.token)
    }

    /// The file paths downloaded, in order.
    pub fn downloads(&self) -> Vec<String> {
        self.bot.downloads.lock().expect("downloads").clone()
    }

    pub fn update(&self, update_id: i64) -> Value {
        self.bot.updates.lock().expect("updates")[(update_id - 1) as usize].clone()
    }

    pub fn calls(&self, method: &str) -> Vec<Value> {
        self.bot
            .calls
            .lock()
            .expect("calls")
            .iter()
            .filter(|(name, _)| name == method)
            .map(|(_, body)| body.clone())
            .collect()
    }

    /// The texts sent to `chat`, in order.
    pub fn sent_to(&self, chat: i64) -> Vec<String> {
        self.calls("sendMessage")
            .iter()
            .filter(|body| body["chat_id"] == json!(chat))
            .filter_map(|body| body["text"].as_str().map(str::to_owned))
            .collect()
    }

    pub fn fail_next_sends(&self, status: u16, retry_after: Option<u64>, times: usize) {
        let mut failures = self.bot.send_failures.lock().expect("failures");
        for _ in 0..times {
            failures.push_back((status, retry_after));
        }
    }

    pub fn stall_sends(&self, stall: bool) {
        self.bot.stall_sends.store(stall, Ordering::SeqCst);
    }

    pub fn redeliver(&self, redeliver: bool) {
        self.bot.redeliver.store(redeliver, Ordering::SeqCst);
    }

    /// Waits (bounded) until `done` holds.
    pub fn wait_for(&self, what: &str, done: impl Fn(&TelegramServer) -> bool) {
        crate::support::wait_until(what, || done(self));
    }
}

fn ok(result: Value) -> Response {
    axum::Json(json!({"ok": true, "result": result})).into_response()
}

fn refuse(status: u16, description: &str, retry_after: Option<u64>) -> Response {
    let mut body = json!({"ok": false, "error_code": status, "description": description});
    if let Some(seconds) = retry_after {
        body["parameters"] = json!({"retry_after": seconds});
    }
    let status = axum::http::StatusCode::from_u16(status).expect("status");
    (status, axum::Json(body)).into_response()
}

async fn call(
    State(bot): State<Arc<Bot>>,
    Path((path_bot, method)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if path_bot != format!("bot{}", bot.token) {
        return refuse(401, "Unauthorized", None);
    }
    let content_type = headers
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let body: Value = match content_type.strip_prefix("multipart/form-data; boundary=") {
        Some(boundary) => match crate::support::multipart(&body, boundary) {
            Some(form) => form,
            None => return refuse(400, "Bad Request: unreadable multipart body", None),
        },
        None => serde_json::from_slice(&body).unwrap_or(Value::Null),
    };
    bot.calls
        .lock()
        .expect("calls")
        .push((method.clone(), body.clone()));
    match method.as_str() {
        "getMe" => ok(
            json!({"id": bot.id, "is_bot": true, "first_name": "Claw", "username": bot.username}),
        ),
        "deleteWebhook" | "setWebhook" | "sendChatAction" | "setMessageReaction" => ok(json!(true)),
        "getUpdates" => get_updates(&bot, &body).await,
        "getFile" => {
            let files = bot.files.lock().expect("files");
            match files.iter().find(|(id, _, _)| body["file_id"] == json!(id)) {
                Some((id, path, bytes)) => ok(json!({"file_id": id, "file_unique_id": "u",
                    "file_size": bytes.len(), "file_path": path})),
                None => refuse(400, "Bad Request: invalid file_id", None),
            }
        }
        "sendPhoto" | "sendDocument" | "sendVoice" | "sendAudio" | "sendVideo" => {
            let field = &method["send".len()..].to_ascii_lowercase();
            if body["files"][field].is_null() {
                return refuse(
                    400,
                    &format!("Bad Request: there is no {field} in the request"),
                    None,
                );
            }
            let sent = bot.calls.lock().expect("calls").len();
            ok(json!({"message_id": 6000 + sent, "date": 1_700_000_000,
                      "chat": {"id": body["chat_id"], "type": "private"}}))
        }
        "sendMessage" => {
            if bot.stall_sends.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            if let Some((status, retry_after)) =
                bot.send_failures.lock().expect("failures").pop_front()
            {
                let description = if status == 429 {
                    format!(
                        "Too Many Requests: retry after {}",
                        retry_after.unwrap_or(1)
                    )
                } else {
                    "Internal Server Error".to_owned()
                };
                return refuse(status, &description, retry_after);
            }
            let sent = bot
                .calls
                .lock()
                .expect("calls")
                .iter()
                .filter(|(m, _)| m == "sendMessage")
                .count();
            ok(json!({"message_id": 5000 + sent, "date": 1_700_000_000,
                      "chat": {"id": body["chat_id"], "type": "private"}, "text": body["text"]}))
        }
        other => refuse(404, &format!("Not Found: method {other} not found"), None),
    }
}

/// `GET /file/bot<token>/<file_path>`: the bytes of a file `getFile`
/// named.
async fn file(
    State(bot): State<Arc<Bot>>,
    Path((path_bot, path)): Path<(String, String)>,
) -> Response {
    if path_bot != format!("bot{}", bot.token) {
        return (axum::http::StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
    }
    let found = bot
        .files
        .lock()
        .expect("files")
        .iter()
        .find(|(_, file_path, _)| *file_path == path)
        .map(|(_, _, bytes)| bytes.clone());
    match found {
        Some(bytes) => {
            bot.downloads.lock().expect("downloads").push(path);
            bytes.into_response()
        }
        None => (axum::http::StatusCode::NOT_FOUND, "Not Found").into_response(),
    }
}

async fn get_updates(bot: &Bot, body: &Value) -> Response {
    let offset = body["offset"].as_i64().unwrap_or(0);
    let timeout = body["timeout"].as_u64().unwrap_or(0).min(30);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    loop {
        let pushed = bot.pushed.notified();
        let ready: Vec<Value> = bot
            .updates
            .lock()
            .expect("updates")
            .iter()
            .filter(|update| {
                bot.redeliver.load(Ordering::SeqCst)
                    || update["update_id"].as_i64().unwrap_or(0) >= offset
            })
            .cloned()
            .collect();
        if !ready.is_empty() || tokio::time::Instant::now() >= deadline {
            return ok(Value::Array(ready));
        }
        let _ = tokio::time::timeout_at(deadline, pushed).await;
    }
}
