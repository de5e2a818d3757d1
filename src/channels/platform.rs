//! What every chat platform adapter provides: sending a message, a typing
//! indicator, its text limit, what a restart may do with an unconfirmed
//! send, its inbound side, and fetching the files inbound messages carry.
//!
//! Why a trait object and not generics: the manager holds accounts of
//! different platforms side by side, started and stopped from config at
//! runtime.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Inbox;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a message goes. Recorded as canonical JSON in
/// `delivery.prepared.target` (within an [`Envelope`]), so a restart can
/// send what was prepared.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub account: String,
    pub chat: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<String>,
}

/// One message to send.
pub struct Outgoing<'a> {
    pub target: &'a Target,
    pub text: &'a str,
    /// Stable across attempts and restarts: platforms that deduplicate by a
    /// client key (Matrix transaction ids, Discord nonces, the custom
    /// webhook's `Idempotency-Key`) get it.
    pub idempotency_key: &'a str,
    /// A file to send with `text` as its caption (only to platforms whose
    /// `sends_media` is true).
    pub media: Option<(&'a super::media::Attachment, &'a [u8])>,
    /// A reaction to set instead of a message (only to platforms whose
    /// `reacts` is true); `text` is then the emoji.
    pub reaction: Option<&'a super::reaction::Reaction>,
}

/// What `delivery.prepared.target` records: the target, and the file the
/// delivery carries (an added key, so targets recorded before read the
/// same).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    #[serde(flatten)]
    pub target: Target,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<super::media::Attachment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reaction: Option<super::reaction::Reaction>,
}

impl Envelope {
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("an envelope always serializes")
    }

    pub fn decode(text: &str) -> Result<Envelope, String> {
        serde_json::from_str(text)
            .map_err(|error| format!("unreadable delivery target {text:?}: {error}"))
    }
}

#[derive(Debug)]
pub struct SendError {
    pub message: String,
    /// Worth another attempt (a rate limit, a 5xx, a network error).
    pub retryable: bool,
    /// The platform said when (Telegram's `retry_after`, `Retry-After`).
    pub retry_after: Option<Duration>,
}

impl SendError {
    pub fn transient(message: impl Into<String>) -> SendError {
        SendError {
            message: message.into(),
            retryable: true,
            retry_after: None,
        }
    }
}

/// What a new process may do with a delivery prepared by the previous one
/// and never confirmed: it may or may not have reached the platform.
pub enum AfterRestart {
    /// The platform deduplicates by the idempotency key: sending again
    /// cannot make a second message.
    Resend,
    /// No way to tell: reported as failed (not resent), with the reason.
    Report(&'static str),
}

pub trait Platform: Send + Sync + 'static {
    /// `telegram`, `webhook`, ...
    fn channel(&self) -> &'static str;

    /// Sends one message; the platform's id for it, if it gives one.
    fn send<'a>(
        &'a self,
        message: Outgoing<'a>,
    ) -> BoxFuture<'a, Result<Option<String>, SendError>>;

    /// Shows "typing..." in `target` for a few seconds, if the platform can.
    fn typing<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, ()>;

    /// What to do with a send prepared `prepared_age` ago by a process
    /// that is gone, and never confirmed.
    fn after_restart(&self, prepared_age: std::time::Duration) -> AfterRestart;

    /// For the platform's own HTTP routes (a webhook), which need its
    /// concrete type back.
    fn as_any(&self) -> &dyn std::any::Any;

    /// The inbound side: takes messages into `inbox` until `stop` turns
    /// true (`Ok`) or the connection fails (`Err`: restarted with backoff).
    fn run(
        self: Arc<Self>,
        inbox: Inbox,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> BoxFuture<'static, Result<(), String>>;

    /// Whether `send` sets reactions (`Outgoing::reaction`).
    fn reacts(&self) -> bool {
        false
    }

    /// Whether `send` takes a file (`Outgoing::media`).
    fn sends_media(&self) -> bool {
        false
    }

    /// Fetches a file an inbound message carries, refusing more than `cap`
    /// bytes; platforms whose files clawback cannot fetch yet say so.
    fn download<'a>(
        &'a self,
        media: &'a super::media::MediaRef,
        cap: u64,
    ) -> BoxFuture<'a, Result<Vec<u8>, super::media::DownloadError>> {
        let _ = (media, cap);
        let channel = self.channel();
        Box::pin(async move {
            Err(super::media::DownloadError::Failed(format!(
                "clawback cannot download {channel} files yet"
            )))
        })
    }

    /// `channels.logout`, after the account stopped: forgets what clawback
    /// holds with the platform for it (a login's session, a webhook
    /// registration) and says what it did; nothing by default (the
    /// credentials are the operator's, in the config).
    fn logout(&self) -> BoxFuture<'_, Result<Logout, String>> {
        Box::pin(async { Ok(Logout::default()) })
    }
}

/// What a platform's logout did.
#[derive(Debug, Default)]
pub struct Logout {
    /// A credential or platform-side session was cleared.
    pub cleared: bool,
    /// What was done, in words.
    pub actions: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_recorded_before_envelopes_read_the_same() {
        let old = r#"{"account":"default","chat":"42"}"#;
        let envelope = Envelope::decode(old).expect("old target");
        assert_eq!(envelope.target.chat, "42");
        assert!(envelope.media.is_none() && envelope.reaction.is_none());
        assert_eq!(envelope.encode(), old, "a plain target encodes as before");
        let with_file = Envelope {
            media: Some(super::super::media::Attachment {
                sha256: "ab".to_owned(),
                mime: "image/png".to_owned(),
                name: "a.png".to_owned(),
                size: 3,
                voice: false,
            }),
            ..envelope
        };
        assert_eq!(
            Envelope::decode(&with_file.encode()).expect("roundtrip"),
            with_file
        );
    }
}
