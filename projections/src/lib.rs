//! clawback's projections: the state the gateway serves, derived from the log
//! by pure reducers, with one canonical hash over all of it.
//!
//! Why it exists as its own crate: the reducers are the one place where
//! "what happened" (events) becomes "what is true now" (state). Keeping them
//! free of I/O, clocks, randomness and hash-map iteration means the live
//! gateway, a rebuild from the log, and a snapshot plus its tail always reach
//! the same bytes, and [`State::state_hash`] proves it.
//!
//! Rules every reducer here follows (checked by the property tests):
//! - **Pure.** Time and ids come from the envelope; nothing else is read.
//! - **Total.** Any event, in any order, is accepted. An event that does not
//!   fit the state (a message for an unknown session, a second decision on an
//!   approval) changes nothing but is counted in [`Anomalies`], so an audit
//!   can find it; a reducer never panics on input.
//! - **Ordered.** Only `BTreeMap`, `BTreeSet`, `Vec` and `VecDeque`, so the
//!   encoding, and thus the hash, is the same on every machine.
//! - **Bounded.** Histories kept for display (recent runs, resolved
//!   approvals, cron runs, inbound ids) have fixed caps; the log keeps the
//!   rest.
//!
//! The one precondition `apply` asserts is the log's own invariant: envelopes
//! arrive in seq order without gaps. Breaking it is a bug in the caller.

pub mod anomalies;
pub mod approvals;
pub mod channels;
pub mod config;
pub mod cron;
pub mod deliveries;
pub mod devices;
pub mod gateway;
pub mod idempotency;
pub mod nodes;
pub mod presence;
pub mod purges;
pub mod sessions;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests;
pub mod usage;

use clawback_events::{Digest, Envelope, Event};
use serde::{Deserialize, Serialize};

pub use anomalies::Anomalies;
pub use approvals::Approvals;
pub use channels::Channels;
pub use config::Config;
pub use cron::Cron;
pub use deliveries::Deliveries;
pub use devices::Devices;
pub use gateway::Gateway;
pub use idempotency::Idempotency;
pub use nodes::Nodes;
pub use presence::Presence;
pub use purges::Purges;
pub use sessions::Sessions;
pub use usage::UsageBook;

/// The version byte in front of every encoded [`State`]. Bumped whenever a
/// projection's shape changes; an old snapshot is then refused (and restore
/// falls back to replaying the log, which is always possible).
pub const STATE_FORMAT_VERSION: u8 = 16;

/// Domain separation for [`State::state_hash`], so a state hash can never be
/// mistaken for a record hash of the same bytes.
const STATE_HASH_DOMAIN: &[u8] = b"clawback.state.v1\0";

/// Everything the reducers derive from the log, up to (not including)
/// `next_seq`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The seq the next applied envelope must have.
    pub next_seq: u64,
    /// The hash of the last applied record (the chain head at `next_seq`).
    pub last_hash: Digest,
    /// The timestamp of the last applied record.
    pub last_ts_ms: i64,
    pub gateway: Gateway,
    pub sessions: Sessions,
    pub presence: Presence,
    pub config: Config,
    pub approvals: Approvals,
    pub cron: Cron,
    pub devices: Devices,
    pub nodes: Nodes,
    pub deliveries: Deliveries,
    pub usage: UsageBook,
    pub idempotency: Idempotency,
    pub channels: Channels,
    pub anomalies: Anomalies,
    pub purges: Purges,
}

/// What a reducer needs to know about the record it is applying besides the
/// event: where and when it happened.
#[derive(Clone, Copy, Debug)]
pub struct At {
    pub seq: u64,
    pub ts_ms: i64,
}

/// Why an encoded state could not be read back.
#[derive(Debug)]
pub enum DecodeError {
    Empty,
    UnknownVersion(u8),
    Malformed(String),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Empty => f.write_str("state encoding is empty"),
            DecodeError::UnknownVersion(version) => write!(
                f,
                "state format version {version} is not {STATE_FORMAT_VERSION}, the one this build reads; \
                 restore by replaying the log instead"
            ),
            DecodeError::Malformed(detail) => write!(f, "state encoding is malformed: {detail}"),
        }
    }
}

impl std::error::Error for DecodeError {}

impl State {
    /// Folds one envelope into the state (the live path: the envelope is
    /// shared with subscribers, so what the state keeps is copied).
    ///
    /// # Panics
    /// If `envelope.seq` is not `next_seq`: the log hands out envelopes in
    /// order, so anything else is a caller bug that would silently fork state.
    pub fn apply(&mut self, envelope: &Envelope) {
        let at = self.begin(envelope.seq, envelope.body.ts_ms);
        // A sealed event is reduced as its skeleton: no projection keeps
        // session content, so no key is ever needed to fold the log.
        match envelope.body.event.bare() {
            event if keeps_no_payload(event) => self.reduce_borrowed(at, event),
            event => self.reduce(at, event.clone()),
        }
        self.finish(envelope.seq, envelope.hash, envelope.body.ts_ms);
    }

    /// [`State::apply`] for an envelope nobody else needs (rebuild and
    /// restore): what the state keeps is moved out of it, not copied. Gives
    /// exactly the state `apply` gives.
    pub fn apply_owned(&mut self, envelope: Envelope) {
        let at = self.begin(envelope.seq, envelope.body.ts_ms);
        let (seq, hash, ts_ms) = (envelope.seq, envelope.hash, envelope.body.ts_ms);
        let event = match envelope.body.event {
            Event::Sealed(sealed) => *sealed.skeleton,
            event => event,
        };
        self.reduce(at, event);
        self.finish(seq, hash, ts_ms);
    }

    fn begin(&self, seq: u64, ts_ms: i64) -> At {
        assert_eq!(
            seq, self.next_seq,
            "projections must see every seq in order"
        );
        At { seq, ts_ms }
    }

    fn finish(&mut self, seq: u64, hash: Digest, ts_ms: i64) {
        self.next_seq = seq + 1;
        self.last_hash = hash;
        self.last_ts_ms = ts_ms;
    }

    fn reduce(&mut self, at: At, event: Event) {
        let anomalies = &mut self.anomalies;
        match event {
            Event::GatewayStarted(e) => {
                // A start means the previous process is gone: everything
                // that only lives as long as a process ends here, and runs it
                // left open become visibly interrupted instead of "running"
                // forever.
                self.gateway.started(at, e);
                self.presence.gateway_restarted(at);
                self.sessions.gateway_restarted(at);
                self.cron.gateway_restarted(at);
                self.nodes.gateway_restarted(at);
            }
            Event::GatewayStopped(e) => self.gateway.stopped(at, e),
            Event::ConnectionOpened(e) => self.presence.connection_opened(at, e, anomalies),
            Event::ConnectionClosed(e) => {
                self.nodes.connection_closed(at, &e.conn_id);
                self.presence.connection_closed(at, &e, anomalies);
            }
            Event::PresenceChanged(e) => self.presence.changed(at, e, anomalies),
            Event::ConfigChanged(e) => self.config.changed(at, e),
            Event::SessionCreated(e) => self.sessions.created(at, e, anomalies),
            Event::SessionPatched(e) => self.sessions.patched(at, e, anomalies),
            Event::SessionReset(e) => self.sessions.reset(at, e, anomalies),
            Event::SessionDeleted(e) => self.sessions.deleted(at, &e, anomalies),
            Event::SessionCompacted(e) => self.sessions.compacted(at, e, anomalies),
            Event::SessionForked(e) => self.sessions.forked(at, e, anomalies),
            Event::MessageAppended(e) => self.sessions.message_appended(at, e, anomalies),
            Event::AgentRunStarted(e) => self.sessions.run_started(at, e, anomalies),
            Event::AgentRunFinished(e) => self.sessions.run_finished(at, e, anomalies),
            Event::ToolCallRequested(e) => self.sessions.tool_call_requested(at, e, anomalies),
            Event::ToolCallStarted(e) => self.sessions.tool_call_started(at, &e, anomalies),
            Event::ApprovalRequested(e) => self.approvals.requested(at, e, anomalies),
            Event::ApprovalResolved(e) => self.approvals.resolved(at, e, anomalies),
            Event::ApprovalExpired(e) => self.approvals.expired(at, &e, anomalies),
            Event::DeliveryPrepared(e) => {
                self.channels.delivery_prepared(&e);
                self.deliveries.prepared(at, e, anomalies);
            }
            Event::DeliverySent(e) => self.deliveries.sent(at, e, anomalies),
            Event::DeliveryFailed(e) => self.deliveries.failed(at, e, anomalies),
            Event::CronJobAdded(e) => self.cron.job_added(at, e),
            Event::CronJobRemoved(e) => self.cron.job_removed(at, &e, anomalies),
            Event::CronJobFired(e) => self.cron.job_fired(at, e, anomalies),
            Event::CronJobFinished(e) => self.cron.job_finished(at, e, anomalies),
            Event::CronJobSaved(e) => self.cron.job_saved(at, e),
            Event::CronRunFinished(e) => self.cron.run_finished(at, e, anomalies),
            Event::CronRunForced(e) => self.cron.run_forced(at, e, anomalies),
            Event::NodePaired(e) => self.nodes.legacy_paired(at, e),
            Event::NodeUnpaired(e) => self.nodes.unpaired(at, &e, anomalies),
            Event::DevicePaired(e) => self.devices.device_paired(at, e),
            Event::DeviceRevoked(e) => {
                self.nodes.device_revoked(&e.device_id);
                self.devices.device_revoked(at, e, anomalies);
            }
            Event::DevicePairRequested(e) => self.devices.pair_requested(at, e),
            Event::DevicePairResolved(e) => self.devices.pair_resolved(at, &e, anomalies),
            Event::DeviceTokenIssued(e) => self.devices.token_issued(at, e),
            Event::DeviceTokenRevoked(e) => self.devices.token_revoked(at, &e, anomalies),
            // A cooldown lasts a minute and lives in the runtime; the record
            // is for the audit trail ("why did this run use the fallback").
            Event::ModelCooldown(_) => {}
            // Tokens live in the encrypted profile store, not in the state;
            // the record is the audit trail ("why did this run fall over").
            Event::AuthProfileRefreshed(_) => {}
            Event::ExecPolicyChanged(e) => self.approvals.policy_changed(at, e),
            // Wake words are gateway settings; the newest set wins.
            Event::VoiceWakeChanged(e) => self.gateway.voice_wake = Some(e.triggers),
            Event::NodeConnected(e) => self.nodes.connected(at, e),
            Event::NodePairRequested(e) => self.nodes.pair_requested(at, e),
            Event::NodePairResolved(e) => self.nodes.pair_resolved(at, &e, anomalies),
            Event::NodeRenamed(e) => self.nodes.renamed(at, e, anomalies),
            Event::HttpRequestAccepted(e) => self.idempotency.accepted(at, e, anomalies),
            Event::ApprovalGrantApplied(e) => self.approvals.grant_applied(at, &e, anomalies),
            Event::ChannelMessageReceived(e) => self.channels.message_received(at, e, anomalies),
            Event::ChannelReplyCompleted(e) => self.channels.reply_completed(at, &e, anomalies),
            Event::ChannelPairingRequested(e) => self.channels.pairing_requested(at, e, anomalies),
            Event::ChannelPairingResolved(e) => self.channels.pairing_resolved(at, &e, anomalies),
            // A logout stops a running account; the record is the audit
            // trail of who did it and what was forgotten.
            Event::ChannelLoggedOut(_) => {}
            // An invite is the audit trail of who brought the bot where;
            // the room's messages are what the channels state keeps.
            Event::ChannelInviteReceived(_) => {}
            Event::ChannelCursorRecorded(e) => self.channels.cursor_recorded(&e),
            // A checkpoint vouches for the log and changes no projection:
            // the tree is derived from the log by `clawback-replay::merkle`
            // when someone asks, never kept in the state.
            Event::MerkleCheckpoint(_) => {}
            Event::SessionPurged(e) => self.purges.purged(at, e),
            // Unwrapped by `apply`; a skeleton is never itself sealed.
            Event::Sealed(sealed) => self.reduce(at, *sealed.skeleton),
            ref event @ (Event::RpcReceived(_)
            | Event::NodeInvokeRequested(_)
            | Event::NodeInvokeFinished(_)
            | Event::HttpRequestAnswered(_)
            | Event::RpcAnswered(_)
            | Event::LlmCallRequested(_)
            | Event::LlmCallCompleted(_)
            | Event::ToolCallFinished(_)) => self.reduce_borrowed(at, event),
        }
    }

    /// The events whose payload (RPC params, LLM request and response bodies,
    /// tool output: often kilobytes) the state does not keep: reduced from a
    /// reference, so the live path never copies them.
    fn reduce_borrowed(&mut self, at: At, event: &Event) {
        debug_assert!(keeps_no_payload(event));
        let anomalies = &mut self.anomalies;
        match event {
            Event::RpcReceived(_) | Event::RpcAnswered(_) => self.gateway.rpc(event),
            Event::LlmCallRequested(e) => self.sessions.llm_call_requested(at, e, anomalies),
            Event::LlmCallCompleted(e) => {
                self.usage.llm_call_completed(at, e);
                self.sessions.llm_call_completed(at, e, anomalies);
            }
            Event::ToolCallFinished(e) => self.sessions.tool_call_finished(at, e, anomalies),
            Event::HttpRequestAnswered(e) => self.idempotency.answered(at, e, anomalies),
            // Invokes live as long as a request; the log is their record.
            _ => {}
        }
    }

    /// The canonical encoding: a version byte, then postcard. Deterministic
    /// because every collection in the state is ordered.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![STATE_FORMAT_VERSION];
        // Serializing plain owned data into a Vec cannot fail.
        let body = postcard::to_allocvec(self).expect("state is always encodable");
        out.extend_from_slice(&body);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<State, DecodeError> {
        let (&version, body) = bytes.split_first().ok_or(DecodeError::Empty)?;
        if version != STATE_FORMAT_VERSION {
            return Err(DecodeError::UnknownVersion(version));
        }
        let (state, rest) = postcard::take_from_bytes::<State>(body)
            .map_err(|error| DecodeError::Malformed(error.to_string()))?;
        if !rest.is_empty() {
            return Err(DecodeError::Malformed(format!(
                "{} bytes after the end of the state",
                rest.len()
            )));
        }
        Ok(state)
    }

    /// blake3 over the canonical encoding: equal hashes mean equal state,
    /// whichever way (live, rebuild, snapshot + tail) it was reached.
    pub fn state_hash(&self) -> Digest {
        let mut hasher = blake3::Hasher::new();
        hasher.update(STATE_HASH_DOMAIN);
        hasher.update(&self.encode());
        Digest(*hasher.finalize().as_bytes())
    }
}

/// See [`State::reduce_borrowed`].
fn keeps_no_payload(event: &Event) -> bool {
    matches!(
        event,
        Event::RpcReceived(_)
            | Event::RpcAnswered(_)
            | Event::LlmCallRequested(_)
            | Event::LlmCallCompleted(_)
            | Event::ToolCallFinished(_)
            | Event::NodeInvokeRequested(_)
            | Event::NodeInvokeFinished(_)
            | Event::HttpRequestAnswered(_)
    )
}

/// Pushes onto a bounded history, dropping the oldest entry past `max`.
pub(crate) fn push_bounded<T>(queue: &mut std::collections::VecDeque<T>, item: T, max: usize) {
    debug_assert!(max > 0);
    queue.push_back(item);
    while queue.len() > max {
        queue.pop_front();
    }
}
