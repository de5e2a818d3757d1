//! One WebSocket connection: challenge, `connect`, then requests and pushed
//! events until either side closes.
//!
//! Why this shape: reads, request handling and writes are decoupled by a
//! bounded outbound queue per socket. A client that stops reading fills only
//! its own queue and is closed; nobody else waits for it. Every request and
//! its outcome is appended to the log before the answer is sent, so what a
//! client was told is always on record.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, broadcast, mpsc};

use super::connect::{self, PROTOCOL_VERSION};
use super::device;
use super::frames::{self, ErrorShape, codes};
use super::lifecycle;
use super::methods;
use super::pairing::{self, Pairing};
use super::scopes::{self, Denied};
use super::{Push, policy};
use crate::gateway::Gateway;

/// Frames waiting to be written to one socket; a client this far behind is
/// closed rather than buffered without bound.
const OUTBOUND_FRAMES_MAX: usize = 1_024;
/// Requests of one connection handled at once; more wait (backpressure on
/// the socket's reads), so one client cannot spawn without bound.
const REQUESTS_IN_FLIGHT_MAX: usize = 64;
/// The longest a second answer waits for the socket's pushes to catch up.
const BARRIER_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// Unauthorized calls after which the socket is closed.
const UNAUTHORIZED_CALLS_MAX: u32 = 10;

/// WebSocket close reasons are limited to 123 bytes.
fn close_reason(message: &str) -> Utf8Bytes {
    let mut end = message.len().min(123);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    Utf8Bytes::from(message[..end].to_owned())
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: close_reason(reason),
    }))
}

/// What a connection authenticated as.
pub(super) struct Session {
    pub(super) conn_id: String,
    pub(super) role: String,
    pub(super) scopes: Vec<String>,
    /// A device whose proof verified and which is paired.
    pub(super) device_id: Option<String>,
    /// Declared `caps: ["tool-events"]`: receives its runs' tool events.
    pub(super) tool_events: bool,
}

pub async fn serve(socket: WebSocket, remote: SocketAddr, gateway: Arc<Gateway>) {
    let (mut sink, mut stream) = socket.split();
    let (outbound, mut queued) = mpsc::channel::<Message>(OUTBOUND_FRAMES_MAX);
    let writer = tokio::spawn(async move {
        while let Some(message) = queued.recv().await {
            let closing = matches!(message, Message::Close(_));
            if sink.send(message).await.is_err() || closing {
                break;
            }
        }
        let _ = sink.close().await;
    });

    let nonce = uuid::Uuid::new_v4().to_string();
    let challenge = frames::event(
        "connect.challenge",
        json!({"nonce": nonce, "ts": methods_now_ms(), "capabilities": []}),
        None,
        None,
    );
    if outbound.send(Message::text(challenge)).await.is_err() {
        return;
    }

    let session = match handshake(&mut stream, &outbound, remote, &nonce, &gateway).await {
        Some(session) => session,
        None => {
            drop(outbound);
            let _ = writer.await;
            return;
        }
    };
    run(&mut stream, &outbound, &session, &gateway).await;
    lifecycle::record_close(&gateway, &session).await;
    drop(outbound);
    let _ = writer.await;
}

fn methods_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

/// Reads and answers `connect`. `None` means the socket was closed.
async fn handshake(
    stream: &mut futures_util::stream::SplitStream<WebSocket>,
    outbound: &mpsc::Sender<Message>,
    remote: SocketAddr,
    nonce: &str,
    gateway: &Arc<Gateway>,
) -> Option<Session> {
    let first = tokio::time::timeout(policy::HANDSHAKE_TIMEOUT, next_text(stream)).await;
    let text = match first {
        Err(_) => {
            let _ = outbound.send(close(1000, "handshake timeout")).await;
            return None;
        }
        Ok(None) => return None,
        Ok(Some(Err(message))) => {
            let _ = outbound.send(message).await;
            return None;
        }
        Ok(Some(Ok(text))) => text,
    };
    if text.len() > policy::MAX_PREAUTH_PAYLOAD_BYTES {
        let _ = outbound
            .send(close(1009, "preauth payload too large"))
            .await;
        return None;
    }
    let fail = |id: &str, error: ErrorShape, code: u16| {
        let reason = error.message.clone();
        let response = frames::response_error(id, &error);
        async move {
            let _ = outbound.send(Message::text(response)).await;
            let _ = outbound.send(close(code, &reason)).await;
        }
    };
    let request = match frames::parse_request(&text) {
        Ok(request) => request,
        Err(error) => {
            let id = error.id.unwrap_or_default();
            fail(&id, error.error, 1008).await;
            return None;
        }
    };
    if request.method != "connect" {
        let error = ErrorShape::invalid("invalid handshake: first request must be connect");
        fail(&request.id, error, 1008).await;
        return None;
    }
    let connect = match connect::parse(request.params.as_ref()) {
        Ok(connect) => connect,
        Err(error) => {
            fail(&request.id, error, 1008).await;
            return None;
        }
    };
    if let Err(error) = connect::check_protocol(&connect) {
        fail(&request.id, error, 1002).await;
        return None;
    }
    if let Err(error) = gateway.auth_limiter.check(remote.ip()) {
        fail(&request.id, error, 1008).await;
        return None;
    }
    let device = match connect.device.as_ref().map(|proof| {
        device::parse(proof)
            .and_then(|proof| device::verify(&proof, &connect, nonce, methods_now_ms()))
    }) {
        None => None,
        Some(Ok(device)) => Some(device),
        Some(Err(error)) => {
            gateway.auth_limiter.failed(remote.ip());
            fail(&request.id, error, 1008).await;
            return None;
        }
    };
    // The shared secret, or else a device token issued to this device.
    let mut token_scopes = None;
    if let Err(error) = gateway.auth.check(&connect) {
        let secret_offered = connect.token.is_some() || connect.password.is_some();
        let checked = match (&connect.device_token, &device) {
            (Some(token), Some(device)) if !secret_offered => pairing::check_device_token(
                gateway,
                device,
                &connect.role,
                token,
                connect.scopes.as_deref(),
            ),
            _ => Err(error),
        };
        match checked {
            Ok(scopes) => token_scopes = Some(scopes),
            Err(error) => {
                gateway.auth_limiter.failed(remote.ip());
                fail(&request.id, error, 1008).await;
                return None;
            }
        }
    }
    // A node is known by its device identity: pairing needs one.
    if connect.role == "node" && device.is_none() {
        let error = ErrorShape::new(codes::NOT_PAIRED, "device identity required")
            .with_details(json!({"code": "DEVICE_IDENTITY_REQUIRED"}));
        fail(&request.id, error, 1008).await;
        return None;
    }
    let pairing = match &device {
        None => Pairing::NoDevice,
        Some(device) => match pairing::decide(gateway, device, &connect, remote).await {
            Ok(pairing) => pairing,
            Err(error) => {
                fail(&request.id, error, 1008).await;
                return None;
            }
        },
    };
    let session = Session {
        conn_id: uuid::Uuid::new_v4().to_string(),
        role: connect.role.clone(),
        // Shared-secret connections get the scopes they ask for, as OpenClaw
        // grants them on loopback; none asked means read-only (least
        // privilege; OpenClaw's own default for that case is unspecified).
        // A device token grants at most the scopes it was issued with.
        // A node holds no operator scopes: it calls node methods only.
        scopes: if connect.role == "node" {
            Vec::new()
        } else {
            token_scopes.unwrap_or_else(|| {
                connect
                    .scopes
                    .clone()
                    .unwrap_or_else(|| vec![scopes::READ.to_owned()])
            })
        },
        device_id: device.as_ref().map(|device| device.device_id.clone()),
        tool_events: connect.caps.iter().any(|cap| cap == "tool-events"),
    };
    let device_token =
        match lifecycle::record_open(gateway, &session, &connect, remote, &device, pairing).await {
            Ok(device_token) => device_token,
            Err(error) => {
                let error = ErrorShape {
                    code: codes::UNAVAILABLE,
                    message: format!("the gateway cannot record this connection: {error}"),
                    details: None,
                    retryable: Some(true),
                    retry_after_ms: Some(1_000),
                };
                fail(&request.id, error, 1011).await;
                return None;
            }
        };
    let hello = hello_ok(gateway, &session, device_token);
    if outbound
        .send(Message::text(frames::response_ok(&request.id, hello)))
        .await
        .is_err()
    {
        return None;
    }
    Some(session)
}

/// The next text frame; `Some(Err(close))` for a frame the protocol refuses.
async fn next_text(
    stream: &mut futures_util::stream::SplitStream<WebSocket>,
) -> Option<Result<String, Message>> {
    loop {
        match stream.next().await? {
            Ok(Message::Text(text)) => return Some(Ok(text.to_string())),
            Ok(Message::Binary(_)) => return Some(Err(close(1008, "invalid-frame"))),
            Ok(Message::Close(_)) | Err(_) => return None,
            // Pings are answered by the WebSocket layer; pongs need nothing.
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
        }
    }
}

fn hello_ok(gateway: &Gateway, session: &Session, device_token: Option<String>) -> Value {
    let presence = methods::presence(gateway);
    let (presence_version, snapshot_health) = {
        let state = gateway.state.read().expect("state lock");
        (state.presence.state_version, methods_now_ms())
    };
    let mut auth = json!({
        "method": gateway.auth.method(),
        "role": session.role,
        "scopes": session.scopes,
    });
    if let Some(token) = device_token {
        auth["deviceToken"] = json!(token);
    }
    json!({
        "type": "hello-ok",
        "protocol": PROTOCOL_VERSION,
        "server": {
            "version": env!("CARGO_PKG_VERSION"),
            "bootId": gateway.boot_id,
            "connId": session.conn_id,
        },
        "features": {
            "methods": methods::IMPLEMENTED,
            "events": methods::EVENTS,
            "capabilities": [],
        },
        "snapshot": {
            "presence": presence,
            "health": methods::health(gateway),
            "stateVersion": gateway.state_version(presence_version),
            "uptimeMs": gateway.started.elapsed().as_millis() as u64,
            "sessionDefaults": {
                "defaultAgentId": "main",
                "mainKey": "main",
                "mainSessionKey": "agent:main:main",
                "scope": "per-sender",
                "ownership": "sole",
                "selectionRequired": false,
                "modelConfigured": false,
            },
            "authMode": gateway.auth.method(),
            "ts": snapshot_health,
        },
        "auth": auth,
        "policy": {
            "maxPayload": policy::MAX_PAYLOAD_BYTES,
            "maxBufferedBytes": policy::MAX_BUFFERED_BYTES,
            "tickIntervalMs": policy::TICK_INTERVAL.as_millis() as u64,
        },
    })
}

/// Requests and pushed events until the client leaves or the gateway stops.
async fn run(
    stream: &mut futures_util::stream::SplitStream<WebSocket>,
    outbound: &mpsc::Sender<Message>,
    session: &Session,
    gateway: &Arc<Gateway>,
) {
    let mut pushes = gateway.pushes.subscribe();
    let in_flight = Arc::new(Semaphore::new(REQUESTS_IN_FLIGHT_MAX));
    let mut event_seq = 0u64;
    let mut unauthorized = 0u32;
    loop {
        tokio::select! {
            incoming = next_text(stream) => {
                let text = match incoming {
                    None => return,
                    Some(Err(message)) => {
                        let _ = outbound.send(message).await;
                        return;
                    }
                    Some(Ok(text)) => text,
                };
                if text.len() > policy::MAX_PAYLOAD_BYTES {
                    let _ = outbound.send(close(1009, "payload too large")).await;
                    return;
                }
                let request = match frames::parse_request(&text) {
                    Ok(request) => request,
                    Err(error) => {
                        let id = error.id.unwrap_or_default();
                        if !enqueue(outbound, frames::response_error(&id, &error.error)) {
                            return;
                        }
                        continue;
                    }
                };
                // A name nobody handles is "unknown method" whatever the
                // caller's scopes (OpenClaw answers it before any scope check).
                let authorized = if scopes::is_known(&request.method) {
                    scopes::authorize(
                        &request.method,
                        request.params.as_ref(),
                        &session.role,
                        &session.scopes,
                    )
                } else {
                    Ok(())
                };
                if let Err(denied) = authorized {
                    unauthorized += 1;
                    if !enqueue(outbound, frames::response_error(&request.id, &denied_error(denied))) {
                        return;
                    }
                    if unauthorized >= UNAUTHORIZED_CALLS_MAX {
                        let _ = outbound.send(close(1008, "repeated unauthorized calls")).await;
                        return;
                    }
                    continue;
                }
                let Ok(permit) = in_flight.clone().acquire_owned().await else { return };
                let gateway = gateway.clone();
                let outbound = outbound.clone();
                let conn_id = session.conn_id.clone();
                let conn_for_barrier = conn_id.clone();
                let device_id = session.device_id.clone();
                let scopes = session.scopes.clone();
                let tool_events = session.tool_events;
                tokio::spawn(async move {
                    let id = request.id.clone();
                    let (frame, follow_up) = super::request::answer(&gateway, conn_id, device_id, scopes, tool_events, request).await;
                    enqueue(&outbound, frame);
                    // A long run's second answer does not hold a request slot.
                    drop(permit);
                    if let Some(follow_up) = follow_up {
                        let payload = follow_up.await;
                        // Events pushed before the outcome reach this socket
                        // before the answer does.
                        let (reached, barrier) = tokio::sync::oneshot::channel();
                        let _ = gateway.pushes.send(Push::Barrier {
                            conn_id: conn_for_barrier,
                            reached: Arc::new(std::sync::Mutex::new(Some(reached))),
                        });
                        let _ = tokio::time::timeout(BARRIER_WAIT, barrier).await;
                        enqueue(&outbound, frames::response_ok(&id, payload));
                    }
                });
            }
            push = pushes.recv() => {
                match push {
                    Ok(Push::Event { name, payload, state_version }) => {
                        // Event scope guards, fail-closed (OpenClaw's
                        // server-broadcast-scopes).
                        if !scopes::may_receive_event(name, &session.role, &session.scopes) {
                            continue;
                        }
                        // A client falling behind loses the events that a
                        // later one supersedes first (OpenClaw's dropIfSlow),
                        // and is closed only if even the others do not fit.
                        if drop_if_slow(name) && outbound.capacity() < OUTBOUND_FRAMES_MAX / 4 {
                            continue;
                        }
                        event_seq += 1;
                        if !enqueue(outbound, frames::event_serialized(name, &payload, event_seq, state_version.as_deref())) {
                            return;
                        }
                    }
                    Ok(Push::Barrier { conn_id, reached }) => {
                        if conn_id == session.conn_id
                            && let Some(reached) = reached.lock().expect("barrier lock").take()
                        {
                            let _ = reached.send(());
                        }
                    }
                    Ok(Push::To { conn_id, name, payload }) => {
                        if conn_id == session.conn_id {
                            event_seq += 1;
                            if !enqueue(outbound, frames::event_serialized(name, &payload, event_seq, None)) {
                                return;
                            }
                        }
                    }
                    Ok(Push::CloseNode { device_id }) => {
                        if session.role == "node" && session.device_id.as_deref() == Some(device_id.as_str()) {
                            let _ = outbound.send(close(1008, "device-pair-removed")).await;
                            return;
                        }
                    }
                    Ok(Push::Shutdown) => {
                        event_seq += 1;
                        let frame = frames::event(
                            "shutdown",
                            json!({"reason": "gateway stopping"}),
                            Some(event_seq),
                            None,
                        );
                        enqueue(outbound, frame);
                        let _ = outbound.send(close(1012, "service restart")).await;
                        return;
                    }
                    // Pushes are global and few; a lag means this socket is
                    // hopelessly behind, like a full outbound queue.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let _ = outbound.send(close(1008, "slow consumer")).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        }
    }
}

/// Events a slow client may miss: each is superseded by the next of its
/// kind (presence and health carry whole snapshots, tick is a heartbeat,
/// pairing events are followed by a list a client can re-read).
fn drop_if_slow(event: &str) -> bool {
    matches!(event, "presence" | "health" | "tick" | "cron")
        || event.starts_with("device.pair.")
        || event.starts_with("node.pair.")
}

/// Queues a frame; `false` (and the socket closes) when the client is too
/// far behind to take it.
fn enqueue(outbound: &mpsc::Sender<Message>, frame: String) -> bool {
    outbound.try_send(Message::text(frame)).is_ok()
}

fn denied_error(denied: Denied) -> ErrorShape {
    match denied {
        Denied::MissingScope(scope) => {
            ErrorShape::new(codes::FORBIDDEN, format!("missing scope: {scope}")).with_details(
                json!({"code": "MISSING_SCOPE", "missingScope": scope, "requiredScopes": [scope]}),
            )
        }
        Denied::NodeRoleRequired => ErrorShape::new(codes::FORBIDDEN, "node role required")
            .with_details(json!({"code": "NODE_ROLE_REQUIRED"})),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_superseded_events_are_dropped_for_slow_clients() {
        for name in ["presence", "health", "tick", "device.pair.requested"] {
            assert!(drop_if_slow(name), "{name}");
        }
        // A chat delta, a run's end or a decision must arrive or the socket
        // must close: never a silent gap.
        for name in [
            "chat",
            "agent",
            "exec.approval.requested",
            "config.changed",
            "shutdown",
        ] {
            assert!(!drop_if_slow(name), "{name}");
        }
    }
}
