//! The `exec` tool's approvals over the real protocol, with a model
//! (`exec-model`) that asks to run each user message as a shell command:
//! an operator client hears `exec.approval.requested` and decides; deny,
//! allow-once (asks again next time), allow-always (the same canonical
//! command runs without asking, also after a restart; a wrapped variant
//! that runs something more asks), and expiry (a deny). Then the log shows
//! who decided what, and the audit's rebuild equals the live state.
//!
//! And the approval RPC itself: a grant bound to the canonical argv
//! answers an equivalent spelling without asking, never a chain.

use serde_json::{Value, json};

use crate::agent::write_config;
use crate::gateway::stop;
use crate::llm_server::{LlmServer, tool_reply};
use crate::protocol::{Socket, TOKEN, call, connected, next_json, runtime, send};
use crate::support::{clawback, stdout};

const SESSION: &str = "agent:main:exec";
const APPROVAL_TIMEOUT_MS: u64 = 4_000;

/// `write_config` plus a short approval expiry.
fn configure(dir: &std::path::Path, server: &LlmServer) {
    write_config(dir, server);
    let path = dir.join("config.json5");
    let text = std::fs::read_to_string(&path).expect("config");
    let body = text.trim_end().strip_suffix('}').expect("an object");
    let text =
        format!("{body}, tools: {{ exec: {{ approvalTimeoutMs: {APPROVAL_TIMEOUT_MS} }} }} }}\n");
    std::fs::write(path, text).expect("config");
}

/// Starts a turn whose model runs `command` through `exec`.
async fn start_turn(agent: &mut Socket, id: &str, command: &str) {
    send(
        agent,
        json!({"type": "req", "id": id, "method": "agent",
               "params": {"message": command, "idempotencyKey": id,
                          "model": "mock/exec-model", "sessionKey": SESSION}}),
    )
    .await;
}

/// The turn's final answer text.
async fn finish_turn(agent: &mut Socket, id: &str) -> String {
    let mut answers = 0;
    loop {
        let frame = next_json(agent).await;
        if frame["type"] == "res" && frame["id"] == id {
            answers += 1;
            if answers == 2 {
                assert_eq!(frame["payload"]["status"], "ok", "{frame}");
                return frame["payload"]["result"]["payloads"][0]["text"]
                    .as_str()
                    .expect("text")
                    .to_owned();
            }
        }
    }
}

/// The next `exec.approval.requested` the operator hears.
async fn next_request(operator: &mut Socket) -> Value {
    loop {
        let frame = next_json(operator).await;
        if frame["event"] == "exec.approval.requested" {
            return frame["payload"].clone();
        }
    }
}

async fn decide(operator: &mut Socket, id: &str, approval: &Value, decision: &str) {
    let answer = call(
        operator,
        id,
        "exec.approval.resolve",
        Some(json!({"id": approval["id"], "decision": decision, "reviewer": "alice"})),
    )
    .await;
    assert_eq!(answer["payload"]["ok"], true, "{answer}");
}

/// One turn that must ask: the request is heard and decided as `decision`.
async fn asked_turn(
    agent: &mut Socket,
    operator: &mut Socket,
    id: &str,
    command: &str,
    decision: &str,
) -> (Value, String) {
    start_turn(agent, id, command).await;
    let approval = next_request(operator).await;
    let shown = command.strip_prefix("ask-always: ").unwrap_or(command);
    assert_eq!(approval["request"]["command"], shown, "{approval}");
    assert_eq!(approval["request"]["sessionKey"], SESSION);
    assert_eq!(approval["request"]["agentId"], "main");
    decide(operator, &format!("{id}-decide"), &approval, decision).await;
    (approval, finish_turn(agent, id).await)
}

/// A turn that must not ask: it finishes, and nothing is pending.
async fn unasked_turn(
    agent: &mut Socket,
    operator: &mut Socket,
    id: &str,
    command: &str,
) -> String {
    start_turn(agent, id, command).await;
    let text = finish_turn(agent, id).await;
    let pending = call(operator, &format!("{id}-list"), "exec.approval.list", None).await;
    assert_eq!(pending["payload"], json!([]), "{pending}");
    text
}

fn approval_records(dir: &std::path::Path) -> Vec<Value> {
    let tail = stdout(&clawback(dir, &["log", "tail", "-n", "400", "--json"]));
    tail.lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .filter(|record: &Value| {
            record["kind"]
                .as_str()
                .is_some_and(|kind| kind.starts_with("approval."))
        })
        .collect()
}

#[test]
fn exec_calls_wait_for_a_person_and_grants_cover_exactly_their_command() {
    let server = LlmServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    configure(dir.path(), &server);
    let (running, address, _) = crate::gateway::start_with(dir.path(), &["--token", TOKEN]);
    runtime().block_on(async {
        let (mut agent, _) = connected(&address, &["operator.write", "operator.read"]).await;
        let (mut operator, _) = connected(&address, &["operator.approvals"]).await;

        // Deny: the model reads the denial; nothing ran.
        let (_, text) = asked_turn(&mut agent, &mut operator, "deny", "echo one", "deny").await;
        assert!(
            text.starts_with(&tool_reply("denied: a reviewer denied it (approval ")),
            "{text}"
        );

        // Allow once: it runs once, and the same command asks again.
        let (_, text) = asked_turn(
            &mut agent,
            &mut operator,
            "once-1",
            "echo two",
            "allow-once",
        )
        .await;
        assert_eq!(text, tool_reply("two\n"));
        let (_, text) = asked_turn(
            &mut agent,
            &mut operator,
            "once-2",
            "echo two",
            "allow-once",
        )
        .await;
        assert_eq!(text, tool_reply("two\n"));

        // Allow always: the next identical call, and an equivalent
        // spelling, run without asking; a chain that adds a command asks.
        let (_, text) = asked_turn(
            &mut agent,
            &mut operator,
            "always",
            "echo three",
            "allow-always",
        )
        .await;
        assert_eq!(text, tool_reply("three\n"));
        let text = unasked_turn(&mut agent, &mut operator, "again", "echo three").await;
        assert_eq!(text, tool_reply("three\n"));
        let text = unasked_turn(&mut agent, &mut operator, "spelled", "'echo' \"three\"").await;
        assert_eq!(text, tool_reply("three\n"));
        let (wrapped, text) = asked_turn(
            &mut agent,
            &mut operator,
            "wrapped",
            "sh -c 'echo three; id'",
            "deny",
        )
        .await;
        assert!(text.contains("denied: a reviewer denied it"), "{text}");
        assert_eq!(
            wrapped["request"]["warningText"],
            "This runs 2 command(s), each approved as written here:\necho three\nid"
        );
        // An opaque command says why it can never be covered.
        let (opaque, _) =
            asked_turn(&mut agent, &mut operator, "opaque", "echo $(id)", "deny").await;
        assert!(
            opaque["request"]["warningText"]
                .as_str()
                .is_some_and(|text| text
                    .starts_with("This command cannot be analysed (it uses command substitution")),
            "{opaque}"
        );

        // Nobody decides: the approval expires, which is a deny.
        let started = std::time::Instant::now();
        start_turn(&mut agent, "late", "echo five").await;
        let late = next_request(&mut operator).await;
        let text = finish_turn(&mut agent, "late").await;
        assert!(
            text.contains("nobody decided within 4 s")
                && text.contains("an expired approval is a deny"),
            "{text}"
        );
        assert!(started.elapsed() >= std::time::Duration::from_millis(APPROVAL_TIMEOUT_MS));
        let got = call(
            &mut operator,
            "get",
            "exec.approval.get",
            Some(json!({"id": late["id"]})),
        )
        .await;
        assert_eq!(got["payload"]["status"], "expired", "{got}");
    });
    stop(running);

    let records = approval_records(dir.path());
    let kinds: Vec<&str> = records.iter().filter_map(|r| r["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "approval.requested", // echo one
            "approval.resolved",  // deny
            "approval.requested", // echo two
            "approval.resolved",
            "approval.requested", // echo two again
            "approval.resolved",
            "approval.requested", // echo three
            "approval.resolved",  // allow-always
            "approval.grant.applied",
            "approval.grant.applied",
            "approval.requested", // sh -c 'echo three; id'
            "approval.resolved",
            "approval.requested", // echo $(id)
            "approval.resolved",
            "approval.requested", // echo five
            "approval.expired",
        ],
        "{records:#?}"
    );
    let decisions: Vec<(&str, &str)> = records
        .iter()
        .filter_map(|r| {
            let resolved = &r["event"]["ApprovalResolved"];
            Some((
                resolved["decision"].as_str()?,
                resolved["reviewer"].as_str()?,
            ))
        })
        .map(|(decision, reviewer)| {
            assert!(reviewer.ends_with("(alice)"), "{reviewer}");
            (decision, reviewer)
        })
        .collect();
    assert_eq!(
        decisions.iter().map(|(d, _)| *d).collect::<Vec<_>>(),
        [
            "Deny",
            "AllowOnce",
            "AllowOnce",
            "AllowAlways",
            "Deny",
            "Deny"
        ]
    );
    // The grant's uses name the approval that created it.
    let granted_by = records[6]["event"]["ApprovalRequested"]["approval_id"].clone();
    assert_eq!(
        records[8]["event"]["ApprovalGrantApplied"]["grant_approval_id"],
        granted_by
    );
    // Approval events sit between their call's start and finish, on the
    // session's stream.
    assert!(
        records.iter().all(|r| r["stream"] == SESSION),
        "requests, decisions, grant uses and expiries are on the session's stream: {records:#?}"
    );
    // So the session's replay shows who decided what.
    let replay = stdout(&clawback(dir.path(), &["replay", SESSION]));
    for line in [
        "deny by conn:",
        "allow-once by conn:",
        "allow-always by conn:",
        "`echo three` allowed by the allow-always grant of approval",
        "expired (deny)",
    ] {
        assert!(replay.contains(line), "{line:?} not in:\n{replay}");
    }
    let audit = clawback(dir.path(), &["audit", "verify"]);
    assert!(audit.status.success(), "{}", stdout(&audit));

    // After a restart the grant is rebuilt from the log and still applies.
    let (running, address, _) = crate::gateway::start_with(dir.path(), &["--token", TOKEN]);
    runtime().block_on(async {
        let (mut agent, _) = connected(&address, &["operator.write", "operator.read"]).await;
        let (mut operator, _) = connected(&address, &["operator.approvals"]).await;
        let text = unasked_turn(&mut agent, &mut operator, "restarted", "echo three").await;
        assert_eq!(text, tool_reply("three\n"));
        let got = call(
            &mut operator,
            "get",
            "exec.approval.get",
            Some(json!({"id": granted_by})),
        )
        .await;
        assert_eq!(got["payload"]["decision"], "allow-always", "{got}");
    });
    stop(running);
    let applied = approval_records(dir.path())
        .iter()
        .filter(|r| r["kind"] == "approval.grant.applied")
        .count();
    assert_eq!(applied, 3);
    // The state the gateway had at stop (its snapshot) is what the log
    // alone rebuilds.
    let check = stdout(&clawback(dir.path(), &["snapshot", "restore", "--check"]));
    assert!(
        check.contains("check: a full rebuild from seq 0 gives the same state hash"),
        "{check}"
    );
    let audit = clawback(dir.path(), &["audit", "verify"]);
    assert!(audit.status.success(), "{}", stdout(&audit));
}

#[test]
fn the_approval_rpc_binds_grants_to_the_canonical_argv() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (running, address, _) = crate::gateway::start_with(dir.path(), &["--token", TOKEN]);
    runtime().block_on(async {
        let (mut requester, _) = connected(&address, &["operator.approvals"]).await;
        let asked = call(
            &mut requester,
            "1",
            "exec.approval.request",
            Some(json!({"command": "ls -la", "cwd": "/srv", "twoPhase": true})),
        )
        .await;
        let grant = asked["payload"]["id"].as_str().expect("id").to_owned();
        let decided = call(
            &mut requester,
            "2",
            "exec.approval.resolve",
            Some(json!({"id": grant, "decision": "allow-always"})),
        )
        .await;
        assert_eq!(decided["payload"]["ok"], true, "{decided}");
        // Equivalent spellings and the argv form: answered from the grant.
        for (id, params) in [
            ("3", json!({"command": "env 'ls' -la", "cwd": "/srv"})),
            (
                "4",
                json!({"commandArgv": ["/usr/bin/env", "ls", "-la"], "cwd": "/srv"}),
            ),
        ] {
            let answer = call(&mut requester, id, "exec.approval.request", Some(params)).await;
            assert_eq!(answer["payload"]["decision"], "allow-always", "{answer}");
            assert_eq!(answer["payload"]["grantId"], grant.as_str());
        }
        // A two-phase request answered by the grant reads back as decided,
        // and by which grant.
        let answer = call(
            &mut requester,
            "3b",
            "exec.approval.request",
            Some(json!({"id": "auto-1", "command": "ls -la", "cwd": "/srv", "twoPhase": true})),
        )
        .await;
        assert_eq!(answer["payload"]["decision"], "allow-always", "{answer}");
        let got = call(
            &mut requester,
            "3c",
            "exec.approval.get",
            Some(json!({"id": "auto-1"})),
        )
        .await;
        assert_eq!(got["payload"]["status"], "resolved", "{got}");
        assert_eq!(got["payload"]["decision"], "allow-always");
        assert!(
            got["payload"]["resolvedBy"]
                .as_str()
                .is_some_and(|by| by.starts_with(&format!("grant {grant}"))),
            "{got}"
        );
        let waited = call(
            &mut requester,
            "3d",
            "exec.approval.waitDecision",
            Some(json!({"id": "auto-1"})),
        )
        .await;
        assert_eq!(waited["payload"]["decision"], "allow-always", "{waited}");
        // A chain, another directory, a wrapper that changes the user:
        // each asks (two-phase: no decision yet).
        for (id, params) in [
            ("5", json!({"command": "ls -la && rm -rf /", "cwd": "/srv"})),
            ("6", json!({"command": "ls -la", "cwd": "/"})),
            ("7", json!({"command": "sudo ls -la", "cwd": "/srv"})),
            ("8", json!({"command": "ls -la $(rm -rf /)", "cwd": "/srv"})),
        ] {
            let mut params = params;
            params["twoPhase"] = json!(true);
            let answer = call(&mut requester, id, "exec.approval.request", Some(params)).await;
            assert_eq!(answer["payload"]["decision"], Value::Null, "{answer}");
        }
    });
    stop(running);
    let kinds: Vec<String> = approval_records(dir.path())
        .iter()
        .filter_map(|r| r["kind"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| *k == "approval.grant.applied")
            .count(),
        3
    );
    assert_eq!(
        kinds.iter().filter(|k| *k == "approval.requested").count(),
        5
    );
    let audit = clawback(dir.path(), &["audit", "verify"]);
    assert!(audit.status.success(), "{}", stdout(&audit));
}

#[test]
fn the_agents_policy_refuses_allowlists_or_runs_without_asking() {
    let server = LlmServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    configure(dir.path(), &server);
    let (running, address, _) = crate::gateway::start_with(dir.path(), &["--token", TOKEN]);
    runtime().block_on(async {
        let (mut agent, _) = connected(&address, &["operator.write", "operator.read"]).await;
        let (mut admin, _) = connected(&address, &["operator.admin"]).await;
        let mut base: Option<String> = None;
        let mut set_policy = async |admin: &mut Socket, id: &str, agent_policy: Value| {
            let mut params = json!({"file": {"version": 1, "agents": {"main": agent_policy}}});
            if let Some(hash) = &base {
                params["baseHash"] = json!(hash);
            }
            let set = call(admin, id, "exec.approvals.set", Some(params)).await;
            base = Some(set["payload"]["hash"].as_str().expect("hash").to_owned());
        };

        set_policy(&mut admin, "p1", json!({"security": "deny"})).await;
        let text = unasked_turn(&mut agent, &mut admin, "denied", "echo hi").await;
        assert_eq!(
            text,
            tool_reply("denied: exec is turned off for this agent (security: deny)")
        );

        set_policy(
            &mut admin,
            "p2",
            json!({"security": "allowlist", "ask": "off",
                   "allowlist": [{"pattern": "echo"}, {"pattern": "wc"}]}),
        )
        .await;
        let text = unasked_turn(&mut agent, &mut admin, "listed", "echo hi | wc -l").await;
        assert_eq!(text, tool_reply("1\n"));
        let text = unasked_turn(&mut agent, &mut admin, "unlisted", "echo hi; id -u").await;
        assert!(text.contains("not on this agent's allowlist"), "{text}");
        let text = unasked_turn(&mut agent, &mut admin, "wrapped", "env X=1 echo hi").await;
        assert!(text.contains("not on this agent's allowlist"), "{text}");

        set_policy(&mut admin, "p3", json!({"security": "full", "ask": "off"})).await;
        let text = unasked_turn(&mut agent, &mut admin, "full", "echo $((6 * 7))").await;
        assert_eq!(text, tool_reply("42\n"));
        // A call's own `ask` can make the policy stricter.
        let (_, text) = asked_turn(
            &mut agent,
            &mut admin,
            "harder",
            "ask-always: echo seven",
            "allow-once",
        )
        .await;
        assert_eq!(text, tool_reply("seven\n"));
    });
    stop(running);
    let kinds: Vec<String> = approval_records(dir.path())
        .iter()
        .filter_map(|r| r["kind"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        kinds,
        ["approval.requested", "approval.resolved"],
        "only the hardened call asked"
    );
    let audit = clawback(dir.path(), &["audit", "verify"]);
    assert!(audit.status.success(), "{}", stdout(&audit));
}
