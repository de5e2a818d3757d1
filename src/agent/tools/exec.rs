//! `exec`: a shell command (`sh -c`) in the agent's workspace, run only if
//! the agent's exec policy allows it, or a person does.
//!
//! Why the decision is made on the canonical argv and not on the text:
//! see `exec::canonical`. Before a command runs, `authorize` reduces it to
//! its simple commands and asks the policy (`exec::policy`): `deny`
//! refuses; an allowlisted command, or one a live allow-always grant
//! covers, runs (the grant's use is recorded, `approval.grant.applied`);
//! otherwise, when the policy asks, `approval.requested` is recorded (the
//! fanout pushes `exec.approval.requested` to operator clients from it)
//! and the call waits for the decision or the expiry, which is a deny
//! unless `askFallback` says otherwise. Those events land between the
//! call's `tool.call.started` and `tool.call.finished`.
//!
//! The command inherits only a small safe set of the gateway's
//! environment (`INHERITED_ENV`: no provider keys or tokens); the call's
//! `env` overrides are part of what is approved (`Call::approved_text`).
//!
//! Bounds: the command runs at most `timeoutSeconds` (default 30 s, at
//! most 600 s), in its own process group, which is killed (SIGKILL) on
//! timeout, when the run is aborted (the call's future is dropped), and
//! when the shell exits (nothing it started outlives the call); at most
//! 1 MiB of output is kept (the model gets `OUTPUT_BYTES_MAX` of it).

use std::io::Read as _;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use clawback_events::event::{ApprovalGrantApplied, ApprovalRequested, Event};
use serde_json::{Value, json};

use super::{AuthorizeFuture, Context, Tool, ToolFuture};
use crate::exec::canonical;
use crate::exec::policy::{self, Verdict};
use crate::gateway::protocol::methods::approvals::{OPAQUE_HASH_PREFIX, argv_hash};

pub const TIMEOUT_SECONDS_DEFAULT: u64 = 30;
pub const TIMEOUT_SECONDS_MAX: u64 = 600;
/// How long a person has to decide (`tools.exec.approvalTimeoutMs`, a
/// clawback key, bounded to 1 s ..= 1 h); expiry is a deny.
pub const APPROVAL_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5 * 60);
const APPROVAL_TIMEOUT_MS_MIN: u64 = 1_000;
const APPROVAL_TIMEOUT_MS_MAX: u64 = 60 * 60 * 1000;
/// The most output kept from one command (the rest is counted, not kept).
const CAPTURE_BYTES_MAX: usize = 1024 * 1024;
/// How long the output may trail the shell's exit (its group is killed
/// first, so only a process outside it could hold the pipe).
const OUTPUT_GRACE: Duration = Duration::from_secs(2);

pub struct Exec;

impl Tool for Exec {
    fn name(&self) -> &'static str {
        "exec"
    }

    fn description(&self) -> &'static str {
        "Run a shell command (sh -c) in the agent's workspace and return its output (stdout and \
         stderr together). Subject to the agent's exec approval policy: a command may be refused \
         or wait for a person's approval. `timeoutSeconds` bounds its run time (default 30)."
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["command"],
            "properties": {
                "command": {"type": "string", "minLength": 1, "maxLength": canonical::COMMAND_BYTES_MAX,
                            "description": "Shell command."},
                "workdir": {"type": "string", "maxLength": 4096,
                            "description": "Working directory, relative to the workspace; omit for the workspace."},
                "env": {"type": "object",
                        "description": "Environment overrides (string values; PATH and loader variables are refused)."},
                "timeoutSeconds": {"type": "integer", "minimum": 1, "maximum": TIMEOUT_SECONDS_MAX,
                                   "description": "Process lifetime in seconds; default 30."},
                "ask": {"type": "string", "enum": ["off", "on-miss", "always"],
                        "description": "Ask a person more often than the policy does (never less)."},
            },
        })
    }

    /// Bounded by `timeoutSeconds` itself; the registry's bound is a
    /// backstop a little later.
    fn timeout(&self, arguments: &Value) -> Duration {
        Duration::from_secs(timeout_seconds(arguments) + 5)
    }

    fn authorize(&self, context: Arc<Context>, arguments: &Value) -> AuthorizeFuture {
        let arguments = arguments.clone();
        Box::pin(async move { authorize(&context, &arguments).await })
    }

    fn run(&self, context: Arc<Context>, arguments: Value) -> ToolFuture {
        Box::pin(async move {
            let call = Call::from_arguments(&context, &arguments)?;
            run(call, Duration::from_secs(timeout_seconds(&arguments))).await
        })
    }
}

fn timeout_seconds(arguments: &Value) -> u64 {
    arguments["timeoutSeconds"]
        .as_u64()
        .unwrap_or(TIMEOUT_SECONDS_DEFAULT)
        .clamp(1, TIMEOUT_SECONDS_MAX)
}

/// One call's checked arguments.
struct Call {
    command: String,
    workdir: PathBuf,
    env: Vec<(String, String)>,
}

/// What the command inherits from the gateway's environment: enough to
/// behave like a shell, none of the provider keys or tokens the gateway
/// itself may hold.
const INHERITED_ENV: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "LC_CTYPE", "TERM", "TZ",
    "TMPDIR",
];

impl Call {
    /// The command as it really runs, for approval: with `env` overrides,
    /// `env NAME=value ... sh -c 'command'`, so the overrides are part of
    /// what the reviewer reads and of the canonical hash (a grant for
    /// `git fetch` must not cover it with `GIT_SSH_COMMAND` set).
    fn approved_text(&self) -> String {
        if self.env.is_empty() {
            return self.command.clone();
        }
        let assignments: Vec<String> = self
            .env
            .iter()
            .map(|(name, value)| format!("{name}={}", canonical::quote(value)))
            .collect();
        format!(
            "env {} sh -c {}",
            assignments.join(" "),
            canonical::quote(&self.command)
        )
    }
}

impl Call {
    fn from_arguments(context: &Context, arguments: &Value) -> Result<Call, String> {
        let command = arguments["command"].as_str().unwrap_or_default().to_owned();
        if command.trim().is_empty() {
            return Err("the command is empty".to_owned());
        }
        std::fs::create_dir_all(&context.workspace).map_err(|error| {
            format!(
                "the agent's workspace {} cannot be created: {error}",
                context.workspace.display()
            )
        })?;
        let workdir = match arguments["workdir"].as_str().filter(|dir| !dir.is_empty()) {
            Some(dir) => super::read::confine(&context.workspace, dir)?,
            None => std::fs::canonicalize(&context.workspace)
                .map_err(|error| format!("the agent's workspace cannot be opened: {error}"))?,
        };
        if !workdir.is_dir() {
            return Err(format!("{} is not a directory", workdir.display()));
        }
        let mut env = Vec::new();
        if let Some(object) = arguments.get("env").and_then(Value::as_object) {
            for (name, value) in object {
                let Some(value) = value.as_str() else {
                    return Err(format!("env.{name} must be a string"));
                };
                let upper = name.to_ascii_uppercase();
                if upper == "PATH" || upper.starts_with("LD_") || upper.starts_with("DYLD_") {
                    return Err(format!(
                        "env.{name} is refused: PATH and loader overrides could swap the binary that runs"
                    ));
                }
                let valid_name = !name.is_empty()
                    && !name.starts_with(|c: char| c.is_ascii_digit())
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !valid_name || value.contains('\0') {
                    return Err(format!("env.{name} is not a valid variable"));
                }
                env.push((name.clone(), value.to_owned()));
            }
        }
        Ok(Call {
            command,
            workdir,
            env,
        })
    }
}

/// The policy's decision for this call, asking a person when it says so.
async fn authorize(context: &Context, arguments: &Value) -> Result<(), String> {
    let call = Call::from_arguments(context, arguments)?;
    let command = call.approved_text();
    let parsed = canonical::parse(&command);
    let cwd = call.workdir.to_string_lossy().into_owned();
    let hash = argv_hash(&parsed, &cwd);
    let path_env = std::env::var("PATH").unwrap_or_default();
    let now = crate::gateway::protocol::methods::now_ms();
    let (effective, grant) = {
        let state = context.state.read().expect("state lock");
        let asked_for = serde_json::from_value::<policy::Ask>(arguments["ask"].clone()).ok();
        let effective = policy::effective(
            state
                .approvals
                .policy
                .as_ref()
                .map(|policy| policy.policy.as_str()),
            &context.agent_id,
        )
        .hardened(asked_for);
        let grant = (!hash.starts_with(OPAQUE_HASH_PREFIX))
            .then(|| state.approvals.grant_for(&hash, now))
            .flatten()
            .map(|grant| grant.approval_id.clone());
        (effective, grant)
    };
    let allowlisted = policy::allowlisted(&effective, &parsed, &call.workdir, &path_env);
    match policy::decide(&effective, allowlisted, grant.is_some()) {
        Verdict::Deny(reason) => Err(reason),
        Verdict::Run => match grant {
            Some(grant_approval_id) if !allowlisted => {
                context
                    .approver
                    .record(Event::ApprovalGrantApplied(ApprovalGrantApplied {
                        request_id: uuid::Uuid::new_v4().to_string(),
                        grant_approval_id,
                        command,
                        argv_hash: hash,
                        session_key: Some(context.session_key.clone()),
                        agent_id: Some(context.agent_id.clone()),
                    }))
                    .await
            }
            _ => Ok(()),
        },
        Verdict::Ask => {
            let timeout = approval_timeout(context.tools_config.as_ref());
            let request = ApprovalRequested {
                approval_id: uuid::Uuid::new_v4().to_string(),
                kind: "exec".to_owned(),
                command,
                argv_hash: hash,
                session_key: Some(context.session_key.clone()),
                agent_id: Some(context.agent_id.clone()),
                node_id: None,
                expires_at_ms: now + timeout.as_millis() as i64,
            };
            let id = request.approval_id.clone();
            let outcome = context.approver.ask(request, timeout).await?;
            match outcome.as_deref() {
                Some("allow-once" | "allow-always") => Ok(()),
                Some("deny") => Err(format!("a reviewer denied it (approval {id})")),
                _ if policy::fallback_runs(&effective, allowlisted) => Ok(()),
                _ => Err(format!(
                    "nobody decided within {} s (approval {id}); an expired approval is a deny",
                    timeout.as_secs()
                )),
            }
        }
    }
}

fn approval_timeout(tools: Option<&Value>) -> Duration {
    tools
        .and_then(|tools| tools["exec"]["approvalTimeoutMs"].as_u64())
        .map_or(APPROVAL_TIMEOUT_DEFAULT, |ms| {
            Duration::from_millis(ms.clamp(APPROVAL_TIMEOUT_MS_MIN, APPROVAL_TIMEOUT_MS_MAX))
        })
}

/// Kills a process group when dropped: on timeout, on abort (the call's
/// future dropped mid-run) and after the shell exits.
struct Group(i32);

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: killpg only sends a signal; a group that is gone already
        // is an ESRCH we have nothing to do about.
        unsafe {
            libc::killpg(self.0, libc::SIGKILL);
        }
    }
}

async fn run(call: Call, limit: Duration) -> Result<String, String> {
    let (reader, writer) =
        std::io::pipe().map_err(|error| format!("cannot create a pipe: {error}"))?;
    let error_writer = writer
        .try_clone()
        .map_err(|error| format!("cannot create a pipe: {error}"))?;
    let mut command = std::process::Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(&call.command)
        .current_dir(&call.workdir)
        .env_clear()
        .envs(
            INHERITED_ENV
                .iter()
                .filter_map(|name| std::env::var_os(name).map(|value| (*name, value))),
        )
        .envs(call.env)
        .env("OPENCLAW_SHELL", "exec")
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(error_writer)
        .process_group(0);
    let mut child = command
        .spawn()
        .map_err(|error| format!("cannot start /bin/sh: {error}"))?;
    // The parent's copies of the write end go with the Command, so the
    // reader sees the end of output once the group is gone.
    drop(command);
    let group = Group(child.id() as i32);
    let output = tokio::task::spawn_blocking(move || read_capped(reader));
    let waited = tokio::task::spawn_blocking(move || child.wait());
    let status = tokio::time::timeout(limit, waited).await;
    drop(group);
    let (text, total) = tokio::time::timeout(OUTPUT_GRACE, output)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let mut text = text;
    if total > CAPTURE_BYTES_MAX {
        text.push_str(&format!(
            "\n[output truncated: the first {CAPTURE_BYTES_MAX} of {total} bytes were kept]"
        ));
    }
    match status {
        Err(_) => Err(format!(
            "{text}\n\n(the command did not finish within {} s; its processes were killed)",
            limit.as_secs()
        )),
        Ok(Err(error)) => Err(format!("the command failed to run: {error}")),
        Ok(Ok(Err(error))) => Err(format!("the command failed to run: {error}")),
        Ok(Ok(Ok(status))) if status.success() => Ok(text),
        Ok(Ok(Ok(status))) => Err(match status.code() {
            Some(code) => format!("{text}\n\n(Command exited with code {code})"),
            None => format!("{text}\n\n(Command was killed by a signal)"),
        }),
    }
}

/// Reads until the end, keeping the first `CAPTURE_BYTES_MAX` bytes;
/// returns them (lossy UTF-8) and how many bytes there were in all.
fn read_capped(mut reader: std::io::PipeReader) -> (String, usize) {
    let mut kept = Vec::new();
    let mut buffer = [0u8; 8192];
    let mut total = 0;
    loop {
        match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => {
                let room = CAPTURE_BYTES_MAX.saturating_sub(kept.len());
                kept.extend_from_slice(&buffer[..read.min(room)]);
                total += read;
            }
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    (String::from_utf8_lossy(&kept).into_owned(), total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::tools::tests::context_with;
    use crate::agent::tools::{Approver, ApproverFuture, Registry};
    use clawback_events::event::ToolOutcome;
    use std::sync::Mutex;

    /// Answers every request with `answer`, remembering what was asked
    /// and recorded.
    struct Scripted {
        answer: Option<&'static str>,
        asked: Mutex<Vec<ApprovalRequested>>,
        recorded: Mutex<Vec<Event>>,
    }

    impl Approver for Scripted {
        fn ask(
            &self,
            request: ApprovalRequested,
            _: Duration,
        ) -> ApproverFuture<Result<Option<String>, String>> {
            self.asked.lock().expect("asked").push(request);
            let answer = self.answer.map(str::to_owned);
            Box::pin(async move { Ok(answer) })
        }
        fn record(&self, event: Event) -> ApproverFuture<Result<(), String>> {
            self.recorded.lock().expect("recorded").push(event);
            Box::pin(async { Ok(()) })
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    fn call(answer: Option<&'static str>, arguments: Value) -> (ToolOutcome, Arc<Scripted>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let approver = Arc::new(Scripted {
            answer,
            asked: Mutex::new(Vec::new()),
            recorded: Mutex::new(Vec::new()),
        });
        let context = context_with(dir.path().to_owned(), approver.clone());
        let registry = Registry::with(vec![Box::new(Exec)]);
        let outcome = runtime().block_on(registry.call(context, "exec", &arguments.to_string()));
        (outcome, approver)
    }

    #[test]
    fn by_default_a_command_asks_and_runs_only_when_allowed() {
        let (outcome, approver) = call(
            Some("allow-once"),
            json!({"command": "echo hi; echo err >&2"}),
        );
        assert_eq!(
            outcome,
            ToolOutcome::Ok {
                output: "hi\nerr\n".to_owned()
            }
        );
        let asked = approver.asked.lock().expect("asked");
        assert_eq!(asked.len(), 1);
        assert_eq!(asked[0].command, "echo hi; echo err >&2");
        let (outcome, _) = call(Some("deny"), json!({"command": "echo hi"}));
        assert!(
            matches!(&outcome, ToolOutcome::Denied { reason } if reason.starts_with("a reviewer denied it")),
            "{outcome:?}"
        );
        let (outcome, _) = call(None, json!({"command": "echo hi"}));
        assert!(
            matches!(&outcome, ToolOutcome::Denied { reason } if reason.contains("expired approval is a deny")),
            "{outcome:?}"
        );
    }

    #[test]
    fn exit_codes_timeouts_and_bad_arguments_are_errors_for_the_model() {
        let (outcome, _) = call(Some("allow-once"), json!({"command": "echo no; exit 3"}));
        assert_eq!(
            outcome,
            ToolOutcome::Error {
                message: "no\n\n\n(Command exited with code 3)".to_owned()
            }
        );
        let started = std::time::Instant::now();
        let (outcome, _) = call(
            Some("allow-once"),
            json!({"command": "sleep 30 & sleep 30; echo never", "timeoutSeconds": 1}),
        );
        assert!(
            matches!(&outcome, ToolOutcome::Error { message } if message.contains("did not finish within 1 s")),
            "{outcome:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
        let (outcome, approver) = call(
            Some("allow-once"),
            json!({"command": "ls", "env": {"LD_PRELOAD": "/tmp/x.so"}}),
        );
        assert!(
            matches!(&outcome, ToolOutcome::Denied { reason } if reason.contains("loader overrides")),
            "{outcome:?}"
        );
        assert!(approver.asked.lock().expect("asked").is_empty());
        let (outcome, _) = call(
            Some("allow-once"),
            json!({"command": "ls", "workdir": "../.."}),
        );
        assert!(matches!(outcome, ToolOutcome::Denied { .. }), "{outcome:?}");
    }

    #[test]
    fn env_overrides_are_part_of_what_is_approved_and_secrets_are_not_inherited() {
        // cargo sets CARGO_PKG_NAME for this process; the child must not
        // see it (nor any other variable outside the safe set).
        assert_eq!(std::env::var("CARGO_PKG_NAME").as_deref(), Ok("clawback"));
        let (outcome, approver) = call(
            Some("allow-once"),
            json!({"command": "echo \"[$GREETING] [$CARGO_PKG_NAME]\"",
                   "env": {"GREETING": "it's me"}}),
        );
        assert_eq!(
            outcome,
            ToolOutcome::Ok {
                output: "[it's me] []\n".to_owned()
            }
        );
        let asked = approver.asked.lock().expect("asked");
        assert_eq!(
            asked[0].command,
            r#"env GREETING='it'\''s me' sh -c 'echo "[$GREETING] [$CARGO_PKG_NAME]"'"#
        );
        assert_eq!(
            canonical::parse("env X=1 sh -c 'ls -la'").hash("/w"),
            canonical::parse("X=1 ls -la").hash("/w"),
        );
        assert_ne!(
            canonical::parse("env X=1 sh -c 'ls -la'").hash("/w"),
            canonical::parse("ls -la").hash("/w"),
        );
    }

    #[test]
    fn background_children_do_not_outlive_the_call() {
        let dir = tempfile::tempdir().expect("tempdir");
        let marker = dir.path().join("late");
        let command = format!("(sleep 1; touch {}) & echo started", marker.display());
        let (outcome, _) = call(Some("allow-once"), json!({"command": command}));
        assert_eq!(
            outcome,
            ToolOutcome::Ok {
                output: "started\n".to_owned()
            }
        );
        std::thread::sleep(Duration::from_millis(1500));
        assert!(
            !marker.exists(),
            "the background child was killed with the group"
        );
    }
}
