//! Sessions, transcripts and agent runs.

use clawback_events::Event;
use clawback_events::event::*;
use proptest::prelude::*;

use super::*;

pub(super) fn session_events() -> impl Strategy<Value = Event> {
    let key = || id("agent:main:s", 3);
    prop_oneof![
        (key(), id("sid", 5), proptest::option::of(text())).prop_map(
            |(session_key, session_id, label)| Event::SessionCreated(SessionCreated {
                session_key,
                session_id,
                agent_id: "main".to_owned(),
                label,
                origin: Some("webchat".to_owned()),
            })
        ),
        (key(), proptest::option::of(text())).prop_map(|(session_key, label)| {
            let (set, cleared) = match label {
                Some(label) => (
                    vec![
                        (
                            "label".to_owned(),
                            serde_json::Value::String(label).to_string(),
                        ),
                        ("model".to_owned(), "\"openai/gpt-5\"".to_owned()),
                    ],
                    vec![],
                ),
                None => (vec![], vec!["label".to_owned()]),
            };
            Event::SessionPatched(SessionPatched {
                session_key,
                set,
                cleared,
            })
        }),
        (key(), id("sid", 5)).prop_map(|(session_key, new_session_id)| Event::SessionReset(
            SessionReset {
                session_key,
                new_session_id,
                reason: "new".to_owned(),
            }
        )),
        key().prop_map(|session_key| Event::SessionDeleted(SessionDeleted { session_key })),
        // Forks name seqs of the small histories generated, so prefixes,
        // unknown sources, stale source ids and reused keys all happen.
        (
            key(),
            key(),
            id("sid", 5),
            0u64..40,
            proptest::option::of(0u64..40),
        )
            .prop_map(
                |(session_key, source_session_key, source_session_id, at_seq, next)| {
                    Event::SessionForked(SessionForked {
                        session_key,
                        session_id: "fork".to_owned(),
                        agent_id: "main".to_owned(),
                        source_session_key,
                        source_session_id,
                        at_seq,
                        settings: vec![("model".to_owned(), "\"openai/gpt-5\"".to_owned())],
                        next_message_seq: next,
                    })
                }
            ),
        (key(), text(), 0u32..8).prop_map(|(session_key, summary, messages_compacted)| {
            Event::SessionCompacted(SessionCompacted {
                session_key,
                summary,
                messages_compacted,
                tokens_before: 1000,
                tokens_after: 100,
            })
        }),
        (
            key(),
            id("m", 8),
            role(),
            text(),
            proptest::option::of(id("run", 3)),
            proptest::option::of((id("chan", 2), proptest::option::of(id("pm", 6)))),
        )
            .prop_map(|(session_key, message_id, role, content, run_id, origin)| {
                Event::MessageAppended(MessageAppended {
                    session_key,
                    message_id,
                    role,
                    content,
                    run_id,
                    tool_call_id: None,
                    origin: origin.map(|(channel, platform_message_id)| MessageOrigin {
                        channel,
                        sender: "42".to_owned(),
                        platform_message_id,
                    }),
                })
            }),
    ]
}

pub(super) fn run_events() -> impl Strategy<Value = Event> {
    let key = || id("agent:main:s", 3);
    prop_oneof![
        (id("run", 3), key()).prop_map(|(run_id, session_key)| Event::AgentRunStarted(
            AgentRunStarted {
                run_id,
                session_key,
                agent_id: "main".to_owned(),
                model: None,
                trigger: "chat.send".to_owned(),
            }
        )),
        (id("run", 3), key(), 0u8..3).prop_map(|(run_id, session_key, status)| {
            Event::AgentRunFinished(AgentRunFinished {
                run_id,
                session_key,
                status: match status {
                    0 => RunStatus::Completed,
                    1 => RunStatus::Aborted {
                        reason: "user".to_owned(),
                    },
                    _ => RunStatus::Failed {
                        error_kind: "rate_limit".to_owned(),
                        message: "429".to_owned(),
                    },
                },
            })
        }),
        (id("call", 3), id("run", 3), key(), 1u32..3).prop_map(
            |(call_id, run_id, session_key, attempt)| Event::LlmCallRequested(LlmCallRequested {
                call_id,
                run_id,
                session_key,
                provider: "openai".to_owned(),
                model: "gpt-5".to_owned(),
                attempt,
                request: "{}".to_owned(),
            })
        ),
        (
            id("call", 3),
            id("run", 3),
            key(),
            id("provider", 2),
            any::<bool>(),
            usage(),
            0u64..10_000
        )
            .prop_map(
                |(call_id, run_id, session_key, provider, ok, usage, cost)| {
                    Event::LlmCallCompleted(LlmCallCompleted {
                        call_id,
                        run_id,
                        session_key,
                        provider,
                        model: "gpt-5".to_owned(),
                        outcome: if ok {
                            LlmOutcome::Ok {
                                response: "{}".to_owned(),
                                stop_reason: "stop".to_owned(),
                            }
                        } else {
                            LlmOutcome::Failed {
                                class: "rate_limit".to_owned(),
                                message: "slow down".to_owned(),
                                http_status: Some(429),
                            }
                        },
                        usage,
                        cost_micro_usd: cost,
                        latency_ms: 10,
                    })
                }
            ),
        (id("tc", 3), id("run", 3), key()).prop_map(|(tool_call_id, run_id, session_key)| {
            Event::ToolCallRequested(ToolCallRequested {
                tool_call_id,
                run_id,
                session_key,
                tool: "exec".to_owned(),
                arguments: "{\"command\":\"ls\"}".to_owned(),
            })
        }),
        (id("tc", 3), key()).prop_map(|(tool_call_id, session_key)| Event::ToolCallStarted(
            ToolCallStarted {
                tool_call_id,
                session_key,
            }
        )),
        (id("tc", 3), key(), 0u8..4).prop_map(|(tool_call_id, session_key, outcome)| {
            Event::ToolCallFinished(ToolCallFinished {
                tool_call_id,
                session_key,
                outcome: match outcome {
                    0 => ToolOutcome::Ok {
                        output: "ok".to_owned(),
                    },
                    1 => ToolOutcome::Error {
                        message: "exit 1".to_owned(),
                    },
                    2 => ToolOutcome::Denied {
                        reason: "denied".to_owned(),
                    },
                    _ => ToolOutcome::TimedOut,
                },
                duration_ms: 5,
            })
        }),
    ]
}
