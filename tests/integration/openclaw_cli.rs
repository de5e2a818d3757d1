//! The real OpenClaw CLI (npm `openclaw@2026.9.6`) against clawback on
//! loopback: the drop-in promise, checked with OpenClaw's own client.
//!
//! The CLI and the Node it needs are installed from the npm registry by
//! tests/openclaw/install.sh into the target dir on first use (about 30 s
//! and 650 MB once; later runs only check). Each call runs with a throwaway
//! HOME so nothing touches the user's OpenClaw setup.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

use crate::gateway::{start_with, stop};
use crate::support::{clawback, install, printed, stdout};

const TOKEN: &str = "cli-token-5d1e";

struct Cli {
    node_bin_dir: PathBuf,
    openclaw: PathBuf,
}

/// Installs (or finds) the CLI once per test run.
fn cli() -> &'static Cli {
    static CLI: OnceLock<Cli> = OnceLock::new();
    CLI.get_or_init(|| {
        let text = install(
            "tests/openclaw/install.sh",
            "openclaw-cli",
            "npm and the npm registry",
        );
        Cli {
            node_bin_dir: printed(&text, "NODE_BIN_DIR="),
            openclaw: printed(&text, "OPENCLAW="),
        }
    })
}

/// `openclaw gateway call <method> --url ws://ADDRESS --token T --json`.
fn gateway_call(address: &str, method: &str, token: &str) -> (Output, Value) {
    openclaw(address, &["gateway", "call", method], token)
}

/// `openclaw <command...> --url ws://ADDRESS --token T --json`.
fn openclaw(address: &str, command: &[&str], token: &str) -> (Output, Value) {
    let method = command.join(" ");
    let output = openclaw_raw(address, command, token);
    let json = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "openclaw {method} printed no JSON ({error}):\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output, json)
}

/// The same, with the output as it came (some commands print JSON lines).
fn openclaw_raw(address: &str, command: &[&str], token: &str) -> Output {
    run_openclaw(address, command, token, true)
}

/// Commands without `--url` (`openclaw agent`) find the gateway through
/// OpenClaw's environment variables instead.
fn run_openclaw(address: &str, command: &[&str], token: &str, url_flags: bool) -> Output {
    let cli = cli();
    let home = tempfile::tempdir().expect("home");
    let path = format!(
        "{}:{}",
        cli.node_bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut process = Command::new(&cli.openclaw);
    process.args(command);
    if url_flags {
        process
            .arg("--url")
            .arg(format!("ws://{address}"))
            .args(["--token", token]);
    } else {
        process
            .env("OPENCLAW_GATEWAY_URL", format!("ws://{address}"))
            .env("OPENCLAW_GATEWAY_TOKEN", token);
    }
    process
        .arg("--json")
        .env("PATH", path)
        .env("HOME", home.path())
        .env("OPENCLAW_STATE_DIR", home.path().join(".openclaw"))
        .output()
        .expect("openclaw runs")
}

#[test]
fn the_openclaw_cli_calls_clawback_and_gets_openclaws_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let llm = crate::llm_server::LlmServer::start();
    // OpenClaw's own minimal config shape, with a local OpenAI-format model.
    std::fs::write(
        dir.path().join("config.json5"),
        format!(
            "{{ agents: {{ defaults: {{ model: {{ primary: 'mock/mock-model' }} }} }},\n  models: {{ providers: {{ mock: {{ baseUrl: '{}', apiKey: '{}', api: 'openai-completions', models: [{{ id: 'mock-model', name: 'Mock' }}] }} }} }} }}\n",
            llm.base_url(),
            crate::llm_server::API_KEY
        ),
    )
    .expect("config");
    let (running, address, _) = start_with(dir.path(), &["--token", TOKEN]);

    let (output, health) = gateway_call(&address, "health", TOKEN);
    assert!(output.status.success(), "{health}");
    assert_eq!(health["ok"], true);
    assert_eq!(health["defaultAgentId"], "main");

    let (output, status) = gateway_call(&address, "status", TOKEN);
    assert!(output.status.success(), "{status}");
    assert_eq!(status["runtimeVersion"], env!("CARGO_PKG_VERSION"));

    let (output, presence) = gateway_call(&address, "system-presence", TOKEN);
    assert!(output.status.success(), "{presence}");
    let entries = presence
        .as_array()
        .expect("a bare array, as OpenClaw returns");
    assert!(
        entries
            .iter()
            .any(|entry| entry["mode"] == "gateway" && entry["reason"] == "self")
    );
    assert!(
        entries
            .iter()
            .any(|entry| entry["mode"] == "cli" && entry["version"] == "2026.9.6"),
        "the CLI's own connection is present: {presence}"
    );

    // OpenClaw's own commands that call these methods under the hood.
    for command in [
        &["system", "presence"][..],
        &["nodes", "list"],
        &["devices", "list"],
    ] {
        let (output, value) = openclaw(&address, command, TOKEN);
        assert!(output.status.success(), "openclaw {command:?}: {value}");
        if command[0] != "system" {
            assert_eq!(value["pending"], serde_json::json!([]), "{value}");
            assert!(value["paired"].is_array(), "{value}");
        }
    }
    // The CLI validates cron.list's paging metadata strictly.
    let (output, cron) = openclaw(&address, &["cron", "list"], TOKEN);
    assert!(output.status.success(), "openclaw cron list: {cron}");
    assert_eq!(cron["jobs"], serde_json::json!([]), "{cron}");
    assert_eq!(cron["total"], 0);
    // A job's life through OpenClaw's own cron commands.
    let (output, job) = openclaw(
        &address,
        &[
            "cron",
            "add",
            "--name",
            "nightly",
            "--cron",
            "0 3 * * *",
            "--tz",
            "UTC",
            "--session",
            "isolated",
            "--message",
            "summarize",
            "--no-deliver",
        ],
        TOKEN,
    );
    assert!(output.status.success(), "openclaw cron add: {job}");
    let id = job["id"].as_str().expect("job id").to_owned();
    assert_eq!(job["schedule"]["expr"], "0 3 * * *", "{job}");
    assert_eq!(
        job["nextRunAtMs"].as_i64().unwrap() % 86_400_000,
        3 * 3_600_000
    );
    let (output, cron) = openclaw(&address, &["cron", "list"], TOKEN);
    assert!(output.status.success(), "{cron}");
    assert_eq!(cron["jobs"][0]["id"], id.as_str(), "{cron}");
    let (output, run) = openclaw(&address, &["cron", "run", &id], TOKEN);
    assert!(output.status.success(), "{run}");
    assert_eq!(run["enqueued"], true, "{run}");
    let (output, status) = openclaw(&address, &["cron", "status"], TOKEN);
    assert!(output.status.success(), "{status}");
    assert_eq!(status["jobs"], 1, "{status}");
    let (output, removed) = openclaw(&address, &["cron", "rm", &id], TOKEN);
    assert!(output.status.success(), "{removed}");
    assert_eq!(removed["removed"], true, "{removed}");

    let (output, config) = gateway_call(&address, "config.get", TOKEN);
    assert!(output.status.success(), "{config}");
    assert_eq!(config["valid"], true, "{config}");
    assert_eq!(
        config["config"]["models"]["providers"]["mock"]["apiKey"],
        "__OPENCLAW_REDACTED__"
    );
    assert!(!config.to_string().contains(crate::llm_server::API_KEY));

    // The agent, as OpenClaw's CLI runs it: accepted, then the final reply.
    let params = r#"{"message":"hello agent","idempotencyKey":"cli-run-1"}"#;
    let (output, run) = openclaw(
        &address,
        &[
            "gateway",
            "call",
            "agent",
            "--expect-final",
            "--params",
            params,
        ],
        TOKEN,
    );
    assert!(output.status.success(), "{run}");
    assert_eq!(run["status"], "ok", "{run}");
    assert_eq!(
        run["result"]["payloads"][0]["text"],
        "Hello from the mock. You said: hello agent"
    );
    let output = run_openclaw(
        &address,
        &["agent", "--agent", "main", "--message", "hi"],
        TOKEN,
        false,
    );
    let reply = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "openclaw agent: {reply}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        reply.contains("Hello from the mock. You said: hi"),
        "{reply}"
    );

    let (output, models) = gateway_call(&address, "models.list", TOKEN);
    assert!(output.status.success(), "{models}");
    assert_eq!(models["models"][0]["id"], "mock-model", "{models}");
    assert_eq!(models["models"][0]["provider"], "mock");
    assert_eq!(models["models"][0]["tags"], serde_json::json!(["default"]));

    let (output, sessions) = gateway_call(&address, "sessions.list", TOKEN);
    assert!(output.status.success(), "{sessions}");
    // The two runs above went to the main session: four messages.
    assert_eq!(
        sessions["sessions"][0]["key"], "agent:main:main",
        "{sessions}"
    );
    assert_eq!(sessions["sessions"][0]["messageCount"], 4, "{sessions}");
    assert_eq!(sessions["defaults"]["model"], "mock-model");

    // `openclaw logs` pages the gateway's log file through logs.tail and
    // parses each line as OpenClaw's own log format.
    let output = openclaw_raw(&address, &["logs", "--limit", "500"], TOKEN);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "openclaw logs: {text}");
    let records: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON line"))
        .collect();
    assert_eq!(records[0]["type"], "meta", "{text}");
    // Libraries' debug and trace lines (an HTTP call to the model server
    // made a dozen) stay out of the file.
    assert!(
        records
            .iter()
            .all(|record| !matches!(record["level"].as_str(), Some("trace" | "debug"))),
        "{text}"
    );
    assert!(
        records[0]["file"]
            .as_str()
            .is_some_and(|file| file.ends_with(".log")),
        "{text}"
    );
    assert!(
        records.iter().any(|record| record["type"] == "log"
            && record["subsystem"] == "gateway"
            && record["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("listening on"))),
        "{text}"
    );

    // A method OpenClaw has and clawback does not yet: a clear refusal.
    let (output, refused) = gateway_call(&address, "tts.status", TOKEN);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(refused["ok"], false);
    assert_eq!(refused["error"]["code"], "UNAVAILABLE");

    // A wrong token: OpenClaw's error, as the CLI reports it.
    let (output, wrong) = gateway_call(&address, "health", "wrong-token");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(wrong["error"]["type"], "gateway_request_error");
    assert_eq!(wrong["error"]["code"], "INVALID_REQUEST");
    assert_eq!(wrong["error"]["details"]["code"], "AUTH_TOKEN_MISMATCH");

    stop(running);
    let tail = stdout(&clawback(
        dir.path(),
        &["log", "tail", "-n", "200", "--json"],
    ));
    let methods = |kind: &str| -> Vec<String> {
        tail.lines()
            .map(|line| serde_json::from_str::<Value>(line).expect("JSON line"))
            .filter(|record| record["kind"] == kind)
            // The export names the variant: {"event": {"RpcAnswered": {...}}}.
            .filter_map(|record| {
                let event = record["event"].as_object()?.values().next()?.clone();
                Some(event["method"].as_str()?.to_owned())
            })
            .collect()
    };
    let answered = methods("rpc.answered");
    assert_eq!(
        methods("rpc.received"),
        answered,
        "every request has its outcome"
    );
    for method in [
        "health",
        "status",
        "system-presence",
        "config.get",
        "models.list",
        "sessions.list",
        "agent",
        "tts.status",
        "node.pair.list",
        "node.list",
        "device.pair.list",
        "cron.list",
    ] {
        assert!(
            answered.iter().any(|answered| answered == method),
            "{method} is on record: {answered:?}"
        );
    }
    assert!(!tail.contains(TOKEN), "the token never reaches the log");
    assert!(
        !tail.contains(crate::llm_server::API_KEY),
        "nor the provider key"
    );
}

/// OpenClaw's TUI, in a pseudo-terminal (`script`), chats with clawback:
/// it connects, subscribes, sends the `--message`, and shows the model's
/// reply.
#[test]
fn the_openclaw_tui_chats_with_clawback() {
    use std::io::Read;
    use std::sync::{Arc, Mutex};

    let dir = tempfile::tempdir().expect("tempdir");
    let llm = crate::llm_server::LlmServer::start();
    crate::agent::write_config(dir.path(), &llm);
    let (running, address, _) = start_with(dir.path(), &["--token", TOKEN]);
    let cli = cli();
    let home = tempfile::tempdir().expect("home");
    let command = format!(
        "'{}' tui --url ws://{address} --token {TOKEN} --message 'hi from the tui'",
        cli.openclaw.display()
    );
    let path = format!(
        "{}:{}",
        cli.node_bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .env("PATH", path)
        .env("HOME", home.path())
        .env("OPENCLAW_STATE_DIR", home.path().join(".openclaw"))
        .env("TERM", "xterm-256color")
        .env("COLUMNS", "120")
        .env("LINES", "40")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("script (util-linux) runs the TUI in a pseudo-terminal");
    // Kept open: the TUI's terminal must not see end of input.
    let _keyboard = child.stdin.take();
    let screen = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let screen = screen.clone();
        let mut output = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(read) = output.read(&mut buffer) {
                if read == 0 {
                    break;
                }
                screen
                    .lock()
                    .expect("screen")
                    .extend_from_slice(&buffer[..read]);
            }
        })
    };
    let reply = "Hello from the mock. You said: hi from the tui";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let shown = loop {
        let text = plain(&screen.lock().expect("screen"));
        if text.contains(reply) || std::time::Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
    stop(running);
    assert!(
        shown.contains(reply),
        "the TUI never showed the reply; its screen:\n{shown}"
    );
    assert!(shown.contains("hi from the tui"), "{shown}");
}

/// Terminal output without its escape sequences (CSI and OSC).
fn plain(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        match chars.next() {
            // CSI: parameters, then one final byte in @..~.
            Some('[') => {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            // OSC: up to BEL or ST.
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\u{7}' || (c == '\u{1b}' && chars.peek() == Some(&'\\')) {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    out
}
