//! What the model is given: the system prompt (with the agent's workspace
//! files), the summary of compacted messages, the transcript, and the
//! run's thinking level.

use clawback_events::event::Role;

use super::run::RunRequest;
use crate::config::model::ConfigFile;
use crate::gateway::Gateway;

/// Transcript messages sent as context at most, newest last (compaction
/// and the context guard usually keep it far shorter).
const CONTEXT_MESSAGES_MAX: usize = 200;
const SYSTEM_PROMPT: &str = "You are a helpful personal assistant.";

/// The messages sent: the system prompt, then the session's transcript
/// (which already ends with this run's user message).
pub fn context(gateway: &Gateway, request: &RunRequest) -> Vec<(&'static str, String)> {
    let mut system = SYSTEM_PROMPT.to_owned();
    let workspace =
        super::workspace::dir(&gateway.config(), &gateway.state_root, &request.agent_id);
    system.push_str(&super::workspace::prompt_sections(&workspace));
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
                let summary = session.compaction.as_ref().map(|c| c.summary.clone());
                (summary, session.transcript[start..].to_vec())
            })
            .unwrap_or_default()
    };
    let store = gateway.log.store();
    let mut messages = vec![("system", system)];
    // Messages replaced by a compaction come back as their summary.
    if let Some(summary) = summary {
        messages.push((
            "system",
            format!("Summary of the conversation before the messages below:\n{summary}"),
        ));
    }
    for entry in entries {
        let role = match entry.role {
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::System | Role::Tool => continue,
        };
        messages.push((
            role,
            clawback_replay::session_state::message_text(&**store, &entry),
        ));
    }
    messages
}

/// A conservative token estimate (a token per four characters, plus a few
/// per message): enough to see a context coming near the window.
pub fn estimate_tokens(messages: &[(&str, String)]) -> u64 {
    messages
        .iter()
        .map(|(_, text)| (text.chars().count() as u64).div_ceil(4) + 4)
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
