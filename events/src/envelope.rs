//! The envelope: what the log adds around an [`Event`] so that history can be
//! ordered, attributed, correlated and verified.
//!
//! Appenders build a [`NewEvent`] (what happened, to which stream, by whom);
//! the single writer turns it into an [`Envelope`] by assigning the global
//! `seq`, the timestamp and the chain hashes. Reducers read only envelopes, so
//! time and identity always come from the log, never from the reducer's clock.

use serde::{Deserialize, Serialize};

use crate::event::Event;

/// A blake3 digest. The chain's link between records and the unit of every
/// integrity check in clawback.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The `prev_hash` of the first record (seq 0).
    pub const GENESIS: Digest = Digest([0; 32]);

    pub fn to_hex(&self) -> String {
        let mut out = String::with_capacity(64);
        for byte in self.0 {
            out.push(char::from(HEX[(byte >> 4) as usize]));
            out.push(char::from(HEX[(byte & 0x0f) as usize]));
        }
        out
    }

    /// The first 12 hex digits: enough to tell digests apart in messages.
    pub fn short(&self) -> String {
        let mut hex = self.to_hex();
        hex.truncate(12);
        hex
    }

    pub fn from_hex(text: &str) -> Option<Digest> {
        let bytes = text.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (index, pair) in bytes.chunks_exact(2).enumerate() {
            let high = (pair[0] as char).to_digit(16)?;
            let low = (pair[1] as char).to_digit(16)?;
            out[index] = (high * 16 + low) as u8;
        }
        Some(Digest(out))
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Digest({})", self.short())
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Who caused an event. Kept small and closed: an audit must be able to say
/// "which principal" for every record without parsing free text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Actor {
    /// The gateway itself (startup, timers, recovery).
    System,
    /// An operator client on a WebSocket connection.
    Connection {
        conn_id: String,
        device_id: Option<String>,
    },
    /// A chat channel's inbound side (`telegram`, sender id).
    Channel { channel: String, sender: String },
    /// A cron job.
    Cron { job_id: String },
    /// A side-effect executor recording what the outside world answered
    /// (`llm:openai`, `tool:exec`, `channel:telegram`).
    Executor { name: String },
    /// The local command line (`clawback ...`).
    Cli,
    /// An HTTP caller (OpenAI-compatible API, hooks, tools/invoke).
    Http { endpoint: String },
}

impl Actor {
    /// A compact label for timelines: `conn:abc`, `channel:telegram/42`, ...
    pub fn label(&self) -> String {
        match self {
            Actor::System => "system".to_owned(),
            Actor::Connection { conn_id, .. } => format!("conn:{conn_id}"),
            Actor::Channel { channel, sender } => format!("channel:{channel}/{sender}"),
            Actor::Cron { job_id } => format!("cron:{job_id}"),
            Actor::Executor { name } => format!("executor:{name}"),
            Actor::Cli => "cli".to_owned(),
            Actor::Http { endpoint } => format!("http:{endpoint}"),
        }
    }
}

/// What an appender hands to the log. Everything except `seq`, `ts_ms` and
/// the hashes, which only the writer may assign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// The stream the event belongs to: a session key, `gateway`, `config`,
    /// `cron`, ... Streams are an index, not a partition: order is global.
    pub stream: String,
    pub actor: Actor,
    /// Groups the events of one request or run (request id, run id).
    pub correlation: Option<String>,
    /// The seq of the event that caused this one, when there is one.
    pub causation: Option<u64>,
    pub event: Event,
    /// The session whose key seals this event's content when the event does
    /// not name one itself (an RPC's params, an HTTP answer). Not recorded:
    /// a sealed record names its session.
    pub seal_for: Option<String>,
}

impl NewEvent {
    pub fn new(stream: impl Into<String>, actor: Actor, event: Event) -> NewEvent {
        NewEvent {
            stream: stream.into(),
            actor,
            correlation: None,
            causation: None,
            event,
            seal_for: None,
        }
    }

    /// Seals this event's content (if it carries any) under `session_key`'s
    /// data key. See [`crate::sealed`].
    pub fn sealed_for(mut self, session_key: impl Into<String>) -> NewEvent {
        self.seal_for = Some(session_key.into());
        self
    }

    pub fn correlated(mut self, correlation: impl Into<String>) -> NewEvent {
        self.correlation = Some(correlation.into());
        self
    }

    pub fn caused_by(mut self, seq: u64) -> NewEvent {
        self.causation = Some(seq);
        self
    }
}

/// The part of a record covered by its hash besides `seq` and `prev_hash`:
/// everything a reader needs, in the order it is encoded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Body {
    /// Unix time in milliseconds, assigned by the writer, never decreasing.
    pub ts_ms: i64,
    pub stream: String,
    pub actor: Actor,
    pub correlation: Option<String>,
    pub causation: Option<u64>,
    pub event: Event,
}

/// One record of the log as readers see it: decoded and verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// Global position, gap-free from 0.
    pub seq: u64,
    pub body: Body,
    pub prev_hash: Digest,
    /// `blake3(prev_hash || seq (u64 little-endian) || encoded body)`.
    pub hash: Digest,
}

impl Envelope {
    pub fn ts_ms(&self) -> i64 {
        self.body.ts_ms
    }

    pub fn stream(&self) -> &str {
        &self.body.stream
    }

    pub fn event(&self) -> &Event {
        &self.body.event
    }
}

/// The largest stream name accepted; keeps index keys small and bounded.
pub const STREAM_NAME_BYTES_MAX: usize = 512;

/// Why a stream name is refused. Stream names are index keys: they must be
/// non-empty, bounded, and free of NUL (the index's key separator).
pub fn validate_stream_name(stream: &str) -> Result<(), String> {
    if stream.is_empty() {
        return Err("stream name is empty".to_owned());
    }
    if stream.len() > STREAM_NAME_BYTES_MAX {
        return Err(format!(
            "stream name is {} bytes, the limit is {STREAM_NAME_BYTES_MAX}",
            stream.len()
        ));
    }
    if stream.contains('\0') {
        return Err("stream name contains a NUL byte".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_hex_round_trips() {
        let digest = Digest(*blake3::hash(b"clawback").as_bytes());
        assert_eq!(Digest::from_hex(&digest.to_hex()), Some(digest));
        assert_eq!(digest.to_hex(), blake3::hash(b"clawback").to_hex().as_str());
        assert_eq!(Digest::from_hex("zz"), None);
    }

    #[test]
    fn stream_names_are_bounded_and_nul_free() {
        assert!(validate_stream_name("agent:main:main").is_ok());
        assert!(validate_stream_name("").is_err());
        assert!(validate_stream_name("a\0b").is_err());
        assert!(validate_stream_name(&"x".repeat(STREAM_NAME_BYTES_MAX + 1)).is_err());
    }
}
