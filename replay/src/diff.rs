//! Where two sessions' behaviour diverged: `clawback diff`'s comparison.
//!
//! Why steps and not records: two runs of the same conversation never have
//! equal records (ids, times, seqs, latencies differ), but a person asks
//! "did the agent do the same thing": the same user message, the same model
//! and tools offered, the same answer, the same tool calls with the same
//! arguments, the same results and approvals, the same reply. So each
//! session's recorded history is read as a list of [`Step`]s that keep only
//! that, and two lists are compared step by step: the shared prefix, then
//! the first step where they differ.
//!
//! A fork's history starts with its source's up to the fork's seq (the
//! `session.forked` record names it), so the source's steps up to there are
//! read first, marked inherited: comparing a fork with its source shows a
//! shared prefix up to the fork point and the fork's own turn after it.
//!
//! The comparison ([`diff`]) is pure; only [`session_steps`] reads the log.

use std::ops::ControlFlow;

use clawback_events::event::{Event, LlmOutcome, Role, RunStatus, ToolOutcome};
use clawback_events::record;
use clawback_events::sealed::ContentKeys;
use clawback_events::store::LogStore;
use serde::{Deserialize, Serialize};

/// Forks of forks are followed this deep; a deeper chain is an error
/// rather than an unbounded walk.
pub const FORK_DEPTH_MAX: usize = 16;

/// One thing a session did, without ids, times or seqs (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Step {
    /// A user's message (or a system message) into the session.
    User { text: String },
    /// A model call as sent: which model, how large, which tools offered.
    #[serde(rename_all = "camelCase")]
    LlmRequest {
        provider: String,
        model: String,
        prompt_bytes: usize,
        tools: Vec<String>,
    },
    /// A model's answer: its text and the tools it asked for (by name).
    #[serde(rename_all = "camelCase")]
    LlmResponse {
        provider: String,
        model: String,
        text: String,
        tool_calls: Vec<String>,
        input_tokens: u64,
        output_tokens: u64,
        cost_micro_usd: u64,
    },
    /// A model call that failed, classified.
    LlmFailed {
        provider: String,
        model: String,
        class: String,
        message: String,
    },
    /// A tool call the model made, with its arguments.
    ToolCall { tool: String, arguments: String },
    /// What a tool call gave back (`ok: ...`, `error: ...`, `denied: ...`).
    ToolResult { outcome: String },
    /// An approval asked for (`requested: <command>`) or decided.
    Approval { what: String },
    /// The assistant's text, as appended to the transcript.
    Reply { text: String },
    /// How a run ended.
    RunEnd { status: String },
}

impl Step {
    /// Whether two steps are the same behaviour. Measurements (prompt
    /// size, tokens, cost) are shown but not compared: the same request
    /// carries other ids, and the same answer may be billed differently.
    pub fn same_behaviour(&self, other: &Step) -> bool {
        match (self, other) {
            (
                Step::LlmRequest {
                    provider: p1,
                    model: m1,
                    tools: t1,
                    ..
                },
                Step::LlmRequest {
                    provider: p2,
                    model: m2,
                    tools: t2,
                    ..
                },
            ) => (p1, m1, t1) == (p2, m2, t2),
            (
                Step::LlmResponse {
                    provider: p1,
                    model: m1,
                    text: x1,
                    tool_calls: c1,
                    ..
                },
                Step::LlmResponse {
                    provider: p2,
                    model: m2,
                    text: x2,
                    tool_calls: c2,
                    ..
                },
            ) => (p1, m1, x1, c1) == (p2, m2, x2, c2),
            _ => self == other,
        }
    }
}

/// A step and where it was recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionStep {
    pub seq: u64,
    /// Read from the source of a fork (the history the fork started with).
    pub inherited: bool,
    pub step: Step,
}

/// A session's history as steps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionSteps {
    pub session_key: String,
    /// `(source session, at seq)` when the session is a fork.
    pub forked_from: Option<(String, u64)>,
    pub steps: Vec<SessionStep>,
}

#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error("no recorded events for session `{0}`")]
    UnknownSession(String),
    #[error("record at seq {seq} cannot be read: {detail}")]
    Unreadable { seq: u64, detail: String },
    #[error("session `{0}` is a fork of a fork more than {FORK_DEPTH_MAX} deep")]
    TooDeep(String),
    #[error("{0}")]
    Store(#[from] clawback_events::store::StoreError),
}

/// What one side did after the shared prefix.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// `provider/model` in order of first use.
    pub models: Vec<String>,
    pub llm_calls: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_micro_usd: u64,
    /// Tool names in call order.
    pub tool_calls: Vec<String>,
    pub final_reply: Option<String>,
}

/// Two sessions compared.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Diff {
    pub a: SessionSteps,
    pub b: SessionSteps,
    /// How many leading steps behave the same; the first difference (if
    /// any) is step `shared` of each side (0-based).
    pub shared: usize,
    /// Each side's steps after the shared prefix, summed up.
    pub summary_a: Summary,
    pub summary_b: Summary,
}

impl Diff {
    /// Whether the two sessions did the same thing throughout.
    pub fn identical(&self) -> bool {
        self.shared == self.a.steps.len() && self.shared == self.b.steps.len()
    }
}

/// Compares two sessions' steps: the shared prefix, and what each did after.
pub fn diff(a: SessionSteps, b: SessionSteps) -> Diff {
    let shared = a
        .steps
        .iter()
        .zip(&b.steps)
        .take_while(|(x, y)| x.step.same_behaviour(&y.step))
        .count();
    let summary_a = summarize(&a.steps[shared..]);
    let summary_b = summarize(&b.steps[shared..]);
    Diff {
        a,
        b,
        shared,
        summary_a,
        summary_b,
    }
}

/// Sums up steps: models, calls, tokens, cost, tools, the last reply.
pub fn summarize(steps: &[SessionStep]) -> Summary {
    let mut summary = Summary::default();
    let use_model = |provider: &str, model: &str, summary: &mut Summary| {
        let name = format!("{provider}/{model}");
        if !summary.models.contains(&name) {
            summary.models.push(name);
        }
    };
    for step in steps {
        match &step.step {
            Step::LlmResponse {
                provider,
                model,
                input_tokens,
                output_tokens,
                cost_micro_usd,
                ..
            } => {
                use_model(provider, model, &mut summary);
                summary.llm_calls += 1;
                summary.input_tokens += input_tokens;
                summary.output_tokens += output_tokens;
                summary.cost_micro_usd += cost_micro_usd;
            }
            Step::LlmFailed {
                provider, model, ..
            } => {
                use_model(provider, model, &mut summary);
                summary.llm_calls += 1;
            }
            Step::ToolCall { tool, .. } => summary.tool_calls.push(tool.clone()),
            Step::Reply { text } => summary.final_reply = Some(text.clone()),
            _ => {}
        }
    }
    summary
}

/// The steps of `session_key`'s current history (from its creation or
/// latest reset), preceded, for a fork, by its source's up to the fork.
/// Sealed content is opened with `keys` (purged content compares as
/// `[purged]`).
pub fn session_steps(
    store: &dyn LogStore,
    keys: &dyn ContentKeys,
    session_key: &str,
) -> Result<SessionSteps, DiffError> {
    read_steps(store, keys, session_key, u64::MAX, 0)
}

fn read_steps(
    store: &dyn LogStore,
    keys: &dyn ContentKeys,
    session_key: &str,
    until: u64,
    depth: usize,
) -> Result<SessionSteps, DiffError> {
    if depth > FORK_DEPTH_MAX {
        return Err(DiffError::TooDeep(session_key.to_owned()));
    }
    // The first record is read even beyond `until`: a fork forked again
    // at a seq it inherited has its own `session.forked` after that seq.
    let mut seqs = Vec::new();
    store.scan_stream(session_key, 0, &mut |seq| {
        if seq > until && !seqs.is_empty() {
            return ControlFlow::Break(());
        }
        seqs.push(seq);
        ControlFlow::Continue(())
    })?;
    if seqs.is_empty() {
        return Err(DiffError::UnknownSession(session_key.to_owned()));
    }
    let mut out = SessionSteps {
        session_key: session_key.to_owned(),
        forked_from: None,
        steps: Vec::new(),
    };
    for seq in seqs {
        let event = read_event(store, keys, seq)?;
        match event {
            Event::SessionForked(fork) => {
                let source = read_steps(
                    store,
                    keys,
                    &fork.source_session_key,
                    fork.at_seq.min(until),
                    depth + 1,
                )?;
                out.steps = source
                    .steps
                    .into_iter()
                    .map(|step| SessionStep {
                        inherited: true,
                        ..step
                    })
                    .collect();
                out.forked_from = Some((fork.source_session_key.clone(), fork.at_seq));
                if let Some(next) = fork.next_message_seq.filter(|next| *next <= until)
                    && let Event::MessageAppended(message) = read_event(store, keys, next)?
                {
                    out.steps.push(SessionStep {
                        seq: next,
                        inherited: true,
                        step: Step::User {
                            text: message.content,
                        },
                    });
                }
            }
            // The first record, beyond the limit and no fork: nothing of
            // the session's history up to `until`.
            _ if seq > until => {}
            // A reset starts another history: what came before is not
            // this session's behaviour any more.
            Event::SessionReset(_) => {
                out.steps.clear();
                out.forked_from = None;
            }
            other => {
                if let Some(step) = step_of(other) {
                    out.steps.push(SessionStep {
                        seq,
                        inherited: false,
                        step,
                    });
                }
            }
        }
    }
    Ok(out)
}

fn read_event(store: &dyn LogStore, keys: &dyn ContentKeys, seq: u64) -> Result<Event, DiffError> {
    let bytes = store.get(seq)?.ok_or_else(|| DiffError::Unreadable {
        seq,
        detail: "indexed record is missing".to_owned(),
    })?;
    record::decode(seq, &bytes)
        .map(|envelope| envelope.body.event.read(keys).event.into_owned())
        .map_err(|error| DiffError::Unreadable {
            seq,
            detail: error.to_string(),
        })
}

/// The step an event is, if it is one (records of bookkeeping, such as a
/// run's start or a tool's start, are not behaviour).
pub fn step_of(event: Event) -> Option<Step> {
    Some(match event {
        Event::MessageAppended(message) => match message.role {
            Role::Assistant => Step::Reply {
                text: message.content,
            },
            Role::Tool => Step::ToolResult {
                outcome: format!("ok: {}", message.content),
            },
            Role::User | Role::System => Step::User {
                text: message.content,
            },
        },
        Event::LlmCallRequested(call) => Step::LlmRequest {
            prompt_bytes: call.request.len(),
            tools: offered_tools(&call.request),
            provider: call.provider,
            model: call.model,
        },
        Event::LlmCallCompleted(call) => match call.outcome {
            LlmOutcome::Ok { response, .. } => {
                let (text, tool_calls) = response_parts(&response);
                Step::LlmResponse {
                    provider: call.provider,
                    model: call.model,
                    text,
                    tool_calls,
                    input_tokens: call.usage.input_tokens,
                    output_tokens: call.usage.output_tokens,
                    cost_micro_usd: call.cost_micro_usd,
                }
            }
            LlmOutcome::Failed { class, message, .. } => Step::LlmFailed {
                provider: call.provider,
                model: call.model,
                class,
                message,
            },
        },
        Event::ToolCallRequested(call) => Step::ToolCall {
            tool: call.tool,
            arguments: call.arguments,
        },
        Event::ToolCallFinished(result) => Step::ToolResult {
            outcome: match result.outcome {
                ToolOutcome::Ok { output } => format!("ok: {output}"),
                ToolOutcome::Error { message } => format!("error: {message}"),
                ToolOutcome::Denied { reason } => format!("denied: {reason}"),
                ToolOutcome::TimedOut => "timed out".to_owned(),
            },
        },
        Event::ApprovalRequested(approval) => Step::Approval {
            what: format!("requested: {}", approval.command),
        },
        Event::ApprovalResolved(decision) => Step::Approval {
            what: format!("decided: {}", decision.decision.as_str()),
        },
        Event::ApprovalExpired(_) => Step::Approval {
            what: "expired (deny)".to_owned(),
        },
        Event::ApprovalGrantApplied(grant) => Step::Approval {
            what: format!("allowed by a grant: {}", grant.command),
        },
        Event::AgentRunFinished(run) => Step::RunEnd {
            status: match run.status {
                RunStatus::Completed => "completed".to_owned(),
                RunStatus::Aborted { reason } => format!("aborted: {reason}"),
                RunStatus::Failed {
                    error_kind,
                    message,
                } => format!("failed ({error_kind}): {message}"),
            },
        },
        _ => return None,
    })
}

/// The tool names a recorded request body offers: OpenAI's
/// `tools[].function.name`, or Anthropic's and others' `tools[].name`.
/// A body that is not JSON offers none that can be named.
fn offered_tools(request: &str) -> Vec<String> {
    let Ok(body) = serde_json::from_str::<serde_json::Value>(request) else {
        return Vec::new();
    };
    body["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|tool| {
            tool["function"]["name"]
                .as_str()
                .or_else(|| tool["name"].as_str())
                .map(str::to_owned)
        })
        .collect()
}

/// The text and tool call names of a recorded response (`{"text",
/// "toolCalls": [{"name"}]}`, as the agent runtime records it); a response
/// of another shape is shown as recorded.
fn response_parts(response: &str) -> (String, Vec<String>) {
    match serde_json::from_str::<serde_json::Value>(response) {
        Ok(value) if value.get("text").is_some() || value.get("toolCalls").is_some() => (
            value["text"].as_str().unwrap_or_default().to_owned(),
            value["toolCalls"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|call| call["name"].as_str().map(str::to_owned))
                .collect(),
        ),
        _ => (response.to_owned(), Vec::new()),
    }
}

/// A one-line rendering of a step, texts clipped to `chars_max`.
pub fn describe_step(step: &Step, chars_max: usize) -> String {
    use crate::timeline::clip;
    match step {
        Step::User { text } => format!("user: {}", clip(text, chars_max)),
        Step::LlmRequest {
            provider,
            model,
            prompt_bytes,
            tools,
        } => format!(
            "LLM request {provider}/{model}, {prompt_bytes} bytes, tools [{}]",
            tools.join(", ")
        ),
        Step::LlmResponse {
            provider,
            model,
            text,
            tool_calls,
            input_tokens,
            output_tokens,
            ..
        } => format!(
            "LLM response {provider}/{model} ({input_tokens} in / {output_tokens} out){}: {}",
            if tool_calls.is_empty() {
                String::new()
            } else {
                format!(", calls [{}]", tool_calls.join(", "))
            },
            clip(text, chars_max)
        ),
        Step::LlmFailed {
            provider,
            model,
            class,
            message,
        } => format!(
            "LLM call {provider}/{model} failed ({class}): {}",
            clip(message, chars_max)
        ),
        Step::ToolCall { tool, arguments } => {
            format!("tool call {tool}({})", clip(arguments, chars_max))
        }
        Step::ToolResult { outcome } => format!("tool result {}", clip(outcome, chars_max)),
        Step::Approval { what } => format!("approval {}", clip(what, chars_max)),
        Step::Reply { text } => format!("reply: {}", clip(text, chars_max)),
        Step::RunEnd { status } => format!("run {status}"),
    }
}
