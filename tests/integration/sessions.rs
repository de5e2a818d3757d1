//! The sessions methods over the real protocol: a patch creates and
//! changes a session, guards refuse stale writes, reset starts a new
//! transcript under the same key, delete ends it, and every change reaches
//! read-scoped sockets as `sessions.changed`.

use serde_json::json;

use crate::gateway::stop;
use crate::protocol::{call, connected, next_json, runtime};
use crate::support::{clawback, stdout};

#[test]
fn sessions_are_patched_listed_reset_and_deleted_with_guards() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (running, address, _) =
        crate::gateway::start_with(dir.path(), &["--token", crate::protocol::TOKEN]);
    runtime().block_on(async {
        let (mut writer, _) = connected(&address, &["operator.write"]).await;
        let (mut reader, _) = connected(&address, &["operator.read"]).await;
        let (mut admin, _) = connected(&address, &["operator.admin"]).await;
        let key = "agent:main:telegram:direct:42";

        let empty = call(&mut reader, "1", "sessions.list", None).await;
        assert_eq!(empty["payload"]["sessions"], json!([]), "{empty}");
        assert_eq!(empty["payload"]["totalCount"], 0);

        let patched = call(
            &mut writer,
            "2",
            "sessions.patch",
            Some(json!({"key": key, "label": "Alice", "pinned": true, "model": "mock/m1"})),
        )
        .await;
        assert_eq!(patched["ok"], true, "{patched}");
        let entry = &patched["payload"]["entry"];
        assert_eq!(entry["label"], "Alice");
        assert_eq!(entry["pinned"], true);
        assert_eq!(entry["model"], "m1");
        assert_eq!(entry["modelProvider"], "mock");
        let session_id = entry["sessionId"].as_str().expect("sessionId").to_owned();

        // Announced from the log: the creation, then the patch, each with
        // the row as it is now.
        let mut reasons = Vec::new();
        while reasons.len() < 2 {
            let frame = next_json(&mut reader).await;
            if frame["event"] == "sessions.changed" {
                assert_eq!(frame["payload"]["key"], key);
                assert_eq!(frame["payload"]["sessionId"], session_id.as_str());
                reasons.push(frame["payload"]["reason"].as_str().unwrap_or("").to_owned());
            }
        }
        assert_eq!(reasons, ["create", "patch"]);

        let listed = call(
            &mut reader,
            "3",
            "sessions.list",
            Some(json!({"limit": 10})),
        )
        .await;
        let rows = listed["payload"]["sessions"].as_array().expect("rows");
        assert_eq!(rows.len(), 1, "{listed}");
        assert_eq!(rows[0]["key"], key);
        assert_eq!(rows[0]["kind"], "direct");
        assert_eq!(rows[0]["displayName"], "Alice");

        // Clearing with null, and the write scope's limits.
        let cleared = call(
            &mut writer,
            "4",
            "sessions.patch",
            Some(json!({"key": key, "label": null})),
        )
        .await;
        assert!(
            cleared["payload"]["entry"].get("label").is_none(),
            "{cleared}"
        );
        let admin_only = call(
            &mut writer,
            "5",
            "sessions.patch",
            Some(json!({"key": key, "execHost": "gateway"})),
        )
        .await;
        assert_eq!(admin_only["error"]["code"], "FORBIDDEN", "{admin_only}");
        let bad = call(
            &mut writer,
            "6",
            "sessions.patch",
            Some(json!({"key": key, "pinned": "yes"})),
        )
        .await;
        assert_eq!(
            bad["error"]["message"],
            "invalid sessions.patch params: at /pinned: must be boolean"
        );

        let reset = call(
            &mut admin,
            "7",
            "sessions.reset",
            Some(json!({"key": key, "expectedSessionId": session_id})),
        )
        .await;
        assert_eq!(reset["ok"], true, "{reset}");
        assert_ne!(reset["payload"]["entry"]["sessionId"], session_id.as_str());
        // The old id no longer passes the guard.
        let stale = call(
            &mut writer,
            "8",
            "sessions.patch",
            Some(json!({"key": key, "unread": true, "expectedSessionId": session_id})),
        )
        .await;
        assert_eq!(
            stale["error"]["details"]["code"], "SESSION_CHANGED",
            "{stale}"
        );

        let preview = call(
            &mut reader,
            "9",
            "sessions.preview",
            Some(json!({"keys": [key, "agent:main:nope"]})),
        )
        .await;
        assert_eq!(
            preview["payload"]["previews"],
            json!([{"key": key, "status": "ok", "items": []},
                   {"key": "agent:main:nope", "status": "missing", "items": []}])
        );

        let main = call(
            &mut writer,
            "10",
            "sessions.patch",
            Some(json!({"key": "agent:main:main", "archived": true})),
        )
        .await;
        assert_eq!(main["ok"], true, "{main}");
        let refused = call(
            &mut writer,
            "11",
            "sessions.delete",
            Some(json!({"key": "agent:main:main", "archivedOnly": true})),
        )
        .await;
        assert!(
            refused["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("cannot delete the main session")),
            "{refused}"
        );
        let needs_admin = call(
            &mut writer,
            "12",
            "sessions.delete",
            Some(json!({"key": key})),
        )
        .await;
        assert_eq!(needs_admin["error"]["code"], "FORBIDDEN");
        let not_archived = call(
            &mut writer,
            "13",
            "sessions.delete",
            Some(json!({"key": key, "archivedOnly": true})),
        )
        .await;
        assert!(
            not_archived["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("not archived"))
        );
        call(
            &mut writer,
            "14",
            "sessions.patch",
            Some(json!({"key": key, "archived": true})),
        )
        .await;
        let deleted = call(
            &mut writer,
            "15",
            "sessions.delete",
            Some(json!({"key": key, "archivedOnly": true})),
        )
        .await;
        assert_eq!(
            deleted["payload"],
            json!({"ok": true, "key": key, "deleted": true, "archived": []})
        );

        let all = call(
            &mut reader,
            "16",
            "sessions.list",
            Some(json!({"archived": "all"})),
        )
        .await;
        let keys: Vec<&str> = all["payload"]["sessions"]
            .as_array()
            .expect("rows")
            .iter()
            .filter_map(|row| row["key"].as_str())
            .collect();
        assert_eq!(keys, ["agent:main:main"], "{all}");
        let missing = call(
            &mut admin,
            "17",
            "sessions.reset",
            Some(json!({"key": key})),
        )
        .await;
        assert_eq!(missing["error"]["details"]["code"], "SESSION_NOT_FOUND");
    });
    stop(running);
    // The snapshot taken at stop is the live state: it must equal the state
    // rebuilt from the log by the reducers alone.
    let audit = clawback(dir.path(), &["audit", "verify"]);
    assert!(audit.status.success(), "{}", stdout(&audit));
    assert!(
        stdout(&audit).contains(": OK (covers seqs below"),
        "{}",
        stdout(&audit)
    );
}

/// What OpenClaw's TUI asks for when it opens: a session subscription, the
/// selected session's row, and the command catalog.
#[test]
fn the_tuis_startup_calls_are_answered() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("config.json5"),
        "{ agents: { defaults: { model: 'mock/m1' }, entries: { ops: { model: 'mock/m2' } } } }",
    )
    .expect("config");
    let (running, address, _) =
        crate::gateway::start_with(dir.path(), &["--token", crate::protocol::TOKEN]);
    runtime().block_on(async {
        let (mut writer, _) = connected(&address, &["operator.write"]).await;
        let key = "agent:main:main";
        let subscribed = call(&mut writer, "1", "sessions.subscribe", Some(json!({}))).await;
        assert_eq!(
            subscribed["payload"],
            json!({"subscribed": true}),
            "{subscribed}"
        );
        let missing = call(
            &mut writer,
            "2",
            "sessions.describe",
            Some(json!({"key": key})),
        )
        .await;
        assert_eq!(missing["payload"], json!({"session": null}), "{missing}");
        call(
            &mut writer,
            "3",
            "sessions.patch",
            Some(json!({"key": key, "label": "Home"})),
        )
        .await;
        let described = call(
            &mut writer,
            "4",
            "sessions.describe",
            Some(json!({"key": key})),
        )
        .await;
        assert_eq!(described["payload"]["session"]["key"], key, "{described}");
        assert_eq!(described["payload"]["session"]["label"], "Home");
        let listed = call(
            &mut writer,
            "5",
            "sessions.subscribe",
            Some(json!({"limit": 5})),
        )
        .await;
        assert_eq!(listed["payload"]["subscribed"], true, "{listed}");
        assert_eq!(listed["payload"]["list"]["sessions"][0]["key"], key);
        let commands = call(
            &mut writer,
            "6",
            "commands.list",
            Some(json!({"agentId": "main", "scope": "text", "includeArgs": false})),
        )
        .await;
        assert_eq!(commands["payload"], json!({"commands": []}), "{commands}");
        // A session of another agent shows that agent's model.
        call(
            &mut writer,
            "8",
            "sessions.patch",
            Some(json!({"key": "agent:ops:main", "label": "Ops"})),
        )
        .await;
        let ops = call(
            &mut writer,
            "9",
            "sessions.describe",
            Some(json!({"key": "agent:ops:main"})),
        )
        .await;
        assert_eq!(ops["payload"]["session"]["model"], "m2", "{ops}");
        let main = call(
            &mut writer,
            "10",
            "sessions.describe",
            Some(json!({"key": key})),
        )
        .await;
        assert_eq!(main["payload"]["session"]["model"], "m1", "{main}");
        // The TUI's /new: a fresh session, optionally with its first turn.
        let created = call(
            &mut writer,
            "11",
            "sessions.create",
            Some(json!({"agentId": "main", "label": "Scratch", "emitCommandHooks": false})),
        )
        .await;
        let new_key = created["payload"]["key"]
            .as_str()
            .unwrap_or_else(|| panic!("{created}"))
            .to_owned();
        assert!(new_key.starts_with("agent:main:dashboard:"), "{created}");
        assert_eq!(created["payload"]["entry"]["label"], "Scratch");
        assert_eq!(created["payload"]["runStarted"], false);
        let with_turn = call(
            &mut writer,
            "12",
            "sessions.create",
            Some(
                json!({"key": "agent:main:side", "message": "hi", "idempotencyKey": "create-run"}),
            ),
        )
        .await;
        assert_eq!(with_turn["payload"]["runStarted"], true, "{with_turn}");
        assert_eq!(with_turn["payload"]["runId"], "create-run");
        let fork = call(
            &mut writer,
            "13",
            "sessions.create",
            Some(json!({"parentSessionKey": key, "fork": true})),
        )
        .await;
        assert!(
            fork["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("not supported by clawback yet")),
            "{fork}"
        );
        let bad = call(&mut writer, "7", "sessions.describe", Some(json!({}))).await;
        assert_eq!(bad["error"]["code"], "INVALID_REQUEST", "{bad}");
    });
    stop(running);
}
