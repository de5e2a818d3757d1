//! `agent`, `agent.wait`, `chat.send` and `chat.history`: runs of the agent
//! (see `crate::agent`) and their transcripts.
//!
//! `agent` answers twice with one request id, as OpenClaw does: `accepted`
//! at once, then the final result when the run ends. The run id is the
//! client's `idempotencyKey`, so a retried request joins the run it already
//! started instead of starting another. `chat.send` answers at once; with
//! `queueMode` `steer` or `collect` a message for a session whose run is
//! active waits for that run (`crate::agent::queue`), and its id then
//! answers (`agent.wait`) as the run it joined.

use std::sync::Arc;
use std::time::Duration;

use clawback_replay::session_state::{TranscriptItem, transcript_item};
use serde_json::{Value, json};

use super::super::frames::{ErrorShape, codes};
use super::{Caller, Params, Reply, now_ms};
use crate::agent::{self, Queued, RunOutcome, RunRequest, Started};
use crate::gateway::Gateway;

const AGENT_KEYS: &[&str] = &[
    "message",
    "agentId",
    "provider",
    "model",
    "to",
    "replyTo",
    "sessionId",
    "sessionKey",
    "expectedExistingSessionId",
    "thinking",
    "deliver",
    "attachments",
    "channel",
    "replyChannel",
    "accountId",
    "replyAccountId",
    "threadId",
    "groupId",
    "groupChannel",
    "groupSpace",
    "timeout",
    "bestEffortDeliver",
    "lane",
    "cwd",
    "cleanupBundleMcpOnRunEnd",
    "modelRun",
    "promptMode",
    "extraSystemPrompt",
    "bootstrapContextMode",
    "bootstrapContextRunKind",
    "acpTurnSource",
    "internalRuntimeHandoffId",
    "internalExecutionIdentityRetry",
    "internalExecutionIdentityRecoveryAttempt",
    "execApprovalFollowupExpectedSessionId",
    "internalEvents",
    "inputProvenance",
    "suppressPromptPersistence",
    "sessionEffects",
    "sourceReplyDeliveryMode",
    "disableMessageTool",
    "swarmCollector",
    "swarmOutputSchema",
    "forceRestartSafeTools",
    "forceCodeModeTools",
    "voiceWakeTrigger",
    "idempotencyKey",
    "label",
];
const CHAT_SEND_KEYS: &[&str] = &[
    "sessionKey",
    "agentId",
    "sessionId",
    "message",
    "mentions",
    "workContext",
    "intent",
    "thinking",
    "fastMode",
    "fastAutoOnSeconds",
    "queueMode",
    "deliver",
    "originatingChannel",
    "originatingTo",
    "originatingAccountId",
    "originatingThreadId",
    "replyToId",
    "attachments",
    "toolBindings",
    "timeoutMs",
    "systemInputProvenance",
    "systemProvenanceReceipt",
    "suppressCommandInterpretation",
    "expectedLeafEntryId",
    "expectedSessionRoutingContract",
    "expectedPermissionMode",
    "expectedToolOverrides",
    "idempotencyKey",
];
const CHAT_HISTORY_KEYS: &[&str] = &[
    "sessionKey",
    "agentId",
    "cursor",
    "limit",
    "maxBytes",
    "offset",
    "pendingBefore",
    "inputRunIds",
    "messageId",
    "sessionId",
    "maxChars",
];
/// A run's time limit when the client names none (OpenClaw's default).
const RUN_TIMEOUT_DEFAULT: Duration = Duration::from_secs(600);
const RUN_TIMEOUT_MAX: Duration = Duration::from_secs(48 * 3600);
const MESSAGE_BYTES_MAX: usize = 1024 * 1024;
const HISTORY_LIMIT_DEFAULT: u64 = 200;
const HISTORY_LIMIT_MAX: u64 = 1_000;
const WAIT_DEFAULT: Duration = Duration::from_secs(30);

pub fn agent(gateway: &Arc<Gateway>, caller: &Caller, params: Option<&Value>) -> Reply {
    let mut session = None;
    let mut reply = agent_inner(gateway, caller, params, &mut session);
    reply.content_of = session;
    reply
}

/// `agent`; `session` learns the run's session once the params name it.
fn agent_inner(
    gateway: &Arc<Gateway>,
    caller: &Caller,
    params: Option<&Value>,
    session: &mut Option<String>,
) -> Reply {
    let request = (|| {
        let params = Params::closed("agent", params, AGENT_KEYS)?;
        let message = message(&params)?;
        let run_id = params.str("idempotencyKey")?.to_owned();
        refuse_unsupported(&params)?;
        let (agent_id, session_key) = target(&params, params.opt_str("sessionKey")?)?;
        let timeout = match params.opt_u64("timeout")? {
            Some(0) | None => RUN_TIMEOUT_DEFAULT,
            Some(seconds) => Duration::from_secs(seconds).min(RUN_TIMEOUT_MAX),
        };
        let model_override = match (params.opt_str("provider")?, params.opt_str("model")?) {
            (Some(provider), Some(model)) if !model.contains('/') => {
                Some(format!("{provider}/{model}"))
            }
            (_, model) => model.map(str::to_owned),
        };
        Ok(RunRequest {
            message_seq: None,
            run_id,
            session_key,
            agent_id,
            message,
            trigger: "agent",
            actor: caller.actor(),
            model_override,
            thinking: thinking(&params)?,
            extra_system_prompt: params.opt_str("extraSystemPrompt")?.map(str::to_owned),
            timeout,
            tool_events_to: caller.tool_events_to(),
            sampling: Default::default(),
            origin: None,
        })
    })();
    let request = match request {
        Ok(request) => request,
        Err(error) => return Reply::answer(Err(error)),
    };
    *session = Some(request.session_key.clone());
    let accepted = json!({
        "runId": request.run_id, "sessionKey": request.session_key, "agentId": request.agent_id,
        "status": "accepted", "acceptedAt": now_ms(),
    });
    match gateway.agent.clone().start(gateway.clone(), request) {
        Started::Finished(outcome) => Reply::answer(Ok(final_payload(&outcome))),
        Started::New(receiver) | Started::Running(receiver) => {
            let mut reply = Reply::answer(Ok(accepted));
            reply.follow_up = Some(Box::pin(async move {
                match agent::wait(receiver).await {
                    Some(outcome) => final_payload(&outcome),
                    None => {
                        json!({"status": "error", "summary": "the run ended without an outcome"})
                    }
                }
            }));
            reply
        }
    }
}

pub fn chat_send(gateway: &Arc<Gateway>, caller: &Caller, params: Option<&Value>) -> Reply {
    let mut session = None;
    let mut reply = chat_send_inner(gateway, caller, params, &mut session);
    reply.content_of = session;
    reply
}

/// `chat.send`; `session` learns the run's session once the params name it.
fn chat_send_inner(
    gateway: &Arc<Gateway>,
    caller: &Caller,
    params: Option<&Value>,
    session: &mut Option<String>,
) -> Reply {
    let request = (|| {
        let params = Params::closed("chat.send", params, CHAT_SEND_KEYS)?;
        let session_key = params.str("sessionKey")?;
        let message = message(&params)?;
        let run_id = params.str("idempotencyKey")?.to_owned();
        refuse_unsupported(&params)?;
        let mode = params
            .opt_choice("queueMode", &["steer", "followup", "collect", "interrupt"])?
            .unwrap_or("followup");
        let (agent_id, session_key) = target(&params, Some(session_key))?;
        let timeout = params
            .opt_u64("timeoutMs")?
            .filter(|ms| *ms > 0)
            .map_or(RUN_TIMEOUT_DEFAULT, |ms| {
                Duration::from_millis(ms).min(RUN_TIMEOUT_MAX)
            });
        Ok((
            mode,
            RunRequest {
                message_seq: None,
                run_id,
                session_key,
                agent_id,
                message,
                trigger: "chat.send",
                actor: caller.actor(),
                model_override: None,
                thinking: thinking(&params)?,
                extra_system_prompt: None,
                timeout,
                tool_events_to: caller.tool_events_to(),
                sampling: Default::default(),
                origin: None,
            },
        ))
    })();
    let (mode, request) = match request {
        Ok(request) => request,
        Err(error) => return Reply::answer(Err(error)),
    };
    *session = Some(request.session_key.clone());
    let run_id = request.run_id.clone();
    // steer and collect: a message for an active run waits for it, and is
    // acknowledged as OpenClaw does, with its own id as started.
    let request = if mode == "steer" || mode == "collect" {
        match gateway.agent.enqueue(request, mode == "collect") {
            Ok(Queued::Waiting { into }) => {
                tracing::info!(
                    subsystem = "agent",
                    "chat.send {run_id} ({mode}) waits for run {into}"
                );
                return Reply::answer(Ok(json!({"runId": run_id, "status": "started"})));
            }
            Ok(Queued::Known(known)) => {
                return Reply::answer(Ok(json!({"runId": run_id, "status": status(&known)})));
            }
            Ok(Queued::Idle(request)) => *request,
            Err(message) => {
                let mut error = ErrorShape::new(codes::UNAVAILABLE, message);
                error.retryable = Some(true);
                return Reply::answer(Err(error));
            }
        }
    } else {
        request
    };
    if mode == "interrupt" && gateway.agent.lookup(&request.run_id).is_none() {
        // The new message replaces what the session is doing.
        let reason = format!("interrupted by run {}", request.run_id);
        gateway.agent.abort(&request.session_key, None, &reason);
    }
    let started = gateway.agent.clone().start(gateway.clone(), request);
    Reply::answer(Ok(json!({"runId": run_id, "status": status(&started)})))
}

/// `chat.send`'s status for how a run id was taken.
fn status(started: &Started) -> &'static str {
    match started {
        Started::New(_) => "started",
        Started::Running(_) => "in_flight",
        Started::Finished(outcome) => {
            if outcome.ok {
                "ok"
            } else {
                "error"
            }
        }
    }
}

/// `chat.abort`: stops the session's unfinished runs (or one of them). The
/// partial reply stays in the transcript, as the user saw it.
pub fn abort(
    gateway: &Gateway,
    caller: &Caller,
    params: Option<&Value>,
) -> Result<Value, ErrorShape> {
    let params = Params::closed(
        "chat.abort",
        params,
        &["sessionKey", "agentId", "runId", "preserveSideRuns"],
    )?;
    let session_key = params.str("sessionKey")?;
    let run_id = params.opt_str("runId")?;
    params.opt_bool("preserveSideRuns")?;
    let reason = format!("aborted by {}", caller.reviewer());
    let stopped = gateway.agent.abort(session_key, run_id, &reason);
    Ok(json!({"ok": true, "aborted": !stopped.is_empty(), "runIds": stopped}))
}

pub async fn wait(gateway: &Arc<Gateway>, params: Option<&Value>) -> Reply {
    let parsed = (|| {
        let params = Params::closed("agent.wait", params, &["runId", "timeoutMs"])?;
        Ok::<_, ErrorShape>((
            params.str("runId")?.to_owned(),
            params.opt_u64("timeoutMs")?,
        ))
    })();
    let (run_id, timeout_ms) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => return Reply::answer(Err(error)),
    };
    let timeout = timeout_ms.map_or(WAIT_DEFAULT, Duration::from_millis);
    // A steered or collected message still waiting for the session's active
    // run is waited for through that run: when it ends, the message has
    // joined a run (or become one).
    let waited = tokio::time::timeout(timeout, async {
        loop {
            match gateway.agent.lookup(&run_id) {
                Some(Started::Finished(outcome)) => return Some(Some(*outcome)),
                Some(Started::Running(receiver) | Started::New(receiver)) => {
                    return Some(agent::wait(receiver).await);
                }
                None => match gateway.agent.waiting_on(&run_id) {
                    Some(active) => {
                        agent::wait(active).await;
                    }
                    None => return None,
                },
            }
        }
    })
    .await;
    let result = match waited {
        Ok(Some(Some(outcome))) => Ok(wait_payload(&outcome)),
        Ok(Some(None)) => Ok(json!({"runId": run_id, "status": "error"})),
        Ok(None) => recorded_run(gateway, &run_id),
        Err(_) => Ok(json!({"runId": run_id, "status": "timeout"})),
    };
    Reply::answer(result)
}

pub fn history(gateway: &Gateway, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let params = Params::closed("chat.history", params, CHAT_HISTORY_KEYS)?;
    let session_key = params.str("sessionKey")?;
    let limit = params.opt_u64("limit")?.unwrap_or(HISTORY_LIMIT_DEFAULT);
    if !(1..=HISTORY_LIMIT_MAX).contains(&limit) {
        return Err(params.invalid(format!(
            "at /limit: must be between 1 and {HISTORY_LIMIT_MAX}"
        )));
    }
    let offset = params.opt_u64("offset")?.unwrap_or(0) as usize;
    let max_chars = params.opt_u64("maxChars")?.map(|chars| chars as usize);
    let (session_id, entries, total) = {
        let state = gateway.state.read().expect("state lock");
        let Some(session) = state.sessions.by_key.get(session_key) else {
            return Ok(json!({
                "sessionKey": session_key, "messages": [], "totalMessages": 0,
                "hasMore": false, "nextOffset": Value::Null,
            }));
        };
        // The newest `limit` messages before `offset` (counted from the end).
        let total = session.transcript.len();
        let end = total.saturating_sub(offset);
        let start = end.saturating_sub(limit as usize);
        (
            session.session_id.clone(),
            session.transcript[start..end].to_vec(),
            total,
        )
    };
    let store = gateway.log.store();
    let cut = |mut text: String| {
        if let Some(max) = max_chars
            && let Some((cut, _)) = text.char_indices().nth(max)
        {
            text.truncate(cut);
        }
        text
    };
    // Tool names by call id, for results (their record names only the id).
    let mut tool_names: std::collections::BTreeMap<String, String> = Default::default();
    let messages: Vec<Value> = entries
        .iter()
        .map(|entry| {
            let meta = json!({"id": entry.seq.to_string(), "seq": entry.seq});
            // OpenClaw's transcript shapes: an assistant `toolCall` block,
            // a `toolResult` message.
            match transcript_item(&**store, &*gateway.keyring, entry) {
                TranscriptItem::ToolCall {
                    id,
                    name,
                    arguments,
                } => {
                    tool_names.insert(id.clone(), name.clone());
                    let arguments = serde_json::from_str::<Value>(&arguments)
                        .unwrap_or(Value::String(arguments));
                    json!({
                        "role": "assistant",
                        "content": [{"type": "toolCall", "id": id, "name": name,
                                     "arguments": arguments}],
                        "timestamp": entry.ts_ms,
                        "__openclaw": meta,
                    })
                }
                TranscriptItem::ToolResult { id, outcome } => {
                    let (text, is_error) = crate::agent::tools::outcome_text(&outcome);
                    let mut message = json!({
                        "role": "toolResult",
                        "toolCallId": id,
                        "content": [{"type": "text", "text": cut(text)}],
                        "isError": is_error,
                        "timestamp": entry.ts_ms,
                        "__openclaw": meta,
                    });
                    if let Some(name) = tool_names.get(&id) {
                        message["toolName"] = json!(name);
                    }
                    message
                }
                TranscriptItem::Text(text) | TranscriptItem::Unreadable(text) => json!({
                    "role": entry.role.as_str(),
                    "content": [{"type": "text", "text": cut(text)}],
                    "timestamp": entry.ts_ms,
                    "__openclaw": meta,
                }),
            }
        })
        .collect();
    let consumed = offset + messages.len();
    Ok(json!({
        "sessionKey": session_key,
        "sessionId": session_id,
        "messages": messages,
        "totalMessages": total,
        "hasMore": consumed < total,
        "nextOffset": if consumed < total { json!(consumed) } else { Value::Null },
    }))
}

fn thinking(params: &Params<'_>) -> Result<Option<String>, ErrorShape> {
    Ok(params
        .opt_choice("thinking", crate::agent::provider::THINKING_LEVELS)?
        .map(str::to_owned))
}

fn message(params: &Params<'_>) -> Result<String, ErrorShape> {
    let message = params.str("message")?;
    if message.trim().is_empty() {
        return Err(params.invalid("at /message: must not be empty"));
    }
    if message.len() > MESSAGE_BYTES_MAX {
        return Err(params.invalid(format!(
            "at /message: longer than {MESSAGE_BYTES_MAX} bytes"
        )));
    }
    Ok(message.to_owned())
}

/// What clawback cannot do yet is refused, not ignored.
fn refuse_unsupported(params: &Params<'_>) -> Result<(), ErrorShape> {
    if params.opt_bool("deliver")? == Some(true) {
        return Err(ErrorShape::new(
            codes::UNAVAILABLE,
            "delivering replies to channels is not available in clawback yet; omit deliver",
        ));
    }
    if params
        .get("attachments")
        .and_then(Value::as_array)
        .is_some_and(|items| !items.is_empty())
    {
        return Err(ErrorShape::new(
            codes::UNAVAILABLE,
            "attachments are not available in clawback yet",
        ));
    }
    Ok(())
}

/// The agent and session key of a request: `agent:<id>:...` names its
/// agent; else `agentId`, else the default; no key means the agent's main.
fn target(params: &Params<'_>, session_key: Option<&str>) -> Result<(String, String), ErrorShape> {
    let from_key = session_key.and_then(clawback_projections::sessions::agent_in_key);
    let agent_id = from_key
        .or(params.opt_str("agentId")?)
        .unwrap_or(super::agents::DEFAULT_AGENT)
        .to_owned();
    let session_key = match session_key {
        Some(key) if !key.trim().is_empty() => key.to_owned(),
        _ => format!("agent:{agent_id}:main"),
    };
    Ok((agent_id, session_key))
}

/// OpenClaw sends a run's tool events to the connection that started it
/// when it declared the `tool-events` cap.
/// The second `agent` answer.
fn final_payload(outcome: &RunOutcome) -> Value {
    let usage = &outcome.usage;
    let meta = json!({
        "durationMs": outcome.ended_at_ms - outcome.started_at_ms,
        "agentMeta": {
            "sessionId": outcome.session_id, "provider": outcome.provider, "model": outcome.model,
            "usage": {"input": usage.input_tokens, "output": usage.output_tokens,
                      "cacheRead": usage.cache_read_tokens, "cacheWrite": usage.cache_write_tokens,
                      "total": usage.input_tokens + usage.output_tokens,
                      "cost": outcome.cost_micro_usd as f64 / 1e6},
        },
    });
    match &outcome.error {
        None => json!({
            "runId": outcome.run_id, "sessionKey": outcome.session_key, "agentId": outcome.agent_id,
            "status": "ok", "summary": "completed",
            "result": {"payloads": [{"text": outcome.text, "mediaUrl": Value::Null}], "meta": meta},
        }),
        Some((kind, message)) => json!({
            "runId": outcome.run_id, "sessionKey": outcome.session_key, "agentId": outcome.agent_id,
            "status": "error", "summary": message,
            "error": {"kind": kind, "message": message},
            "result": {"payloads": [], "meta": meta},
        }),
    }
}

fn wait_payload(outcome: &RunOutcome) -> Value {
    let mut payload = json!({
        "runId": outcome.run_id,
        "status": if outcome.ok { "ok" } else { "error" },
        "startedAt": outcome.started_at_ms,
        "endedAt": outcome.ended_at_ms,
        "stopReason": outcome.stop_reason,
        "terminalReply": {"disposition": "visible", "text": outcome.text},
    });
    if let Some((kind, message)) = &outcome.error {
        payload["error"] = json!({"kind": kind, "message": message});
    }
    payload
}

/// A run from before this process: what the projection remembers of it.
fn recorded_run(gateway: &Gateway, run_id: &str) -> Result<Value, ErrorShape> {
    use clawback_projections::sessions::RunState;
    let state = gateway.state.read().expect("state lock");
    let run = state
        .sessions
        .by_key
        .values()
        .find_map(|session| session.run(run_id));
    let Some(run) = run else {
        return Err(ErrorShape::invalid(format!("unknown runId: {run_id}")));
    };
    Ok(match &run.state {
        RunState::Finished { status, ts_ms, .. } => json!({
            "runId": run_id,
            "status": if matches!(status, clawback_events::event::RunStatus::Completed) { "ok" } else { "error" },
            "startedAt": run.started_ts_ms, "endedAt": ts_ms,
        }),
        RunState::Interrupted { .. } => json!({
            "runId": run_id, "status": "error", "startedAt": run.started_ts_ms,
            "error": {"kind": "interrupted", "message": "the gateway restarted during this run"},
        }),
        RunState::Running => {
            json!({"runId": run_id, "status": "running", "startedAt": run.started_ts_ms})
        }
    })
}
