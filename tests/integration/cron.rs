//! Cron over the real protocol: jobs added, fired on schedule as agent
//! turns against a local model server, run by hand, edited, removed; what
//! cannot run is refused with the reason; a one-shot job deletes itself;
//! after a restart no slot runs twice and the log rebuilds the same state.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::agent::request;
use crate::gateway::stop;
use crate::protocol::{Socket, connected, next_json, runtime};
use crate::support::{clawback, stdout};

/// One answer to `method`.
async fn call(socket: &mut Socket, id: &str, method: &str, params: Value) -> Value {
    let (answers, _) = request(socket, id, method, params, 1).await;
    answers.into_iter().next().expect("an answer")
}

/// Reads frames until a `cron` event matching `wanted` arrives (bounded).
async fn cron_event(socket: &mut Socket, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = tokio::time::timeout(left, next_json(socket))
            .await
            .expect("the cron event arrives in time");
        if frame["type"] == "event" && frame["event"] == "cron" && wanted(&frame["payload"]) {
            return frame["payload"].clone();
        }
    }
}

fn isolated_job(name: &str, schedule: Value, message: &str) -> Value {
    json!({
        "name": name, "schedule": schedule, "sessionTarget": "isolated", "wakeMode": "now",
        "payload": {"kind": "agentTurn", "message": message},
        "delivery": {"mode": "none"},
    })
}

#[test]
fn cron_jobs_fire_run_by_hand_and_never_twice_across_restarts() {
    let (_server, dir, running, address) = crate::agent::mock_gateway();
    let job_id = runtime().block_on(async {
        let (mut socket, _) = connected(&address, &["operator.admin"]).await;
        let added = call(
            &mut socket,
            "add",
            "cron.add",
            isolated_job("ticker", json!({"kind": "every", "everyMs": 1500}), "tick"),
        )
        .await;
        assert_eq!(added["ok"], true, "{added}");
        let job = &added["payload"];
        let id = job["id"].as_str().expect("job id").to_owned();
        assert_eq!(job["enabled"], true);
        assert_eq!(job["sessionTarget"], "isolated");
        assert!(
            job["configRevision"]
                .as_str()
                .unwrap()
                .starts_with("sha256:")
        );
        let next = job["state"]["nextRunAtMs"].as_i64().expect("next run");
        assert_eq!(job["nextRunAtMs"], next);
        assert_eq!(job["createdAtMs"].as_i64().unwrap() + 1500, next);

        // It fires on schedule, as an agent turn in its own session.
        let started = cron_event(&mut socket, |e| {
            e["jobId"] == id && e["action"] == "started"
        })
        .await;
        let run_id = started["runId"].as_str().unwrap().to_owned();
        assert!(run_id.starts_with(&format!("cron:{id}:")), "{started}");
        let finished = cron_event(&mut socket, |e| {
            e["action"] == "finished" && e["runId"] == run_id.as_str()
        })
        .await;
        assert_eq!(finished["status"], "ok", "{finished}");
        assert_eq!(finished["sessionKey"], format!("agent:main:cron:{id}"));
        assert_eq!(finished["summary"], "Hello from the mock. You said: tick");

        // Disabled, it stops firing; run by hand, it still runs.
        let disabled = call(
            &mut socket,
            "off",
            "cron.update",
            json!({"id": id, "patch": {"enabled": false}}),
        )
        .await;
        assert_eq!(disabled["payload"]["enabled"], false, "{disabled}");
        assert!(disabled["payload"]["state"].get("nextRunAtMs").is_none());
        let forced = call(&mut socket, "run", "cron.run", json!({"id": id})).await;
        let forced_run = forced["payload"]["runId"]
            .as_str()
            .expect("runId")
            .to_owned();
        assert!(forced_run.starts_with(&format!("manual:{id}:")), "{forced}");
        assert_eq!(forced["payload"]["enqueued"], true);
        cron_event(&mut socket, |e| {
            e["action"] == "finished" && e["runId"] == forced_run.as_str()
        })
        .await;
        let due = call(
            &mut socket,
            "due",
            "cron.run",
            json!({"id": id, "mode": "due"}),
        )
        .await;
        assert_eq!(due["payload"]["ran"], false, "{due}");
        assert_eq!(due["payload"]["reason"], "disabled");
        let runs_before = call(&mut socket, "runs", "cron.runs", json!({"id": id})).await;
        tokio::time::sleep(Duration::from_millis(2_000)).await;
        let runs_after = call(&mut socket, "runs2", "cron.runs", json!({"id": id})).await;
        assert_eq!(
            runs_before["payload"]["total"],
            runs_after["payload"]["total"]
        );
        let entries = &runs_after["payload"]["entries"];
        assert_eq!(
            entries[0]["runId"],
            forced_run.as_str(),
            "newest first: {entries}"
        );
        assert_eq!(entries[0]["status"], "ok");
        assert_eq!(entries[0]["jobName"], "ticker");

        // Enabled again, it fires again (no backlog from the pause).
        call(
            &mut socket,
            "on",
            "cron.update",
            json!({"id": id, "patch": {"enabled": true}}),
        )
        .await;
        cron_event(&mut socket, |e| {
            e["jobId"] == id && e["action"] == "finished"
        })
        .await;
        id
    });
    stop(running);

    // Restarted: the job is still there, keeps firing, and no slot ever
    // ran twice.
    let (running, address, _) =
        crate::gateway::start_with(dir.path(), &["--token", crate::protocol::TOKEN]);
    runtime().block_on(async {
        let (mut socket, _) = connected(&address, &["operator.admin"]).await;
        cron_event(&mut socket, |e| {
            e["jobId"] == job_id.as_str() && e["action"] == "finished"
        })
        .await;
        let off = call(
            &mut socket,
            "off",
            "cron.update",
            json!({"id": job_id, "patch": {"enabled": false}}),
        )
        .await;
        assert_eq!(off["ok"], true, "{off}");
        // Let a run that had started finish.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let runs = call(
            &mut socket,
            "runs",
            "cron.runs",
            json!({"id": job_id, "limit": 200, "sortDir": "asc"}),
        )
        .await;
        let entries = runs["payload"]["entries"]
            .as_array()
            .expect("entries")
            .clone();
        let mut scheduled: Vec<&str> = entries
            .iter()
            .filter_map(|entry| entry["runId"].as_str())
            .filter(|run| run.starts_with("cron:"))
            .collect();
        assert!(scheduled.len() >= 3, "{entries:?}");
        let count = scheduled.len();
        scheduled.sort_unstable();
        scheduled.dedup();
        assert_eq!(scheduled.len(), count, "a slot ran twice: {entries:?}");
        let removed = call(&mut socket, "rm", "cron.remove", json!({"id": job_id})).await;
        assert_eq!(removed["payload"], json!({"ok": true, "removed": true}));
        let gone = call(&mut socket, "get", "cron.get", json!({"id": job_id})).await;
        assert_eq!(
            gone["error"]["details"]["code"], "CRON_JOB_NOT_FOUND",
            "{gone}"
        );
    });
    stop(running);
    let check = clawback(dir.path(), &["snapshot", "restore", "--check"]);
    let text = stdout(&check);
    assert!(
        text.contains("check: a full rebuild from seq 0 gives the same state hash"),
        "{text}"
    );
}

#[test]
fn one_shot_jobs_delete_themselves_and_unrunnable_jobs_are_refused() {
    let (_server, _dir, running, address) = crate::agent::mock_gateway();
    runtime().block_on(async {
        let (mut socket, _) = connected(&address, &["operator.admin"]).await;
        let added = call(
            &mut socket,
            "once",
            "cron.add",
            isolated_job("once", json!({"kind": "at", "at": "1s"}), "just once"),
        )
        .await;
        let job = &added["payload"];
        let id = job["id"].as_str().expect("id").to_owned();
        assert_eq!(job["deleteAfterRun"], true, "{job}");
        assert_eq!(job["schedule"]["kind"], "at");
        assert!(job["schedule"]["at"].as_str().unwrap().ends_with('Z'));
        let finished = cron_event(&mut socket, |e| {
            e["jobId"] == id && e["action"] == "finished"
        })
        .await;
        assert_eq!(finished["status"], "ok", "{finished}");
        cron_event(&mut socket, |e| {
            e["jobId"] == id && e["action"] == "removed"
        })
        .await;
        let listed = call(
            &mut socket,
            "list",
            "cron.list",
            json!({"includeDisabled": true}),
        )
        .await;
        assert_eq!(listed["payload"]["total"], 0, "{listed}");

        // A main-session system event wakes the agent with a System line.
        let event_job = json!({
            "name": "reminder", "schedule": {"kind": "at", "at": "2000-01-01T00:00:00Z"},
            "sessionTarget": "main", "wakeMode": "now",
            "payload": {"kind": "systemEvent", "text": "check the calendar"},
        });
        let added = call(&mut socket, "sys", "cron.add", event_job).await;
        let id = added["payload"]["id"].as_str().expect("id").to_owned();
        let finished = cron_event(&mut socket, |e| {
            e["jobId"] == id && e["action"] == "finished"
        })
        .await;
        assert_eq!(finished["sessionKey"], "agent:main:main", "{finished}");
        assert_eq!(
            finished["summary"],
            "Hello from the mock. You said: System: check the calendar"
        );

        // What clawback cannot run is refused, saying why.
        let refused = |edit: Value| {
            let mut job = isolated_job("x", json!({"kind": "every", "everyMs": 60000}), "m");
            for (key, value) in edit.as_object().unwrap() {
                job[key] = value.clone();
            }
            job
        };
        for (id, edit, expected) in [
            (
                "c1",
                json!({"payload": {"kind": "command", "argv": ["ls"]}}),
                "exec tool",
            ),
            ("c2", json!({"wakeMode": "next-heartbeat"}), "heartbeats"),
            (
                "c3",
                json!({"schedule": {"kind": "cron", "expr": "61 * * * *"}}),
                "at /schedule/expr",
            ),
            (
                "c4",
                json!({"schedule": {"kind": "on-exit", "command": "x"}}),
                "supervised process",
            ),
            (
                "c5",
                json!({"delivery": {"mode": "webhook", "to": "http://127.0.0.1:9/"}}),
                "webhook",
            ),
            ("c6", json!({"bogus": true}), "unexpected property 'bogus'"),
        ] {
            let job = refused(edit);
            let answer = call(&mut socket, id, "cron.add", job).await;
            assert_eq!(answer["ok"], false, "{answer}");
            assert_eq!(answer["error"]["code"], "INVALID_REQUEST");
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(
                message.starts_with("invalid cron.add params: "),
                "{message}"
            );
            assert!(message.contains(expected), "{message}");
        }
        let missing = call(&mut socket, "m", "cron.run", json!({"id": "nope"})).await;
        assert_eq!(missing["error"]["details"]["code"], "CRON_JOB_NOT_FOUND");
        let status = call(&mut socket, "st", "cron.status", json!({})).await;
        assert_eq!(status["payload"]["enabled"], true, "{status}");
        // Both one-shot jobs deleted themselves.
        assert_eq!(status["payload"]["jobs"], 0, "{status}");
        // A read-only operator may list but not add.
        let (mut reader, _) = connected(&address, &["operator.read"]).await;
        let listed = call(&mut reader, "l", "cron.list", json!({})).await;
        assert_eq!(listed["ok"], true);
        let denied = call(&mut reader, "a", "cron.add", json!({})).await;
        assert_eq!(denied["ok"], false);
    });
    stop(running);
}

#[test]
fn wake_and_system_events_tell_the_agent_now() {
    let (_server, _dir, running, address) = crate::agent::mock_gateway();
    runtime().block_on(async {
        let (mut socket, _) = connected(&address, &["operator.admin"]).await;
        let woken = call(
            &mut socket,
            "w",
            "wake",
            json!({"mode": "now", "text": "the build finished", "extra": "kept open"}),
        )
        .await;
        assert_eq!(woken["payload"], json!({"ok": true}), "{woken}");
        let event = call(
            &mut socket,
            "e",
            "system-event",
            json!({"text": "door opened", "wake": true, "sessionKey": "agent:main:front"}),
        )
        .await;
        assert_eq!(event["payload"], json!({"ok": true}), "{event}");
        // Both turns ran, each in its session, with the text as a System line.
        let deadline = Instant::now() + Duration::from_secs(20);
        for (key, text) in [
            ("agent:main:main", "System: the build finished"),
            ("agent:main:front", "System: door opened"),
        ] {
            loop {
                let history =
                    call(&mut socket, "h", "chat.history", json!({"sessionKey": key})).await;
                let messages = history["payload"]["messages"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                if messages.len() >= 2 {
                    assert_eq!(messages[0]["role"], "user");
                    assert_eq!(messages[0]["content"][0]["text"], text, "{history}");
                    assert_eq!(
                        messages[1]["content"][0]["text"],
                        format!("Hello from the mock. You said: {text}")
                    );
                    break;
                }
                assert!(Instant::now() < deadline, "no turn in {key}: {history}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let later = call(
            &mut socket,
            "n",
            "wake",
            json!({"mode": "next-heartbeat", "text": "later"}),
        )
        .await;
        assert_eq!(later["error"]["code"], "UNAVAILABLE", "{later}");
        assert!(
            later["error"]["message"]
                .as_str()
                .unwrap()
                .contains("heartbeats")
        );
        let contradicting = call(
            &mut socket,
            "c",
            "wake",
            json!({"mode": "now", "text": "x", "sessionKey": "agent:ops:main", "agentId": "main"}),
        )
        .await;
        assert_eq!(
            contradicting["error"]["code"], "INVALID_REQUEST",
            "{contradicting}"
        );
        let usage = call(&mut socket, "u", "usage.status", json!({})).await;
        assert_eq!(usage["payload"]["providers"], json!([]), "{usage}");
        assert!(usage["payload"]["updatedAt"].as_i64().is_some());
    });
    stop(running);
}

/// A gateway killed (SIGKILL) while a cron run is in progress: after the
/// restart that run shows as interrupted, is never run again, and the
/// schedule goes on with its next slot.
#[test]
fn a_run_cut_off_by_a_crash_is_interrupted_not_repeated() {
    let (_server, dir, running, address) = crate::agent::mock_gateway();
    let (job_id, cut_off) = runtime().block_on(async {
        let (mut socket, _) = connected(&address, &["operator.admin"]).await;
        let mut job = isolated_job(
            "slow",
            json!({"kind": "every", "everyMs": 1500}),
            "take your time",
        );
        job["payload"]["model"] = json!("mock/slow-model");
        let added = call(&mut socket, "add", "cron.add", job).await;
        let id = added["payload"]["id"].as_str().expect("id").to_owned();
        let started = cron_event(&mut socket, |e| {
            e["jobId"] == id && e["action"] == "started"
        })
        .await;
        (id, started["runId"].as_str().expect("runId").to_owned())
    });
    // Mid-reply (the slow model streams for about a second): SIGKILL.
    drop(running);

    let (running, address, _) =
        crate::gateway::start_with(dir.path(), &["--token", crate::protocol::TOKEN]);
    runtime().block_on(async {
        let (mut socket, _) = connected(&address, &["operator.admin"]).await;
        let next = cron_event(&mut socket, |e| {
            e["jobId"] == job_id.as_str() && e["action"] == "finished"
        })
        .await;
        assert_ne!(next["runId"], cut_off.as_str(), "the cut-off run ran again");
        call(
            &mut socket,
            "off",
            "cron.update",
            json!({"id": job_id, "patch": {"enabled": false}}),
        )
        .await;
        let runs = call(
            &mut socket,
            "runs",
            "cron.runs",
            json!({"id": job_id, "sortDir": "asc", "limit": 200}),
        )
        .await;
        let entries = runs["payload"]["entries"]
            .as_array()
            .expect("entries")
            .clone();
        let first = &entries[0];
        assert_eq!(first["runId"], cut_off.as_str(), "{entries:?}");
        assert_eq!(first["status"], "error");
        assert!(
            first["error"]
                .as_str()
                .unwrap_or("")
                .contains("interrupted"),
            "{first}"
        );
        let ids: Vec<&str> = entries.iter().filter_map(|e| e["runId"].as_str()).collect();
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "a run id twice: {ids:?}");
    });
    stop(running);
    let audit = clawback(dir.path(), &["audit", "verify"]);
    assert!(audit.status.success(), "{}", stdout(&audit));
}
