//! Exec approvals over the real protocol: a request is announced, decided
//! by another connection (who decided is recorded), waited for, refused a
//! second decision, and, undecided, expires into a deny.

use serde_json::{Value, json};

use crate::gateway::stop;
use crate::protocol::{TOKEN, call, connected, next_json, runtime, send};
use crate::support::{clawback, stdout};

#[test]
fn approvals_are_decided_once_waited_for_and_expire_into_deny() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (running, address, _) = crate::gateway::start_with(dir.path(), &["--token", TOKEN]);
    runtime().block_on(async {
        let (mut requester, _) = connected(&address, &["operator.approvals"]).await;
        let (mut reviewer, _) = connected(&address, &["operator.approvals"]).await;
        let (mut watcher, _) = connected(&address, &["operator.approvals"]).await;
        let (mut reader, _) = connected(&address, &["operator.read"]).await;

        let asked = call(
            &mut requester,
            "1",
            "exec.approval.request",
            Some(
                json!({"command": "rm -rf build", "sessionKey": "agent:main:main",
                        "twoPhase": true}),
            ),
        )
        .await;
        let id = asked["payload"]["id"].as_str().expect("id").to_owned();
        assert_eq!(asked["payload"]["decision"], Value::Null, "{asked}");
        let announced = loop {
            let frame = next_json(&mut watcher).await;
            if frame["event"] == "exec.approval.requested" {
                break frame;
            }
        };
        assert_eq!(announced["payload"]["id"], id.as_str());
        assert_eq!(announced["payload"]["request"]["command"], "rm -rf build");
        let listed = call(&mut reviewer, "2", "exec.approval.list", None).await;
        assert_eq!(listed["payload"][0]["id"], id.as_str(), "{listed}");
        let forbidden = call(&mut reader, "3", "exec.approval.list", None).await;
        assert_eq!(forbidden["error"]["code"], "FORBIDDEN");

        // The requester waits; the reviewer decides.
        send(
            &mut requester,
            json!({"type": "req", "id": "w", "method": "exec.approval.waitDecision",
                   "params": {"id": id}}),
        )
        .await;
        let decided = call(
            &mut reviewer,
            "4",
            "exec.approval.resolve",
            Some(json!({"id": id, "decision": "allow-once", "reviewer": "alice"})),
        )
        .await;
        assert_eq!(decided["payload"]["ok"], true, "{decided}");
        let waited = loop {
            let frame = next_json(&mut requester).await;
            if frame["type"] == "res" && frame["id"] == "w" {
                break frame;
            }
        };
        assert_eq!(
            waited["payload"],
            json!({"id": id, "decision": "allow-once"})
        );
        let again = call(
            &mut reviewer,
            "5",
            "exec.approval.resolve",
            Some(json!({"id": id, "decision": "deny"})),
        )
        .await;
        assert_eq!(
            again["error"],
            json!({"code": "INVALID_REQUEST", "message": "approval already resolved",
                   "details": {"reason": "APPROVAL_ALREADY_RESOLVED"}})
        );

        // Nobody decides: the blocking form answers deny at the deadline.
        let started = std::time::Instant::now();
        let expired = call(
            &mut requester,
            "6",
            "exec.approval.request",
            Some(
                json!({"id": "late-1", "commandArgv": ["curl", "example.com"], "timeoutMs": 1000}),
            ),
        )
        .await;
        assert_eq!(
            expired["payload"],
            json!({"id": "late-1", "decision": "deny", "expired": true}),
            "{expired}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        let state = call(
            &mut reviewer,
            "7",
            "exec.approval.get",
            Some(json!({"id": "late-1"})),
        )
        .await;
        assert_eq!(state["payload"]["status"], "expired", "{state}");
        let unknown = call(
            &mut reviewer,
            "8",
            "exec.approval.waitDecision",
            Some(json!({"id": "nope"})),
        )
        .await;
        assert_eq!(unknown["error"]["message"], "unknown approval id: nope");
    });
    stop(running);

    let tail = stdout(&clawback(
        dir.path(),
        &["log", "tail", "-n", "200", "--json"],
    ));
    let records: Vec<Value> = tail
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .filter(|record: &Value| {
            record["kind"]
                .as_str()
                .is_some_and(|kind| kind.starts_with("approval."))
        })
        .collect();
    let kinds: Vec<&str> = records.iter().filter_map(|r| r["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "approval.requested",
            "approval.resolved",
            "approval.requested",
            "approval.expired"
        ]
    );
    let reviewer = records[1]["event"]["ApprovalResolved"]["reviewer"]
        .as_str()
        .expect("reviewer");
    assert!(
        reviewer.starts_with("conn:") && reviewer.ends_with("(alice)"),
        "{reviewer}"
    );
    let audit = clawback(dir.path(), &["audit", "verify"]);
    assert!(audit.status.success(), "{}", stdout(&audit));
}

#[test]
fn the_exec_policy_is_set_with_a_base_hash_and_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (running, address, _) = crate::gateway::start_with(dir.path(), &["--token", TOKEN]);
    runtime().block_on(async {
        let (mut admin, _) = connected(&address, &["operator.admin"]).await;
        let empty = call(&mut admin, "1", "exec.approvals.get", None).await;
        assert_eq!(empty["payload"]["exists"], false, "{empty}");
        assert_eq!(empty["payload"]["file"], json!({"version": 1}));
        let policy = json!({"version": 1, "defaults": {"security": "allowlist", "ask": "on-miss"},
                            "agents": {"main": {"allowlist": [{"pattern": "/usr/bin/git"}]}}});
        let first = call(&mut admin, "2", "exec.approvals.set", Some(json!({"file": policy}))).await;
        assert_eq!(first["payload"]["exists"], true, "{first}");
        assert_eq!(first["payload"]["file"]["agents"]["main"]["allowlist"][0]["pattern"], "/usr/bin/git");
        let hash = first["payload"]["hash"].as_str().expect("hash").to_owned();
        let stale = call(&mut admin, "3", "exec.approvals.set", Some(json!({"file": {"version": 1}}))).await;
        assert_eq!(
            stale["error"]["message"],
            "exec approvals base hash required; re-run exec.approvals.get and retry"
        );
        let bad = call(
            &mut admin,
            "4",
            "exec.approvals.set",
            Some(json!({"file": {"version": 1, "defaults": {"security": "maybe"}}, "baseHash": hash})),
        )
        .await;
        assert!(
            bad["error"]["message"].as_str().is_some_and(|m| m.starts_with("invalid exec approvals file: at defaults.security:")),
            "{bad}"
        );
        let socket = call(
            &mut admin,
            "5",
            "exec.approvals.set",
            Some(json!({"file": {"version": 1, "socket": {"token": "s"}}, "baseHash": hash})),
        )
        .await;
        assert_eq!(socket["error"]["code"], "INVALID_REQUEST");
        let second = call(
            &mut admin,
            "6",
            "exec.approvals.set",
            Some(json!({"file": {"version": 1, "defaults": {"security": "deny"}}, "baseHash": hash})),
        )
        .await;
        assert_eq!(second["payload"]["file"]["defaults"]["security"], "deny", "{second}");
        assert_ne!(second["payload"]["hash"], hash.as_str());
    });
    stop(running);
    let tail = stdout(&clawback(
        dir.path(),
        &["log", "tail", "-n", "100", "--json"],
    ));
    assert_eq!(
        tail.lines()
            .filter(|l| l.contains("\"exec.policy.changed\""))
            .count(),
        2,
        "{tail}"
    );
    let audit = clawback(dir.path(), &["audit", "verify"]);
    assert!(audit.status.success(), "{}", stdout(&audit));
}
