//! Telegram, on the Bot API: long polling (`getUpdates`) by default, a
//! webhook (`setWebhook` with a secret token) when `webhookUrl` is set.
//!
//! Exactly-once: a polled update is recorded with the offset that
//! acknowledges it (`cursor`), and the next `getUpdates` asks from the
//! recorded offset, so an update is acknowledged only once it is in the
//! log; one delivered again (a crash before the next poll) is recognised
//! by its `<chat>:<message>` id. A webhook update is answered 200 only
//! after it is recorded, so Telegram retries what was not. Outbound, the
//! Bot API has no idempotency key: a send a restart cannot confirm is
//! reported, not repeated.
//!
//! Why a thin client on reqwest rather than a bot framework crate: the five
//! methods used here are plain JSON POSTs, and owning them keeps the token
//! out of every error message and the retry rules in the outbox.

mod api;
pub mod updates;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use self::api::Api;
use self::updates::BotIdentity;
use super::manager::{AccountSettings, Spec};
use super::platform::{AfterRestart, BoxFuture, Outgoing, Platform, SendError, Target};
use super::settings;
use super::{Inbox, Received};
use crate::config::model::ConfigFile;
use crate::gateway::Gateway;

/// Telegram's limit for one message's text.
pub const TEXT_LIMIT: usize = 4096;
/// `getUpdates`' long-poll wait; the HTTP timeout allows for it.
const POLL_SECONDS: u64 = 30;
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_API_ROOT: &str = "https://api.telegram.org";
const DEFAULT_WEBHOOK_PATH: &str = "/telegram-webhook";
const ALLOW_PREFIXES: &[&str] = &["telegram:", "tg:"];

pub struct Telegram {
    api: Api,
    mode: Mode,
    bot: Mutex<BotIdentity>,
}

enum Mode {
    Polling,
    Webhook {
        url: String,
        secret: String,
        /// The route Telegram posts to; accounts may share one, told
        /// apart by their secret token.
        path: String,
    },
}

/// The Telegram bot `account` describes, if it is enabled.
pub fn build(
    config: &ConfigFile,
    account: &settings::AccountSection,
) -> Result<Option<Spec>, String> {
    let section: settings::Telegram = account.parse("telegram")?;
    if section.common.enabled == Some(false) {
        return Ok(None);
    }
    let token = token(&section, account)?;
    let issues = section.common.issues(&section.access, "telegram");
    let mode = match &section.webhook_url {
        None => Mode::Polling,
        Some(url) => {
            let secret = section
                .webhook_secret
                .as_ref()
                .ok_or("webhookUrl needs webhookSecret (Telegram sends it back on every update)")?
                .resolve()
                .map_err(|error| format!("webhookSecret: {error}"))?;
            Mode::Webhook {
                url: url.clone(),
                secret,
                path: webhook_path(section.webhook_path.as_deref()),
            }
        }
    };
    let api_root = section.common.api_root(DEFAULT_API_ROOT);
    let client = super::http_client()
        .build()
        .map_err(|error| format!("cannot build the Telegram HTTP client: {error}"))?;
    let describe = json!({
        "tokenSource": if section.bot_token.is_some() { "config" } else if section.token_file.is_some() { "tokenFile" } else { "env" },
        "webhookUrl": section.webhook_url,
        "webhookPath": match &mode { Mode::Webhook { path, .. } => Some(path.clone()), Mode::Polling => None },
        "baseUrl": api_root,
    });
    let mode_name = match mode {
        Mode::Polling => "polling",
        Mode::Webhook { .. } => "webhook",
    };
    let platform = Telegram {
        api: Api::new(client, &api_root, &token),
        mode,
        bot: Mutex::new(BotIdentity::default()),
    };
    Ok(Some(Spec {
        platform: Arc::new(platform),
        account_id: account.id.clone(),
        settings: AccountSettings {
            access: section.access,
            allow_prefixes: ALLOW_PREFIXES,
            blocks: section.common.blocks(),
            text_limit: section.common.text_limit(TEXT_LIMIT),
            media_max_bytes: section.common.media_max_bytes(),
            ack: crate::channels::reaction::Ack::from_config(config, &account.value),
            mode: mode_name,
            delivery: settings::delivery_policy(config, "telegram", account)?,
            issues,
            describe,
        },
    }))
}

/// The bot token: configured, from a file, or (for the default account
/// only, as OpenClaw) from `TELEGRAM_BOT_TOKEN`.
fn token(
    section: &settings::Telegram,
    account: &settings::AccountSection,
) -> Result<String, String> {
    let token = match (&section.bot_token, &section.token_file) {
        (Some(token), _) => token
            .resolve()
            .map_err(|error| format!("botToken: {error}"))?,
        (None, Some(path)) => {
            let metadata = std::fs::symlink_metadata(path)
                .map_err(|error| format!("tokenFile {path}: {error}"))?;
            if !metadata.is_file() {
                return Err(format!(
                    "tokenFile {path} must be a regular file (not a link)"
                ));
            }
            std::fs::read_to_string(path).map_err(|error| format!("tokenFile {path}: {error}"))?
        }
        (None, None) if account.is_default() => {
            std::env::var("TELEGRAM_BOT_TOKEN").map_err(|_| {
                "botToken, tokenFile or the TELEGRAM_BOT_TOKEN environment variable is needed"
                    .to_owned()
            })?
        }
        (None, None) => return Err(
            "botToken or tokenFile is needed (TELEGRAM_BOT_TOKEN serves only the default account)"
                .to_owned(),
        ),
    };
    let token = token.trim().to_owned();
    if token.is_empty() || token.contains(['/', ' ', '?', '#']) {
        return Err(
            "botToken does not look like a bot token (from @BotFather: <digits>:<letters>)"
                .to_owned(),
        );
    }
    Ok(token)
}

/// Where Telegram posts an account's updates when a webhook is set.
fn webhook_path(configured: Option<&str>) -> String {
    configured
        .map(|path| format!("/{}", path.trim_start_matches('/')))
        .unwrap_or_else(|| DEFAULT_WEBHOOK_PATH.to_owned())
}

/// Every webhook path the configured Telegram accounts use (the default's
/// when none is readable, so the route answers "not running" rather than
/// 404 from the wrong layer).
fn webhook_paths(config: &ConfigFile) -> Vec<String> {
    let mut paths: Vec<String> = settings::accounts(config, "telegram")
        .unwrap_or_default()
        .iter()
        .filter_map(|account| account.parse::<settings::Telegram>("telegram").ok())
        .filter(|section| section.webhook_url.is_some())
        .map(|section| webhook_path(section.webhook_path.as_deref()))
        .collect();
    paths.sort();
    paths.dedup();
    if paths.is_empty() {
        paths.push(DEFAULT_WEBHOOK_PATH.to_owned());
    }
    paths
}

impl Telegram {
    async fn identify(&self) -> Result<(), String> {
        let me = self
            .api
            .call("getMe", &json!({}), CALL_TIMEOUT)
            .await
            .map_err(|error| error.message)?;
        let mut bot = self.bot.lock().expect("bot lock");
        bot.id = me.get("id").and_then(Value::as_i64).unwrap_or_default();
        bot.username = me
            .get("username")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        Ok(())
    }

    fn bot(&self) -> BotIdentity {
        self.bot.lock().expect("bot lock").clone()
    }

    async fn poll(
        &self,
        inbox: Inbox,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), String> {
        // A webhook left set makes getUpdates fail with 409.
        self.api
            .call(
                "deleteWebhook",
                &json!({"drop_pending_updates": false}),
                CALL_TIMEOUT,
            )
            .await
            .map_err(|error| error.message)?;
        inbox.account.connected(true);
        let mut offset: i64 = inbox
            .cursor()
            .and_then(|cursor| cursor.parse().ok())
            .unwrap_or(0);
        loop {
            let body =
                json!({"offset": offset, "timeout": POLL_SECONDS, "allowed_updates": ["message"]});
            let call = self
                .api
                .call("getUpdates", &body, Duration::from_secs(POLL_SECONDS + 15));
            let updates = tokio::select! {
                answer = call => answer.map_err(|error| error.message)?,
                _ = stop.changed() => return Ok(()),
            };
            let bot = self.bot();
            for update in updates.as_array().map(Vec::as_slice).unwrap_or_default() {
                let Some(update_id) = update.get("update_id").and_then(Value::as_i64) else {
                    continue;
                };
                if let Some(message) = updates::inbound(update, &bot) {
                    inbox.take(message).await?;
                }
                offset = offset.max(update_id + 1);
            }
            if *stop.borrow() {
                return Ok(());
            }
        }
    }
}

impl Telegram {
    /// A file by the Bot API method for its kind (a photo shows inline, a
    /// voice note plays as one), uploaded as `multipart/form-data`, with
    /// the text as its caption.
    async fn send_file(
        &self,
        message: &Outgoing<'_>,
        attachment: &super::media::Attachment,
        bytes: &[u8],
    ) -> Result<Value, SendError> {
        let mime = attachment.mime.as_str();
        let (method, field) = if attachment.voice && mime.starts_with("audio/") {
            ("sendVoice", "voice")
        } else if mime.starts_with("image/") && mime != "image/gif" && mime != "image/svg+xml" {
            ("sendPhoto", "photo")
        } else if mime.starts_with("audio/") {
            ("sendAudio", "audio")
        } else if mime.starts_with("video/") {
            ("sendVideo", "video")
        } else {
            ("sendDocument", "document")
        };
        let mut fields = vec![("chat_id", message.target.chat.clone())];
        if let Some(thread) = &message.target.thread {
            fields.push(("message_thread_id", thread.clone()));
        }
        if !message.text.is_empty() {
            fields.push(("caption", message.text.to_owned()));
        }
        let body = super::media::multipart(&fields, (field, attachment, bytes));
        self.api
            .call_multipart(method, body, super::media::DOWNLOAD_TIMEOUT)
            .await
    }
}

impl Platform for Telegram {
    fn channel(&self) -> &'static str {
        "telegram"
    }

    fn send<'a>(
        &'a self,
        message: Outgoing<'a>,
    ) -> BoxFuture<'a, Result<Option<String>, SendError>> {
        Box::pin(async move {
            if let Some(reaction) = message.reaction {
                // setMessageReaction: an empty list takes the bot's away.
                let id = super::reaction::after_chat(&reaction.message_id);
                let emoji = if reaction.remove {
                    json!([])
                } else {
                    json!([{"type": "emoji", "emoji": reaction.emoji}])
                };
                let body = json!({"chat_id": chat_id(&message.target.chat),
                                  "message_id": id.parse::<i64>().map_or_else(|_| json!(id), |id| json!(id)),
                                  "reaction": emoji});
                self.api
                    .call("setMessageReaction", &body, CALL_TIMEOUT)
                    .await?;
                return Ok(None);
            }
            let sent = match message.media {
                Some((attachment, bytes)) => self.send_file(&message, attachment, bytes).await?,
                None => {
                    let mut body =
                        json!({"chat_id": chat_id(&message.target.chat), "text": message.text});
                    if let Some(thread) = &message.target.thread {
                        body["message_thread_id"] = chat_id(thread);
                    }
                    self.api.call("sendMessage", &body, CALL_TIMEOUT).await?
                }
            };
            Ok(sent
                .get("message_id")
                .map(|id| format!("{}:{id}", message.target.chat)))
        })
    }

    fn sends_media(&self) -> bool {
        true
    }

    fn reacts(&self) -> bool {
        true
    }

    fn typing<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let mut body = json!({"chat_id": chat_id(&target.chat), "action": "typing"});
            if let Some(thread) = &target.thread {
                body["message_thread_id"] = chat_id(thread);
            }
            // Best effort: a missing indicator is not worth an error.
            let _ = self.api.call("sendChatAction", &body, CALL_TIMEOUT).await;
        })
    }

    fn download<'a>(
        &'a self,
        media: &'a super::media::MediaRef,
        cap: u64,
    ) -> BoxFuture<'a, Result<Vec<u8>, super::media::DownloadError>> {
        Box::pin(self.api.download(&media.locator, cap))
    }

    fn after_restart(&self, _prepared_age: Duration) -> AfterRestart {
        AfterRestart::Report("the Telegram Bot API cannot tell whether a message was sent")
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    /// The webhook registration is the one thing clawback set up with
    /// Telegram: deleted, so Telegram stops posting updates here (pending
    /// ones stay for the next poll). The bot token cannot be revoked
    /// through the Bot API; it stays in the config.
    fn logout(&self) -> BoxFuture<'_, Result<super::platform::Logout, String>> {
        Box::pin(async move {
            self.api
                .call(
                    "deleteWebhook",
                    &json!({"drop_pending_updates": false}),
                    CALL_TIMEOUT,
                )
                .await
                .map_err(|error| format!("deleteWebhook failed: {}", error.message))?;
            Ok(super::platform::Logout {
                cleared: matches!(self.mode, Mode::Webhook { .. }),
                actions: vec![
                    "deleted the Telegram webhook (deleteWebhook)".to_owned(),
                    "the bot token stays in the config (the Bot API cannot revoke it)".to_owned(),
                ],
            })
        })
    }

    fn run(
        self: Arc<Self>,
        inbox: Inbox,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> BoxFuture<'static, Result<(), String>> {
        Box::pin(async move {
            self.identify().await?;
            match &self.mode {
                Mode::Polling => self.poll(inbox, stop).await,
                Mode::Webhook { url, secret, .. } => {
                    let body = json!({"url": url, "secret_token": secret,
                                      "allowed_updates": ["message"]});
                    self.api
                        .call("setWebhook", &body, CALL_TIMEOUT)
                        .await
                        .map_err(|error| error.message)?;
                    inbox.account.connected(true);
                    // Updates arrive through `webhook`; this side only waits.
                    let _ = stop.wait_for(|stopped| *stopped).await;
                    Ok(())
                }
            }
        })
    }
}

/// A chat id as Telegram wants it: a number, or `@channelusername`.
fn chat_id(text: &str) -> Value {
    text.parse::<i64>()
        .map_or_else(|_| json!(text), |id| json!(id))
}

/// The webhook routes (for accounts with a `webhookUrl`).
pub fn router(gateway: Arc<Gateway>) -> Router {
    let mut router = Router::new();
    for path in webhook_paths(&gateway.config()) {
        router = router.route(&path, post(webhook));
    }
    router.with_state(gateway)
}

/// One update from Telegram: the account is the webhook-mode account on
/// this path whose secret token it carries; checked, recorded, then
/// answered 200 (so an update not recorded is retried by Telegram).
async fn webhook(
    State(gateway): State<Arc<Gateway>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let offered = headers
        .get("x-telegram-bot-api-secret-token")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let mut on_path = false;
    let mut found = None;
    for account in gateway.channels.accounts() {
        if account.channel != "telegram" {
            continue;
        }
        let Some(platform) = account.platform.as_any().downcast_ref::<Telegram>() else {
            continue;
        };
        let Mode::Webhook { secret, path, .. } = &platform.mode else {
            continue;
        };
        if path != uri.path() {
            continue;
        }
        on_path = true;
        if blake3::hash(offered.as_bytes()) == blake3::hash(secret.as_bytes()) {
            found = Some(account);
            break;
        }
    }
    let Some(account) = found else {
        return if on_path {
            (StatusCode::UNAUTHORIZED, "bad secret token").into_response()
        } else {
            (
                StatusCode::NOT_FOUND,
                "no telegram account takes webhooks here",
            )
                .into_response()
        };
    };
    let Some(platform) = account.platform.as_any().downcast_ref::<Telegram>() else {
        return (StatusCode::NOT_FOUND, "telegram is not running").into_response();
    };
    let bytes = match crate::gateway::http::read_body(&headers, body, 4 << 20).await {
        Ok(bytes) => bytes,
        Err(_) => return (StatusCode::BAD_REQUEST, "unreadable body").into_response(),
    };
    let Ok(update) = serde_json::from_slice::<Value>(&bytes) else {
        return (StatusCode::BAD_REQUEST, "the body is not JSON").into_response();
    };
    let Some(message) = updates::inbound(&update, &platform.bot()) else {
        return StatusCode::OK.into_response();
    };
    let inbox = Inbox {
        gateway: gateway.clone(),
        account: account.clone(),
    };
    match inbox.take(message).await {
        Ok(Received::Taken { .. } | Received::Duplicate) => (
            [("x-openclaw-delivery-accepted", "durable")],
            StatusCode::OK,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "telegram update not recorded; Telegram will retry");
            (StatusCode::INTERNAL_SERVER_ERROR, "not recorded").into_response()
        }
    }
}
