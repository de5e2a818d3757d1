//! `GET /healthz`: is the gateway up, and where is its log.
//!
//! Cheap on purpose (no state hash, no scan): load balancers and the test
//! suite poll it.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::Gateway;

pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/healthz", get(health))
        .with_state(gateway)
}

async fn health(State(gateway): State<Arc<Gateway>>) -> Json<Value> {
    let writer_stopped = gateway.log.stopped_reason();
    Json(json!({
        "ok": writer_stopped.is_none(),
        "version": env!("CARGO_PKG_VERSION"),
        "uptimeMs": gateway.started.elapsed().as_millis() as u64,
        "log": {
            "nextSeq": gateway.log.next_seq(),
            "headHash": gateway.log.head_hash().to_hex(),
            "writerStopped": writer_stopped,
        },
    }))
}
