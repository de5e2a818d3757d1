//! `GET /v1/models`: the agent targets a client may name in `model`
//! (`openclaw`, `openclaw/default`, `openclaw/<agentId>`), not provider
//! models, as OpenClaw lists them. `POST /v1/embeddings` answers that
//! clawback has no embeddings yet (there is no memory search to share a
//! model with).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::{Surface, admit, error_response, invalid, json_response};
use crate::gateway::Gateway;

fn model(id: &str) -> Value {
    json!({"id": id, "object": "model", "created": 0, "owned_by": "openclaw", "permission": []})
}

fn ids(gateway: &Gateway) -> Vec<String> {
    let config = gateway.config();
    let mut ids = vec!["openclaw".to_owned(), "openclaw/default".to_owned()];
    for agent in crate::gateway::protocol::methods::agents::agent_ids(&config) {
        let id = format!("openclaw/{agent}");
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

pub async fn list(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = admit(
        &gateway,
        Surface::Models,
        &method,
        Method::GET,
        &headers,
        remote,
    ) {
        return refused;
    }
    let data: Vec<Value> = ids(&gateway).iter().map(|id| model(id)).collect();
    json_response(StatusCode::OK, json!({"object": "list", "data": data}))
}

pub async fn one(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(refused) = admit(
        &gateway,
        Surface::Models,
        &method,
        Method::GET,
        &headers,
        remote,
    ) {
        return refused;
    }
    let id = id.trim();
    if id.is_empty() {
        return invalid("Missing model id.");
    }
    let lowered = id.to_ascii_lowercase();
    let shaped = lowered == "openclaw"
        || lowered == "openclaw/default"
        || ["openclaw/", "openclaw:", "agent:"]
            .iter()
            .any(|prefix| lowered.starts_with(prefix));
    if !shaped {
        return invalid("Invalid model id.");
    }
    if !ids(&gateway).iter().any(|known| known == id) {
        return error_response(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            &format!("Model '{id}' not found."),
        );
    }
    json_response(StatusCode::OK, model(id))
}

pub async fn embeddings(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = admit(
        &gateway,
        Surface::ChatCompletions,
        &method,
        Method::POST,
        &headers,
        remote,
    ) {
        return refused;
    }
    error_response(
        StatusCode::NOT_IMPLEMENTED,
        "api_error",
        "embeddings are not available in clawback yet (they come with memory search)",
    )
}
