//! OpenClaw's WebSocket protocol against the real gateway, over a real
//! WebSocket client on loopback: handshake, auth failures with OpenClaw's
//! codes and close codes, scopes, methods, shutdown, and the log's record.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::gateway::{Running, start_with, stop};
use crate::support::{clawback, stdout};

pub(crate) const TOKEN: &str = "test-token-8f2c";

pub(crate) type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn gateway(dir: &std::path::Path) -> (Running, String) {
    let (running, address, _) = start_with(dir, &["--token", TOKEN]);
    (running, address)
}

pub(crate) async fn open(address: &str) -> (Socket, Value) {
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{address}/"))
        .await
        .expect("websocket connects");
    let challenge = next_json(&mut socket).await;
    (socket, challenge)
}

pub(crate) async fn next_json(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a frame within 10 s")
            .expect("socket open")
            .expect("frame");
        match message {
            Message::Text(text) => return serde_json::from_str(&text).expect("JSON frame"),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// The close frame that ends the socket (code, reason).
async fn next_close(socket: &mut Socket) -> (CloseCode, String) {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a frame within 10 s");
        match message {
            Some(Ok(Message::Close(Some(frame)))) => {
                return (frame.code, frame.reason.to_string());
            }
            Some(Ok(Message::Close(None))) | None => panic!("closed without a close frame"),
            Some(Ok(_)) => {}
            Some(Err(error)) => panic!("socket error before close: {error}"),
        }
    }
}

pub(crate) async fn send(socket: &mut Socket, frame: Value) {
    socket
        .send(Message::text(frame.to_string()))
        .await
        .expect("send");
}

pub(crate) fn connect_frame(token: Option<&str>, scopes: &[&str]) -> Value {
    let mut params = json!({
        "minProtocol": 4, "maxProtocol": 4,
        "client": {"id": "cli", "version": "2026.9.6", "platform": "linux", "mode": "cli",
                   "instanceId": "it-1"},
        "role": "operator", "scopes": scopes,
    });
    if let Some(token) = token {
        params["auth"] = json!({"token": token});
    }
    json!({"type": "req", "id": "c1", "method": "connect", "params": params})
}

pub(crate) async fn connected(address: &str, scopes: &[&str]) -> (Socket, Value) {
    let (mut socket, _) = open(address).await;
    send(&mut socket, connect_frame(Some(TOKEN), scopes)).await;
    let hello = next_json(&mut socket).await;
    assert_eq!(hello["ok"], true, "{hello}");
    (socket, hello)
}

pub(crate) async fn call(
    socket: &mut Socket,
    id: &str,
    method: &str,
    params: Option<Value>,
) -> Value {
    let mut frame = json!({"type": "req", "id": id, "method": method});
    if let Some(params) = params {
        frame["params"] = params;
    }
    send(socket, frame).await;
    loop {
        let frame = next_json(socket).await;
        if frame["type"] == "res" && frame["id"] == id {
            return frame;
        }
    }
}

#[test]
fn the_handshake_gives_hello_ok_and_methods_answer_with_openclaw_shapes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (running, address) = gateway(dir.path());
    runtime().block_on(async {
        let (mut socket, challenge) = open(&address).await;
        assert_eq!(challenge["type"], "event");
        assert_eq!(challenge["event"], "connect.challenge");
        assert!(
            challenge["payload"]["nonce"]
                .as_str()
                .is_some_and(|n| n.len() == 36)
        );
        assert!(challenge.get("seq").is_none(), "the challenge has no seq");

        send(&mut socket, connect_frame(Some(TOKEN), &["operator.read"])).await;
        let hello = next_json(&mut socket).await;
        assert_eq!(
            (hello["type"].as_str(), hello["id"].as_str()),
            (Some("res"), Some("c1"))
        );
        let payload = &hello["payload"];
        assert_eq!(payload["type"], "hello-ok");
        assert_eq!(payload["protocol"], 4);
        assert_eq!(
            payload["auth"],
            json!({"method": "token", "role": "operator", "scopes": ["operator.read"]})
        );
        assert_eq!(payload["policy"]["maxPayload"], 26_214_400);
        assert_eq!(payload["policy"]["tickIntervalMs"], 30_000);
        let advertised: Vec<&str> = payload["features"]["methods"]
            .as_array()
            .expect("methods")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for method in [
            "health",
            "status",
            "system-presence",
            "config.get",
            "models.list",
        ] {
            assert!(
                advertised.contains(&method),
                "{method} advertised: {advertised:?}"
            );
        }
        assert!(
            !advertised.contains(&"tts.convert"),
            "only what is implemented is advertised: {advertised:?}"
        );
        assert!(payload["server"]["connId"].as_str().is_some());
        let presence = payload["snapshot"]["presence"]
            .as_array()
            .expect("presence");
        assert!(
            presence
                .iter()
                .any(|entry| entry["mode"] == "gateway" && entry["reason"] == "self"),
            "{presence:?}"
        );
        assert!(
            presence.iter().any(|entry| entry["instanceId"] == "it-1"),
            "{presence:?}"
        );

        let health = call(&mut socket, "2", "health", None).await;
        assert_eq!(health["ok"], true, "{health}");
        assert_eq!(health["payload"]["ok"], true);
        assert_eq!(health["payload"]["defaultAgentId"], "main");

        let presence = call(&mut socket, "3", "system-presence", Some(json!({}))).await;
        assert!(presence["payload"].is_array(), "{presence}");

        let unknown = call(&mut socket, "4", "foo.bar", None).await;
        assert_eq!(unknown["ok"], false);
        assert_eq!(
            unknown["error"],
            json!({"code": "INVALID_REQUEST", "message": "unknown method: foo.bar"})
        );

        let forbidden = call(&mut socket, "5", "chat.send", Some(json!({}))).await;
        assert_eq!(
            forbidden["error"],
            json!({"code": "FORBIDDEN", "message": "missing scope: operator.write",
                   "details": {"code": "MISSING_SCOPE", "missingScope": "operator.write",
                               "requiredScopes": ["operator.write"]}})
        );

        let bad_params = call(&mut socket, "6", "health", Some(json!({"verbose": true}))).await;
        assert_eq!(bad_params["error"]["code"], "INVALID_REQUEST");
    });
    stop(running);
}

#[test]
fn presence_changes_are_pushed_with_a_growing_state_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (running, address) = gateway(dir.path());
    runtime().block_on(async {
        let (mut watcher, hello) = connected(&address, &["operator.read"]).await;
        let start = hello["payload"]["snapshot"]["stateVersion"]["presence"]
            .as_u64()
            .expect("stateVersion.presence");
        let (mut other, _) = open(&address).await;
        let mut frame = connect_frame(Some(TOKEN), &["operator.read"]);
        frame["params"]["client"]["instanceId"] = json!("it-2");
        send(&mut other, frame).await;
        assert_eq!(next_json(&mut other).await["ok"], true);
        // The watcher's own connect may be announced first; clients drop
        // snapshots whose version they already have.
        let presence = loop {
            let frame = next_json(&mut watcher).await;
            let has_other = frame["payload"]["presence"]
                .as_array()
                .is_some_and(|entries| entries.iter().any(|entry| entry["instanceId"] == "it-2"));
            if frame["event"] == "presence" && has_other {
                break frame;
            }
        };
        let version = presence["stateVersion"]["presence"]
            .as_u64()
            .expect("version");
        assert!(version > start, "{presence}");
        let entries = presence["payload"]["presence"].as_array().expect("entries");
        assert!(
            entries.iter().any(|entry| entry["instanceId"] == "it-2"),
            "{presence}"
        );
        drop(other);
        let gone = loop {
            let frame = next_json(&mut watcher).await;
            if frame["event"] == "presence"
                && !frame["payload"]["presence"]
                    .as_array()
                    .expect("entries")
                    .iter()
                    .any(|entry| entry["instanceId"] == "it-2")
            {
                break frame;
            }
        };
        assert!(gone["stateVersion"]["presence"].as_u64().expect("version") > version);
        assert!(gone["seq"].as_u64().expect("seq") > presence["seq"].as_u64().expect("seq"));
    });
    stop(running);
}

#[test]
fn system_events_agents_and_heartbeats_answer_as_openclaw_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (running, address) = gateway(dir.path());
    runtime().block_on(async {
        // system-event is an admin method in OpenClaw's table.
        let (mut socket, _) = connected(&address, &["operator.admin"]).await;
        let sent = call(
            &mut socket,
            "1",
            "system-event",
            Some(json!({"text": "backup finished", "instanceId": "cron-box"})),
        )
        .await;
        assert_eq!(sent["payload"], json!({"ok": true}), "{sent}");
        let presence = call(&mut socket, "2", "system-presence", None).await;
        let entry = presence["payload"]
            .as_array()
            .expect("entries")
            .iter()
            .find(|entry| entry["instanceId"] == "cron-box")
            .cloned()
            .expect("the event is in presence");
        assert_eq!(entry["text"], "backup finished");
        assert_eq!(entry["reason"], "system-event");
        let wake = call(
            &mut socket,
            "3",
            "system-event",
            Some(json!({"text": "x", "wake": true})),
        )
        .await;
        // Accepted: the woken turn runs (and, with no model configured
        // here, fails with the message that says how to configure one).
        assert_eq!(wake["payload"], json!({"ok": true}), "{wake}");
        let empty = call(&mut socket, "4", "system-event", Some(json!({"text": " "}))).await;
        assert_eq!(empty["error"]["code"], "INVALID_REQUEST");

        let agents = call(&mut socket, "5", "agents.list", None).await;
        assert_eq!(
            agents["payload"],
            json!({"defaultId": "main", "mainKey": "main", "scope": "per-sender",
                   "agents": [{"id": "main"}]})
        );
        let identity = call(
            &mut socket,
            "6",
            "agent.identity.get",
            Some(json!({"sessionKey": "agent:main:main"})),
        )
        .await;
        assert_eq!(
            identity["payload"],
            json!({"agentId": "main", "name": "main", "nameSource": "default"})
        );
        let unknown = call(
            &mut socket,
            "7",
            "agent.identity.get",
            Some(json!({"agentId": "ops"})),
        )
        .await;
        assert_eq!(unknown["error"]["message"], "unknown agent: ops");
        let wake = call(&mut socket, "w1", "voicewake.get", None).await;
        assert_eq!(wake["payload"], json!({"triggers": ["openclaw", "claude", "computer"]}));
        let set = call(
            &mut socket,
            "w2",
            "voicewake.set",
            Some(json!({"triggers": [" hey claw ", ""]})),
        )
        .await;
        assert_eq!(set["payload"], json!({"triggers": ["hey claw"]}), "{set}");
        let wake = call(&mut socket, "w3", "voicewake.get", None).await;
        assert_eq!(wake["payload"]["triggers"], json!(["hey claw"]));
        let talk = call(&mut socket, "w4", "talk.mode", Some(json!({"enabled": true}))).await;
        assert_eq!(
            talk["error"],
            json!({"code": "UNAVAILABLE", "message": "talk disabled: no connected Talk-capable nodes"})
        );
        let heartbeat = call(&mut socket, "8", "last-heartbeat", None).await;
        assert_eq!(heartbeat["payload"], Value::Null, "{heartbeat}");
        assert_eq!(heartbeat["ok"], true);
    });
    stop(running);
}

#[test]
fn known_methods_not_built_yet_say_so_instead_of_pretending() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (running, address) = gateway(dir.path());
    runtime().block_on(async {
        let (mut socket, _) = connected(&address, &["operator.admin"]).await;
        let response = call(&mut socket, "1", "tts.status", Some(json!({}))).await;
        assert_eq!(response["ok"], false);
        assert_eq!(response["error"]["code"], "UNAVAILABLE");
        assert_eq!(
            response["error"]["message"],
            "tts.status is not available in clawback yet: it needs a text-to-speech provider, which is not built yet"
        );
        assert_eq!(response["error"]["retryable"], false);
    });
    stop(running);
}

#[test]
fn auth_and_handshake_failures_use_openclaws_errors_and_close_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (running, address) = gateway(dir.path());
    runtime().block_on(async {
        // Wrong token.
        let (mut socket, _) = open(&address).await;
        send(&mut socket, connect_frame(Some("wrong"), &["operator.read"])).await;
        let response = next_json(&mut socket).await;
        assert_eq!(response["ok"], false);
        let message = "unauthorized: gateway token mismatch (use this gateway's gateway.auth.token or pair the device)";
        assert_eq!(response["error"]["message"], message);
        assert_eq!(response["error"]["details"]["code"], "AUTH_TOKEN_MISMATCH");
        assert_eq!(
            response["error"]["details"]["recommendedNextStep"],
            "update_auth_credentials"
        );
        let (code, reason) = next_close(&mut socket).await;
        assert_eq!(u16::from(code), 1008);
        assert_eq!(reason, message);

        // No credentials at all.
        let (mut socket, _) = open(&address).await;
        send(&mut socket, connect_frame(None, &[])).await;
        let response = next_json(&mut socket).await;
        assert_eq!(response["error"]["code"], "NOT_PAIRED");
        assert_eq!(response["error"]["details"]["code"], "DEVICE_IDENTITY_REQUIRED");
        assert_eq!(u16::from(next_close(&mut socket).await.0), 1008);

        // A protocol range without 4.
        let (mut socket, _) = open(&address).await;
        let mut frame = connect_frame(Some(TOKEN), &[]);
        frame["params"]["minProtocol"] = json!(2);
        frame["params"]["maxProtocol"] = json!(3);
        send(&mut socket, frame).await;
        let response = next_json(&mut socket).await;
        assert_eq!(response["error"]["details"]["code"], "PROTOCOL_MISMATCH");
        assert_eq!(next_close(&mut socket).await, (CloseCode::Protocol, "protocol mismatch".to_owned()));

        // First request not connect.
        let (mut socket, _) = open(&address).await;
        send(&mut socket, json!({"type": "req", "id": "1", "method": "health"})).await;
        let response = next_json(&mut socket).await;
        assert_eq!(
            response["error"]["message"],
            "invalid handshake: first request must be connect"
        );
        assert_eq!(u16::from(next_close(&mut socket).await.0), 1008);

        // Oversized frame before authentication.
        let (mut socket, _) = open(&address).await;
        let mut frame = connect_frame(Some(TOKEN), &[]);
        frame["params"]["userAgent"] = json!("x".repeat(70 * 1024));
        send(&mut socket, frame).await;
        assert_eq!(
            next_close(&mut socket).await,
            (CloseCode::Size, "preauth payload too large".to_owned())
        );

        // A schema violation names the path.
        let (mut socket, _) = open(&address).await;
        let mut frame = connect_frame(Some(TOKEN), &[]);
        frame["params"]["client"]["id"] = json!("not-a-client");
        send(&mut socket, frame).await;
        let response = next_json(&mut socket).await;
        assert_eq!(
            response["error"]["message"],
            "invalid connect params: at /client/id: must be equal to one of the allowed values"
        );
    });
    stop(running);
}

#[test]
fn sigterm_sends_shutdown_then_closes_1012_and_every_call_is_on_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (running, address) = gateway(dir.path());
    let runtime = runtime();
    let mut socket = runtime.block_on(async {
        let (mut socket, _) = connected(&address, &["operator.read"]).await;
        let response = call(&mut socket, "h1", "health", Some(json!({"token": "leak?"}))).await;
        assert_eq!(response["ok"], false, "health takes no params");
        socket
    });
    let stopping = std::thread::spawn(move || stop(running));
    runtime.block_on(async {
        let shutdown = next_json(&mut socket).await;
        assert_eq!(shutdown["event"], "shutdown", "{shutdown}");
        assert_eq!(shutdown["payload"]["reason"], "gateway stopping");
        assert!(shutdown["seq"].as_u64().is_some());
        assert_eq!(
            next_close(&mut socket).await,
            (CloseCode::Restart, "service restart".to_owned())
        );
    });
    stopping.join().expect("gateway stopped cleanly");

    let tail = stdout(&clawback(
        dir.path(),
        &["log", "tail", "-n", "50", "--json"],
    ));
    let events: Vec<Value> = tail
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON line"))
        .collect();
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    for kind in [
        "connection.opened",
        "rpc.received",
        "rpc.answered",
        "connection.closed",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    assert!(
        !tail.contains("leak?"),
        "params are redacted before they are recorded"
    );
    assert!(!tail.contains(TOKEN), "the token never reaches the log");
}

mod device_identity {
    //! A signed device (as the TUI sends) is verified against the socket's
    //! challenge, paired automatically on loopback, and refused if tampered.

    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use ed25519_dalek::{Signer, SigningKey};
    use serde_json::{Value, json};
    use sha2::{Digest, Sha256};

    use super::*;

    fn device_connect(key: &SigningKey, challenge: &Value, tamper: bool) -> Value {
        let raw = key.verifying_key().to_bytes();
        let id: String = Sha256::digest(raw)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let nonce = challenge["payload"]["nonce"]
            .as_str()
            .expect("nonce")
            .to_owned();
        let signed_at = challenge["payload"]["ts"].as_i64().expect("ts");
        let scopes = "operator.admin,operator.read";
        let payload = format!(
            "v3|{id}|openclaw-tui|ui|operator|{scopes}|{signed_at}|{TOKEN}|{nonce}|linux|linux"
        );
        let signed = if tamper {
            format!("{payload}x")
        } else {
            payload
        };
        let signature = URL_SAFE_NO_PAD.encode(key.sign(signed.as_bytes()).to_bytes());
        json!({"type": "req", "id": "c1", "method": "connect", "params": {
            "minProtocol": 4, "maxProtocol": 4,
            "client": {"id": "openclaw-tui", "version": "2026.9.6", "platform": "linux",
                       "mode": "ui", "deviceFamily": "Linux", "instanceId": "tui-1"},
            "caps": ["tool-events"], "role": "operator",
            "scopes": ["operator.admin", "operator.read"],
            "auth": {"token": TOKEN},
            "device": {"id": id, "publicKey": URL_SAFE_NO_PAD.encode(raw),
                       "signature": signature, "signedAt": signed_at, "nonce": nonce},
        }})
    }

    #[test]
    fn a_signed_device_is_verified_paired_on_loopback_and_recorded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (running, address) = gateway(dir.path());
        let key = SigningKey::from_bytes(&[42; 32]);
        runtime().block_on(async {
            for _ in 0..2 {
                let (mut socket, challenge) = open(&address).await;
                send(&mut socket, device_connect(&key, &challenge, false)).await;
                let hello = next_json(&mut socket).await;
                assert_eq!(hello["ok"], true, "{hello}");
                let health = call(&mut socket, "h", "health", None).await;
                assert_eq!(health["ok"], true);
                let devices = call(&mut socket, "d", "device.pair.list", None).await;
                let paired = devices["payload"]["paired"].as_array().expect("paired");
                assert_eq!(paired.len(), 1, "{devices}");
                assert_eq!(paired[0]["approvedBy"], "auto-loopback");
                assert_eq!(devices["payload"]["pending"], json!([]));
            }
            let (mut socket, challenge) = open(&address).await;
            send(&mut socket, device_connect(&key, &challenge, true)).await;
            let refused = next_json(&mut socket).await;
            assert_eq!(
                refused["error"]["details"]["code"], "DEVICE_AUTH_SIGNATURE_INVALID",
                "{refused}"
            );
            assert_eq!(u16::from(next_close(&mut socket).await.0), 1008);
        });
        stop(running);
        let tail = stdout(&clawback(
            dir.path(),
            &["log", "tail", "-n", "100", "--json"],
        ));
        let paired = tail
            .lines()
            .filter(|line| line.contains("\"device.paired\""))
            .count();
        assert_eq!(paired, 1, "paired once, on the first connect: {tail}");
        let device_id: String =
            Sha256::digest(SigningKey::from_bytes(&[42; 32]).verifying_key().to_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
        assert!(
            tail.lines()
                .any(|line| line.contains("\"rpc.answered\"") && line.contains(&device_id)),
            "requests are attributed to the verified device"
        );
    }
}
