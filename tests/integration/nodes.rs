//! Nodes over the real protocol: a node client (Ed25519 device identity,
//! `role: "node"`) connects, its command surface is approved, an operator
//! invokes a command, the node answers through `node.invoke.result`, and
//! the operator gets the node's payload; an unanswered invoke times out;
//! a remote node pairs its device first, then its surface.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::gateway::{start_bound, stop};
use crate::protocol::{Socket, TOKEN, call, connected, next_json, open, runtime, send};
use crate::support::{clawback, stdout};

fn node_id(key: &SigningKey) -> String {
    Sha256::digest(key.verifying_key().to_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A node-host-like signed connect with the shared secret.
fn node_connect(key: &SigningKey, challenge: &Value, commands: &[&str]) -> Value {
    let id = node_id(key);
    let nonce = challenge["payload"]["nonce"].as_str().expect("nonce");
    let signed_at = challenge["payload"]["ts"].as_i64().expect("ts");
    let payload = format!("v3|{id}|node-host|node|node||{signed_at}|{TOKEN}|{nonce}|linux|linux");
    let signature = URL_SAFE_NO_PAD.encode(key.sign(payload.as_bytes()).to_bytes());
    json!({"type": "req", "id": "c1", "method": "connect", "params": {
        "minProtocol": 4, "maxProtocol": 4,
        "client": {"id": "node-host", "version": "2026.9.6", "platform": "linux",
                   "mode": "node", "deviceFamily": "Linux", "displayName": "build box"},
        "role": "node", "scopes": [], "caps": ["system"], "commands": commands,
        "auth": {"token": TOKEN},
        "device": {"id": id, "publicKey": URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes()),
                   "signature": signature, "signedAt": signed_at, "nonce": nonce},
    }})
}

async fn node_hello(address: &str, key: &SigningKey, commands: &[&str]) -> (Socket, Value) {
    let (mut socket, challenge) = open(address).await;
    send(&mut socket, node_connect(key, &challenge, commands)).await;
    let hello = next_json(&mut socket).await;
    (socket, hello)
}

async fn next_event(socket: &mut Socket, name: &str) -> Value {
    loop {
        let frame = next_json(socket).await;
        if frame["type"] == "event" && frame["event"] == name {
            return frame["payload"].clone();
        }
    }
}

fn outward_ip() -> Option<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[test]
fn a_node_is_approved_invoked_answers_and_times_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (running, address, _) = start_bound(dir.path(), "127.0.0.1:0", &["--token", TOKEN]);
    let key = SigningKey::from_bytes(&[21; 32]);
    let id = node_id(&key);
    runtime().block_on(async {
        let (mut admin, _) = connected(&address, &["operator.admin"]).await;
        let (mut watcher, _) = connected(&address, &["operator.pairing"]).await;
        let (mut writer, _) = connected(&address, &["operator.write"]).await;

        // Loopback: the device is paired on the spot, the surface is not.
        let (mut node, hello) = node_hello(&address, &key, &["echo.run", "system.run"]).await;
        assert_eq!(hello["ok"], true, "{hello}");
        assert_eq!(hello["payload"]["auth"]["role"], "node");
        assert_eq!(hello["payload"]["auth"]["scopes"], json!([]));
        let requested = next_event(&mut watcher, "node.pair.requested").await;
        assert_eq!(requested["nodeId"], id.as_str());
        assert_eq!(requested["commands"], json!(["echo.run", "system.run"]));
        assert_eq!(
            requested["requiredApproveScopes"],
            json!(["operator.pairing", "operator.admin"])
        );
        assert_eq!(requested["silent"], true);
        let request_id = requested["requestId"]
            .as_str()
            .expect("requestId")
            .to_owned();

        let list = call(&mut admin, "1", "node.list", Some(json!({}))).await;
        let row = &list["payload"]["nodes"][0];
        assert_eq!(row["nodeId"], id.as_str(), "{list}");
        assert_eq!(row["connected"], true);
        assert_eq!(row["paired"], true);
        assert_eq!(row["approvalState"], "pending-approval");
        assert_eq!(
            row["commands"],
            json!([]),
            "unapproved: no effective commands"
        );

        // Not approved yet: nothing may be invoked.
        let refused = call(
            &mut writer,
            "2",
            "node.invoke",
            Some(json!({
            "nodeId": id, "command": "echo.run", "idempotencyKey": "k0"})),
        )
        .await;
        assert_eq!(refused["error"]["code"], "INVALID_REQUEST", "{refused}");
        assert_eq!(
            refused["error"]["details"]["reason"],
            "command not allowlisted"
        );

        // system.run in the surface: approval needs admin, not just pairing.
        let forbidden = call(
            &mut watcher,
            "3",
            "node.pair.approve",
            Some(json!({"requestId": request_id})),
        )
        .await;
        assert_eq!(forbidden["error"]["code"], "FORBIDDEN", "{forbidden}");
        assert_eq!(
            forbidden["error"]["details"]["missingScope"],
            "operator.admin"
        );
        let approved = call(
            &mut admin,
            "4",
            "node.pair.approve",
            Some(json!({"requestId": request_id})),
        )
        .await;
        assert_eq!(
            approved["payload"]["node"]["nodeId"],
            id.as_str(),
            "{approved}"
        );
        let resolved = next_event(&mut watcher, "node.pair.resolved").await;
        assert_eq!(resolved["decision"], "approved");
        let pairs = call(&mut admin, "5", "node.pair.list", None).await;
        assert_eq!(pairs["payload"]["pending"], json!([]), "{pairs}");
        assert_eq!(
            pairs["payload"]["paired"][0]["commands"],
            json!(["echo.run", "system.run"])
        );

        // Invoke: the node gets the request, answers, the operator hears it.
        let invoker = tokio::spawn({
            let mut writer = writer;
            let id = id.clone();
            async move {
                let answer = call(
                    &mut writer,
                    "6",
                    "node.invoke",
                    Some(json!({
                    "nodeId": id, "command": "echo.run", "params": {"text": "hi"},
                    "idempotencyKey": "k1"})),
                )
                .await;
                (writer, answer)
            }
        });
        let request = next_event(&mut node, "node.invoke.request").await;
        assert_eq!(request["command"], "echo.run");
        assert_eq!(request["paramsJSON"], "{\"text\":\"hi\"}");
        assert_eq!(request["idempotencyKey"], "k1");
        assert_eq!(request["timeoutMs"], 30_000);
        let mismatch = call(
            &mut node,
            "r0",
            "node.invoke.result",
            Some(json!({
            "id": request["id"], "nodeId": "someone-else", "ok": true})),
        )
        .await;
        assert_eq!(mismatch["error"]["message"], "nodeId mismatch");
        let accepted = call(
            &mut node,
            "r1",
            "node.invoke.result",
            Some(json!({
            "id": request["id"], "nodeId": id, "ok": true,
            "payloadJSON": "{\"echo\":\"hi\"}"})),
        )
        .await;
        assert_eq!(accepted["payload"], json!({"ok": true}), "{accepted}");
        let (mut writer, answer) = invoker.await.expect("invoker");
        assert_eq!(answer["ok"], true, "{answer}");
        assert_eq!(answer["payload"]["payload"], json!({"echo": "hi"}));
        assert_eq!(answer["payload"]["payloadJSON"], "{\"echo\":\"hi\"}");
        // A second answer to the same invoke is ignored.
        let late = call(
            &mut node,
            "r2",
            "node.invoke.result",
            Some(json!({
            "id": request["id"], "nodeId": id, "ok": true})),
        )
        .await;
        assert_eq!(late["payload"], json!({"ok": true, "ignored": true}));

        // Unanswered: the operator gets OpenClaw's timeout error.
        let timed_out = call(
            &mut writer,
            "7",
            "node.invoke",
            Some(json!({
            "nodeId": id, "command": "echo.run", "timeoutMs": 300,
            "idempotencyKey": "k2"})),
        )
        .await;
        assert_eq!(timed_out["error"]["code"], "UNAVAILABLE", "{timed_out}");
        assert_eq!(
            timed_out["error"]["message"],
            "TIMEOUT: node invoke timed out"
        );
        assert_eq!(
            timed_out["error"]["details"]["nodeError"]["code"],
            "TIMEOUT"
        );

        // Bad params, undeclared commands and operator-only rules.
        let bad = call(
            &mut writer,
            "8",
            "node.invoke",
            Some(json!({"nodeId": id, "command": "echo.run"})),
        )
        .await;
        assert_eq!(
            bad["error"]["message"],
            "invalid node.invoke params: must have required property 'idempotencyKey'"
        );
        let undeclared = call(
            &mut writer,
            "9",
            "node.invoke",
            Some(json!({
            "nodeId": id, "command": "camera.list", "idempotencyKey": "k3"})),
        )
        .await;
        assert_eq!(
            undeclared["error"]["details"]["reason"],
            "command not declared by node"
        );
        let admin_only = call(
            &mut writer,
            "10",
            "node.invoke",
            Some(json!({
            "nodeId": id, "command": "fs.listDir", "idempotencyKey": "k4"})),
        )
        .await;
        assert_eq!(
            admin_only["error"]["message"],
            "missing scope: operator.admin"
        );
        let absent = call(
            &mut writer,
            "11",
            "node.invoke",
            Some(json!({
            "nodeId": "nobody", "command": "echo.run", "idempotencyKey": "k5"})),
        )
        .await;
        assert_eq!(absent["error"]["message"], "node not connected");
        let event = call(
            &mut node,
            "e1",
            "node.event",
            Some(json!({"event": "exec.finished", "payload": {}})),
        )
        .await;
        assert_eq!(event["payload"]["handled"], false, "{event}");

        // Rename and describe.
        let renamed = call(
            &mut admin,
            "12",
            "node.rename",
            Some(json!({"nodeId": id, "displayName": "ci runner"})),
        )
        .await;
        assert_eq!(renamed["payload"]["displayName"], "ci runner", "{renamed}");
        let described = call(
            &mut admin,
            "13",
            "node.describe",
            Some(json!({"nodeId": id})),
        )
        .await;
        assert_eq!(
            described["payload"]["displayName"], "ci runner",
            "{described}"
        );
        assert_eq!(
            described["payload"]["commands"],
            json!(["echo.run", "system.run"])
        );
        assert!(described["payload"]["ts"].is_i64());

        // Removal closes the node's connection and forgets it.
        let removed = call(
            &mut admin,
            "14",
            "node.pair.remove",
            Some(json!({"nodeId": id})),
        )
        .await;
        assert_eq!(removed["payload"]["nodeId"], id.as_str(), "{removed}");
        // The close is recorded once the node's socket has ended.
        let mut list = Value::Null;
        for attempt in 0..40 {
            list = call(&mut admin, &format!("15-{attempt}"), "node.list", None).await;
            if list["payload"]["nodes"] == json!([]) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(list["payload"]["nodes"], json!([]), "{list}");
        drop(node);
    });
    stop(running);
    let tail = stdout(&clawback(
        dir.path(),
        &["log", "tail", "-n", "400", "--json"],
    ));
    for kind in [
        "node.connected",
        "node.pair.requested",
        "node.pair.resolved",
        "node.invoke.requested",
        "node.invoke.finished",
        "node.renamed",
        "node.unpaired",
    ] {
        assert!(
            tail.contains(&format!("\"{kind}\"")),
            "{kind} recorded: {tail}"
        );
    }
    let audit = clawback(dir.path(), &["audit", "verify"]);
    assert!(audit.status.success(), "{}", stdout(&audit));
}

#[test]
fn a_remote_node_pairs_its_device_then_its_surface() {
    let Some(ip) = outward_ip() else {
        eprintln!("skipped: this machine has no non-loopback address to connect from");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (running, address, _) = start_bound(dir.path(), "0.0.0.0:0", &["--token", TOKEN]);
    let port = address.rsplit(':').next().expect("port");
    let local = format!("127.0.0.1:{port}");
    let remote = format!("{ip}:{port}");
    let key = SigningKey::from_bytes(&[22; 32]);
    let id = node_id(&key);
    runtime().block_on(async {
        let (mut admin, _) = connected(&local, &["operator.admin"]).await;
        let (mut watcher, _) = connected(&local, &["operator.pairing"]).await;

        let (_, refused) = node_hello(&remote, &key, &["echo.run"]).await;
        assert_eq!(refused["error"]["code"], "NOT_PAIRED", "{refused}");
        assert_eq!(refused["error"]["details"]["code"], "PAIRING_REQUIRED");
        let device_request = refused["error"]["details"]["requestId"]
            .as_str()
            .expect("id")
            .to_owned();
        let requested = next_event(&mut watcher, "device.pair.requested").await;
        assert_eq!(requested["role"], "node");
        let approved = call(
            &mut admin,
            "1",
            "device.pair.approve",
            Some(json!({"requestId": device_request})),
        )
        .await;
        assert_eq!(approved["ok"], true, "{approved}");

        let (_node, hello) = node_hello(&remote, &key, &["echo.run"]).await;
        assert_eq!(hello["ok"], true, "{hello}");
        let surface = next_event(&mut watcher, "node.pair.requested").await;
        assert_eq!(surface["nodeId"], id.as_str());
        assert_eq!(surface["remoteIp"], ip.to_string());
        assert!(
            surface.get("silent").is_none(),
            "a person approved this device: {surface}"
        );
        assert_eq!(
            surface["requiredApproveScopes"],
            json!(["operator.pairing", "operator.write"])
        );
        let pairs = call(&mut admin, "2", "node.pair.list", None).await;
        assert_eq!(
            pairs["payload"]["pending"][0]["requestId"], surface["requestId"],
            "{pairs}"
        );
        let rejected = call(
            &mut admin,
            "3",
            "node.pair.reject",
            Some(json!({"requestId": surface["requestId"]})),
        )
        .await;
        assert_eq!(rejected["payload"]["nodeId"], id.as_str(), "{rejected}");
        let unknown = call(
            &mut admin,
            "4",
            "node.pair.approve",
            Some(json!({"requestId": surface["requestId"]})),
        )
        .await;
        assert_eq!(unknown["error"]["message"], "unknown requestId");
        let empty = call(
            &mut admin,
            "5",
            "node.pair.approve",
            Some(json!({"requestId": ""})),
        )
        .await;
        assert_eq!(
            empty["error"]["message"],
            "invalid node.pair.approve params: at /requestId: must NOT have fewer than 1 characters"
        );
    });
    stop(running);
    let audit = clawback(dir.path(), &["audit", "verify"]);
    assert!(audit.status.success(), "{}", stdout(&audit));
}

#[test]
fn a_nodes_exec_policy_is_read_and_written_on_the_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (running, address, _) = start_bound(dir.path(), "127.0.0.1:0", &["--token", TOKEN]);
    let key = SigningKey::from_bytes(&[33; 32]);
    let id = node_id(&key);
    let commands = ["system.execApprovals.get", "system.execApprovals.set"];
    runtime().block_on(async {
        let (mut admin, _) = connected(&address, &["operator.admin"]).await;
        let (mut node, hello) = node_hello(&address, &key, &commands).await;
        assert_eq!(hello["ok"], true, "{hello}");
        let requested = next_event(&mut admin, "node.pair.requested").await;
        let approved = call(
            &mut admin,
            "1",
            "node.pair.approve",
            Some(json!({"requestId": requested["requestId"]})),
        )
        .await;
        assert_eq!(approved["ok"], true, "{approved}");

        // node.invoke may not send these: they have their own methods.
        let refused = call(
            &mut admin,
            "2",
            "node.invoke",
            Some(
                json!({"nodeId": id, "command": "system.execApprovals.get", "idempotencyKey": "k"}),
            ),
        )
        .await;
        assert!(
            refused["error"]["message"]
                .as_str()
                .unwrap()
                .contains("use exec.approvals.node.*"),
            "{refused}"
        );

        // get: the node's snapshot comes back as the answer.
        let snapshot = json!({"path": "/home/u/.openclaw/exec-approvals.json", "exists": true,
                              "hash": "h1", "file": {"version": 1}});
        let getter = tokio::spawn({
            let (mut admin, id) = (admin, id.clone());
            async move {
                let answer = call(
                    &mut admin,
                    "3",
                    "exec.approvals.node.get",
                    Some(json!({"nodeId": id})),
                )
                .await;
                (admin, answer)
            }
        });
        let request = next_event(&mut node, "node.invoke.request").await;
        assert_eq!(request["command"], "system.execApprovals.get");
        call(
            &mut node,
            "r1",
            "node.invoke.result",
            Some(json!({"id": request["id"], "nodeId": id, "ok": true,
                        "payloadJSON": snapshot.to_string()})),
        )
        .await;
        let (admin, answer) = getter.await.expect("getter");
        assert_eq!(answer["payload"], snapshot, "{answer}");

        // set: the file and the hash it was read at go to the node.
        let setter = tokio::spawn({
            let (mut admin, id) = (admin, id.clone());
            async move {
                let answer = call(
                    &mut admin,
                    "4",
                    "exec.approvals.node.set",
                    Some(json!({"nodeId": id, "file": {"version": 1}, "baseHash": "h1"})),
                )
                .await;
                (admin, answer)
            }
        });
        let request = next_event(&mut node, "node.invoke.request").await;
        assert_eq!(request["command"], "system.execApprovals.set");
        let sent: Value = serde_json::from_str(request["paramsJSON"].as_str().unwrap()).unwrap();
        assert_eq!(sent, json!({"file": {"version": 1}, "baseHash": "h1"}));
        call(
            &mut node,
            "r2",
            "node.invoke.result",
            Some(json!({"id": request["id"], "nodeId": id, "ok": true,
                        "payloadJSON": "{\"hash\":\"h2\"}"})),
        )
        .await;
        let (mut admin, answer) = setter.await.expect("setter");
        assert_eq!(answer["payload"], json!({"hash": "h2"}), "{answer}");

        // Bad params are refused before anything reaches the node.
        let both = call(
            &mut admin,
            "5",
            "exec.approvals.node.set",
            Some(json!({"nodeId": id, "file": {}, "native": {"rules": []}, "baseHash": "h"})),
        )
        .await;
        assert_eq!(both["error"]["code"], "INVALID_REQUEST", "{both}");
        let unknown = call(
            &mut admin,
            "6",
            "exec.approvals.node.get",
            Some(json!({"nodeId": "nobody"})),
        )
        .await;
        assert_eq!(unknown["ok"], false, "{unknown}");
    });
    stop(running);
}
