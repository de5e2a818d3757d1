//! Which scope each method needs, and whether a connection has it.
//!
//! Why a vendored table: OpenClaw's 482 core methods each declare a scope
//! (`CORE_GATEWAY_METHOD_SPECS`); `methods-2026.9.6.tsv` is that table as
//! extracted from 2026.9.6. Reading it at startup keeps the matrix exact and
//! reviewable as data. The rules on top (admin satisfies all, write implies
//! read, dynamic methods) follow
//! `src/gateway/method-scopes.ts` (shared/openclaw/protocol.md §2.2).
//! Anything this module cannot classify needs `operator.admin`: fail closed.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::Value;

pub const READ: &str = "operator.read";
pub const WRITE: &str = "operator.write";
pub const ADMIN: &str = "operator.admin";
pub const TALK: &str = "operator.talk";
pub const PAIRING: &str = "operator.pairing";

const METHOD_TABLE: &str = include_str!("methods-2026.9.6.tsv");

/// clawback's own methods, under the `clawback.` prefix (which OpenClaw
/// does not use), with their scopes: part of the table, so they are known
/// (authorized, not "unknown method") and checked like core methods.
/// Reading a session's recorded history or the audit status needs what
/// `chat.history` needs; forking a session and running its next turn,
/// what `chat.send` needs.
const CLAWBACK_METHODS: &[(&str, &str)] = &[
    ("clawback.timeline", READ),
    ("clawback.audit.status", READ),
    ("clawback.sessions.fork", WRITE),
    ("clawback.sessions.diff", READ),
];

/// `sessions.patch` keys an `operator.write` connection may set.
const SESSIONS_PATCH_WRITE_KEYS: &[&str] = &[
    "key",
    "agentId",
    "expectedSessionId",
    "expectedLifecycleRevision",
    "expectedPermissionMode",
    "expectedMarkedUnreadAt",
    "label",
    "autoLabel",
    "icon",
    "color",
    "category",
    "boardFace",
    "boardPresentation",
    "pinned",
    "archived",
    "unread",
    "model",
    "agentRuntime",
    "thinkingLevel",
    "fastMode",
    "permissionMode",
];

/// `sessions.delete` keys allowed to a write connection with `archivedOnly`.
const SESSIONS_DELETE_WRITE_KEYS: &[&str] = &[
    "key",
    "agentId",
    "deleteTranscript",
    "expectedSessionId",
    "archivedOnly",
];

/// What the table says about a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// One operator scope.
    Scope(&'static str),
    /// Decided from the params (see [`required_scope`]).
    Dynamic,
    /// Only connections with `role: node` may call it.
    NodeRole,
}

/// The method table, parsed once.
pub fn table() -> &'static BTreeMap<&'static str, Rule> {
    static TABLE: OnceLock<BTreeMap<&'static str, Rule>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = BTreeMap::new();
        for line in METHOD_TABLE.lines().skip(1) {
            let mut columns = line.split('\t');
            let (Some(method), Some(_family), Some(scope)) =
                (columns.next(), columns.next(), columns.next())
            else {
                continue;
            };
            let rule = match scope {
                "dynamic" => Rule::Dynamic,
                "node" => Rule::NodeRole,
                // Scope strings are static: the table is compiled in.
                scope if scope.starts_with("operator.") => Rule::Scope(scope),
                // The header repeated or a malformed row: fail closed.
                _ => Rule::Scope(ADMIN),
            };
            table.insert(method, rule);
        }
        for (method, scope) in CLAWBACK_METHODS {
            let clash = table.insert(method, Rule::Scope(scope));
            assert!(clash.is_none(), "{method} is an OpenClaw method too");
        }
        table
    })
}

/// Whether `method` is an OpenClaw core method at all.
pub fn is_known(method: &str) -> bool {
    table().contains_key(method)
}

/// Why a call is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Denied {
    /// The connection lacks this scope.
    MissingScope(&'static str),
    /// The method is for node connections only.
    NodeRoleRequired,
}

/// The scope `method` needs with these `params`.
pub fn required_scope(method: &str, params: Option<&Value>) -> Result<&'static str, Denied> {
    // Methods outside the table (OpenClaw's plugin methods, which always need
    // admin under the reserved prefixes config.*, exec.approvals.*, wizard.*,
    // update.*) need admin here whatever their prefix: clawback has no
    // plugin methods yet, so this is only ever the fail-closed default.
    match table().get(method) {
        Some(Rule::Scope(scope)) => Ok(scope),
        Some(Rule::NodeRole) => Err(Denied::NodeRoleRequired),
        Some(Rule::Dynamic) => Ok(dynamic_scope(method, params)),
        None => Ok(ADMIN),
    }
}

fn dynamic_scope(method: &str, params: Option<&Value>) -> &'static str {
    let object = params.and_then(Value::as_object);
    match method {
        "agent" => {
            let message = object
                .and_then(|params| params.get("message"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let lower = message.trim_start().to_ascii_lowercase();
            if lower.starts_with("/new") || lower.starts_with("/reset") {
                ADMIN
            } else {
                WRITE
            }
        }
        "sessions.patch" => {
            let Some(params) = object else { return WRITE };
            let only_write_keys = params
                .keys()
                .all(|key| SESSIONS_PATCH_WRITE_KEYS.contains(&key.as_str()));
            let full_permission = params.get("permissionMode") == Some(&Value::from("full"));
            if only_write_keys && !full_permission {
                WRITE
            } else {
                ADMIN
            }
        }
        "sessions.delete" => {
            let Some(params) = object else { return ADMIN };
            let archived_only = params.get("archivedOnly") == Some(&Value::Bool(true));
            let only_write_keys = params
                .keys()
                .all(|key| SESSIONS_DELETE_WRITE_KEYS.contains(&key.as_str()));
            if archived_only && only_write_keys {
                WRITE
            } else {
                ADMIN
            }
        }
        // Creating a session needs write, unless it asks for what only an
        // admin may grant (incognito, tool overrides, a node to run on,
        // full permissions).
        "sessions.create" => {
            let Some(params) = object else { return WRITE };
            let incognito = |key: &str| {
                params
                    .get(key)
                    .and_then(Value::as_str)
                    .is_some_and(|value| {
                        value.split(':').any(|part| part.starts_with("incognito-"))
                    })
            };
            let admin_only = params.get("incognito") == Some(&Value::Bool(true))
                || incognito("key")
                || incognito("parentSessionKey")
                || params.contains_key("execNode")
                || params.contains_key("toolOverrides")
                || params.get("permissionMode") == Some(&Value::from("full"));
            if admin_only { ADMIN } else { WRITE }
        }
        // Direct node invokes cross into the node's host: the file and
        // browser commands need admin, the rest write.
        "node.invoke" => {
            let command = object
                .and_then(|params| params.get("command"))
                .and_then(Value::as_str)
                .unwrap_or("");
            if is_admin_only_node_command(command) {
                ADMIN
            } else {
                WRITE
            }
        }
        // Approving a DM sender needs pairing; also making them the command
        // owner needs admin (protocol.md 2.2).
        "channels.pairing.approve" => {
            let bootstrap = object.and_then(|params| params.get("bootstrapCommandOwner"))
                == Some(&Value::Bool(true));
            if bootstrap { ADMIN } else { PAIRING }
        }
        // Dynamic methods whose rules are not implemented here need admin.
        _ => ADMIN,
    }
}

/// Node commands only an admin may invoke directly (OpenClaw's
/// `NODE_ADMIN_ONLY_INVOKE_COMMANDS`).
pub fn is_admin_only_node_command(command: &str) -> bool {
    matches!(
        command,
        "browser.proxy" | "browser.proxy.upload.v1" | "fs.listDir" | "terminal.upload"
    )
}

/// The operator scopes needed to approve a node surface declaring
/// `commands` (OpenClaw's `resolveNodePairApprovalScopes`): exec-capable
/// and admin-only commands need admin, other commands write, none only
/// pairing.
pub fn node_pair_approval_scopes(commands: &[String]) -> Vec<&'static str> {
    const ADMIN_APPROVAL: &[&str] = &[
        "system.run.prepare",
        "system.run",
        "system.which",
        "system.execApprovals.get",
        "system.execApprovals.set",
    ];
    if commands.iter().any(|command| {
        is_admin_only_node_command(command) || ADMIN_APPROVAL.contains(&command.as_str())
    }) {
        vec![PAIRING, ADMIN]
    } else if commands.is_empty() {
        vec![PAIRING]
    } else {
        vec![PAIRING, WRITE]
    }
}

/// Whether `granted` satisfies `needed`.
pub fn satisfies(granted: &[String], needed: &str) -> bool {
    let has = |scope: &str| granted.iter().any(|granted| granted == scope);
    if has(ADMIN) || has(needed) {
        return true;
    }
    match needed {
        READ => has(WRITE),
        TALK => has(WRITE),
        _ => false,
    }
}

/// Checks a call: the scope it needs, against what the connection holds.
pub fn authorize(
    method: &str,
    params: Option<&Value>,
    role: &str,
    granted: &[String],
) -> Result<(), Denied> {
    if role == "node" {
        // Node connections call node methods; operator methods need scopes
        // a node does not hold.
        return match table().get(method) {
            Some(Rule::NodeRole) => Ok(()),
            _ => required_scope(method, params).and_then(|scope| {
                if satisfies(granted, scope) {
                    Ok(())
                } else {
                    Err(Denied::MissingScope(scope))
                }
            }),
        };
    }
    let scope = required_scope(method, params)?;
    if satisfies(granted, scope) {
        Ok(())
    } else {
        Err(Denied::MissingScope(scope))
    }
}

/// The scope an event needs, after OpenClaw's
/// `server-broadcast-scopes.ts`: `None` for events everyone authenticated
/// gets; events not classified here need admin (fail-closed).
pub fn event_scope(event: &str) -> Option<&'static str> {
    const NO_SCOPE: &[&str] = &[
        "tick",
        "health",
        "heartbeat",
        "shutdown",
        "gateway.suspension",
        "update.available",
    ];
    const READ_EVENTS: &[&str] = &[
        "agent",
        "chat",
        "chat.metadata.changed",
        "cron",
        "presence",
        "task",
        "task.suggestion",
        "sessions.changed",
        "config.changed",
        "node.presence",
        "node.hostStats",
        "skills.changed",
        "plugins.changed",
        "talk.event",
        "models.snapshot",
        "voicewake.changed",
    ];
    if NO_SCOPE.contains(&event) {
        None
    } else if READ_EVENTS.contains(&event) || event.starts_with("session.") {
        Some(READ)
    } else if event.starts_with("exec.approval.")
        || event.starts_with("plugin.approval.")
        || event.starts_with("openclaw.approval.")
    {
        Some("operator.approvals")
    } else if event.starts_with("device.pair.") || event.starts_with("node.pair.") {
        Some("operator.pairing")
    } else if event.starts_with("question.") {
        Some("operator.questions")
    } else if event == "talk.mode" || event == "talk.voice.change" {
        Some(TALK)
    } else {
        Some(ADMIN)
    }
}

/// Whether a connection may receive `event`. Node connections get only the
/// scope-free events.
pub fn may_receive_event(event: &str, role: &str, granted: &[String]) -> bool {
    match event_scope(event) {
        None => true,
        Some(_) if role == "node" => false,
        Some(scope) => satisfies(granted, scope),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn scopes(list: &[&str]) -> Vec<String> {
        list.iter().map(|scope| (*scope).to_owned()).collect()
    }

    #[test]
    fn the_table_has_every_core_method() {
        assert_eq!(table().len(), 482 + CLAWBACK_METHODS.len());
        assert_eq!(table()["health"], Rule::Scope(READ));
        assert_eq!(table()["config.patch"], Rule::Scope(ADMIN));
        assert_eq!(table()["node.event"], Rule::NodeRole);
        assert_eq!(table()["agent"], Rule::Dynamic);
    }

    #[test]
    fn admin_satisfies_all_and_write_implies_read() {
        assert!(satisfies(&scopes(&[ADMIN]), "operator.pairing"));
        assert!(satisfies(&scopes(&[WRITE]), READ));
        assert!(satisfies(&scopes(&[WRITE]), TALK));
        assert!(!satisfies(&scopes(&[READ]), WRITE));
        assert!(!satisfies(&scopes(&[WRITE]), "operator.talk.secrets"));
        assert!(!satisfies(&[], READ));
    }

    #[test]
    fn dynamic_rules_follow_openclaw() {
        let agent = |message: &str| required_scope("agent", Some(&json!({"message": message})));
        assert_eq!(agent("hello"), Ok(WRITE));
        assert_eq!(agent("/new"), Ok(ADMIN));
        assert_eq!(agent("  /reset now"), Ok(ADMIN));
        let patch = |params: Value| required_scope("sessions.patch", Some(&params));
        assert_eq!(patch(json!({"key": "k", "label": "x"})), Ok(WRITE));
        assert_eq!(
            patch(json!({"key": "k", "permissionMode": "full"})),
            Ok(ADMIN)
        );
        assert_eq!(patch(json!({"key": "k", "sandboxMode": "off"})), Ok(ADMIN));
        let delete = |params: Value| required_scope("sessions.delete", Some(&params));
        assert_eq!(delete(json!({"key": "k", "archivedOnly": true})), Ok(WRITE));
        assert_eq!(delete(json!({"key": "k"})), Ok(ADMIN));
        let create = |params: Value| required_scope("sessions.create", Some(&params));
        assert_eq!(create(json!({"label": "x", "message": "hi"})), Ok(WRITE));
        assert_eq!(create(json!({"incognito": true})), Ok(ADMIN));
        assert_eq!(
            create(json!({"key": "agent:main:dashboard:incognito-1"})),
            Ok(ADMIN)
        );
        assert_eq!(create(json!({"toolOverrides": {}})), Ok(ADMIN));
        assert_eq!(create(json!({"permissionMode": "full"})), Ok(ADMIN));
        assert_eq!(required_scope("talk.config", None), Ok(ADMIN));
        let invoke =
            |command: &str| required_scope("node.invoke", Some(&json!({"command": command})));
        assert_eq!(invoke("system.notify"), Ok(WRITE));
        assert_eq!(invoke("system.run"), Ok(WRITE));
        assert_eq!(invoke("fs.listDir"), Ok(ADMIN));
        assert_eq!(invoke("browser.proxy"), Ok(ADMIN));
        assert_eq!(
            node_pair_approval_scopes(&["system.run".to_owned()]),
            vec![PAIRING, ADMIN]
        );
        assert_eq!(
            node_pair_approval_scopes(&["camera.list".to_owned()]),
            vec![PAIRING, WRITE]
        );
        assert_eq!(node_pair_approval_scopes(&[]), vec![PAIRING]);
    }

    #[test]
    fn core_scopes_hold_and_unknown_methods_need_admin() {
        assert_eq!(required_scope("config.get", None), Ok(READ));
        assert_eq!(required_scope("config.set", None), Ok(ADMIN));
        assert_eq!(required_scope("update.anything", None), Ok(ADMIN));
        assert_eq!(required_scope("plugin.custom.thing", None), Ok(ADMIN));
    }

    #[test]
    fn event_guards_are_fail_closed() {
        let read = scopes(&[READ]);
        assert!(may_receive_event("tick", "operator", &[]));
        assert!(may_receive_event("config.changed", "operator", &read));
        assert!(!may_receive_event("config.changed", "operator", &[]));
        assert!(may_receive_event(
            "sessions.changed",
            "operator",
            &scopes(&[WRITE])
        ));
        assert!(!may_receive_event(
            "exec.approval.requested",
            "operator",
            &read
        ));
        assert!(may_receive_event(
            "exec.approval.requested",
            "operator",
            &scopes(&["operator.approvals"])
        ));
        assert!(!may_receive_event(
            "device.pair.requested",
            "operator",
            &read
        ));
        assert!(!may_receive_event("some.future.event", "operator", &read));
        assert!(may_receive_event(
            "some.future.event",
            "operator",
            &scopes(&[ADMIN])
        ));
        assert!(!may_receive_event("presence", "node", &scopes(&[ADMIN])));
    }

    #[test]
    fn clawback_methods_are_known_and_need_read() {
        for method in [
            "clawback.timeline",
            "clawback.audit.status",
            "clawback.sessions.diff",
        ] {
            assert!(is_known(method));
            assert_eq!(required_scope(method, None), Ok(READ));
            assert_eq!(
                authorize(method, None, "operator", &scopes(&[TALK])),
                Err(Denied::MissingScope(READ))
            );
            assert_eq!(
                authorize(method, None, "operator", &scopes(&[WRITE])),
                Ok(())
            );
        }
        assert!(!is_known("clawback.nothing"));
    }

    #[test]
    fn forking_a_session_needs_write() {
        let method = "clawback.sessions.fork";
        assert!(is_known(method));
        assert_eq!(required_scope(method, None), Ok(WRITE));
        assert_eq!(
            authorize(method, None, "operator", &scopes(&[READ])),
            Err(Denied::MissingScope(WRITE))
        );
        assert_eq!(
            authorize(method, None, "operator", &scopes(&[WRITE])),
            Ok(())
        );
    }

    #[test]
    fn node_methods_are_refused_to_operators() {
        assert_eq!(
            authorize("node.event", None, "operator", &scopes(&[ADMIN])),
            Err(Denied::NodeRoleRequired)
        );
        assert_eq!(authorize("node.event", None, "node", &[]), Ok(()));
        assert_eq!(
            authorize("status", None, "operator", &scopes(&["operator.pairing"])),
            Err(Denied::MissingScope(READ))
        );
    }
}
