//! `clawback.sessions.diff`: where two sessions' behaviour diverged, read
//! through the running gateway.
//!
//! Why: `clawback fork` needs the gateway running and the offline
//! `clawback diff` needs the store, whose lock the gateway holds; comparing
//! a fork with its source should not mean stopping the gateway. The
//! comparison is `clawback_replay::diff`, the same the offline command
//! renders, read on a blocking thread through the gateway's store handle
//! with sealed content opened by its keyring. Params: `{a, b}` (session
//! keys). The answer is the `clawback diff --json` object.

use std::sync::Arc;

use clawback_replay::diff::{DiffError, diff, session_steps};
use serde_json::Value;

use super::Params;
use crate::gateway::Gateway;
use crate::gateway::protocol::frames::{ErrorShape, codes};

/// Answers `clawback.sessions.diff`.
pub async fn session_diff(
    gateway: &Arc<Gateway>,
    params: Option<&Value>,
) -> Result<Value, ErrorShape> {
    let params = Params::closed("clawback.sessions.diff", params, &["a", "b"])?;
    let (a, b) = (params.str("a")?.to_owned(), params.str("b")?.to_owned());
    let store = gateway.log.store().clone();
    let keyring = gateway.keyring.clone();
    let read = tokio::task::spawn_blocking(move || {
        let a = session_steps(&*store, &*keyring, &a)?;
        let b = session_steps(&*store, &*keyring, &b)?;
        Ok::<_, DiffError>(diff(a, b))
    })
    .await
    .map_err(|error| {
        ErrorShape::new(
            codes::UNAVAILABLE,
            format!("the diff reader failed: {error}"),
        )
    })?;
    match read {
        Ok(compared) => serde_json::to_value(&compared).map_err(|error| {
            ErrorShape::new(
                codes::UNAVAILABLE,
                format!("cannot encode the diff: {error}"),
            )
        }),
        Err(error @ DiffError::UnknownSession(_)) => Err(ErrorShape::invalid(error.to_string())),
        Err(error) => Err(ErrorShape::new(codes::UNAVAILABLE, error.to_string())),
    }
}
