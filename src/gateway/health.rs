//! `GET /healthz` and `GET /readyz`: is the gateway up, and can it take
//! work.
//!
//! Cheap on purpose (no state hash, no scan): load balancers, container
//! health checks and the test suite poll them. OpenClaw's shapes where
//! clients look (`{ok, status: "live"}`, `{ready, failing, uptimeMs}`),
//! plus where the log is. Ready means the log writer takes appends: a
//! gateway whose storage failed answers 503 until it exits and recovers.
//! (OpenClaw's `eventLoop` delay has no counterpart here and is left out.)

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::Gateway;

pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/healthz", get(health))
        .route("/readyz", get(ready))
        .with_state(gateway)
}

async fn health(State(gateway): State<Arc<Gateway>>) -> Json<Value> {
    let writer_stopped = gateway.log.stopped_reason();
    Json(json!({
        "ok": writer_stopped.is_none(),
        "status": if writer_stopped.is_none() { "live" } else { "failing" },
        "version": env!("CARGO_PKG_VERSION"),
        "uptimeMs": gateway.started.elapsed().as_millis() as u64,
        "log": {
            "nextSeq": gateway.log.next_seq(),
            "headHash": gateway.log.head_hash().to_hex(),
            "writerStopped": writer_stopped,
        },
    }))
}

async fn ready(State(gateway): State<Arc<Gateway>>) -> (StatusCode, Json<Value>) {
    let writer_stopped = gateway.log.stopped_reason();
    let failing: Vec<&str> = writer_stopped.iter().map(|_| "log").collect();
    let status = if failing.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "ready": failing.is_empty(),
        "failing": failing,
        "uptimeMs": gateway.started.elapsed().as_millis() as u64,
    });
    (status, Json(body))
}
