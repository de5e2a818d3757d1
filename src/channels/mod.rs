//! Chat channels: platform accounts (Telegram, the custom webhook, ...)
//! whose messages become agent turns and whose replies go back through the
//! outbox.
//!
//! - `settings`: what the config says about channels (lenient: OpenClaw's
//!   keys clawback does not act on are ignored, not refused);
//! - `routing`: the agent and session key for a message (OpenClaw's keys);
//! - `policy`: DM and group policies, allowlists, mention gating;
//! - `pairing`: OpenClaw's DM pairing (a code for an unknown sender, an
//!   operator's approval);
//! - `inbound`: a platform message recorded (deduplicated by its platform
//!   id) before the platform is told it was taken, then its turn started;
//! - `reply`: a turn's reply cut into parts (block streaming or the
//!   platform's limit) and put in the outbox; replies a restart cut short
//!   are settled by the next process;
//! - `outbox`: `delivery.prepared` before the send, `delivery.sent` or
//!   `delivery.failed` after, retries on rate limits, and what a restart
//!   does with a send it cannot confirm;
//! - `announce`: cron and hook results sent to a chat (`channel: "last"`
//!   is the session's last chat), through the outbox;
//! - `media`: files arriving with messages, downloaded under a cap into
//!   `<state-dir>/media/<sha256>` and shown to the model as a note;
//! - `media_out`: a file `send` delivers (a URL fetched as `web_fetch`
//!   does, a path in the workspace or media store, a buffer), stored so
//!   the outbox records its reference;
//! - `reaction`: OpenClaw's ack reaction, sent and recorded through the
//!   outbox under the answering run's key;
//! - `chunk`: where a reply is cut;
//! - `platform`: the adapter trait; `telegram`, `discord`, `slack`,
//!   `matrix` and `webhook` implement it;
//! - `manager`: accounts started from config, restarted with backoff, and
//!   their status for `channels.status`.
//!
//! Invariants: a platform message is answered at most once, across
//! restarts (its `(channel, account, id)` is in the log before the platform
//! is acknowledged, and a second arrival is recognised from the
//! projection); a reply part is in the log before it is sent; a send that a
//! restart cannot confirm is resent only where the platform deduplicates by
//! the part's key, and otherwise reported, never silently repeated.

pub mod announce;
pub mod chunk;
pub mod discord;
pub mod inbound;
pub mod manager;
pub mod matrix;
pub mod media;
pub mod media_out;
pub mod outbox;
pub mod pairing;
pub mod platform;
pub mod policy;
pub mod reaction;
pub mod reply;
pub mod routing;
pub mod settings;
pub mod slack;
pub mod telegram;
pub mod webhook;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::gateway::Gateway;

pub use inbound::{Inbound, Received};
pub use manager::{Account, register_all, start};
pub use platform::{Platform, Target};

/// The channels this gateway runs, by `(channel, account)`, and the
/// inbound messages being recorded right now.
#[derive(Default)]
pub struct Hub {
    accounts: Mutex<BTreeMap<(String, String), Arc<Account>>>,
    /// `(channel, account, platform id)` of messages between the dedupe
    /// check and their record becoming durable: a second copy arriving in
    /// that window (a webhook retried at once) is a duplicate too.
    recording: Mutex<HashSet<(String, String, String)>>,
    /// Channels the config asks for that could not start, with the reason.
    problems: Mutex<BTreeMap<(String, String), String>>,
}

impl Hub {
    pub fn account(&self, channel: &str, account_id: &str) -> Option<Arc<Account>> {
        self.accounts
            .lock()
            .expect("accounts lock")
            .get(&(channel.to_owned(), account_id.to_owned()))
            .cloned()
    }

    pub fn accounts(&self) -> Vec<Arc<Account>> {
        self.accounts
            .lock()
            .expect("accounts lock")
            .values()
            .cloned()
            .collect()
    }

    /// Channels that could not start: `(channel, account, reason)`.
    pub fn problems(&self) -> Vec<(String, String, String)> {
        self.problems
            .lock()
            .expect("problems lock")
            .iter()
            .map(|((channel, account), reason)| (channel.clone(), account.clone(), reason.clone()))
            .collect()
    }

    fn problem(&self, channel: &str, account_id: &str, reason: String) {
        self.problems
            .lock()
            .expect("problems lock")
            .insert((channel.to_owned(), account_id.to_owned()), reason);
    }

    /// Forgets `channel`'s problems (or one account's).
    fn clear_problem(&self, channel: &str, only: Option<&str>) {
        self.problems
            .lock()
            .expect("problems lock")
            .retain(|(problem_channel, account), _| {
                problem_channel != channel || only.is_some_and(|only| only != account)
            });
    }

    /// Forgets an account (stopped, and about to be rebuilt from config or
    /// removed from it).
    fn remove(&self, channel: &str, account_id: &str) {
        self.accounts
            .lock()
            .expect("accounts lock")
            .remove(&(channel.to_owned(), account_id.to_owned()));
    }

    fn insert(&self, account: Arc<Account>) -> Option<Arc<Account>> {
        self.accounts.lock().expect("accounts lock").insert(
            (account.channel.to_owned(), account.account_id.clone()),
            account,
        )
    }
}

/// An HTTP client builder for platform APIs: ring as rustls' provider
/// (the process needs one), a user agent, a connect timeout.
pub fn http_client() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(concat!("clawback/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(10))
}

/// The largest WebSocket frame a platform may send (Discord's and
/// Slack's are far smaller): a bound, not a tuning.
const WEBSOCKET_FRAME_BYTES_MAX: usize = 4 << 20;

/// A platform's WebSocket (Discord's gateway, Slack's Socket Mode), with
/// frames and messages bounded.
pub async fn websocket(
    url: &str,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    tokio_tungstenite::tungstenite::Error,
> {
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(WEBSOCKET_FRAME_BYTES_MAX))
        .max_frame_size(Some(WEBSOCKET_FRAME_BYTES_MAX));
    tokio_tungstenite::connect_async_with_config(url, Some(config), false)
        .await
        .map(|(socket, _)| socket)
}

/// A platform's `Retry-After` header in seconds (Slack's Web API, the
/// webhook channel's callback).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<std::time::Duration> {
    headers
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map(std::time::Duration::from_secs)
}

/// What a platform's inbound side hands its messages to.
#[derive(Clone)]
pub struct Inbox {
    pub gateway: Arc<Gateway>,
    pub account: Arc<Account>,
}

impl Inbox {
    /// Records `message` and starts its turn; `Ok` means it is durable (or
    /// was already), so the platform may be told it was taken.
    pub async fn take(&self, message: Inbound) -> Result<Received, String> {
        inbound::receive(&self.gateway, &self.account, message).await
    }

    /// Records a fact about the account that is not a message (a Matrix
    /// invite, a first sync's position) on the channel's stream; `Ok` once
    /// durable.
    pub async fn record(
        &self,
        sender: &str,
        correlation: &str,
        event: clawback_events::event::Event,
    ) -> Result<(), String> {
        let channel = self.account.channel;
        let actor = clawback_events::Actor::Channel {
            channel: channel.to_owned(),
            sender: sender.to_owned(),
        };
        crate::agent::compact::append(
            &self.gateway,
            &format!("channel:{channel}"),
            &actor,
            correlation,
            vec![event],
        )
        .await
    }

    /// Whether the account's DM or group policy lets `inviter` bring the
    /// bot into `room` (mention gating aside: an invite mentions nobody).
    /// Under `dmPolicy: "pairing"` anyone may open a DM: the pairing code
    /// is sent there.
    pub fn admits_invite(&self, room: &str, inviter: &str, direct: bool) -> Result<(), String> {
        let access = &self.account.settings.access;
        let pairing = access
            .dm_policy
            .as_deref()
            .is_none_or(|policy| policy == "pairing");
        if direct && pairing {
            return Ok(());
        }
        let chat = routing::Chat {
            kind: if direct {
                routing::ChatKind::Direct
            } else {
                routing::ChatKind::Group
            },
            id: room.to_owned(),
            thread_id: None,
            thread_is_topic: false,
        };
        policy::admit(
            access,
            self.account.channel,
            self.account.settings.allow_prefixes,
            &chat,
            inviter,
            true,
        )
    }

    /// Where this account's stream resumes, from the log.
    pub fn cursor(&self) -> Option<String> {
        self.gateway
            .state
            .read()
            .expect("state lock")
            .channels
            .cursor(self.account.channel, &self.account.account_id)
            .map(str::to_owned)
    }
}
