//! Device pairing from a non-loopback address, and device tokens, over the
//! real protocol: a remote device's connect becomes a pairing request that
//! an operator approves or rejects; an approved device receives a device
//! token, connects with it alone, and loses it on rotation or revocation.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::gateway::{start_bound, stop};
use crate::protocol::{TOKEN, call, connected, next_json, open, runtime, send};
use crate::support::{clawback, stdout};

/// This machine's address on its outward interface, if it has one. No
/// packet is sent: connecting a UDP socket only picks the route.
fn outward_ip() -> Option<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

fn device_id(key: &SigningKey) -> String {
    Sha256::digest(key.verifying_key().to_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A TUI-like signed connect; `auth` holds `token` and/or `deviceToken`.
fn device_connect(key: &SigningKey, challenge: &Value, auth: Value, scopes: &[&str]) -> Value {
    let id = device_id(key);
    let nonce = challenge["payload"]["nonce"].as_str().expect("nonce");
    let signed_at = challenge["payload"]["ts"].as_i64().expect("ts");
    let token = auth["token"]
        .as_str()
        .or(auth["deviceToken"].as_str())
        .unwrap_or("");
    let payload = format!(
        "v3|{id}|openclaw-tui|ui|operator|{}|{signed_at}|{token}|{nonce}|linux|linux",
        scopes.join(",")
    );
    let signature = URL_SAFE_NO_PAD.encode(key.sign(payload.as_bytes()).to_bytes());
    json!({"type": "req", "id": "c1", "method": "connect", "params": {
        "minProtocol": 4, "maxProtocol": 4,
        "client": {"id": "openclaw-tui", "version": "2026.9.6", "platform": "linux",
                   "mode": "ui", "deviceFamily": "Linux"},
        "role": "operator", "scopes": scopes, "auth": auth,
        "device": {"id": id, "publicKey": URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes()),
                   "signature": signature, "signedAt": signed_at, "nonce": nonce},
    }})
}

async fn device_hello(address: &str, key: &SigningKey, auth: Value, scopes: &[&str]) -> Value {
    let (mut socket, challenge) = open(address).await;
    send(&mut socket, device_connect(key, &challenge, auth, scopes)).await;
    next_json(&mut socket).await
}

async fn next_event(socket: &mut crate::protocol::Socket, name: &str) -> Value {
    loop {
        let frame = next_json(socket).await;
        if frame["type"] == "event" && frame["event"] == name {
            return frame["payload"].clone();
        }
    }
}

#[test]
fn remote_devices_pair_by_approval_and_use_device_tokens() {
    let Some(ip) = outward_ip() else {
        eprintln!("skipped: this machine has no non-loopback address to connect from");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (running, address, _) = start_bound(dir.path(), "0.0.0.0:0", &["--token", TOKEN]);
    let port = address.rsplit(':').next().expect("port");
    let local = format!("127.0.0.1:{port}");
    let remote = format!("{ip}:{port}");
    let alice = SigningKey::from_bytes(&[7; 32]);
    let bob = SigningKey::from_bytes(&[8; 32]);
    let scopes = ["operator.read", "operator.write"];
    runtime().block_on(async {
        let (mut admin, _) = connected(&local, &["operator.admin"]).await;
        // Events are read on their own socket: `call` skips frames that are
        // not its answer, and an event may arrive before the answer.
        let (mut watcher, _) = connected(&local, &["operator.pairing"]).await;

        let refused = device_hello(&remote, &alice, json!({"token": TOKEN}), &scopes).await;
        assert_eq!(refused["error"]["code"], "NOT_PAIRED", "{refused}");
        let details = &refused["error"]["details"];
        assert_eq!(details["code"], "PAIRING_REQUIRED");
        assert_eq!(details["deviceId"], device_id(&alice));
        let request_id = details["requestId"].as_str().expect("requestId").to_owned();
        let requested = next_event(&mut watcher, "device.pair.requested").await;
        assert_eq!(requested["requestId"], request_id.as_str());
        assert_eq!(requested["remoteIp"], ip.to_string());

        // Asking again does not queue a second request.
        let again = device_hello(&remote, &alice, json!({"token": TOKEN}), &scopes).await;
        assert_eq!(again["error"]["details"]["requestId"], request_id.as_str());
        let list = call(&mut admin, "1", "device.pair.list", None).await;
        assert_eq!(
            list["payload"]["pending"].as_array().map(Vec::len),
            Some(1),
            "{list}"
        );

        let unknown = call(
            &mut admin,
            "2",
            "device.pair.approve",
            Some(json!({"requestId": "nope"})),
        )
        .await;
        assert_eq!(unknown["error"]["message"], "unknown requestId");
        let approved = call(
            &mut admin,
            "3",
            "device.pair.approve",
            Some(json!({"requestId": request_id})),
        )
        .await;
        assert_eq!(
            approved["payload"]["device"]["deviceId"],
            device_id(&alice),
            "{approved}"
        );
        let resolved = next_event(&mut watcher, "device.pair.resolved").await;
        assert_eq!(resolved["decision"], "approved");

        // Paired: the connect succeeds and carries a device token.
        let hello = device_hello(&remote, &alice, json!({"token": TOKEN}), &scopes).await;
        assert_eq!(hello["ok"], true, "{hello}");
        let token = hello["payload"]["auth"]["deviceToken"]
            .as_str()
            .expect("a device token is issued")
            .to_owned();
        // The token alone is enough now, for the scopes it was issued with.
        let by_token = device_hello(&remote, &alice, json!({"deviceToken": token}), &scopes).await;
        assert_eq!(by_token["ok"], true, "{by_token}");
        assert!(by_token["payload"]["auth"].get("deviceToken").is_none());
        let wider = device_hello(
            &remote,
            &alice,
            json!({"deviceToken": token}),
            &["operator.admin"],
        )
        .await;
        assert_eq!(
            wider["error"]["details"]["code"], "AUTH_SCOPE_MISMATCH",
            "{wider}"
        );
        let wrong = device_hello(&remote, &alice, json!({"deviceToken": "x"}), &scopes).await;
        assert_eq!(
            wrong["error"]["details"]["code"], "AUTH_DEVICE_TOKEN_MISMATCH",
            "{wrong}"
        );
        // Another device cannot use it.
        let stolen = device_hello(&remote, &bob, json!({"deviceToken": token}), &scopes).await;
        assert_eq!(
            stolen["error"]["details"]["code"],
            "AUTH_DEVICE_TOKEN_MISMATCH"
        );

        let rotated = call(
            &mut admin,
            "4",
            "device.token.rotate",
            Some(json!({"deviceId": device_id(&alice), "role": "operator"})),
        )
        .await;
        let new_token = rotated["payload"]["token"]
            .as_str()
            .expect("token")
            .to_owned();
        assert_ne!(new_token, token);
        let old = device_hello(&remote, &alice, json!({"deviceToken": token}), &scopes).await;
        assert_eq!(
            old["error"]["details"]["code"],
            "AUTH_DEVICE_TOKEN_MISMATCH"
        );
        let new = device_hello(&remote, &alice, json!({"deviceToken": new_token}), &scopes).await;
        assert_eq!(new["ok"], true, "{new}");
        let widen = call(
            &mut admin,
            "5",
            "device.token.rotate",
            Some(json!({"deviceId": device_id(&alice), "role": "operator",
                        "scopes": ["operator.admin"]})),
        )
        .await;
        assert_eq!(widen["error"]["code"], "INVALID_REQUEST", "{widen}");

        let revoked = call(
            &mut admin,
            "6",
            "device.token.revoke",
            Some(json!({"deviceId": device_id(&alice), "role": "operator"})),
        )
        .await;
        assert_eq!(revoked["ok"], true, "{revoked}");
        let gone = device_hello(&remote, &alice, json!({"deviceToken": new_token}), &scopes).await;
        assert_eq!(
            gone["error"]["details"]["code"],
            "AUTH_DEVICE_TOKEN_MISMATCH"
        );

        // Rejection, then removal of the paired device.
        let bob_refused = device_hello(&remote, &bob, json!({"token": TOKEN}), &scopes).await;
        let bob_request = bob_refused["error"]["details"]["requestId"].clone();
        let rejected = call(
            &mut admin,
            "7",
            "device.pair.reject",
            Some(json!({"requestId": bob_request})),
        )
        .await;
        assert_eq!(
            rejected["payload"]["deviceId"],
            device_id(&bob),
            "{rejected}"
        );
        let removed = call(
            &mut admin,
            "8",
            "device.pair.remove",
            Some(json!({"deviceId": device_id(&alice)})),
        )
        .await;
        assert_eq!(removed["ok"], true, "{removed}");
        let after = device_hello(&remote, &alice, json!({"token": TOKEN}), &scopes).await;
        assert_eq!(
            after["error"]["message"], "pairing required: this device was revoked",
            "{after}"
        );
    });
    stop(running);

    let tail = stdout(&clawback(
        dir.path(),
        &["log", "tail", "-n", "400", "--json"],
    ));
    let kinds: Vec<String> = tail
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|record| record["kind"].as_str().map(str::to_owned))
        .filter(|kind| kind.starts_with("device."))
        .collect();
    assert_eq!(
        kinds,
        [
            "device.pair.requested",
            "device.pair.resolved",
            "device.paired",
            "device.token.issued",
            "device.token.issued",
            "device.token.revoked",
            "device.pair.requested",
            "device.pair.resolved",
            "device.revoked",
        ],
        "{tail}"
    );
    assert!(
        !tail.contains(TOKEN),
        "the shared token never reaches the log"
    );
    let audit = clawback(dir.path(), &["audit", "verify"]);
    assert!(audit.status.success(), "{}", stdout(&audit));
}
