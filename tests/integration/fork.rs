//! Fork and re-run, end to end: a session with two turns (the first with a
//! tool call) on the real gateway and the local model double, forked at
//! the first turn's end onto another model through
//! `clawback.sessions.fork` and through `clawback fork`; the forks' turns
//! run live and reply differently; the refusals say why; and, offline,
//! `clawback diff` shows where the sessions diverged and `clawback replay`
//! shows the fork's origin. The checked-in fixture `fixtures/fork-v1.cblog`
//! is this test's log (see `fixtures/README.md`), and its replay and diff
//! are pinned.

use serde_json::{Value, json};

use crate::agent::{request, write_config};
use crate::gateway::stop;
use crate::llm_server::{LlmServer, tool_reply};
use crate::protocol::{Socket, TOKEN, call, connected, runtime};
use crate::support::{clawback, fixture, stderr, stdout};

const NOTE: &str = "the tide comes in at noon";
const SOURCE: &str = "agent:main:fork-source";
const FORK: &str = "agent:main:fork-1";
const FORK_CLI: &str = "agent:main:fork-cli";
/// Set to rewrite `fixtures/fork-v1.*` from this test's run.
const WRITE_FIXTURE: &str = "CLAWBACK_WRITE_FORK_FIXTURE";

/// An `agent` turn that must complete; its reply text.
async fn turn(socket: &mut Socket, id: &str, message: &str, model: Option<&str>) -> String {
    let mut params = json!({"message": message, "idempotencyKey": id, "sessionKey": SOURCE});
    if let Some(model) = model {
        params["model"] = json!(model);
    }
    let (answers, _) = request(socket, id, "agent", params, 2).await;
    let last = &answers[1]["payload"];
    assert_eq!(last["status"], "ok", "{last}");
    last["result"]["payloads"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The seqs of the source's records of `kind`, in order.
async fn seqs_of(socket: &mut Socket, kind: &str) -> Vec<u64> {
    let page = call(
        socket,
        "tl",
        "clawback.timeline",
        Some(json!({"sessionKey": SOURCE, "limit": 1000})),
    )
    .await;
    assert_eq!(page["ok"], true, "{page}");
    page["payload"]["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|entry| entry["kind"] == kind)
        .map(|entry| entry["seq"].as_u64().expect("seq"))
        .collect()
}

async fn fork_error(socket: &mut Socket, params: Value) -> String {
    let answer = call(socket, "fe", "clawback.sessions.fork", Some(params)).await;
    assert_eq!(answer["ok"], false, "{answer}");
    answer["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn a_fork_reruns_the_next_turn_on_another_model_and_diff_shows_where_it_diverged() {
    let server = LlmServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), &server);
    std::fs::create_dir_all(dir.path().join("workspace")).expect("workspace");
    std::fs::write(dir.path().join("workspace/notes.txt"), format!("{NOTE}\n")).expect("note");
    let (running, address, _) = crate::gateway::start_with(dir.path(), &["--token", TOKEN]);
    let url = format!("ws://{address}/");

    let at = runtime().block_on(async {
        let (mut socket, _) = connected(&address, &["operator.write", "operator.read"]).await;
        let first = turn(
            &mut socket,
            "src-1",
            "what does notes.txt say?",
            Some("mock/tool-model"),
        )
        .await;
        assert_eq!(first, tool_reply(NOTE));
        let second = turn(&mut socket, "src-2", "and tomorrow?", None).await;
        assert_eq!(second, "Hello from the mock. You said: and tomorrow?");
        let ends = seqs_of(&mut socket, "agent.run.finished").await;
        assert_eq!(ends.len(), 2);
        let at = ends[0];

        // The refusals, each with what to do.
        let unknown = fork_error(
            &mut socket,
            json!({"sessionKey": "agent:main:nobody", "atSeq": at}),
        )
        .await;
        assert!(unknown.contains("does not exist"), "{unknown}");
        let foreign = fork_error(
            &mut socket,
            json!({"sessionKey": SOURCE, "atSeq": 0, "message": "x"}),
        )
        .await;
        assert!(
            foreign.contains("is not part of session agent:main:fork-source's history"),
            "{foreign}"
        );
        let beyond = fork_error(
            &mut socket,
            json!({"sessionKey": SOURCE, "atSeq": 1_000_000, "message": "x"}),
        )
        .await;
        assert!(beyond.contains("is not part of"), "{beyond}");
        let no_next =
            fork_error(&mut socket, json!({"sessionKey": SOURCE, "atSeq": ends[1]})).await;
        assert!(
            no_next.contains("no user message after seq") && no_next.contains("--prompt"),
            "{no_next}"
        );
        let call_seq = seqs_of(&mut socket, "tool.call.requested").await[0];
        let mid_round = fork_error(
            &mut socket,
            json!({"sessionKey": SOURCE, "atSeq": call_seq}),
        )
        .await;
        assert!(mid_round.contains("inside a tool round"), "{mid_round}");
        let taken = fork_error(
            &mut socket,
            json!({"sessionKey": SOURCE, "atSeq": at, "newKey": SOURCE}),
        )
        .await;
        assert!(taken.contains("exists already"), "{taken}");
        let no_model = fork_error(
            &mut socket,
            json!({"sessionKey": SOURCE, "atSeq": at, "model": "nowhere/none"}),
        )
        .await;
        assert!(
            no_model.contains("model nowhere/none cannot be used"),
            "{no_model}"
        );

        // The fork: the source's next message, answered by another model.
        let forked = call(
            &mut socket,
            "f1",
            "clawback.sessions.fork",
            Some(
                json!({"sessionKey": SOURCE, "atSeq": at, "model": "mock/tool-model",
                        "newKey": FORK}),
            ),
        )
        .await;
        assert_eq!(forked["ok"], true, "{forked}");
        let payload = &forked["payload"];
        assert_eq!(payload["key"], FORK);
        assert_eq!(payload["forkedFrom"], json!({"key": SOURCE, "atSeq": at}));
        let run_id = payload["runId"].as_str().expect("run id").to_owned();
        let waited = call(
            &mut socket,
            "w1",
            "agent.wait",
            Some(json!({"runId": run_id, "timeoutMs": 30_000})),
        )
        .await;
        assert_eq!(waited["payload"]["status"], "ok", "{waited}");
        assert_eq!(
            waited["payload"]["terminalReply"]["text"],
            tool_reply(NOTE),
            "the other model answers the same message differently"
        );

        // The model was sent the reused message once, by the fork's model.
        let last = server.requests().last().cloned().expect("a request");
        assert_eq!(last["model"], "tool-model", "{last}");
        let sent = last["messages"].to_string();
        assert_eq!(sent.matches("and tomorrow?").count(), 1, "{sent}");

        // The fork's history is the source's first turn, the reused
        // message once, and its own reply.
        let history = call(
            &mut socket,
            "h1",
            "chat.history",
            Some(json!({"sessionKey": FORK})),
        )
        .await;
        let messages = history["payload"]["messages"].as_array().expect("messages");
        let texts: Vec<String> = messages.iter().map(|m| m.to_string()).collect();
        assert_eq!(
            texts.iter().filter(|t| t.contains("and tomorrow?")).count(),
            1,
            "{texts:#?}"
        );
        assert!(texts[0].contains("what does notes.txt say?"), "{texts:#?}");
        assert!(
            texts.last().unwrap().contains(&tool_reply(NOTE)),
            "{texts:#?}"
        );
        let listed = call(&mut socket, "l1", "sessions.list", Some(json!({}))).await;
        assert!(listed.to_string().contains(FORK), "{listed}");

        // Afterwards the fork is a session like any other: a turn on it
        // sees its whole history, on its own model.
        let (answers, _) = request(
            &mut socket,
            "fork-2",
            "agent",
            json!({"message": "and the day after?", "idempotencyKey": "fork-2",
                   "sessionKey": FORK}),
            2,
        )
        .await;
        assert_eq!(answers[1]["payload"]["status"], "ok", "{answers:?}");
        let last = server.requests().last().cloned().expect("a request");
        assert_eq!(last["model"], "tool-model", "the fork's model setting");
        let sent = last["messages"].to_string();
        for said in [
            "what does notes.txt say?",
            "and tomorrow?",
            "and the day after?",
        ] {
            assert_eq!(sent.matches(said).count(), 1, "{said} in {sent}");
        }
        at
    });

    // `clawback fork`, a client of the running gateway, with a prompt file.
    let prompt = dir.path().join("prompt.txt");
    std::fs::write(&prompt, "what about the moon?").expect("prompt");
    let at_text = at.to_string();
    let prompt_path = prompt.to_str().expect("utf-8");
    let cli_fork = |token: &str| {
        clawback(
            dir.path(),
            &[
                "fork",
                SOURCE,
                "--at",
                &at_text,
                "--model",
                "mock/mock-model",
                "--prompt",
                prompt_path,
                "--new-key",
                FORK_CLI,
                "--url",
                &url,
                "--token",
                token,
            ],
        )
    };
    let output = cli_fork(TOKEN);
    assert!(output.status.success(), "{}", stderr(&output));
    let printed = stdout(&output);
    assert!(
        printed.contains(&format!("forked {SOURCE} at seq {at} into {FORK_CLI}")),
        "{printed}"
    );
    assert!(
        printed.contains("Hello from the mock. You said: what about the moon?"),
        "{printed}"
    );
    let refused = cli_fork("wrong-token");
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("refused the connection") && stderr(&refused).contains("--token"),
        "{}",
        stderr(&refused)
    );
    // While the gateway holds the store, `clawback diff` asks it
    // (`clawback.sessions.diff`); the answer is the offline one (below).
    let live_diff = clawback(
        dir.path(),
        &["diff", SOURCE, FORK, "--url", &url, "--token", TOKEN],
    );
    assert!(live_diff.status.success(), "{}", stderr(&live_diff));
    let live_diff = stdout(&live_diff);
    // And `clawback replay` reads the timeline through it (`clawback.timeline`).
    let replay_args = |json: bool| {
        let mut args = vec!["replay", FORK, "--no-state", "--color", "never"];
        if json {
            args.push("--json");
        }
        args
    };
    let live_replay = |json: bool| {
        let mut args = replay_args(json);
        args.extend(["--url", url.as_str(), "--token", TOKEN]);
        let output = clawback(dir.path(), &args);
        assert!(output.status.success(), "{}", stderr(&output));
        stdout(&output)
    };
    let (live_text, live_json) = (live_replay(false), live_replay(true));
    stop(running);
    let offline_replay = |json: bool| stdout(&clawback(dir.path(), &replay_args(json)));
    assert!(live_text.lines().count() > 5, "{live_text}");
    assert_eq!(
        live_text,
        offline_replay(false),
        "the live timeline is the offline one"
    );
    assert_eq!(live_json, offline_replay(true));
    let gone = cli_fork(TOKEN);
    assert!(!gone.status.success());
    assert!(
        stderr(&gone).contains("is it running?"),
        "{}",
        stderr(&gone)
    );

    // Offline: where the fork diverged, and its replay.
    let diff = stdout(&clawback(dir.path(), &["diff", SOURCE, FORK]));
    assert_eq!(live_diff, diff, "the gateway's diff is the offline one");
    let asked = stdout(&clawback(dir.path(), &["audit", "export"]));
    assert!(
        asked.contains("\"method\":\"clawback.sessions.diff\""),
        "the live diff went through the gateway"
    );
    // The fork's message, in the request's params, is sealed under the
    // fork's key (the export opens it and says so).
    let fork_request = asked
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("JSON line"))
        .find(|line| {
            line["kind"] == "rpc.received"
                && line["event"]["RpcReceived"]["method"] == "clawback.sessions.fork"
                && line["event"]["RpcReceived"]["params_redacted"]
                    .as_str()
                    .is_some_and(|params| params.contains("what about the moon?"))
        })
        .expect("the CLI fork's request");
    assert_eq!(fork_request["content"], "opened", "{fork_request}");
    assert!(
        diff.contains(&format!("forked from {SOURCE} at seq {at}")),
        "{diff}"
    );
    assert!(diff.contains("LLM request mock/mock-model"), "{diff}");
    assert!(diff.contains("LLM request mock/tool-model"), "{diff}");
    let json_diff: Value = serde_json::from_str(&stdout(&clawback(
        dir.path(),
        &["diff", SOURCE, FORK, "--json"],
    )))
    .expect("json");
    let shared = json_diff["shared"].as_u64().expect("shared") as usize;
    // The first turn (user, request, response, call, result, request,
    // response, reply, end) and the reused message are shared.
    assert!(shared >= 6, "{json_diff}");
    assert_eq!(
        json_diff["b"]["steps"][shared]["step"]["model"],
        "tool-model"
    );
    assert_eq!(
        json_diff["a"]["steps"][shared]["step"]["model"],
        "mock-model"
    );
    assert_eq!(
        json_diff["a"]["steps"][shared - 1]["step"]["text"],
        "and tomorrow?"
    );
    // The fork with its own message diverges at that message.
    let cli_diff: Value = serde_json::from_str(&stdout(&clawback(
        dir.path(),
        &["diff", SOURCE, FORK_CLI, "--json"],
    )))
    .expect("json");
    let shared_cli = cli_diff["shared"].as_u64().expect("shared") as usize;
    assert_eq!(
        cli_diff["b"]["steps"][shared_cli]["step"],
        json!({"kind": "user", "text": "what about the moon?"})
    );
    assert_eq!(
        cli_diff["a"]["steps"][shared_cli]["step"]["text"],
        "and tomorrow?"
    );
    let unknown = clawback(dir.path(), &["diff", SOURCE, "agent:main:nobody"]);
    assert!(!unknown.status.success());
    assert!(
        stderr(&unknown).contains("no recorded events for session `agent:main:nobody`"),
        "{}",
        stderr(&unknown)
    );
    let replay = stdout(&clawback(dir.path(), &["replay", FORK, "--color", "never"]));
    assert!(
        replay.contains(&format!("forked from {SOURCE} at seq {at}")),
        "{replay}"
    );
    assert!(replay.contains("run "), "{replay}");

    if std::env::var_os(WRITE_FIXTURE).is_some() {
        let archive = fixture("fork-v1.cblog");
        let output = clawback(
            dir.path(),
            &["log", "archive", "-o", archive.to_str().expect("utf-8")],
        );
        assert!(output.status.success(), "{}", stderr(&output));
        let (replay, diff) = fixture_outputs();
        std::fs::write(fixture("fork-v1.replay.txt"), replay).expect("write");
        std::fs::write(fixture("fork-v1.diff.txt"), diff).expect("write");
    }
}

/// `clawback replay` of the fork and `clawback diff` of the fixture log.
fn fixture_outputs() -> (String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = fixture("fork-v1.cblog");
    let output = clawback(
        dir.path(),
        &["log", "import", archive.to_str().expect("utf-8")],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let replay = clawback(dir.path(), &["replay", FORK, "--color", "never"]);
    assert!(replay.status.success(), "{}", stderr(&replay));
    let diff = clawback(dir.path(), &["diff", SOURCE, FORK]);
    assert!(diff.status.success(), "{}", stderr(&diff));
    (stdout(&replay), stdout(&diff))
}

/// The fixture's replay and diff are what they were when it was made: a
/// change to either rendering (or to how a fork is read) shows here.
#[test]
fn the_fork_fixture_replays_and_diffs_to_its_pinned_output() {
    let (replay, diff) = fixture_outputs();
    let pinned = |name: &str| std::fs::read_to_string(fixture(name)).expect("pinned output");
    assert_eq!(replay, pinned("fork-v1.replay.txt"));
    assert_eq!(diff, pinned("fork-v1.diff.txt"));
    assert!(diff.contains(&format!("b: {FORK}")), "{diff}");
    assert!(diff.contains("diverged at step"), "{diff}");
    assert!(
        replay.contains("forked from agent:main:fork-source at seq"),
        "{replay}"
    );
}
