//! The whole scope matrix over the wire: every core method of OpenClaw
//! 2026.9.6's table, called by connections holding each operator scope, is
//! either let through or refused with `missing scope: <the table's scope>`,
//! exactly as the documented rules say. The expected outcome is computed
//! here from the table and the rules, independently of the gateway's code.

use serde_json::{Value, json};

use crate::gateway::stop;
use crate::protocol::{Socket, TOKEN, call, connect_frame, next_json, open, runtime, send};

const TABLE: &str = include_str!("../../src/gateway/protocol/methods-2026.9.6.tsv");

const READ: &str = "operator.read";
const WRITE: &str = "operator.write";
const ADMIN: &str = "operator.admin";

/// OpenClaw's rules (`method-scopes.ts`): admin satisfies everything;
/// write implies read and talk; otherwise the scope itself is needed.
fn satisfies(granted: &[&str], needed: &str) -> bool {
    granted.contains(&ADMIN)
        || granted.contains(&needed)
        || (granted.contains(&WRITE) && (needed == READ || needed == "operator.talk"))
}

async fn connect(address: &str, scopes: &[&str]) -> Socket {
    let (mut socket, _) = open(address).await;
    send(&mut socket, connect_frame(Some(TOKEN), scopes)).await;
    let hello = next_json(&mut socket).await;
    assert_eq!(hello["ok"], true, "{hello}");
    socket
}

#[test]
fn every_method_needs_exactly_the_scope_the_table_gives_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (running, address, _) = crate::gateway::start_with(dir.path(), &["--token", TOKEN]);
    let methods: Vec<(&str, &str)> = TABLE
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut columns = line.split('\t');
            Some((columns.next()?, columns.nth(1)?))
        })
        .collect();
    assert_eq!(methods.len(), 482, "the 2026.9.6 table");
    let grants: [&[&str]; 6] = [
        &[READ],
        &[WRITE],
        &["operator.approvals"],
        &["operator.pairing"],
        &["operator.talk"],
        &[ADMIN],
    ];
    let mut checked = 0;
    runtime().block_on(async {
        for granted in grants {
            let mut socket = connect(&address, granted).await;
            let mut refused_on_socket = 0;
            for (index, (method, scope)) in methods.iter().enumerate() {
                if *method == "connect" {
                    continue;
                }
                // Params that no method accepts: nothing authorized runs.
                let params = json!({"__scope_matrix_probe__": true});
                let id = format!("m{index}");
                let answer: Value = call(&mut socket, &id, method, Some(params)).await;
                let error = &answer["error"];
                let forbidden = error["code"] == "FORBIDDEN";
                match *scope {
                    "node" => {
                        assert_eq!(
                            error["details"]["code"], "NODE_ROLE_REQUIRED",
                            "{method}: {answer}"
                        );
                    }
                    "dynamic" => {}
                    needed => {
                        if satisfies(granted, needed) {
                            assert!(!forbidden, "{granted:?} may call {method}: {answer}");
                        } else {
                            assert_eq!(
                                error["message"],
                                format!("missing scope: {needed}"),
                                "{granted:?} calling {method}: {answer}"
                            );
                        }
                    }
                }
                checked += 1;
                if forbidden || *scope == "node" {
                    refused_on_socket += 1;
                }
                // Ten refusals close a socket (tested elsewhere): reconnect
                // before that.
                if refused_on_socket == 9 {
                    socket = connect(&address, granted).await;
                    refused_on_socket = 0;
                }
            }
        }
    });
    stop(running);
    assert_eq!(checked, 481 * 6);
}
