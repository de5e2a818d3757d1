//! How many tokens the next request's context holds, for the guard that
//! compacts a session before a call that would not fit the model's window.
//!
//! OpenClaw's agent core (pi-coding-agent's `estimateContextTokens`) counts
//! what the provider reported for the latest reply in the context (input,
//! output and cache tokens: the whole context of that call plus its
//! answer) and adds a characters/4 estimate of the messages after it; with
//! no reported usage, characters/4 of everything. clawback does the same:
//! a provider's count is exact for the tokenizer that matters, where
//! characters/4 undercounts code and most non-Latin scripts. It stays
//! deterministic: the latest reply is found through the transcript's
//! `reply_seq` and its usage read from its `llm.call.completed` record, so
//! the same log gives the same decision. A reply from before the latest
//! compaction is not used (the context it measured has been replaced).

use clawback_events::event::{Event, LlmOutcome, Role};
use clawback_events::record;
use clawback_replay::session_state::message_text;

use super::context::estimate_tokens;
use super::provider::Message;
use super::run::RunRequest;
use crate::gateway::Gateway;

/// The tokens of `messages` (the context about to be sent, ending with the
/// run's new message), from the latest reported usage when there is one.
pub fn context_tokens(gateway: &Gateway, request: &RunRequest, messages: &[Message]) -> u64 {
    reported(gateway, request).unwrap_or_else(|| estimate_tokens(messages))
}

/// The latest reply's reported tokens plus an estimate of the transcript
/// after it and the run's new message; `None` without such a reply.
fn reported(gateway: &Gateway, request: &RunRequest) -> Option<u64> {
    let (reply_seq, trailing) = {
        let state = gateway.state.read().expect("state lock");
        let session = state.sessions.by_key.get(&request.session_key)?;
        let (_, context) = session.model_context();
        // A reply before the compaction measured the context it replaced.
        let compacted_at = session.compaction.as_ref().map_or(0, |c| c.seq);
        let anchor = context.iter().rposition(|entry| {
            entry.role == Role::Assistant && entry.reply_seq.is_some_and(|seq| seq > compacted_at)
        })?;
        let reply_seq = context[anchor].reply_seq?;
        // The reply's own text and calls are in its output tokens.
        let trailing: Vec<_> = context[anchor + 1..]
            .iter()
            .filter(|entry| entry.reply_seq != Some(reply_seq))
            .copied()
            .collect();
        (reply_seq, trailing)
    };
    let store = gateway.log.store();
    let bytes = store.get(reply_seq).ok()??;
    // Only the usage is read: the skeleton of a sealed record has it.
    let Event::LlmCallCompleted(completed) = record::decode(reply_seq, &bytes)
        .ok()?
        .body
        .event
        .bare()
        .clone()
    else {
        return None;
    };
    if !matches!(completed.outcome, LlmOutcome::Ok { .. }) {
        return None;
    }
    let usage = completed.usage;
    let reported = usage.input_tokens
        + usage.output_tokens
        + usage.cache_read_tokens
        + usage.cache_write_tokens;
    // A provider that reports nothing leaves the estimate to characters.
    if reported == 0 {
        return None;
    }
    let mut after: Vec<Message> = trailing
        .iter()
        .map(|entry| Message::User(message_text(&**store, &*gateway.keyring, entry)))
        .collect();
    // A message already in the transcript (a fork's) is among `trailing`.
    if request.message_seq.is_none() {
        after.push(Message::User(request.message.clone()));
    }
    Some(reported + estimate_tokens(&after))
}
