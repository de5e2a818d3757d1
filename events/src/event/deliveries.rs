//! The outbox of messages to channels. Part of [`super::Event`]'s vocabulary; the
//! compatibility rule in its module docs applies to every struct here.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryPrepared {
    pub delivery_id: String,
    /// Sent to the platform where it supports one, and used on restart to
    /// resolve a prepared-but-unconfirmed delivery instead of resending.
    pub idempotency_key: String,
    pub channel: String,
    pub target: String,
    pub session_key: Option<String>,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliverySent {
    pub delivery_id: String,
    pub platform_message_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryFailed {
    pub delivery_id: String,
    pub error: String,
    pub retryable: bool,
}
