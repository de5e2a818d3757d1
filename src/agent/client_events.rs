//! The `agent` and `chat` events of one run, as OpenClaw shapes them:
//! lifecycle phases, assistant deltas coalesced over a window, usage, and
//! the final, aborted or error state. They stream to clients while the run
//! goes and are not recorded (the recorded chunks hold the same text).
//!
//! Tool phases (`stream: "tool"`, `start` then `result`) go only to the
//! connection that started the run, and only if it declared
//! `caps: ["tool-events"]`: that is how OpenClaw gates them (a run's tool
//! event recipients). They still take a number of the run's `seq`, as in
//! OpenClaw, so other clients see a gap there.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::models::Resolved;
use super::run::{RunOutcome, RunRequest};
use crate::gateway::Gateway;
use crate::gateway::protocol::Push;

/// Chat deltas are coalesced: at most one push per window per run.
const DELTA_COALESCE: Duration = Duration::from_millis(150);

fn now_ms() -> i64 {
    crate::gateway::protocol::methods::now_ms()
}

/// The `agent` and `chat` events of one run, as OpenClaw shapes them.
pub struct Events<'a> {
    gateway: &'a Gateway,
    run_id: String,
    session_key: String,
    agent_id: String,
    /// The per-run `seq` of `agent` events (chat events reuse it).
    seq: u64,
    text: String,
    /// Text not pushed yet (coalescing).
    pending: String,
    last_push: Option<Instant>,
    /// The connection that receives tool events, if any.
    tool_events_to: Option<String>,
    /// Whoever follows the text unthrottled (an HTTP stream), if anyone.
    text_follower: Option<tokio::sync::watch::Sender<String>>,
    /// The follower's text ends a reply that asked for tools: the next
    /// reply's text goes after a blank line.
    follower_between_replies: bool,
    /// The length of the follower's text that earlier replies of the run
    /// wrote: a retried model call takes back only what came after it.
    follower_kept: usize,
}

impl<'a> Events<'a> {
    pub(super) fn new(gateway: &'a Gateway, request: &RunRequest) -> Events<'a> {
        Events {
            gateway,
            run_id: request.run_id.clone(),
            session_key: request.session_key.clone(),
            agent_id: request.agent_id.clone(),
            seq: 0,
            text: String::new(),
            pending: String::new(),
            last_push: None,
            tool_events_to: request.tool_events_to.clone(),
            text_follower: gateway.agent.take_text_follower(&request.run_id),
            follower_between_replies: false,
            follower_kept: 0,
        }
    }

    /// An `agent` event with `stream: "tool"`, to the run's tool-event
    /// recipient only.
    fn tool(&mut self, data: Value) {
        self.seq += 1;
        let Some(conn_id) = &self.tool_events_to else {
            return;
        };
        let payload = json!({
            "runId": self.run_id, "seq": self.seq, "stream": "tool", "ts": now_ms(),
            "data": data, "sessionKey": self.session_key, "agentId": self.agent_id,
        });
        let _ = self.gateway.pushes.send(Push::To {
            conn_id: conn_id.clone(),
            name: "agent",
            payload: payload.to_string().into(),
        });
    }

    /// A tool call starts; the text streamed so far goes out first.
    pub(super) fn tool_start(&mut self, name: &str, tool_call_id: &str, args: Value) {
        self.flush();
        self.tool(
            json!({"phase": "start", "name": name, "toolCallId": tool_call_id,
                         "args": args}),
        );
    }

    /// A tool call finished (or failed: `is_error`).
    pub(super) fn tool_result(
        &mut self,
        name: &str,
        tool_call_id: &str,
        text: &str,
        is_error: bool,
    ) {
        self.tool(
            json!({"phase": "result", "name": name, "toolCallId": tool_call_id,
                         "isError": is_error,
                         "result": {"content": [{"type": "text", "text": text}]}}),
        );
    }

    fn agent(&mut self, stream: &str, data: Value) {
        self.seq += 1;
        let payload = json!({
            "runId": self.run_id, "seq": self.seq, "stream": stream, "ts": now_ms(),
            "data": data, "sessionKey": self.session_key, "agentId": self.agent_id,
        });
        let _ = self.gateway.pushes.send(Push::event("agent", payload));
    }

    fn chat(&self, state: &str, mut extra: Value) {
        extra["runId"] = json!(self.run_id);
        extra["sessionKey"] = json!(self.session_key);
        extra["agentId"] = json!(self.agent_id);
        extra["seq"] = json!(self.seq);
        extra["state"] = json!(state);
        let _ = self.gateway.pushes.send(Push::event("chat", extra));
    }

    fn message(&self) -> Value {
        json!({"role": "assistant", "content": [{"type": "text", "text": self.text}],
               "timestamp": now_ms()})
    }

    pub(super) fn started(&mut self, started_at: i64) {
        self.agent(
            "lifecycle",
            json!({"phase": "start", "startedAt": started_at}),
        );
        self.chat("status", json!({"phase": "starting_model"}));
    }

    /// OpenClaw's `fallback_step` lifecycle phase.
    pub(super) fn fallback(&mut self, from: &Resolved, reason: &str) {
        self.agent(
            "lifecycle",
            json!({"phase": "fallback_step", "fallbackStepFromModel": from.name(),
                   "fallbackStepFromFailureReason": reason}),
        );
    }

    /// The reply as far as it has streamed.
    pub(super) fn text(&self) -> &str {
        &self.text
    }

    /// The model answered tool results: its next reply is a new message.
    /// Clients of `chat` see it from nothing (as OpenClaw streams it); a
    /// text follower keeps what it has and gets the new reply after it,
    /// since an HTTP stream cannot take back what it sent.
    pub(super) fn next_reply(&mut self) {
        self.text.clear();
        self.pending.clear();
        self.last_push = None;
        if let Some(follower) = &self.text_follower {
            self.follower_kept = follower.borrow().len();
            self.follower_between_replies = true;
        }
    }

    /// A new attempt (another model, or after compaction) starts its reply
    /// from nothing; the follower loses this reply's text, not earlier ones.
    pub(super) fn restart_text(&mut self) {
        self.text.clear();
        self.pending.clear();
        if let Some(follower) = &self.text_follower {
            let kept = self.follower_kept;
            follower.send_modify(|text| text.truncate(kept));
            self.follower_between_replies = true;
        }
        self.last_push = None;
    }

    pub(super) fn model(&mut self, provider: &str, model: &str) {
        self.agent(
            "lifecycle",
            json!({"phase": "model", "provider": provider, "model": model}),
        );
    }

    pub(super) fn delta(&mut self, piece: &str) {
        self.text.push_str(piece);
        if let Some(follower) = &self.text_follower {
            let between = std::mem::take(&mut self.follower_between_replies);
            follower.send_modify(|text| {
                if between && !text.is_empty() {
                    text.push_str("\n\n");
                }
                text.push_str(piece);
            });
        }
        self.pending.push_str(piece);
        let due = self
            .last_push
            .is_none_or(|last| last.elapsed() >= DELTA_COALESCE);
        if due {
            self.flush();
        }
    }

    /// Pushes the text gathered since the last push.
    pub(super) fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let delta = std::mem::take(&mut self.pending);
        self.agent("assistant", json!({"text": self.text, "delta": delta}));
        self.chat(
            "delta",
            json!({"deltaText": delta, "message": self.message()}),
        );
        self.last_push = Some(Instant::now());
    }

    pub(super) fn completed(&mut self, outcome: &RunOutcome) {
        self.agent(
            "usage",
            json!({"inputTokens": outcome.usage.input_tokens,
                   "outputTokens": outcome.usage.output_tokens}),
        );
        self.agent(
            "lifecycle",
            json!({"phase": "end", "startedAt": outcome.started_at_ms,
                   "endedAt": outcome.ended_at_ms, "stopReason": outcome.stop_reason,
                   "aborted": false, "executionSettled": true,
                   "terminalReply": {"disposition": "visible", "text": outcome.text}}),
        );
        self.chat(
            "final",
            json!({"message": self.message(), "stopReason": outcome.stop_reason,
                   "usage": {"input": outcome.usage.input_tokens,
                             "output": outcome.usage.output_tokens}}),
        );
    }

    pub(super) fn aborted(&mut self, outcome: &RunOutcome) {
        let reason = outcome
            .error
            .as_ref()
            .map_or("", |(_, reason)| reason.as_str())
            .to_owned();
        self.agent(
            "lifecycle",
            json!({"phase": "end", "startedAt": outcome.started_at_ms,
                   "endedAt": outcome.ended_at_ms, "stopReason": "aborted", "aborted": true,
                   "executionSettled": true}),
        );
        self.chat(
            "aborted",
            json!({"message": self.message(), "errorMessage": reason, "stopReason": "aborted"}),
        );
    }

    pub(super) fn failed(&mut self, outcome: &RunOutcome) {
        let (kind, message) = outcome
            .error
            .clone()
            .unwrap_or_else(|| ("unknown".to_owned(), "the run failed".to_owned()));
        self.agent(
            "lifecycle",
            json!({"phase": "error", "error": message, "startedAt": outcome.started_at_ms,
                   "endedAt": outcome.ended_at_ms, "executionSettled": true}),
        );
        let error_kind = match kind.as_str() {
            "rate_limit" => "rate_limit",
            "timeout" => "timeout",
            "context_overflow" => "context_length",
            _ => "unknown",
        };
        self.chat(
            "error",
            json!({"errorMessage": message, "errorKind": error_kind}),
        );
    }
}
