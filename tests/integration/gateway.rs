//! `clawback gateway run`: starts on an empty or existing state dir, serves
//! health, records its start and stop, snapshots on SIGTERM and restores from
//! that snapshot on the next start.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{binary, clawback, stdout};

/// A running gateway; killed if a test fails before stopping it, so no
/// process outlives the test run.
pub struct Running(Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts the gateway on an ephemeral port; returns it and its address.
fn start(state_dir: &std::path::Path) -> (Running, String, Vec<String>) {
    start_with(state_dir, &[])
}

/// [`start`] with extra `gateway run` arguments.
pub fn start_with(state_dir: &std::path::Path, extra: &[&str]) -> (Running, String, Vec<String>) {
    start_bound(state_dir, "127.0.0.1:0", extra)
}

/// Starts a gateway listening on `bind`.
pub fn start_bound(
    state_dir: &std::path::Path,
    bind: &str,
    extra: &[&str],
) -> (Running, String, Vec<String>) {
    start_env(state_dir, bind, extra, None)
}

/// The AWS variables a gateway under test must not inherit from the
/// machine running the tests.
const AWS_VARIABLES: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_BEARER_TOKEN_BEDROCK",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
];

/// Starts a gateway whose AWS environment is exactly `aws` (none of the
/// machine's), with `HOME` in the state dir so no `~/.aws` is read.
pub fn start_with_aws(
    state_dir: &std::path::Path,
    extra: &[&str],
    aws: &[(&str, &str)],
) -> (Running, String, Vec<String>) {
    start_env(state_dir, "127.0.0.1:0", extra, Some(aws))
}

fn start_env(
    state_dir: &std::path::Path,
    bind: &str,
    extra: &[&str],
    aws: Option<&[(&str, &str)]>,
) -> (Running, String, Vec<String>) {
    let mut command = Command::new(binary());
    command
        .arg("--state-dir")
        .arg(state_dir)
        .args(["gateway", "run", "--bind", bind])
        .args(extra)
        .stdout(Stdio::piped());
    if let Some(aws) = aws {
        for name in AWS_VARIABLES {
            command.env_remove(name);
        }
        command.env("HOME", state_dir);
        command.envs(aws.iter().copied());
    }
    let mut child = command.spawn().expect("gateway starts");
    let stdout = child.stdout.take().expect("stdout");
    let running = Running(Some(child));
    // Lines arrive through a thread so that waiting for them is bounded; the
    // thread keeps draining stdout so the gateway never blocks on the pipe.
    let (sender, lines_received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                // The test is done with the output; keep draining.
            }
        }
    });
    let mut lines = Vec::new();
    loop {
        let line = lines_received
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|error| panic!("gateway did not start ({error}): {lines:?}"));
        if let Some(rest) = line.strip_prefix("clawback gateway listening on http://") {
            let address = rest.split(' ').next().expect("address").to_owned();
            lines.push(line);
            return (running, address, lines);
        }
        lines.push(line);
    }
}

pub fn stop(mut running: Running) {
    let mut child = running.0.take().expect("running");
    // SAFETY: plain kill(2) on a child we own.
    let result = unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(result, 0, "SIGTERM delivered");
    // Bounded: a gateway that does not stop must fail the test, not hang CI.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the gateway did not exit within 30 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "gateway exit status {status}");
}

fn health(address: &str) -> serde_json::Value {
    get_json(address, "/healthz").1
}

/// `GET address path`: status and JSON body.
fn get_json(address: &str, path: &str) -> (u16, serde_json::Value) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let response = crate::support::http_client(Duration::from_secs(5))
            .get(format!("http://{address}{path}"))
            .send()
            .await
            .expect("answers");
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON"))
    })
}

#[test]
fn gateway_starts_on_an_empty_dir_serves_health_and_restores_after_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (child, address, lines) = start(dir.path());
    assert!(
        lines[0].starts_with("recovery: the log is empty"),
        "{lines:?}"
    );
    let first = health(&address);
    assert_eq!(first["ok"], true);
    assert_eq!(first["status"], "live", "OpenClaw's shape: {first}");
    let ready = get_json(&address, "/readyz");
    assert_eq!(
        (ready.0, &ready.1["ready"], &ready.1["failing"]),
        (200, &serde_json::json!(true), &serde_json::json!([]))
    );
    assert_eq!(
        first["log"]["nextSeq"], 2,
        "gateway.started and the gateway's presence are recorded: {first}"
    );
    stop(child);

    let (child, address, lines) = start(dir.path());
    assert!(
        lines[0].starts_with("recovery: log ends at seq 3"),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with("state restored at seq 4 (seq 4 from a snapshot, 0 tail records)"),
        "{lines:?}"
    );
    assert_eq!(health(&address)["log"]["nextSeq"], 6);
    stop(child);

    let tail = stdout(&clawback(dir.path(), &["log", "tail"]));
    let kinds: Vec<&str> = tail
        .lines()
        .map(|line| line.rsplit("  ").next().unwrap_or(""))
        .collect();
    // Each stop records the stop, then a checkpoint that covers it.
    assert_eq!(kinds.len(), 8, "{tail}");
    assert!(
        kinds[2].starts_with("gateway.stopped") && kinds[6].starts_with("gateway.stopped"),
        "{tail}"
    );
    assert!(
        kinds[3].starts_with("merkle.checkpoint") && kinds[7].starts_with("merkle.checkpoint"),
        "{tail}"
    );
    // The gateway snapshotted its live state on each stop; audit folds the
    // log through the reducers and compares: live state == rebuild.
    let audit = clawback(dir.path(), &["audit", "verify"]);
    let report = stdout(&audit);
    assert!(audit.status.success(), "{report}");
    assert!(
        report.contains("snapshot-00000000000000000008.cbsnap: OK (covers seqs below 8)"),
        "{report}"
    );
}

#[test]
fn a_second_gateway_on_the_same_state_dir_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (child, _, _) = start(dir.path());
    let second = Command::new(binary())
        .arg("--state-dir")
        .arg(dir.path())
        .args(["gateway", "run", "--bind", "127.0.0.1:0"])
        .output()
        .expect("runs");
    assert_eq!(second.status.code(), Some(2));
    let message = String::from_utf8_lossy(&second.stderr);
    assert!(
        message.contains("is locked by another process: stop the other clawback process first"),
        "{message}"
    );
    stop(child);
}
