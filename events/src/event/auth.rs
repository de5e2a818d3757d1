//! Auth profiles: what happened to a signed-in credential. Part of
//! [`super::Event`]'s vocabulary; the compatibility rule in its module docs
//! applies to every struct here.
//!
//! Never a secret: the tokens live in the encrypted profile store, the log
//! says only which profile was refreshed, when it now expires, or why the
//! refresh was refused.

use serde::{Deserialize, Serialize};

/// An OAuth profile's access token was refreshed (or the refresh failed)
/// before a model call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthProfileRefreshed {
    /// The profile id (`anthropic:default`), as `clawback auth list` shows it.
    pub profile_id: String,
    pub provider: String,
    pub outcome: RefreshOutcome,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefreshOutcome {
    /// New tokens are in the store; the access token is used until
    /// `expires_ms` (unix ms, as OpenClaw stores it).
    Refreshed { expires_ms: i64 },
    /// The token endpoint refused or could not be reached: `reason` is its
    /// OAuth error code (`invalid_grant`) or what went wrong, never a body
    /// that could echo a token.
    Failed {
        reason: String,
        http_status: Option<u16>,
    },
}
