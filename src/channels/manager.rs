//! Channel accounts started from config, supervised, and described for
//! `channels.status`.
//!
//! Why supervision lives here and not in each adapter: every platform's
//! connection drops sometimes (a long poll times out, a socket closes), and
//! the answer is the same everywhere: note the error, wait (1 s doubling to
//! 60 s), start again, until stopped. Adapters only say what failed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use super::outbox::{self, Job};
use super::platform::Platform;
use super::settings::{self, Access, AccountSection, BlockChunk, DEFAULT_ACCOUNT};
use super::{Inbox, discord, matrix, reply, slack, telegram, webhook};
use crate::config::model::ConfigFile;
use crate::gateway::Gateway;
use crate::gateway::protocol::methods::now_ms;

/// Replies waiting for an account's sender. A full queue makes the reply
/// that prepares the next part wait: backpressure, not loss.
pub const OUTBOX_QUEUE_MAX: usize = 1024;
const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(60);

/// How an account behaves, from its channel's config.
pub struct AccountSettings {
    pub access: Access,
    /// Channel prefixes an allowlist entry may carry (`tg:`, `telegram:`).
    pub allow_prefixes: &'static [&'static str],
    /// Block streaming, when on.
    pub blocks: Option<BlockChunk>,
    pub text_limit: usize,
    /// The ack reaction, when configured.
    pub ack: Option<super::reaction::Ack>,
    /// The largest inbound file downloaded (`mediaMaxMb`).
    pub media_max_bytes: u64,
    /// `polling`, `webhook`, ...
    pub mode: &'static str,
    /// Whether replies are sent, withheld, or wait for an approval.
    pub delivery: super::settings::DeliveryPolicy,
    /// Settings that cannot work as written, shown by `channels.status`.
    pub issues: Vec<String>,
    /// What `channels.status` shows of the account's config (no secrets).
    pub describe: Value,
}

/// A platform connection that keeps ending soon after it starts is handed
/// to the supervisor's backoff (as an error) after this many in a row.
const QUICK_ENDS_MAX: u32 = 10;
/// A connection that lived this long was healthy: the count starts over.
const HEALTHY_CONNECTION: Duration = Duration::from_secs(60);

/// Reconnection for adapters that hold a connection (Discord's gateway,
/// Slack's Socket Mode): platforms close connections routinely, and that
/// is answered by connecting again at once, unless it happens fast and
/// repeatedly.
#[derive(Default)]
pub struct Reconnects {
    quick: u32,
}

impl Reconnects {
    /// A connection that started at `started` ended and should be
    /// replaced: a short pause if it was quick, an error (`what` keeps
    /// closing) after too many quick ends in a row.
    pub async fn ended(&mut self, started: tokio::time::Instant, what: &str) -> Result<(), String> {
        if started.elapsed() >= HEALTHY_CONNECTION {
            self.quick = 0;
            return Ok(());
        }
        self.quick += 1;
        if self.quick >= QUICK_ENDS_MAX {
            return Err(format!("{what} keeps closing the connection"));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok(())
    }
}

/// An account a channel builder made from the config.
pub struct Spec {
    pub platform: Arc<dyn Platform>,
    pub account_id: String,
    pub settings: AccountSettings,
}

/// A running (or stopped) channel account.
pub struct Account {
    pub channel: &'static str,
    pub account_id: String,
    pub platform: Arc<dyn Platform>,
    pub settings: AccountSettings,
    status: Mutex<Status>,
    stop: watch::Sender<bool>,
    pub(super) outbox: mpsc::Sender<Job>,
}

#[derive(Default)]
struct Status {
    running: bool,
    connected: bool,
    reconnect_attempts: u32,
    last_error: Option<String>,
    last_start_at: Option<i64>,
    last_stop_at: Option<i64>,
    last_outbound_at: Option<i64>,
}

impl Account {
    /// The inbound side is connected: earlier failures no longer count
    /// toward the backoff.
    pub fn connected(&self, connected: bool) {
        let mut status = self.status.lock().expect("status lock");
        status.connected = connected;
        if connected {
            status.reconnect_attempts = 0;
            status.last_error = None;
        }
    }

    pub(super) fn sent(&self) {
        self.status.lock().expect("status lock").last_outbound_at = Some(now_ms());
    }

    pub(super) fn send_failed(&self, error: &str) {
        self.status.lock().expect("status lock").last_error = Some(error.to_owned());
    }

    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// The account's entry in `channels.status.channelAccounts`.
    pub fn snapshot(&self, gateway: &Gateway) -> Value {
        let status = self.status.lock().expect("status lock");
        let last_inbound = gateway
            .state
            .read()
            .expect("state lock")
            .channels
            .accounts
            .get(&(self.channel.to_owned(), self.account_id.clone()))
            .and_then(|activity| activity.last_inbound_ms);
        let mut snapshot = json!({
            "accountId": self.account_id,
            "enabled": true,
            "configured": true,
            "running": status.running,
            "connected": status.connected,
            "reconnectAttempts": status.reconnect_attempts,
            "lastError": status.last_error,
            "lastStartAt": status.last_start_at,
            "lastStopAt": status.last_stop_at,
            "lastInboundAt": last_inbound,
            "lastOutboundAt": status.last_outbound_at,
            "mode": self.settings.mode,
            "deliveryPolicy": match self.settings.delivery {
                super::settings::DeliveryPolicy::Allow => "allow",
                super::settings::DeliveryPolicy::Deny => "deny",
                super::settings::DeliveryPolicy::RequireApproval { .. } => "require-approval",
            },
            "dmPolicy": self.settings.access.dm_policy.as_deref().unwrap_or("pairing"),
            "allowFrom": self.settings.access.allow_from.iter()
                .filter_map(|entry| super::settings::allow_entry(entry, &[]))
                .collect::<Vec<_>>(),
        });
        if let (Value::Object(into), Value::Object(extra)) =
            (&mut snapshot, self.settings.describe.clone())
        {
            into.extend(extra);
        }
        snapshot
    }
}

/// The channels clawback runs.
pub const CHANNELS: &[&str] = &["telegram", "discord", "slack", "webhook", "matrix"];

/// One account's adapter from its section.
fn build(
    config: &ConfigFile,
    channel: &str,
    account: &AccountSection,
) -> Result<Option<Spec>, String> {
    let built = match channel {
        "telegram" => telegram::build(config, account),
        "discord" => discord::build(config, account),
        "slack" => slack::build(config, account),
        "webhook" => webhook::build(config, account),
        "matrix" => matrix::build(config, account),
        other => return Err(format!("unsupported channel: {other}")),
    };
    built.map_err(|problem| format!("{}: {problem}", account.config_path(channel)))
}

/// Builds `channel`'s accounts (or the one named) from the config and
/// registers them; what cannot be built is a problem for
/// `channels.status`. The accounts registered, to be supervised.
fn register_channel(
    gateway: &Arc<Gateway>,
    config: &ConfigFile,
    channel: &str,
    only: Option<&str>,
) -> Result<Vec<Arc<Account>>, String> {
    let sections = match settings::accounts(config, channel) {
        Ok(sections) => sections,
        Err(problem) => {
            gateway
                .channels
                .problem(channel, DEFAULT_ACCOUNT, problem.clone());
            return Err(problem);
        }
    };
    let mut registered = Vec::new();
    let mut named = false;
    for section in sections
        .iter()
        .filter(|section| only.is_none_or(|only| only == section.id))
    {
        named = true;
        match build(config, channel, section) {
            Ok(Some(spec)) => registered.push(register(gateway, spec)),
            Ok(None) => {}
            Err(problem) => {
                tracing::warn!(channel, account = %section.id, %problem, "channel account not started");
                gateway
                    .channels
                    .problem(channel, &section.id, problem.clone());
                if only.is_some() {
                    return Err(problem);
                }
            }
        }
    }
    if let Some(only) = only
        && !named
    {
        return Err(format!(
            "channels.{channel} has no account {only:?} in the config"
        ));
    }
    Ok(registered)
}

/// Registers every enabled channel account in the config, so their
/// webhook routes find them from the first request on. Called before the
/// gateway listens; [`start`] then runs them.
pub fn register_all(gateway: &Arc<Gateway>) {
    let config = gateway.config();
    for channel in CHANNELS {
        let _ = register_channel(gateway, &config, channel, None);
    }
}

/// Settles what the previous process left unconfirmed, then starts the
/// registered accounts' inbound sides.
pub async fn start(gateway: &Arc<Gateway>) {
    outbox::settle_unconfirmed(gateway).await;
    reply::settle_pending(gateway).await;
    for account in gateway.channels.accounts() {
        supervise(gateway.clone(), account);
    }
}

/// Stops `channel`'s accounts (or the one named), then starts them again
/// from the current config; the ids started.
pub async fn restart(
    gateway: &Arc<Gateway>,
    channel: &str,
    only: Option<&str>,
) -> Result<Vec<String>, String> {
    if !CHANNELS.contains(&channel) {
        return Err(format!("unsupported channel: {channel}"));
    }
    for account in gateway.channels.accounts() {
        if account.channel == channel && only.is_none_or(|only| only == account.account_id) {
            account.stop();
            gateway.channels.remove(channel, &account.account_id);
        }
    }
    gateway.channels.clear_problem(channel, only);
    let config = gateway.config();
    let accounts = register_channel(gateway, &config, channel, only)?;
    if accounts.is_empty() {
        return Err(match only {
            Some(only) => format!("{channel} account {only:?} is not enabled"),
            None => format!("channels.{channel} is not configured or not enabled"),
        });
    }
    let started = accounts
        .iter()
        .map(|account| account.account_id.clone())
        .collect();
    for account in accounts {
        supervise(gateway.clone(), account);
    }
    Ok(started)
}

fn register(gateway: &Arc<Gateway>, spec: Spec) -> Arc<Account> {
    let (outbox, jobs) = mpsc::channel(OUTBOX_QUEUE_MAX);
    let (stop, _) = watch::channel(false);
    let account = Arc::new(Account {
        channel: spec.platform.channel(),
        account_id: spec.account_id,
        platform: spec.platform,
        settings: spec.settings,
        status: Mutex::new(Status::default()),
        stop,
        outbox,
    });
    outbox::spawn_sender(gateway.clone(), account.clone(), jobs);
    if let Some(previous) = gateway.channels.insert(account.clone()) {
        previous.stop();
    }
    account
}

fn supervise(gateway: Arc<Gateway>, account: Arc<Account>) {
    tokio::spawn(async move {
        let mut stop = account.stop.subscribe();
        let mut backoff = Duration::from_secs(1);
        while !*stop.borrow() {
            {
                let mut status = account.status.lock().expect("status lock");
                status.running = true;
                status.last_start_at = Some(now_ms());
            }
            let inbox = Inbox {
                gateway: gateway.clone(),
                account: account.clone(),
            };
            let ended = account.platform.clone().run(inbox, stop.clone()).await;
            account.connected(false);
            let Err(error) = ended else { break };
            tracing::warn!(channel = account.channel, account = %account.account_id, %error, "channel connection failed; restarting");
            {
                let mut status = account.status.lock().expect("status lock");
                status.last_error = Some(error);
                status.reconnect_attempts = status.reconnect_attempts.saturating_add(1);
                if status.reconnect_attempts <= 1 {
                    backoff = Duration::from_secs(1);
                }
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                _ = stop.changed() => {}
            }
            backoff = (backoff * 2).min(RESTART_BACKOFF_MAX);
        }
        let mut status = account.status.lock().expect("status lock");
        status.running = false;
        status.last_stop_at = Some(now_ms());
    });
}
