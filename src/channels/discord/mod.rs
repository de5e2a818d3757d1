//! Discord: the gateway WebSocket for messages in (Hello, Identify or
//! Resume, heartbeats, dispatches; `gateway`), REST for messages out.
//!
//! Exactly-once: each message is recorded with the session's resume point
//! (its cursor), and a new process resumes from the log, so what Discord
//! replays is recognised by message id. Outbound, a message is created with
//! a `nonce` derived from its outbox key and `enforce_nonce: true`: Discord
//! then refuses to create a second message with that nonce for a few
//! minutes, so a send a restart cannot confirm is resent if it was prepared
//! within that window ([`NONCE_WINDOW`]) and reported otherwise.
//!
//! Why a thin client rather than serenity or twilight: the adapter needs
//! five operations, and those crates would add minutes to a cold build on
//! this project's 2-core machines for a cache and framework it does not use.

mod gateway;
pub mod messages;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use self::gateway::{Ended, Resume};
use self::messages::GuildRule;
use super::Inbox;
use super::manager::{AccountSettings, Reconnects, Spec};
use super::platform::{AfterRestart, BoxFuture, Outgoing, Platform, SendError, Target};
use super::settings;
use crate::config::model::{ConfigFile, SecretInput};

/// Discord's limit for one message's content.
pub const TEXT_LIMIT: usize = 2000;
/// How long Discord holds a nonce against a second message with it (it
/// says "a few minutes"; clawback assumes two).
pub const NONCE_WINDOW: Duration = Duration::from_secs(120);
const DEFAULT_API_ROOT: &str = "https://discord.com/api/v10";
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// `channels.discord`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Section {
    token: Option<SecretInput>,
    #[serde(flatten)]
    common: settings::Common,
    guilds: Option<BTreeMap<String, GuildRule>>,
    #[serde(flatten)]
    access: settings::Access,
}

pub struct Discord {
    token: String,
    api_root: String,
    client: reqwest::Client,
    group_policy: Option<String>,
    guilds: Option<BTreeMap<String, GuildRule>>,
    bot_id: Mutex<String>,
}

pub fn build(
    config: &ConfigFile,
    account: &settings::AccountSection,
) -> Result<Option<Spec>, String> {
    let section: Section = account.parse("discord")?;
    if section.common.enabled == Some(false) {
        return Ok(None);
    }
    let token = match &section.token {
        Some(token) => token.resolve().map_err(|error| format!("token: {error}"))?,
        None if !account.is_default() => {
            return Err(
                "needs token (DISCORD_BOT_TOKEN serves only the default account)".to_owned(),
            );
        }
        None => std::env::var("DISCORD_BOT_TOKEN").map_err(|_| {
            "needs token (or the DISCORD_BOT_TOKEN environment variable)".to_owned()
        })?,
    };
    let token = token.trim().to_owned();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err("token does not look like a bot token".to_owned());
    }
    let issues = section.common.issues(&section.access, "discord");
    let api_root = section.common.api_root(DEFAULT_API_ROOT);
    let client = super::http_client()
        .build()
        .map_err(|error| format!("cannot build the Discord HTTP client: {error}"))?;
    Ok(Some(Spec {
        platform: Arc::new(Discord {
            token,
            api_root: api_root.clone(),
            client,
            group_policy: section.access.group_policy.clone(),
            guilds: section.guilds.clone(),
            bot_id: Mutex::new(String::new()),
        }),
        account_id: account.id.clone(),
        settings: AccountSettings {
            access: section.access,
            allow_prefixes: &["discord:", "user:"],
            blocks: section.common.blocks(),
            text_limit: section.common.text_limit(TEXT_LIMIT),
            media_max_bytes: section.common.media_max_bytes(),
            ack: crate::channels::reaction::Ack::from_config(config, &account.value),
            mode: "gateway",
            delivery: settings::delivery_policy(config, "discord", account)?,
            issues,
            describe: json!({"baseUrl": api_root, "tokenSource": if section.token.is_some() { "config" } else { "env" }}),
        },
    }))
}

impl Discord {
    fn bot_id(&self) -> String {
        self.bot_id.lock().expect("bot id lock").clone()
    }

    fn set_bot_id(&self, id: &str) {
        *self.bot_id.lock().expect("bot id lock") = id.to_owned();
    }

    fn admit_guild(
        &self,
        guild: &str,
        channel: &str,
        sender: &str,
        mentioned: bool,
    ) -> Result<(), String> {
        messages::admit_guild(
            self.group_policy.as_deref(),
            self.guilds.as_ref(),
            guild,
            channel,
            sender,
            mentioned,
        )
    }

    async fn rest(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, SendError> {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.api_root))
            .header("authorization", format!("Bot {}", self.token))
            .timeout(CALL_TIMEOUT);
        if let Some(body) = body {
            request = request.json(body);
        }
        self.answer(path, request).await
    }

    /// A message with a file: `payload_json` and `files[0]` as
    /// `multipart/form-data`, the attachment named in the payload.
    async fn create_with_file(
        &self,
        path: &str,
        mut payload: Value,
        attachment: &super::media::Attachment,
        bytes: &[u8],
    ) -> Result<Value, SendError> {
        payload["attachments"] = json!([{"id": 0, "filename": attachment.name}]);
        let (content_type, body) = super::media::multipart(
            &[("payload_json", payload.to_string())],
            ("files[0]", attachment, bytes),
        );
        let request = self
            .client
            .post(format!("{}{path}", self.api_root))
            .header("authorization", format!("Bot {}", self.token))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body)
            .timeout(super::media::DOWNLOAD_TIMEOUT);
        self.answer(path, request).await
    }

    async fn answer(
        &self,
        path: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Value, SendError> {
        let response = request.send().await.map_err(|error| {
            SendError::transient(format!("Discord {path}: {}", error.without_url()))
        })?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(answer);
        }
        let retry_after = answer["retry_after"]
            .as_f64()
            .map(|seconds| Duration::from_secs_f64(seconds.clamp(0.0, 3600.0)));
        let message = answer["message"].as_str().unwrap_or("no message");
        Err(SendError {
            message: format!("Discord {path}: HTTP {status}: {message}"),
            retryable: status.as_u16() == 429 || status.is_server_error(),
            retry_after,
        })
    }

    /// The gateway URL to identify against.
    async fn gateway_url(&self) -> Result<String, String> {
        let answer = self
            .rest(reqwest::Method::GET, "/gateway/bot", None)
            .await
            .map_err(|error| error.message)?;
        answer["url"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| "Discord /gateway/bot answered without a url".to_owned())
    }
}

/// A nonce of at most 25 chars derived from an outbox key.
pub fn nonce(idempotency_key: &str) -> String {
    blake3::hash(idempotency_key.as_bytes()).to_hex()[..25].to_owned()
}

impl Platform for Discord {
    fn channel(&self) -> &'static str {
        "discord"
    }

    fn send<'a>(
        &'a self,
        message: Outgoing<'a>,
    ) -> BoxFuture<'a, Result<Option<String>, SendError>> {
        Box::pin(async move {
            if let Some(reaction) = message.reaction {
                // PUT (or DELETE) .../reactions/{emoji}/@me: the bot's own.
                let path = format!(
                    "/channels/{}/messages/{}/reactions/{}/@me",
                    message.target.chat,
                    reaction.message_id,
                    super::reaction::path_segment(&reaction.emoji)
                );
                let method = if reaction.remove {
                    reqwest::Method::DELETE
                } else {
                    reqwest::Method::PUT
                };
                self.rest(method, &path, None).await?;
                return Ok(None);
            }
            let body = json!({"content": message.text, "nonce": nonce(message.idempotency_key),
                              "enforce_nonce": true, "allowed_mentions": {"parse": []}});
            let path = format!("/channels/{}/messages", message.target.chat);
            let created = match message.media {
                Some((attachment, bytes)) => {
                    self.create_with_file(&path, body, attachment, bytes)
                        .await?
                }
                None => self.rest(reqwest::Method::POST, &path, Some(&body)).await?,
            };
            Ok(created["id"].as_str().map(str::to_owned))
        })
    }

    fn typing<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let path = format!("/channels/{}/typing", target.chat);
            let _ = self.rest(reqwest::Method::POST, &path, None).await;
        })
    }

    fn sends_media(&self) -> bool {
        true
    }

    fn reacts(&self) -> bool {
        true
    }

    /// An attachment's CDN URL, as the message gave it (signed by
    /// Discord, no token needed).
    fn download<'a>(
        &'a self,
        media: &'a super::media::MediaRef,
        cap: u64,
    ) -> BoxFuture<'a, Result<Vec<u8>, super::media::DownloadError>> {
        Box::pin(super::media::get(&self.client, &media.locator, None, cap))
    }

    fn after_restart(&self, prepared_age: Duration) -> AfterRestart {
        if prepared_age < NONCE_WINDOW {
            AfterRestart::Resend
        } else {
            AfterRestart::Report(
                "prepared longer ago than Discord holds a nonce, so a resend could duplicate it",
            )
        }
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
            // A resumed session gets no READY: who the bot is (for mentions
            // and to ignore its own messages) comes from REST.
            let me = self
                .rest(reqwest::Method::GET, "/users/@me", None)
                .await
                .map_err(|error| error.message)?;
            self.set_bot_id(me["id"].as_str().unwrap_or_default());
            let mut resume = inbox.cursor().as_deref().and_then(Resume::decode);
            let mut reconnects = Reconnects::default();
            loop {
                let url = match &resume {
                    Some(resume) => resume.url.clone(),
                    None => self.gateway_url().await?,
                };
                let started = tokio::time::Instant::now();
                match gateway::connect(&self, &url, resume.clone(), &inbox, &mut stop).await? {
                    Ended::Stopped => return Ok(()),
                    Ended::Reconnect(next) => resume = next,
                }
                inbox.account.connected(false);
                reconnects.ended(started, "the Discord gateway").await?;
            }
        })
    }
}
