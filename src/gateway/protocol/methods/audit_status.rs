//! `clawback.audit.status`: what the control UI shows about the log's
//! integrity: its size and head hash, how far this gateway has re-checked
//! the hash chain from seq 0 (advanced by each call, bounded; see
//! `gateway::chain_watch`), and the latest signed Merkle checkpoint with
//! its signature and root checked. Takes no params.

use std::sync::Arc;

use serde_json::{Value, json};

use super::no_params;
use crate::gateway::Gateway;
use crate::gateway::protocol::frames::{ErrorShape, codes};

/// Answers `clawback.audit.status`.
pub async fn status(gateway: &Arc<Gateway>, params: Option<&Value>) -> Result<Value, ErrorShape> {
    no_params("clawback.audit.status", params)?;
    let until = gateway.log.next_seq();
    let head_hash = gateway.log.head_hash().to_hex();
    let checking = gateway.clone();
    let mut report = tokio::task::spawn_blocking(move || {
        let store = checking.log.store().clone();
        checking
            .chain_watch
            .advance(&*store, until, &checking.checkpoint_verifier)
    })
    .await
    .map_err(|error| ErrorShape {
        code: codes::UNAVAILABLE,
        message: format!("the chain check failed to run: {error}"),
        details: None,
        retryable: Some(true),
        retry_after_ms: Some(1_000),
    })?;
    report["log"] = json!({"nextSeq": until, "headHash": head_hash});
    Ok(report)
}
