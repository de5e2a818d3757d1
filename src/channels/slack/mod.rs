//! Slack: Socket Mode for messages in (`apps.connections.open`, then a
//! WebSocket of `events_api` envelopes, each acknowledged by its
//! `envelope_id`), the Web API (`chat.postMessage`) for messages out.
//!
//! Exactly-once: an envelope is acknowledged only after its message is
//! recorded; Slack retries an unacknowledged one (and sometimes a late
//! one), and the retry carries the same message `ts`, so it is recognised.
//! Outbound, the Web API has no idempotency key: a send a restart cannot
//! confirm is reported, not repeated.
//!
//! Why a thin client rather than a Slack SDK crate: two Web API methods and
//! one WebSocket loop, with the tokens kept out of every error message.

pub mod events;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::Inbox;
use super::manager::{AccountSettings, Reconnects, Spec};
use super::platform::{AfterRestart, BoxFuture, Outgoing, Platform, SendError, Target};
use super::settings::{self, GroupRule};
use crate::config::model::{ConfigFile, SecretInput};

/// Slack's advice for one message's text (it truncates past 40,000).
pub const TEXT_LIMIT: usize = 4000;
const DEFAULT_API_ROOT: &str = "https://slack.com/api";
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// `channels.slack`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Section {
    mode: Option<String>,
    bot_token: Option<SecretInput>,
    app_token: Option<SecretInput>,
    #[serde(flatten)]
    common: settings::Common,
    dm_policy: Option<String>,
    #[serde(default)]
    allow_from: Vec<Value>,
    group_policy: Option<String>,
    /// `channels.<id>`: OpenClaw's per-channel rules (`users` lists who
    /// may talk there).
    channels: Option<BTreeMap<String, ChannelRule>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChannelRule {
    enabled: Option<bool>,
    require_mention: Option<bool>,
    users: Option<Vec<Value>>,
}

pub struct Slack {
    bot_token: String,
    app_token: String,
    api_root: String,
    client: reqwest::Client,
    bot_user_id: Mutex<String>,
}

/// A token from the config, or (for the default account only, as
/// OpenClaw) from its environment variable.
fn secret(
    value: Option<&SecretInput>,
    key: &str,
    env: &str,
    default_account: bool,
) -> Result<String, String> {
    let token = match value {
        Some(value) => value.resolve().map_err(|error| format!("{key}: {error}"))?,
        None if !default_account => {
            return Err(format!(
                "needs {key} ({env} serves only the default account)"
            ));
        }
        None => std::env::var(env)
            .map_err(|_| format!("needs {key} (or the {env} environment variable)"))?,
    };
    Ok(token.trim().to_owned())
}

pub fn build(
    config: &ConfigFile,
    account: &settings::AccountSection,
) -> Result<Option<Spec>, String> {
    let section: Section = account.parse("slack")?;
    if section.common.enabled == Some(false) {
        return Ok(None);
    }
    if section.mode.as_deref().is_some_and(|mode| mode != "socket") {
        return Err("mode \"http\" (Events API over HTTP) is not supported by clawback yet: use Socket Mode (mode \"socket\" with an appToken)".to_owned());
    }
    let bot_token = secret(
        section.bot_token.as_ref(),
        "botToken",
        "SLACK_BOT_TOKEN",
        account.is_default(),
    )?;
    let app_token = secret(
        section.app_token.as_ref(),
        "appToken",
        "SLACK_APP_TOKEN",
        account.is_default(),
    )?;
    if !bot_token.starts_with("xoxb-") {
        return Err("botToken must be a bot token (xoxb-...)".to_owned());
    }
    if !app_token.starts_with("xapp-") {
        return Err(
            "appToken must be an app-level token with connections:write (xapp-...)".to_owned(),
        );
    }
    // OpenClaw's `channels.<id>` rules are the generic group rules with
    // `users` as the room's allowlist.
    let groups = section.channels.as_ref().map(|channels| {
        channels
            .iter()
            .map(|(id, rule)| {
                let group = GroupRule {
                    enabled: rule.enabled,
                    require_mention: rule.require_mention,
                    group_policy: None,
                    allow_from: rule.users.clone(),
                };
                (id.clone(), group)
            })
            .collect()
    });
    let access = settings::Access {
        dm_policy: section.dm_policy.clone(),
        allow_from: section.allow_from.clone(),
        group_policy: section.group_policy.clone(),
        group_allow_from: None,
        groups,
    };
    let issues = section.common.issues(&access, "slack");
    let api_root = section.common.api_root(DEFAULT_API_ROOT);
    let client = super::http_client()
        .build()
        .map_err(|error| format!("cannot build the Slack HTTP client: {error}"))?;
    Ok(Some(Spec {
        platform: Arc::new(Slack {
            bot_token,
            app_token,
            api_root: api_root.clone(),
            client,
            bot_user_id: Mutex::new(String::new()),
        }),
        account_id: account.id.clone(),
        settings: AccountSettings {
            access,
            allow_prefixes: &["slack:", "user:"],
            blocks: section.common.blocks(),
            text_limit: section.common.text_limit(TEXT_LIMIT),
            media_max_bytes: section.common.media_max_bytes(),
            ack: crate::channels::reaction::Ack::from_config(config, &account.value),
            mode: "socket",
            delivery: settings::delivery_policy(config, "slack", account)?,
            issues,
            describe: json!({"baseUrl": api_root,
                             "botTokenSource": if section.bot_token.is_some() { "config" } else { "env" },
                             "appTokenSource": if section.app_token.is_some() { "config" } else { "env" }}),
        },
    }))
}

impl Slack {
    /// Calls a Web API method with `token`; the answer when `ok`.
    async fn call(&self, method: &str, token: &str, body: &Value) -> Result<Value, SendError> {
        let request = self
            .client
            .post(format!("{}/{method}", self.api_root))
            .bearer_auth(token)
            .json(body);
        self.answer(method, request).await
    }

    /// A file in Slack's three steps: `files.getUploadURLExternal`
    /// (arguments in the query: the method takes no JSON), the bytes
    /// POSTed to the URL it gives (no token: the URL is the credential),
    /// then `files.completeUploadExternal` shares it in the channel with
    /// the text as its comment. The platform id is the file's.
    async fn send_file(
        &self,
        message: &Outgoing<'_>,
        attachment: &super::media::Attachment,
        bytes: &[u8],
    ) -> Result<Option<String>, SendError> {
        let mut url = reqwest::Url::parse(&format!("{}/files.getUploadURLExternal", self.api_root))
            .map_err(|error| SendError::transient(format!("Slack API root: {error}")))?;
        url.query_pairs_mut()
            .append_pair("filename", &attachment.name)
            .append_pair("length", &bytes.len().to_string());
        let request = self.client.post(url).bearer_auth(&self.bot_token);
        let ticket = self.answer("files.getUploadURLExternal", request).await?;
        let (Some(upload_url), Some(file_id)) =
            (ticket["upload_url"].as_str(), ticket["file_id"].as_str())
        else {
            return Err(SendError {
                message: "Slack files.getUploadURLExternal: no upload_url or file_id".to_owned(),
                retryable: false,
                retry_after: None,
            });
        };
        let uploaded = self
            .client
            .post(upload_url)
            .header(reqwest::header::CONTENT_TYPE, &attachment.mime)
            .body(bytes.to_vec())
            .timeout(super::media::DOWNLOAD_TIMEOUT)
            .send()
            .await
            .map_err(|error| {
                SendError::transient(format!("Slack file upload: {}", error.without_url()))
            })?;
        if !uploaded.status().is_success() {
            return Err(SendError {
                message: format!("Slack file upload: HTTP {}", uploaded.status()),
                retryable: uploaded.status().is_server_error(),
                retry_after: None,
            });
        }
        let mut body = json!({"files": [{"id": file_id, "title": attachment.name}],
                              "channel_id": message.target.chat});
        if !message.text.is_empty() {
            body["initial_comment"] = json!(message.text);
        }
        if let Some(thread) = &message.target.thread {
            body["thread_ts"] = json!(thread);
        }
        self.call("files.completeUploadExternal", &self.bot_token, &body)
            .await?;
        Ok(Some(file_id.to_owned()))
    }

    async fn answer(
        &self,
        method: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Value, SendError> {
        let response = request
            .timeout(CALL_TIMEOUT)
            .send()
            .await
            .map_err(|error| {
                SendError::transient(format!("Slack {method}: {}", error.without_url()))
            })?;
        let status = response.status();
        let retry_after = super::retry_after(response.headers());
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() && answer["ok"] == true {
            return Ok(answer);
        }
        let error = answer["error"].as_str().unwrap_or("no error given");
        Err(SendError {
            message: format!("Slack {method}: HTTP {status}: {error}"),
            retryable: status.as_u16() == 429 || status.is_server_error() || error == "ratelimited",
            retry_after,
        })
    }

    /// One Socket Mode connection, until Slack asks for another (`Ok(false)`)
    /// or `stop` turns true (`Ok(true)`).
    async fn connection(
        &self,
        inbox: &Inbox,
        stop: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Result<bool, String> {
        let opened = self
            .call("apps.connections.open", &self.app_token, &json!({}))
            .await
            .map_err(|error| error.message)?;
        let url = opened["url"]
            .as_str()
            .ok_or("Slack apps.connections.open gave no url")?;
        let socket = super::websocket(url)
            .await
            // The URL holds a connection ticket: not in the message.
            .map_err(|error| format!("Slack Socket Mode connect failed: {error}"))?;
        let (mut sink, mut frames) = socket.split();
        loop {
            let frame = tokio::select! {
                _ = stop.changed() => {
                    let _ = sink.send(Message::Close(None)).await;
                    return Ok(true);
                }
                frame = frames.next() => frame,
            };
            let text = match frame {
                None | Some(Ok(Message::Close(_))) => return Ok(false),
                Some(Err(error)) => {
                    tracing::info!(%error, "Slack Socket Mode connection dropped; reconnecting");
                    return Ok(false);
                }
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Ping(data))) => {
                    let _ = sink.send(Message::Pong(data)).await;
                    continue;
                }
                Some(Ok(_)) => continue,
            };
            let envelope: Value = serde_json::from_str(&text)
                .map_err(|error| format!("Slack sent unreadable JSON: {error}"))?;
            match envelope["type"].as_str() {
                Some("hello") => inbox.account.connected(true),
                Some("disconnect") => return Ok(false),
                Some("events_api") => {
                    let bot = self.bot_user_id.lock().expect("bot lock").clone();
                    if let Some(message) = events::inbound(&envelope["payload"], &bot) {
                        // Recorded before the acknowledgement: an error here
                        // leaves the envelope unacknowledged, and Slack retries it.
                        inbox.take(message).await?;
                    }
                    if let Some(id) = envelope["envelope_id"].as_str() {
                        let ack = json!({"envelope_id": id}).to_string();
                        sink.send(Message::Text(ack.into()))
                            .await
                            .map_err(|error| format!("Slack acknowledgement: {error}"))?;
                    }
                }
                // Slash commands and interactivity are acknowledged so Slack
                // does not retry them; clawback does not act on them yet.
                Some(_) => {
                    if let Some(id) = envelope["envelope_id"].as_str() {
                        let ack = json!({"envelope_id": id}).to_string();
                        let _ = sink.send(Message::Text(ack.into())).await;
                    }
                }
                None => {}
            }
        }
    }
}

impl Platform for Slack {
    fn channel(&self) -> &'static str {
        "slack"
    }

    fn send<'a>(
        &'a self,
        message: Outgoing<'a>,
    ) -> BoxFuture<'a, Result<Option<String>, SendError>> {
        Box::pin(async move {
            if let Some(reaction) = message.reaction {
                let method = if reaction.remove {
                    "reactions.remove"
                } else {
                    "reactions.add"
                };
                let body = json!({"channel": message.target.chat,
                                  "timestamp": super::reaction::after_chat(&reaction.message_id),
                                  "name": super::reaction::slack_name(&reaction.emoji)});
                self.call(method, &self.bot_token, &body).await?;
                return Ok(None);
            }
            if let Some((attachment, bytes)) = message.media {
                return self.send_file(&message, attachment, bytes).await;
            }
            let mut body = json!({"channel": message.target.chat, "text": message.text});
            if let Some(thread) = &message.target.thread {
                body["thread_ts"] = json!(thread);
            }
            let posted = self
                .call("chat.postMessage", &self.bot_token, &body)
                .await?;
            Ok(posted["ts"]
                .as_str()
                .map(|ts| format!("{}:{ts}", message.target.chat)))
        })
    }

    fn typing<'a>(&'a self, _target: &'a Target) -> BoxFuture<'a, ()> {
        // The Web API has no typing indicator for bots.
        Box::pin(async {})
    }

    fn sends_media(&self) -> bool {
        true
    }

    fn reacts(&self) -> bool {
        true
    }

    /// A file's private URL, with the bot token (which needs the
    /// `files:read` scope); the token goes only to Slack's file host or
    /// the configured API root's host, never to another URL a message
    /// names.
    fn download<'a>(
        &'a self,
        media: &'a super::media::MediaRef,
        cap: u64,
    ) -> BoxFuture<'a, Result<Vec<u8>, super::media::DownloadError>> {
        Box::pin(async move {
            let api_host = reqwest::Url::parse(&self.api_root)
                .ok()
                .and_then(|url| url.host_str().map(str::to_owned))
                .unwrap_or_default();
            let ours = super::media::on_host(&media.locator, "files.slack.com")
                || super::media::on_host(&media.locator, &api_host);
            if !ours {
                return Err(super::media::DownloadError::Failed(
                    "the file is not on Slack's file host".to_owned(),
                ));
            }
            super::media::get(&self.client, &media.locator, Some(&self.bot_token), cap).await
        })
    }

    fn after_restart(&self, _prepared_age: Duration) -> AfterRestart {
        AfterRestart::Report("the Slack Web API cannot tell whether a message was posted")
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
            let me = self
                .call("auth.test", &self.bot_token, &json!({}))
                .await
                .map_err(|error| error.message)?;
            *self.bot_user_id.lock().expect("bot lock") =
                me["user_id"].as_str().unwrap_or_default().to_owned();
            // Slack refreshes connections every few hours.
            let mut reconnects = Reconnects::default();
            loop {
                let started = tokio::time::Instant::now();
                if self.connection(&inbox, &mut stop).await? {
                    return Ok(());
                }
                inbox.account.connected(false);
                reconnects.ended(started, "Slack Socket Mode").await?;
            }
        })
    }
}
