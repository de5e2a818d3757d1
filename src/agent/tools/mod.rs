//! The tools an agent may call: a registry of named tools, each with a
//! description and a JSON Schema for its arguments, and the one place a
//! call is checked and bounded before and while it runs.
//!
//! Why a registry and not a match in the run loop: the model is offered
//! exactly what is registered (`specs`), and every call goes through the
//! same gate (`call`): unknown tool, arguments that are not JSON or do not
//! fit the schema, a call its tool does not authorize (the exec policy
//! refuses it, or a person denies it), a tool that overruns its time, an
//! output too large for the context. Each of these becomes a tool error
//! (or a denial) the model reads and can correct, never a panic and never
//! a failed run.
//!
//! Invariants: a tool that can change the machine (`exec`) decides in
//! `authorize`, before it runs, and may ask a person there through the
//! context's `Approver` (which records the request and waits for the
//! decision); the wait is bounded by the approval's expiry, the run that
//! follows by the tool's `timeout` (`TOOL_TIMEOUT` unless the tool bounds
//! itself); an output never exceeds `OUTPUT_BYTES_MAX` (cut at a character
//! boundary, with a marker); files are written only inside the workspace
//! (`writing`); a tool that acts on the gateway (cron jobs, other
//! sessions) does so through the gateway's methods (`Host`), checked and
//! recorded as a request of the run, never by changing state itself.

pub mod cron;
pub mod edit;
pub mod exec;
pub mod read;
pub mod schema;
pub mod sessions_list;
pub mod sessions_send;
pub mod web_fetch;
pub mod write;
pub mod writing;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use clawback_events::event::{ApprovalRequested, Event, ToolOutcome};
use clawback_projections::State;
use serde_json::Value;

use super::provider::ToolSpec;

/// How long one tool call may run.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest output handed back to the model (OpenClaw's read tool cuts
/// at 50 KB too): a bound on the context one call can fill.
pub const OUTPUT_BYTES_MAX: usize = 50 * 1024;

/// What a tool may look at: the agent's workspace, the projected state
/// (read-only), the config's `tools` section, and the way to ask a person.
pub struct Context {
    pub workspace: PathBuf,
    pub agent_id: String,
    pub session_key: String,
    pub state: Arc<RwLock<State>>,
    /// The config's `tools` section as it was when the round started.
    pub tools_config: Option<Value>,
    pub approver: Arc<dyn Approver>,
    /// The gateway's methods, for tools that act through them (`cron`,
    /// `sessions_send`).
    pub host: Arc<dyn Host>,
}

/// A tool's work: its output text, or an error message for the model.
pub type ToolFuture = Pin<Box<dyn Future<Output = Result<String, String>> + Send>>;
/// A tool's decision before it runs: `Err` is the reason it may not.
pub type AuthorizeFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
pub type ApproverFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// How a tool asks a person, and records what allowed it. Why a trait and
/// not the gateway: a tool needs exactly these two things from it (the
/// state is already in the context), and tests can script the answers.
pub trait Approver: Send + Sync {
    /// Records `request` and waits (at most its `timeout` and a little)
    /// for the outcome: `allow-once`, `allow-always`, `deny`, `expired`,
    /// or `None` when nothing was recorded in time. `Err` when it cannot
    /// be recorded.
    fn ask(
        &self,
        request: ApprovalRequested,
        timeout: Duration,
    ) -> ApproverFuture<Result<Option<String>, String>>;
    /// Records an event of the call's authorization (a grant's use).
    fn record(&self, event: Event) -> ApproverFuture<Result<(), String>>;
}

/// How a tool acts through the gateway's own methods (`cron.add`,
/// `agent`, ...) on its run's behalf. Why methods and not direct access:
/// a method checks its parameters and records what it did (`rpc.received`,
/// its events, `rpc.answered`, by the run's actor) exactly as for a
/// client, so what a model did through a tool is audited like what a
/// person did through a client.
pub trait Host: Send + Sync {
    /// Calls `method` with `params`; with `wait`, also waits (that long at
    /// most) for the method's second answer (the final one of `agent`)
    /// and returns it instead of the first. The error is the method's
    /// message.
    fn call(
        &self,
        method: &'static str,
        params: Value,
        wait: Option<Duration>,
    ) -> ApproverFuture<Result<Value, String>>;
}

pub trait Tool: Send + Sync {
    fn name(&self) -> &'static str;
    /// What the model reads to decide when to call it.
    fn description(&self) -> &'static str;
    /// The JSON Schema of the arguments object (the subset `schema`
    /// enforces).
    fn parameters(&self) -> Value;
    /// Whether this call may run (arguments already validated), decided
    /// before its time starts; may wait for a person. `Err` is a denial
    /// with its reason.
    fn authorize(&self, _context: Arc<Context>, _arguments: &Value) -> AuthorizeFuture {
        Box::pin(async { Ok(()) })
    }
    /// How long this call may run once authorized.
    fn timeout(&self, _arguments: &Value) -> Duration {
        TOOL_TIMEOUT
    }
    /// Runs with arguments already validated against `parameters`.
    fn run(&self, context: Arc<Context>, arguments: Value) -> ToolFuture;
}

pub struct Registry {
    tools: Vec<Box<dyn Tool>>,
}

impl Registry {
    /// The built-in tools: `read`, `write`, `edit` (files inside the
    /// agent's workspace only), `sessions_list` (read-only),
    /// `sessions_send` and `cron` (through the gateway's methods),
    /// `web_fetch` (public addresses only), and `exec` (decided by the
    /// agent's exec policy and approvals).
    pub fn builtin() -> Registry {
        Registry::with(vec![
            Box::new(read::Read),
            Box::new(write::Write),
            Box::new(edit::Edit),
            Box::new(sessions_list::SessionsList),
            Box::new(sessions_send::SessionsSend),
            Box::new(cron::Cron),
            Box::new(web_fetch::WebFetch),
            Box::new(exec::Exec),
        ])
    }

    /// A registry of `tools`, leaving out (loudly) any whose schema uses a
    /// keyword the validator would not enforce: offering a tool whose
    /// arguments cannot be checked would be a silent hole.
    pub fn with(tools: Vec<Box<dyn Tool>>) -> Registry {
        let tools = tools
            .into_iter()
            .filter(|tool| match schema::supported(&tool.parameters()) {
                Ok(()) => true,
                Err(error) => {
                    tracing::error!(
                        subsystem = "agent",
                        "tool {} left out: its schema is not enforceable ({error})",
                        tool.name()
                    );
                    false
                }
            })
            .collect();
        Registry { tools }
    }

    /// The tools as offered to the model, in registration order.
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.tools
            .iter()
            .map(|tool| ToolSpec {
                name: tool.name().to_owned(),
                description: tool.description().to_owned(),
                parameters: tool.parameters(),
            })
            .collect()
    }

    fn get(&self, name: &str) -> Option<&dyn Tool> {
        self.tools
            .iter()
            .find(|tool| tool.name() == name)
            .map(|tool| &**tool)
    }

    /// Checks, authorizes and runs one call, within the tool's timeout.
    pub async fn call(&self, context: Arc<Context>, name: &str, arguments: &str) -> ToolOutcome {
        self.call_within(context, name, arguments, None).await
    }

    /// As `call`, with the run bounded by `timeout` instead of the tool's.
    pub async fn call_within(
        &self,
        context: Arc<Context>,
        name: &str,
        arguments: &str,
        timeout: Option<Duration>,
    ) -> ToolOutcome {
        let tool = match self.check(name, arguments) {
            Ok(checked) => checked,
            Err(outcome) => return outcome,
        };
        let (tool, arguments) = tool;
        if let Err(reason) = tool.authorize(context.clone(), &arguments).await {
            return ToolOutcome::Denied {
                reason: cap_output(reason),
            };
        }
        let timeout = timeout.unwrap_or_else(|| tool.timeout(&arguments));
        match tokio::time::timeout(timeout, tool.run(context, arguments)).await {
            Ok(Ok(output)) => ToolOutcome::Ok {
                output: cap_output(output),
            },
            Ok(Err(message)) => ToolOutcome::Error {
                message: cap_output(message),
            },
            Err(_) => ToolOutcome::TimedOut,
        }
    }

    /// Everything checked before a tool is authorized: it exists, and its
    /// arguments are a JSON object that fits its schema.
    fn check(&self, name: &str, arguments: &str) -> Result<(&dyn Tool, Value), ToolOutcome> {
        let Some(tool) = self.get(name) else {
            let names: Vec<&str> = self.tools.iter().map(|tool| tool.name()).collect();
            return Err(ToolOutcome::Error {
                message: format!(
                    "there is no tool named {name:?}; the tools are: {}",
                    names.join(", ")
                ),
            });
        };
        let value: Value = serde_json::from_str(arguments).map_err(|error| ToolOutcome::Error {
            message: format!("the arguments of {name} are not valid JSON: {error}"),
        })?;
        schema::validate(&tool.parameters(), &value).map_err(|error| ToolOutcome::Error {
            message: format!("invalid arguments for {name}: {error}"),
        })?;
        Ok((tool, value))
    }
}

/// Cuts `text` to `OUTPUT_BYTES_MAX` bytes at a character boundary, saying
/// how much was left out.
pub fn cap_output(mut text: String) -> String {
    if text.len() <= OUTPUT_BYTES_MAX {
        return text;
    }
    let total = text.len();
    let mut cut = OUTPUT_BYTES_MAX;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    text.push_str(&format!(
        "\n[output truncated: the first {cut} of {total} bytes are shown]"
    ));
    text
}

/// How a finished call reads to the model and to clients: its text and
/// whether it failed.
pub fn outcome_text(outcome: &ToolOutcome) -> (String, bool) {
    match outcome {
        ToolOutcome::Ok { output } => (output.clone(), false),
        ToolOutcome::Error { message } => (message.clone(), true),
        ToolOutcome::Denied { reason } => (format!("denied: {reason}"), true),
        ToolOutcome::TimedOut => (
            format!(
                "the tool did not finish within {} seconds",
                TOOL_TIMEOUT.as_secs()
            ),
            true,
        ),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// Asks nobody: every request is unanswered, so it is denied.
    pub(crate) struct NoApprover;

    impl Approver for NoApprover {
        fn ask(
            &self,
            _: ApprovalRequested,
            _: Duration,
        ) -> ApproverFuture<Result<Option<String>, String>> {
            Box::pin(async { Err("there is no one to ask for an approval here".to_owned()) })
        }
        fn record(&self, _: Event) -> ApproverFuture<Result<(), String>> {
            Box::pin(async { Ok(()) })
        }
    }

    struct NoHost;

    impl Host for NoHost {
        fn call(
            &self,
            method: &'static str,
            _: Value,
            _: Option<Duration>,
        ) -> ApproverFuture<Result<Value, String>> {
            Box::pin(async move { Err(format!("no gateway here to call {method}")) })
        }
    }

    pub(crate) fn context(workspace: PathBuf) -> Arc<Context> {
        context_with(workspace, Arc::new(NoApprover))
    }

    pub(crate) fn context_with(workspace: PathBuf, approver: Arc<dyn Approver>) -> Arc<Context> {
        Arc::new(Context {
            workspace,
            agent_id: "main".to_owned(),
            session_key: "agent:main:main".to_owned(),
            state: Arc::new(RwLock::new(State::default())),
            tools_config: None,
            approver,
            host: Arc::new(NoHost),
        })
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    #[test]
    fn every_registered_schema_is_one_the_validator_enforces() {
        for spec in Registry::builtin().specs() {
            assert_eq!(schema::supported(&spec.parameters), Ok(()), "{}", spec.name);
            assert_eq!(spec.parameters["type"], "object", "{}", spec.name);
            assert!(!spec.description.is_empty());
        }
    }

    #[test]
    fn bad_calls_become_tool_errors_for_the_model() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = Registry::builtin();
        let call = |name: &str, arguments: &str| {
            runtime().block_on(registry.call(context(dir.path().to_owned()), name, arguments))
        };
        let error = |outcome: ToolOutcome| match outcome {
            ToolOutcome::Error { message } => message,
            other => panic!("expected an error, got {other:?}"),
        };
        assert_eq!(
            error(call("nope", "{}")),
            "there is no tool named \"nope\"; the tools are: read, write, edit, sessions_list, sessions_send, cron, web_fetch, exec"
        );
        assert!(
            error(call("read", "{not json"))
                .starts_with("the arguments of read are not valid JSON")
        );
        assert_eq!(
            error(call("read", "{}")),
            "invalid arguments for read: at /: must have required property 'path'"
        );
        assert_eq!(
            error(call("read", r#"{"path": 3}"#)),
            "invalid arguments for read: at /path: must be a string"
        );
        assert_eq!(
            error(call("sessions_list", r#"{"limit": 0}"#)),
            "invalid arguments for sessions_list: at /limit: must be >= 1"
        );
    }

    struct Sleepy;
    impl Tool for Sleepy {
        fn name(&self) -> &'static str {
            "sleepy"
        }
        fn description(&self) -> &'static str {
            "sleeps"
        }
        fn parameters(&self) -> Value {
            json!({"type": "object"})
        }
        fn run(&self, _: Arc<Context>, _: Value) -> ToolFuture {
            Box::pin(async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok("late".to_owned())
            })
        }
    }

    struct NeedsApproval;
    impl Tool for NeedsApproval {
        fn name(&self) -> &'static str {
            "exec"
        }
        fn description(&self) -> &'static str {
            "runs"
        }
        fn parameters(&self) -> Value {
            json!({"type": "object"})
        }
        fn authorize(&self, _: Arc<Context>, _: &Value) -> AuthorizeFuture {
            Box::pin(async { Err("nobody approved it".to_owned()) })
        }
        fn run(&self, _: Arc<Context>, _: Value) -> ToolFuture {
            Box::pin(async { Ok("ran".to_owned()) })
        }
    }

    #[test]
    fn a_slow_tool_times_out_and_an_unauthorized_call_is_denied() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = Registry::with(vec![Box::new(Sleepy), Box::new(NeedsApproval)]);
        let outcome = runtime().block_on(registry.call_within(
            context(dir.path().to_owned()),
            "sleepy",
            "{}",
            Some(Duration::from_millis(20)),
        ));
        assert_eq!(outcome, ToolOutcome::TimedOut);
        let outcome =
            runtime().block_on(registry.call(context(dir.path().to_owned()), "exec", "{}"));
        assert_eq!(
            outcome,
            ToolOutcome::Denied {
                reason: "nobody approved it".to_owned()
            }
        );
    }

    #[test]
    fn outputs_are_capped_at_a_character_boundary_with_a_marker() {
        assert_eq!(cap_output("short".to_owned()), "short");
        let long = "é".repeat(OUTPUT_BYTES_MAX); // two bytes each
        let capped = cap_output(long);
        let (kept, marker) = capped.split_once('\n').expect("marker");
        assert_eq!(kept.len(), OUTPUT_BYTES_MAX);
        assert_eq!(
            marker,
            format!(
                "[output truncated: the first {OUTPUT_BYTES_MAX} of {} bytes are shown]",
                OUTPUT_BYTES_MAX * 2
            )
        );
        let odd = format!("a{}", "é".repeat(OUTPUT_BYTES_MAX));
        assert!(cap_output(odd).starts_with('a'));
    }
}
