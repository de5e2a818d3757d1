//! The custom channel: any system that can make and take HTTP requests.
//! Messages come in as signed POSTs to `channels.webhook.path`; replies go
//! out as signed POSTs to `channels.webhook.callbackUrl`.
//!
//! Signing (both directions): `X-Clawback-Timestamp: <unix seconds>` and
//! `X-Clawback-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
//! A request more than five minutes old or new is refused, so a captured
//! request cannot be replayed later. Outbound requests carry
//! `Idempotency-Key` (stable across retries and restarts), and the receiver
//! is expected to deduplicate by it: that contract is what lets a restart
//! resend a reply it cannot confirm ([`AfterRestart::Resend`]).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use ring::hmac;
use serde::Deserialize;
use serde_json::{Value, json};

use super::manager::{AccountSettings, Spec};
use super::platform::{AfterRestart, BoxFuture, Outgoing, Platform, SendError, Target};
use super::routing::{Chat, ChatKind};
use super::settings;
use super::{Inbound, Inbox, Received};
use crate::config::model::ConfigFile;
use crate::gateway::Gateway;
use crate::gateway::http::json_response;

pub const TEXT_LIMIT_DEFAULT: usize = 4000;
const DEFAULT_PATH: &str = "/channels/webhook";
/// How far a request's timestamp may be from now.
const CLOCK_SKEW_MAX_S: i64 = 300;
const BODY_BYTES_MAX: usize = 1 << 20;
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Webhook {
    key: hmac::Key,
    /// The inbound route; accounts may share one, told apart by their key.
    path: String,
    callback_url: String,
    client: reqwest::Client,
}

pub fn build(
    config: &ConfigFile,
    account: &settings::AccountSection,
) -> Result<Option<Spec>, String> {
    let section: settings::Webhook = account.parse("webhook")?;
    if section.common.enabled == Some(false) {
        return Ok(None);
    }
    let secret = section
        .secret
        .as_ref()
        .ok_or("a secret is needed (the HMAC key both sides sign with)")?
        .resolve()
        .map_err(|error| format!("secret: {error}"))?;
    if secret.len() < 16 {
        return Err("secret must be at least 16 characters".to_owned());
    }
    let callback_url = section
        .callback_url
        .clone()
        .ok_or("callbackUrl is needed (where replies are posted)")?;
    let parsed =
        reqwest::Url::parse(&callback_url).map_err(|error| format!("callbackUrl: {error}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("callbackUrl must be an http(s) URL".to_owned());
    }
    let client = super::http_client()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|error| format!("cannot build the webhook HTTP client: {error}"))?;
    let issues = section.common.issues(&section.access, "webhook");
    let path = path(section.path.as_deref());
    Ok(Some(Spec {
        platform: Arc::new(Webhook {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
            path: path.clone(),
            callback_url: callback_url.clone(),
            client,
        }),
        account_id: account.id.clone(),
        settings: AccountSettings {
            access: section.access,
            allow_prefixes: &["webhook:"],
            blocks: section.common.blocks(),
            text_limit: section.common.text_limit(TEXT_LIMIT_DEFAULT),
            media_max_bytes: section.common.media_max_bytes(),
            ack: None,
            mode: "webhook",
            delivery: settings::delivery_policy(config, "webhook", account)?,
            issues,
            describe: json!({"webhookPath": path, "webhookUrl": callback_url}),
        },
    }))
}

fn path(configured: Option<&str>) -> String {
    configured
        .map(|path| format!("/{}", path.trim_start_matches('/')))
        .unwrap_or_else(|| DEFAULT_PATH.to_owned())
}

/// Every inbound path the configured accounts use (the default path when
/// none is readable).
fn paths(config: &ConfigFile) -> Vec<String> {
    let mut paths: Vec<String> = settings::accounts(config, "webhook")
        .unwrap_or_default()
        .iter()
        .filter_map(|account| account.parse::<settings::Webhook>("webhook").ok())
        .map(|section| path(section.path.as_deref()))
        .collect();
    paths.sort();
    paths.dedup();
    if paths.is_empty() {
        paths.push(DEFAULT_PATH.to_owned());
    }
    paths
}

/// `sha256=<hex>` over `<timestamp>.<body>`.
pub fn signature(key: &hmac::Key, timestamp: i64, body: &[u8]) -> String {
    let mut context = hmac::Context::with_key(key);
    context.update(timestamp.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    let tag = context.sign();
    let hex: String = tag
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("sha256={hex}")
}

fn verify(key: &hmac::Key, headers: &HeaderMap, body: &[u8], now_s: i64) -> Result<(), String> {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let timestamp: i64 = header("x-clawback-timestamp")
        .and_then(|value| value.trim().parse().ok())
        .ok_or("missing or unreadable X-Clawback-Timestamp")?;
    if (now_s - timestamp).abs() > CLOCK_SKEW_MAX_S {
        return Err(
            "X-Clawback-Timestamp is more than 5 minutes from the gateway's clock".to_owned(),
        );
    }
    let offered = header("x-clawback-signature").ok_or("missing X-Clawback-Signature")?;
    let hex = offered
        .trim()
        .strip_prefix("sha256=")
        .ok_or("X-Clawback-Signature must be sha256=<hex>")?;
    let tag = decode_hex(hex).ok_or("X-Clawback-Signature is not hex")?;
    let mut message = timestamp.to_string().into_bytes();
    message.push(b'.');
    message.extend_from_slice(body);
    hmac::verify(key, &message, &tag).map_err(|_| "signature mismatch".to_owned())
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(hex.get(at..at + 2)?, 16).ok())
        .collect()
}

fn now_s() -> i64 {
    crate::gateway::protocol::methods::now_ms() / 1000
}

impl Platform for Webhook {
    fn channel(&self) -> &'static str {
        "webhook"
    }

    fn send<'a>(
        &'a self,
        message: Outgoing<'a>,
    ) -> BoxFuture<'a, Result<Option<String>, SendError>> {
        Box::pin(async move {
            let body = json!({
                "idempotencyKey": message.idempotency_key,
                "chatId": message.target.chat,
                "threadId": message.target.thread,
                "text": message.text,
            })
            .to_string();
            let timestamp = now_s();
            let response = self
                .client
                .post(&self.callback_url)
                .header("content-type", "application/json")
                .header("idempotency-key", message.idempotency_key)
                .header("x-clawback-timestamp", timestamp.to_string())
                .header(
                    "x-clawback-signature",
                    signature(&self.key, timestamp, body.as_bytes()),
                )
                .body(body)
                .timeout(SEND_TIMEOUT)
                .send()
                .await
                .map_err(|error| SendError::transient(format!("webhook callback: {error}")))?;
            let status = response.status();
            let retry_after = super::retry_after(response.headers());
            let answer: Value = response.json().await.unwrap_or(Value::Null);
            if status.is_success() {
                return Ok(answer.get("messageId").and_then(|id| {
                    id.as_str()
                        .map(str::to_owned)
                        .or_else(|| id.as_i64().map(|id| id.to_string()))
                }));
            }
            Err(SendError {
                message: format!("webhook callback answered HTTP {status}"),
                retryable: status.as_u16() == 429 || status.is_server_error(),
                retry_after,
            })
        })
    }

    fn typing<'a>(&'a self, _target: &'a Target) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }

    fn after_restart(&self, _prepared_age: Duration) -> AfterRestart {
        AfterRestart::Resend
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn run(
        self: Arc<Self>,
        inbox: Inbox,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> BoxFuture<'static, Result<(), String>> {
        Box::pin(async move {
            inbox.account.connected(true);
            // Messages arrive through the route below; this side only waits.
            let _ = stop.wait_for(|stopped| *stopped).await;
            Ok(())
        })
    }
}

/// The inbound route (when `channels.webhook` is configured).
pub fn router(gateway: Arc<Gateway>) -> Router {
    let mut router = Router::new();
    for path in paths(&gateway.config()) {
        router = router.route(&path, post(receive));
    }
    router.with_state(gateway)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Message {
    message_id: String,
    chat_id: String,
    #[serde(default)]
    chat_type: Option<String>,
    #[serde(default)]
    thread_id: Option<String>,
    sender_id: String,
    #[serde(default)]
    sender_name: Option<String>,
    text: String,
    #[serde(default)]
    mentioned: bool,
}

/// One inbound message: the account is the one on this path whose key
/// signed it.
async fn receive(
    State(gateway): State<Arc<Gateway>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let refuse = |status: StatusCode, message: String| {
        json_response(status, json!({"ok": false, "error": message}))
    };
    let on_path: Vec<_> = gateway
        .channels
        .accounts()
        .into_iter()
        .filter(|account| {
            account
                .platform
                .as_any()
                .downcast_ref::<Webhook>()
                .is_some_and(|platform| platform.path == uri.path())
        })
        .collect();
    if on_path.is_empty() {
        return refuse(
            StatusCode::NOT_FOUND,
            "the webhook channel is not running".to_owned(),
        );
    }
    let bytes = match crate::gateway::http::read_body(&headers, body, BODY_BYTES_MAX).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "unreadable or too large body".to_owned(),
            );
        }
    };
    let mut problem = String::new();
    let mut signed_by = None;
    for account in on_path {
        let Some(platform) = account.platform.as_any().downcast_ref::<Webhook>() else {
            continue;
        };
        match verify(&platform.key, &headers, &bytes, now_s()) {
            Ok(()) => {
                signed_by = Some(account);
                break;
            }
            Err(error) => problem = error,
        }
    }
    let Some(account) = signed_by else {
        return refuse(StatusCode::UNAUTHORIZED, problem);
    };
    let message: Message = match serde_json::from_slice(&bytes) {
        Ok(message) => message,
        Err(error) => return refuse(StatusCode::BAD_REQUEST, format!("invalid message: {error}")),
    };
    let kind = match message.chat_type.as_deref().map(ChatKind::parse) {
        None => ChatKind::Direct,
        Some(Some(kind)) => kind,
        Some(None) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "chatType must be direct, group or channel".to_owned(),
            );
        }
    };
    let empty = |text: &str| text.trim().is_empty();
    if empty(&message.message_id) || empty(&message.chat_id) || empty(&message.sender_id) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "messageId, chatId and senderId must not be empty".to_owned(),
        );
    }
    let inbound = Inbound {
        platform_message_id: message.message_id,
        cursor: None,
        chat: Chat {
            kind,
            id: message.chat_id,
            thread_id: message.thread_id,
            thread_is_topic: false,
        },
        sender_id: message.sender_id,
        sender_name: message.sender_name,
        text: message.text,
        mentioned: message.mentioned,
        unsupported: None,
        media: Vec::new(),
        group_verdict: None,
    };
    let inbox = Inbox {
        gateway: gateway.clone(),
        account: account.clone(),
    };
    match inbox.take(inbound).await {
        Ok(Received::Taken { admitted }) => json_response(
            StatusCode::OK,
            json!({"ok": true, "duplicate": false, "admitted": admitted}),
        ),
        Ok(Received::Duplicate) => {
            json_response(StatusCode::OK, json!({"ok": true, "duplicate": true}))
        }
        Err(error) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("not recorded: {error}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_stale_or_forged_ones_do_not() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"0123456789abcdef");
        let body = br#"{"text":"hi"}"#;
        let mut headers = HeaderMap::new();
        headers.insert("x-clawback-timestamp", "1000".parse().unwrap());
        headers.insert(
            "x-clawback-signature",
            signature(&key, 1000, body).parse().unwrap(),
        );
        assert!(verify(&key, &headers, body, 1100).is_ok());
        assert!(verify(&key, &headers, body, 1000 + 301).is_err(), "stale");
        assert!(
            verify(&key, &headers, br#"{"text":"ho"}"#, 1100).is_err(),
            "body changed"
        );
        let other = hmac::Key::new(hmac::HMAC_SHA256, b"another-secret-key");
        assert!(verify(&other, &headers, body, 1100).is_err(), "other key");
    }
}
