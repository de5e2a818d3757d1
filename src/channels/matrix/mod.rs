//! Matrix, on the client-server API: `/sync` long polling in, `PUT
//! /rooms/{room}/send/m.room.message/{txnId}` out, as a plain user account
//! on any homeserver (tested against Synapse).
//!
//! Exactly-once inbound: each room message is recorded under its event id
//! with, on the last message of a sync batch only, that batch's
//! `next_batch` as the cursor; the next start syncs from the recorded
//! cursor. A crash part way through a batch therefore syncs the whole batch
//! again, and the messages already recorded are recognised by event id.
//! With no cursor recorded yet, the first sync only learns where "now" is:
//! the rooms' history is not answered.
//!
//! Exactly-once outbound: the transaction id is derived from the reply
//! part's idempotency key ([`api::txn_id`]). Matrix scopes transaction ids
//! to the device (spec v1.7, MSC3970) and Synapse answers a repeated
//! `(device, txnId)` with the event it already made (it keeps them 24 h),
//! so a send a restart cannot confirm is sent again under the same id
//! ([`AfterRestart::Resend`]) if it was prepared less than 23 h before;
//! an older one is reported, not resent. That needs the same device after the
//! restart: an access token keeps its device; a password login uses
//! `deviceId`, or a device id derived from the user id, never a fresh one.
//!
//! Modules: `config` (the `channels.matrix` keys), `api` (HTTP, errors,
//! transaction ids), `sync` (a sync answer read, pure), `listen` (the sync
//! loop, invites, DM or room).
//!
//! Not supported yet: end-to-end encryption (an encrypted message is
//! recorded and refused with that reason), media, reactions, multiple
//! accounts.
//!
//! Why a thin client on reqwest rather than the `matrix-sdk` crate: the
//! dozen calls used here are plain JSON over HTTPS, while matrix-sdk 0.19.1
//! (checked with `cargo generate-lockfile`, not built) resolves 407 crates,
//! more than all of clawback's 324, among them aws-lc-sys (C, cmake), a
//! bundled SQLite, vodozemac and the ruma crates, and needs Rust 1.96 (this
//! toolchain is 1.95; an older release would be needed). That is surely
//! minutes of build on a 2-core machine (not measured), for features not
//! used yet. Owning the calls also keeps the token out of every error
//! message and the retry rules in the outbox. When E2EE is wanted,
//! matrix-sdk-crypto (or vodozemac directly) is the place to start.

mod api;
pub mod config;
mod listen;
pub mod sync;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Method, Url};
use serde_json::{Value, json};

use self::api::{Api, ApiError};
use self::config::AutoJoin;

use super::manager::{AccountSettings, Spec};
use super::platform::{AfterRestart, BoxFuture, Outgoing, Platform, SendError, Target};
use super::{Inbox, settings};
use crate::config::model::ConfigFile;

/// OpenClaw's default `textChunkLimit` for Matrix.
pub const TEXT_LIMIT: usize = 4000;
/// Well under Matrix's 65536-byte event limit.
const TEXT_LIMIT_MAX: usize = 32_000;
/// How long a `/sync` waits for something new.
const SYNC_WAIT: Duration = Duration::from_secs(30);
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// A typing notice lasts this long unless renewed (the reply loop renews
/// it every 4.5 s).
const TYPING_MS: u64 = 6_000;
const ALLOW_PREFIXES: &[&str] = &["matrix:user:", "matrix:", "user:"];
/// How long a resend may count on the homeserver's transaction-id dedupe:
/// Synapse forgets a `(device, txnId)` after 24 hours; an hour of margin
/// for clocks.
const TXN_ID_KEPT: Duration = Duration::from_secs(23 * 3600);

pub struct Matrix {
    api: Api,
    auth: Auth,
    auto_join: AutoJoin,
    /// Logged in lazily: the outbox may send (a restart's resend) before
    /// the sync loop runs.
    session: tokio::sync::Mutex<Option<Arc<Session>>>,
    /// Where this process's sync stands: only moved once every message of
    /// a batch is recorded, so a restarted loop (after a connection error)
    /// neither skips nor needs the log.
    since: Mutex<Option<String>>,
}

enum Auth {
    Token(String),
    Password {
        user_id: String,
        password: String,
        device_id: String,
        device_name: Option<String>,
    },
}

struct Session {
    token: String,
    user_id: String,
}

/// The Matrix account `account` describes, if it is enabled. The
/// `MATRIX_*` environment variables serve only the default account, as
/// OpenClaw's.
pub fn build(
    config: &ConfigFile,
    account: &settings::AccountSection,
) -> Result<Option<Spec>, String> {
    let section: config::Section = account.parse("matrix")?;
    if section.enabled == Some(false) {
        return Ok(None);
    }
    let default_account = account.is_default();
    let env = |name: &str| {
        default_account
            .then(|| std::env::var(name).ok())
            .flatten()
            .filter(|value| !value.is_empty())
    };
    let homeserver = section
        .homeserver
        .clone()
        .or_else(|| env("MATRIX_HOMESERVER"))
        .ok_or("needs homeserver (or MATRIX_HOMESERVER), e.g. https://matrix.example.org")?;
    let homeserver = homeserver_url(&homeserver, &section)?;
    let secret =
        |input: &Option<crate::config::model::SecretInput>, key: &str, var: &str| match input {
            Some(input) => input
                .resolve()
                .map(Some)
                .map_err(|error| format!("{key}: {error}")),
            None => Ok(env(var)),
        };
    let user_id = section.user_id.clone().or_else(|| env("MATRIX_USER_ID"));
    let device_id = section
        .device_id
        .clone()
        .or_else(|| env("MATRIX_DEVICE_ID"));
    let auth = match (
        secret(&section.access_token, "accessToken", "MATRIX_ACCESS_TOKEN")?,
        secret(&section.password, "password", "MATRIX_PASSWORD")?,
    ) {
        (Some(token), _) => Auth::Token(token.trim().to_owned()),
        (None, Some(password)) => {
            let user_id = user_id
                .clone()
                .ok_or("password needs userId (@bot:example.org)")?;
            Auth::Password {
                device_id: device_id
                    .clone()
                    .unwrap_or_else(|| derived_device_id(&user_id)),
                user_id,
                password,
                device_name: section
                    .device_name
                    .clone()
                    .or_else(|| env("MATRIX_DEVICE_NAME")),
            }
        }
        (None, None) => {
            return Err("needs accessToken, or userId and password (or MATRIX_ACCESS_TOKEN / MATRIX_PASSWORD)".to_owned());
        }
    };
    if let Some(user_id) = &user_id
        && !(user_id.starts_with('@') && user_id.contains(':'))
    {
        return Err(format!(
            "userId {user_id:?} is not a Matrix user id (@bot:example.org)"
        ));
    }
    let auto_join = section.auto_join()?;
    let access = section.access();
    let mut issues: Vec<String> = super::policy::issues(&access, "matrix")
        .into_iter()
        .map(|issue| issue.replace("channels.matrix.allowFrom", "channels.matrix.dm.allowFrom"))
        .collect();
    issues.extend(section.issues());
    let client = super::http_client()
        .build()
        .map_err(|error| format!("cannot build the Matrix HTTP client: {error}"))?;
    let describe = json!({
        "baseUrl": homeserver.as_str(),
        "userId": user_id,
        "deviceId": match &auth { Auth::Password { device_id, .. } => Some(device_id.clone()), Auth::Token(_) => device_id },
        "tokenSource": match &auth { Auth::Token(_) => "accessToken", Auth::Password { .. } => "password" },
        "autoJoin": section.auto_join.as_deref().unwrap_or("off"),
        "encryption": false,
    });
    let platform = Matrix {
        api: Api::new(client, &homeserver)?,
        auth,
        auto_join,
        session: tokio::sync::Mutex::new(None),
        since: Mutex::new(None),
    };
    Ok(Some(Spec {
        platform: Arc::new(platform),
        account_id: account.id.clone(),
        settings: AccountSettings {
            access,
            allow_prefixes: ALLOW_PREFIXES,
            blocks: section.blocks(),
            text_limit: section
                .text_chunk_limit
                .unwrap_or(TEXT_LIMIT)
                .clamp(16, TEXT_LIMIT_MAX),
            media_max_bytes: crate::channels::media::max_bytes(section.media_max_mb),
            ack: crate::channels::reaction::Ack::from_config(config, &account.value),
            mode: "sync",
            delivery: settings::delivery_policy(config, "matrix", account)?,
            issues,
            describe,
        },
    }))
}

/// The homeserver URL; cleartext HTTP only to this machine unless
/// `network.dangerouslyAllowPrivateNetwork` says otherwise (the token
/// would cross the network readable).
fn homeserver_url(text: &str, section: &config::Section) -> Result<Url, String> {
    let url = Url::parse(text.trim())
        .map_err(|error| format!("channels.matrix.homeserver {text:?}: {error}"))?;
    let allow_cleartext = section
        .network
        .as_ref()
        .and_then(|network| network.dangerously_allow_private_network)
        .unwrap_or(false);
    let host = url.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback || allow_cleartext => Ok(url),
        "http" => Err(format!(
            "channels.matrix.homeserver {url} is cleartext HTTP off this machine: use https, or set channels.matrix.network.dangerouslyAllowPrivateNetwork"
        )),
        other => Err(format!(
            "channels.matrix.homeserver must be an http(s) URL, not {other}:"
        )),
    }
}

/// A device id for password logins without `deviceId`: the same for the
/// same user on every start, so the homeserver's transaction-id dedupe
/// holds across restarts and devices do not pile up.
fn derived_device_id(user_id: &str) -> String {
    let hash = blake3::hash(user_id.as_bytes());
    format!("CLAWBACK{}", hash.to_hex()[..8].to_uppercase())
}

impl Matrix {
    async fn session(&self) -> Result<Arc<Session>, ApiError> {
        let mut session = self.session.lock().await;
        if let Some(session) = session.as_ref() {
            return Ok(session.clone());
        }
        let fresh = Arc::new(self.login().await?);
        *session = Some(fresh.clone());
        Ok(fresh)
    }

    async fn login(&self) -> Result<Session, ApiError> {
        match &self.auth {
            Auth::Token(token) => {
                let me = self
                    .api
                    .call(
                        Method::GET,
                        &["account", "whoami"],
                        &[],
                        None,
                        Some(token),
                        CALL_TIMEOUT,
                    )
                    .await?;
                Ok(Session {
                    token: token.clone(),
                    user_id: text(&me, "user_id").unwrap_or_default(),
                })
            }
            Auth::Password {
                user_id,
                password,
                device_id,
                device_name,
            } => {
                let mut body = json!({
                    "type": "m.login.password",
                    "identifier": {"type": "m.id.user", "user": user_id},
                    "password": password,
                    "device_id": device_id,
                });
                if let Some(name) = device_name {
                    body["initial_device_display_name"] = json!(name);
                }
                let answer = self
                    .api
                    .call(
                        Method::POST,
                        &["login"],
                        &[],
                        Some(&body),
                        None,
                        CALL_TIMEOUT,
                    )
                    .await?;
                Ok(Session {
                    token: text(&answer, "access_token").unwrap_or_default(),
                    user_id: text(&answer, "user_id").unwrap_or_else(|| user_id.clone()),
                })
            }
        }
    }

    /// `channels.logout`: a session clawback obtained by password login is
    /// logged out on the homeserver (its access token dies) and forgotten;
    /// a configured access token is the operator's and is left alone.
    async fn log_out(&self) -> Result<super::platform::Logout, String> {
        let session = self.session.lock().await.take();
        match (&self.auth, session) {
            (Auth::Token(_), _) => Ok(super::platform::Logout {
                cleared: false,
                actions: vec![
                    "the configured access token stays valid (it is the operator's: remove channels.matrix.accessToken to forget it)".to_owned(),
                ],
            }),
            (Auth::Password { .. }, None) => Ok(super::platform::Logout {
                cleared: false,
                actions: vec!["no login session was open".to_owned()],
            }),
            (Auth::Password { device_id, .. }, Some(session)) => {
                self.api
                    .call(
                        Method::POST,
                        &["logout"],
                        &[],
                        Some(&json!({})),
                        Some(&session.token),
                        CALL_TIMEOUT,
                    )
                    .await
                    .map_err(|error| format!("logout failed: {}", error.message))?;
                Ok(super::platform::Logout {
                    cleared: true,
                    actions: vec![format!(
                        "logged out device {device_id} on the homeserver (its access token is revoked)"
                    )],
                })
            }
        }
    }

    /// Drops a session the homeserver no longer knows (a password account
    /// logs in again on the next call).
    async fn forget(&self, error: &ApiError) {
        if error.unknown_token() {
            *self.session.lock().await = None;
        }
    }

    async fn call(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<Value, ApiError> {
        let session = self.session().await?;
        let answer = self
            .api
            .call(method, segments, query, body, Some(&session.token), timeout)
            .await;
        if let Err(error) = &answer {
            self.forget(error).await;
        }
        answer
    }
}

/// A file message's content: the msgtype by the file's kind, the caption
/// as `body` with `filename` naming the file (Matrix 1.10), or the name as
/// `body` when there is no caption.
fn file_content(
    attachment: &crate::channels::media::Attachment,
    url: &str,
    caption: &str,
) -> Value {
    let mime = attachment.mime.as_str();
    let msgtype = if mime.starts_with("image/") {
        "m.image"
    } else if mime.starts_with("audio/") {
        "m.audio"
    } else if mime.starts_with("video/") {
        "m.video"
    } else {
        "m.file"
    };
    let body = if caption.is_empty() {
        attachment.name.as_str()
    } else {
        caption
    };
    json!({"msgtype": msgtype, "body": body, "filename": attachment.name, "url": url,
           "info": {"mimetype": mime, "size": attachment.size}})
}

impl Platform for Matrix {
    fn channel(&self) -> &'static str {
        "matrix"
    }

    fn sends_media(&self) -> bool {
        true
    }

    fn reacts(&self) -> bool {
        true
    }

    /// An `mxc://` file through authenticated media, with the account's
    /// token.
    fn download<'a>(
        &'a self,
        media: &'a crate::channels::media::MediaRef,
        cap: u64,
    ) -> BoxFuture<'a, Result<Vec<u8>, crate::channels::media::DownloadError>> {
        Box::pin(async move {
            let session = self
                .session()
                .await
                .map_err(|error| crate::channels::media::DownloadError::Failed(error.message))?;
            self.api.download(&media.locator, &session.token, cap).await
        })
    }

    fn send<'a>(
        &'a self,
        message: Outgoing<'a>,
    ) -> BoxFuture<'a, Result<Option<String>, SendError>> {
        Box::pin(async move {
            let room = &message.target.chat;
            if !room.starts_with('!') {
                return Err(SendError {
                    message: format!(
                        "Matrix sends need a room id (!room:server), not {room:?}: sending to a user or an alias is not supported yet"
                    ),
                    retryable: false,
                    retry_after: None,
                });
            }
            if let Some(reaction) = message.reaction {
                if reaction.remove {
                    // A reaction is an event: taking it back redacts it,
                    // which needs the id its setting delivery recorded.
                    let Some(event_id) = &reaction.set_id else {
                        return Err(SendError {
                            message: "Matrix: the reaction to take back has no recorded event id (it was not set by this gateway, or not sent); it stays".to_owned(),
                            retryable: false,
                            retry_after: None,
                        });
                    };
                    let txn = api::txn_id(message.idempotency_key);
                    self.call(
                        Method::PUT,
                        &["rooms", room, "redact", event_id, &txn],
                        &[],
                        Some(&json!({})),
                        CALL_TIMEOUT,
                    )
                    .await?;
                    return Ok(None);
                }
                let body = json!({"m.relates_to": {"rel_type": "m.annotation",
                    "event_id": reaction.message_id, "key": reaction.emoji}});
                let txn = api::txn_id(message.idempotency_key);
                let sent = self
                    .call(
                        Method::PUT,
                        &["rooms", room, "send", "m.reaction", &txn],
                        &[],
                        Some(&body),
                        CALL_TIMEOUT,
                    )
                    .await?;
                return Ok(text(&sent, "event_id"));
            }
            let mut body = match message.media {
                None => json!({"msgtype": "m.text", "body": message.text}),
                Some((attachment, bytes)) => {
                    let session = self.session().await?;
                    let url = self.api.upload(attachment, bytes, &session.token).await?;
                    file_content(attachment, &url, message.text)
                }
            };
            if let Some(root) = &message.target.thread {
                body["m.relates_to"] = json!({
                    "rel_type": "m.thread", "event_id": root,
                    "is_falling_back": true, "m.in_reply_to": {"event_id": root},
                });
            }
            let txn = api::txn_id(message.idempotency_key);
            let sent = self
                .call(
                    Method::PUT,
                    &["rooms", room, "send", "m.room.message", &txn],
                    &[],
                    Some(&body),
                    CALL_TIMEOUT,
                )
                .await?;
            Ok(text(&sent, "event_id"))
        })
    }

    fn typing<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let Ok(session) = self.session().await else {
                return;
            };
            let body = json!({"typing": true, "timeout": TYPING_MS});
            // Best effort: a missing indicator is not worth an error.
            let _ = self
                .call(
                    Method::PUT,
                    &["rooms", &target.chat, "typing", &session.user_id],
                    &[],
                    Some(&body),
                    CALL_TIMEOUT,
                )
                .await;
        })
    }

    fn after_restart(&self, prepared_age: Duration) -> AfterRestart {
        // The device is the same after a restart (an access token keeps its
        // device; a password login reuses deviceId or the derived id), and
        // the homeserver answers a repeated (device, txnId) with the event
        // it already made, for as long as it keeps the txn id.
        if prepared_age < TXN_ID_KEPT {
            AfterRestart::Resend
        } else {
            AfterRestart::Report(
                "prepared longer ago than Synapse keeps a transaction id (24 h), so a resend could duplicate it",
            )
        }
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn logout(&self) -> BoxFuture<'_, Result<super::platform::Logout, String>> {
        Box::pin(self.log_out())
    }

    fn run(
        self: Arc<Self>,
        inbox: Inbox,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> BoxFuture<'static, Result<(), String>> {
        Box::pin(async move { self.run_sync(inbox, stop).await })
    }
}

fn text(value: &Value, name: &str) -> Option<String> {
    value.get(name).and_then(Value::as_str).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(value: Value) -> config::Section {
        serde_json::from_value(value).expect("section")
    }

    #[test]
    fn cleartext_homeservers_only_on_this_machine_unless_allowed() {
        let plain = section(json!({}));
        assert!(homeserver_url("https://matrix.example.org", &plain).is_ok());
        assert!(homeserver_url("http://127.0.0.1:8008", &plain).is_ok());
        assert!(homeserver_url("http://localhost:8008", &plain).is_ok());
        assert!(homeserver_url("http://matrix.lan:8008", &plain).is_err());
        let allowed = section(json!({"network": {"dangerouslyAllowPrivateNetwork": true}}));
        assert!(homeserver_url("http://matrix.lan:8008", &allowed).is_ok());
        assert!(homeserver_url("ftp://x", &allowed).is_err());
    }

    fn built(matrix: Value) -> Result<Option<Spec>, String> {
        let config: ConfigFile =
            serde_json::from_value(json!({"channels": {"matrix": matrix}})).expect("config");
        let account = settings::accounts(&config, "matrix")?
            .into_iter()
            .next()
            .expect("one account");
        build(&config, &account)
    }

    #[test]
    fn bad_settings_are_refused_with_what_to_fix_and_no_secret() {
        let error = |matrix: Value| built(matrix).err().expect("refused");
        assert!(error(json!({"accessToken": "syt_x"})).contains("homeserver"));
        let no_user =
            error(json!({"homeserver": "https://hs.example", "password": "hunter2-secret"}));
        assert!(no_user.contains("userId"), "{no_user}");
        assert!(!no_user.contains("hunter2-secret"));
        assert!(
            error(json!({"homeserver": "https://hs.example", "userId": "bot", "password": "p"}))
                .contains("@bot:example.org")
        );
        assert!(
            error(json!({"homeserver": "http://hs.example", "accessToken": "syt_x"}))
                .contains("cleartext")
        );
        assert!(error(json!({"homeserver": "https://hs.example", "accessToken": "syt_x", "autoJoin": "yes"})).contains("autoJoin"));
        assert!(
            built(json!({"enabled": false}))
                .expect("disabled")
                .is_none()
        );
        let spec = built(
            json!({"homeserver": "https://hs.example", "accessToken": "syt_secret_token",
            "dm": {"policy": "allowlist", "allowFrom": ["@ada:hs.example"]}, "encryption": true}),
        )
        .expect("built")
        .expect("enabled");
        assert_eq!(spec.platform.channel(), "matrix");
        assert_eq!(spec.settings.text_limit, TEXT_LIMIT);
        assert!(
            !spec
                .settings
                .describe
                .to_string()
                .contains("syt_secret_token")
        );
        assert!(
            spec.settings
                .issues
                .iter()
                .any(|issue| issue.contains("end-to-end encryption"))
        );
    }

    #[test]
    fn the_derived_device_id_is_stable_per_user() {
        assert_eq!(derived_device_id("@bot:x"), derived_device_id("@bot:x"));
        assert_ne!(derived_device_id("@bot:x"), derived_device_id("@bot:y"));
        assert!(derived_device_id("@bot:x").starts_with("CLAWBACK"));
    }

    #[test]
    fn an_unconfirmed_send_is_resent_only_while_the_txn_id_is_kept() {
        let spec = built(json!({"homeserver": "https://hs.example", "accessToken": "t"}))
            .expect("built")
            .expect("enabled");
        let after = |hours: u64| {
            spec.platform
                .after_restart(Duration::from_secs(hours * 3600))
        };
        assert!(matches!(after(0), AfterRestart::Resend));
        assert!(matches!(after(22), AfterRestart::Resend));
        assert!(matches!(after(25), AfterRestart::Report(why) if why.contains("24 h")));
    }
}
