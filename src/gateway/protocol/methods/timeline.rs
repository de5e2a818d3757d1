//! `clawback.timeline`: one session's recorded history, page by page, for
//! the control UI's replay view (the same entries `clawback replay` prints).
//!
//! Why a gateway method rather than the CLI's reader: the CLI opens the
//! state dir and takes its lock, which a running gateway holds; this reads
//! the log through the gateway's own store handle (as `chat.history` reads
//! transcript records by seq), on a blocking thread, never taking a lock
//! the writer needs. Nothing is re-executed: what is shown is what was
//! recorded.
//!
//! Bounded: at most `TIMELINE_LIMIT_MAX` entries a page, and when the
//! recorded payloads are asked for (`details`), at most
//! `DETAILS_BYTES_MAX` of them a page; a client pages on with `after` (the
//! last seq it got). Params:
//! `{sessionKey, after?, until?, limit?, runId?, details?}`.

use std::sync::Arc;

use clawback_events::Envelope;
use clawback_events::event::{Event, LlmOutcome};
use clawback_replay::export::envelope_json;
use clawback_replay::timeline::{TimelineEntry, TimelineFilter, session_timeline_page};
use serde_json::{Value, json};

use super::Params;
use crate::gateway::Gateway;
use crate::gateway::protocol::frames::{ErrorShape, codes};

const KEYS: &[&str] = &["sessionKey", "after", "until", "limit", "runId", "details"];
/// Entries in one page, at most (the issue's bound: a 10k-event session
/// is ten pages).
pub const TIMELINE_LIMIT_MAX: u64 = 1_000;
const TIMELINE_LIMIT_DEFAULT: u64 = 200;
/// Recorded payload bytes one page carries, at most: an LLM request can be
/// megabytes, and a page must stay well inside the 25 MiB frame limit. The
/// first entry of a page always carries its payload unless that alone is
/// over the bound (then `detailOmittedBytes` says how large it was).
const DETAILS_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Answers `clawback.timeline`.
pub async fn timeline(gateway: &Arc<Gateway>, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let params = Params::closed("clawback.timeline", params, KEYS)?;
    let session_key = params.str("sessionKey")?.to_owned();
    if session_key.trim().is_empty() {
        return Err(params.invalid("at /sessionKey: must not be empty"));
    }
    let limit = params.opt_u64("limit")?.unwrap_or(TIMELINE_LIMIT_DEFAULT);
    if !(1..=TIMELINE_LIMIT_MAX).contains(&limit) {
        return Err(params.invalid(format!(
            "at /limit: must be between 1 and {TIMELINE_LIMIT_MAX}"
        )));
    }
    let after = params.opt_u64("after")?;
    let filter = TimelineFilter {
        until_seq: params.opt_u64("until")?,
        run_id: params.opt_str("runId")?.map(str::to_owned),
    };
    let details = params.opt_bool("details")?.unwrap_or(false);
    let store = gateway.log.store().clone();
    let keyring = gateway.keyring.clone();
    let key = session_key.clone();
    let read = tokio::task::spawn_blocking(move || {
        session_timeline_page(&*store, &*keyring, &key, &filter, after, limit as usize)
    })
    .await
    .map_err(|error| unavailable(format!("the timeline reader failed: {error}")))?;
    let page = read.map_err(|error| unavailable(error.to_string()))?;
    let mut budget = DETAILS_BYTES_MAX;
    let entries: Vec<Value> = page
        .entries
        .iter()
        .map(|entry| entry_json(entry, details.then_some(&mut budget)))
        .collect();
    let next_after = page.entries.last().map(|entry| entry.envelope.seq);
    Ok(json!({
        "sessionKey": session_key,
        "entries": entries,
        "hasMore": page.more,
        "nextAfter": next_after,
        "logNextSeq": gateway.log.next_seq(),
    }))
}

fn unavailable(message: String) -> ErrorShape {
    ErrorShape {
        code: codes::UNAVAILABLE,
        message,
        details: None,
        retryable: Some(false),
        retry_after_ms: None,
    }
}

/// One entry: what every page carries (seq, time, kind, category, actor,
/// run, summary; the LLM call id and phase for LLM steps), plus, when
/// `budget` is given, the recorded event in the export shape and, for LLM
/// steps, the request or response as JSON.
fn entry_json(entry: &TimelineEntry, budget: Option<&mut usize>) -> Value {
    let envelope = &entry.envelope;
    let mut value = json!({
        "seq": envelope.seq,
        "ts": envelope.body.ts_ms,
        "kind": envelope.body.event.kind(),
        "category": entry.category.name(),
        "actor": envelope.body.actor.label(),
        "correlation": envelope.body.correlation,
        "summary": entry.summary,
    });
    if let Some(call) = llm_call(&envelope.body.event) {
        value["llmCallId"] = json!(call);
    }
    let Some(budget) = budget else {
        return value;
    };
    let mut record = envelope_json(envelope);
    clawback_replay::export::mark_content(&mut record, &entry.content);
    let mut detail = json!({"record": record});
    if let Some(llm) = llm_json(envelope) {
        detail["llm"] = llm;
    }
    let bytes = detail.to_string().len();
    if bytes <= *budget {
        *budget -= bytes;
        value["detail"] = detail;
    } else {
        // Spent: later entries of this page go without; asking for this
        // seq alone (`after: seq - 1, limit: 1`) gets it while under the
        // bound.
        *budget = 0;
        value["detailOmittedBytes"] = json!(bytes);
    }
    value
}

fn llm_call(event: &Event) -> Option<&str> {
    match event {
        Event::LlmCallRequested(e) => Some(&e.call_id),
        Event::LlmCallCompleted(e) => Some(&e.call_id),
        _ => None,
    }
}

/// The LLM step as a client reads it: the exact request body sent, or the
/// response as recorded, parsed as JSON where it is JSON (a provider's
/// stream chunks are recorded as text, and shown so).
fn llm_json(envelope: &Envelope) -> Option<Value> {
    let parsed = |text: &str| {
        serde_json::from_str::<Value>(text).unwrap_or_else(|_| Value::String(text.to_owned()))
    };
    match &envelope.body.event {
        Event::LlmCallRequested(e) => Some(json!({
            "phase": "request",
            "callId": e.call_id,
            "runId": e.run_id,
            "provider": e.provider,
            "model": e.model,
            "attempt": e.attempt,
            "request": parsed(&e.request),
        })),
        Event::LlmCallCompleted(e) => {
            let mut value = json!({
                "phase": "response",
                "callId": e.call_id,
                "runId": e.run_id,
                "provider": e.provider,
                "model": e.model,
                "usage": {
                    "inputTokens": e.usage.input_tokens,
                    "outputTokens": e.usage.output_tokens,
                },
                "costMicroUsd": e.cost_micro_usd,
                "latencyMs": e.latency_ms,
            });
            match &e.outcome {
                LlmOutcome::Ok {
                    response,
                    stop_reason,
                } => {
                    value["response"] = parsed(response);
                    value["stopReason"] = json!(stop_reason);
                }
                LlmOutcome::Failed {
                    class,
                    message,
                    http_status,
                } => {
                    value["error"] =
                        json!({"class": class, "message": message, "httpStatus": http_status});
                }
            }
            Some(value)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use clawback_events::event::LlmCallRequested;
    use clawback_events::store::MemoryStore;
    use clawback_events::{Actor, Log, LogConfig, NewEvent, SystemClock};

    use super::*;

    /// Three LLM requests of 1.5 MB: a page's payloads stop at the bound,
    /// the entries after it say how large theirs are, and the summaries
    /// are all there.
    #[test]
    fn recorded_payloads_are_bounded_per_page() {
        let store = Arc::new(MemoryStore::new());
        let log = Log::open(
            store.clone(),
            LogConfig::default(),
            Arc::new(SystemClock),
            None,
        )
        .expect("log");
        let body =
            json!({"model": "m", "messages": [{"role": "user", "content": "x".repeat(1_500_000)}]});
        for call in 0..3 {
            log.append_blocking(vec![NewEvent::new(
                "agent:main:main",
                Actor::System,
                Event::LlmCallRequested(LlmCallRequested {
                    call_id: format!("c{call}"),
                    run_id: "r".to_owned(),
                    session_key: "agent:main:main".to_owned(),
                    provider: "p".to_owned(),
                    model: "m".to_owned(),
                    attempt: 1,
                    request: body.to_string(),
                }),
            )])
            .expect("append");
        }
        let page = session_timeline_page(
            &*store,
            &clawback_events::sealed::NoKeys,
            "agent:main:main",
            &TimelineFilter::default(),
            None,
            10,
        )
        .expect("page");
        let mut budget = DETAILS_BYTES_MAX;
        let entries: Vec<Value> = page
            .entries
            .iter()
            .map(|entry| entry_json(entry, Some(&mut budget)))
            .collect();
        assert_eq!(entries.len(), 3);
        // An LLM step carries its payload twice (the record as exported, and
        // parsed under `llm`): about 3 MiB each here, so one fits.
        let first = &entries[0];
        assert_eq!(first["detail"]["llm"]["request"], body);
        assert_eq!(first["detail"]["llm"]["phase"], "request");
        assert_eq!(first["detail"]["record"]["kind"], "llm.call.requested");
        assert_eq!(first["llmCallId"], first["detail"]["llm"]["callId"]);
        for entry in &entries[1..] {
            assert_eq!(entry.get("detail"), None);
            assert!(entry["detailOmittedBytes"].as_u64().unwrap() > 3_000_000);
        }
        assert!(entries.iter().all(|entry| entry["summary"].is_string()));
        // Alone, the third fits.
        let mut budget = DETAILS_BYTES_MAX;
        let alone = entry_json(&page.entries[2], Some(&mut budget));
        assert_eq!(alone["detail"]["llm"]["callId"], "c2");
        // Without details, no payload at all.
        assert_eq!(entry_json(&page.entries[0], None).get("detail"), None);
    }
}
