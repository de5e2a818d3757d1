//! What the model is given: the system prompt (with the agent's workspace
//! files), the summary of compacted messages, the transcript (with the
//! tool calls and results of earlier rounds and turns), and the run's
//! thinking level.

use std::collections::BTreeMap;

use clawback_events::event::Role;
use clawback_replay::session_state::{TranscriptItem, reply_signatures, transcript_item};

use super::provider::{Message, ToolCall, ToolResult};
use super::tools::outcome_text;

use super::run::RunRequest;
use crate::config::model::ConfigFile;
use crate::gateway::Gateway;

/// Transcript messages sent as context at most, newest last (compaction
/// and the context guard usually keep it far shorter).
const CONTEXT_MESSAGES_MAX: usize = 200;
const SYSTEM_PROMPT: &str = "You are a helpful personal assistant.";

/// The messages sent: the system prompt, then the session's transcript
/// (which already ends with this run's user message).
pub fn context(gateway: &Gateway, request: &RunRequest) -> Vec<Message> {
    let mut system = SYSTEM_PROMPT.to_owned();
    let workspace =
        super::workspace::dir(&gateway.config(), &gateway.state_root, &request.agent_id);
    system.push_str(&super::workspace::prompt_sections(&workspace));
    system.push_str(&super::skills::prompt_section(&super::skills::discover(
        &workspace,
    )));
    if let Some(extra) = &request.extra_system_prompt {
        system.push_str("\n\n");
        system.push_str(extra);
    }
    let (summary, entries) = {
        let state = gateway.state.read().expect("state lock");
        state
            .sessions
            .by_key
            .get(&request.session_key)
            .map(|session| {
                let start = session
                    .compaction
                    .as_ref()
                    .map_or(0, |compaction| compaction.context_start)
                    .max(
                        session
                            .transcript
                            .len()
                            .saturating_sub(CONTEXT_MESSAGES_MAX),
                    );
                let summary = session.compaction.as_ref().map(|c| c.seq);
                (summary, session.transcript[start..].to_vec())
            })
            .unwrap_or_default()
    };
    let store = gateway.log.store();
    let mut messages = vec![Message::System(system)];
    // Messages replaced by a compaction come back as their summary.
    if let Some(seq) = summary {
        let summary =
            clawback_replay::session_state::compaction_summary(&**store, &*gateway.keyring, seq);
        messages.push(Message::System(format!(
            "Summary of the conversation before the messages below:\n{summary}"
        )));
    }
    // The replies that asked for tools, each read once: the signatures
    // their calls carry back (Gemini's), with the model that signed.
    let mut replies = BTreeMap::new();
    let items: Vec<Item> = entries
        .iter()
        .map(|entry| {
            let item = transcript_item(&**store, &*gateway.keyring, entry);
            let signed = match (&item, entry.reply_seq) {
                (TranscriptItem::ToolCall { id, .. }, Some(reply)) => replies
                    .entry(reply)
                    .or_insert_with(|| reply_signatures(&**store, &*gateway.keyring, reply))
                    .as_ref()
                    .and_then(|(model, signatures)| {
                        Some((signatures.get(id)?.clone(), model.clone()))
                    }),
                _ => None,
            };
            (entry.role, item, signed)
        })
        .collect();
    messages.extend(conversation(items));
    messages
}

/// A transcript item, and for a tool call the signature its reply gave it
/// and the model that signed (`ToolCall::signed_by`).
pub type Item = (Role, TranscriptItem, Option<(String, String)>);

/// Transcript items as provider-neutral messages: an assistant's text and
/// the tool calls right after it are one message; each result follows.
///
/// Providers refuse a tool call without its result and a result without
/// its call, and both happen in a transcript: a run aborted or interrupted
/// between the call and its result, a compaction boundary between them. So
/// only calls and results that pair up are sent; a call id reused by a
/// later turn pairs with its own result (the nearest open call).
pub fn conversation(items: Vec<Item>) -> Vec<Message> {
    // First pass: which calls (by position) and results pair up.
    let mut open: BTreeMap<&str, usize> = BTreeMap::new();
    let mut paired: BTreeMap<usize, (usize, String)> = BTreeMap::new();
    for (position, (_, item, _)) in items.iter().enumerate() {
        match item {
            TranscriptItem::ToolCall { id, .. } => {
                open.insert(id, position);
            }
            TranscriptItem::ToolResult { id, .. } => {
                if let Some(call) = open.remove(id.as_str()) {
                    let name = match &items[call].1 {
                        TranscriptItem::ToolCall { name, .. } => name.clone(),
                        _ => String::new(),
                    };
                    paired.insert(call, (position, name.clone()));
                    paired.insert(position, (call, name));
                }
            }
            _ => {}
        }
    }
    let mut messages: Vec<Message> = Vec::new();
    for (position, (role, item, signed)) in items.into_iter().enumerate() {
        match item {
            TranscriptItem::Text(text) => match role {
                Role::User => messages.push(Message::User(text)),
                Role::Assistant => messages.push(Message::Assistant {
                    text,
                    tool_calls: Vec::new(),
                }),
                Role::System | Role::Tool => {}
            },
            TranscriptItem::ToolCall {
                id,
                name,
                arguments,
            } if paired.contains_key(&position) => {
                let (signature, signed_by) = signed.unzip();
                let call = ToolCall {
                    id,
                    name,
                    arguments,
                    signature,
                    signed_by,
                };
                match messages.last_mut() {
                    Some(Message::Assistant { tool_calls, .. }) => tool_calls.push(call),
                    _ => messages.push(Message::Assistant {
                        text: String::new(),
                        tool_calls: vec![call],
                    }),
                }
            }
            TranscriptItem::ToolResult { id, outcome } => {
                if let Some((_, name)) = paired.get(&position) {
                    let (output, is_error) = outcome_text(&outcome);
                    messages.push(Message::Tool(ToolResult {
                        call_id: id,
                        name: name.clone(),
                        output,
                        is_error,
                    }));
                }
            }
            TranscriptItem::ToolCall { .. } | TranscriptItem::Unreadable(_) => {}
        }
    }
    messages
}

/// A conservative token estimate (a token per four characters, plus a few
/// per message): enough to see a context coming near the window.
pub fn estimate_tokens(messages: &[Message]) -> u64 {
    messages
        .iter()
        .map(|message| (message.chars() as u64).div_ceil(4) + 4)
        .sum()
}

/// The run's thinking level: the request's, the session's `thinkingLevel`,
/// or the config's `agents.defaults.thinkingDefault`.
pub fn thinking_level(
    gateway: &Gateway,
    config: &ConfigFile,
    request: &RunRequest,
) -> Option<String> {
    request
        .thinking
        .clone()
        .or_else(|| {
            gateway
                .state
                .read()
                .expect("state lock")
                .sessions
                .by_key
                .get(&request.session_key)
                .and_then(|session| session.settings.get("thinkingLevel"))
                .and_then(|value| serde_json::from_str::<String>(value).ok())
        })
        .or_else(|| {
            config
                .agents
                .as_ref()
                .and_then(|agents| agents.defaults.as_ref())
                .and_then(|defaults| defaults.thinking_default.clone())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clawback_events::event::ToolOutcome;

    fn call(id: &str) -> (Role, TranscriptItem) {
        (
            Role::Assistant,
            TranscriptItem::ToolCall {
                id: id.to_owned(),
                name: "read".to_owned(),
                arguments: "{}".to_owned(),
            },
        )
    }

    fn result(id: &str, output: &str) -> (Role, TranscriptItem) {
        (
            Role::Tool,
            TranscriptItem::ToolResult {
                id: id.to_owned(),
                outcome: ToolOutcome::Ok {
                    output: output.to_owned(),
                },
            },
        )
    }

    #[test]
    fn calls_join_the_assistant_text_and_unpaired_ones_are_left_out() {
        let items = vec![
            (Role::User, TranscriptItem::Text("hi".to_owned())),
            (Role::Assistant, TranscriptItem::Text("looking".to_owned())),
            call("a"),
            call("dangling"),
            result("a", "A"),
            result("orphan", "?"),
            (Role::Assistant, TranscriptItem::Text("done".to_owned())),
            // A later turn reusing an id pairs with its own result.
            call("a"),
            result("a", "A2"),
        ];
        let messages = conversation(items.into_iter().map(|(r, i)| (r, i, None)).collect());
        let read = |id: &str| ToolCall {
            id: id.to_owned(),
            name: "read".to_owned(),
            arguments: "{}".to_owned(),
            signature: None,
            signed_by: None,
        };
        let tool = |output: &str| {
            Message::Tool(ToolResult {
                call_id: "a".to_owned(),
                name: "read".to_owned(),
                output: output.to_owned(),
                is_error: false,
            })
        };
        assert_eq!(
            messages,
            vec![
                Message::User("hi".to_owned()),
                Message::Assistant {
                    text: "looking".to_owned(),
                    tool_calls: vec![read("a")]
                },
                tool("A"),
                Message::Assistant {
                    text: "done".to_owned(),
                    tool_calls: vec![read("a")]
                },
                tool("A2"),
            ]
        );
    }

    #[test]
    fn a_call_carries_the_signature_its_reply_gave_it() {
        let (role, item) = call("a");
        let messages = conversation(vec![
            (Role::User, TranscriptItem::Text("hi".to_owned()), None),
            (
                role,
                item,
                Some(("c2ln".to_owned(), "gemini-3-pro".to_owned())),
            ),
            {
                let (role, item) = result("a", "A");
                (role, item, None)
            },
        ]);
        let Message::Assistant { tool_calls, .. } = &messages[1] else {
            panic!("{messages:?}")
        };
        assert_eq!(tool_calls[0].signature.as_deref(), Some("c2ln"));
        assert_eq!(tool_calls[0].signed_by.as_deref(), Some("gemini-3-pro"));
    }
}
