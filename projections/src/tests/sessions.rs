//! The sessions projection's transcript rules: tool rounds, the replies
//! entries point at, compaction and reset, forks.

use super::*;

#[test]
fn a_direct_tool_call_is_recorded_but_stays_out_of_the_transcript() {
    let key = "agent:main:main";
    let call = |run: &str, id: &str| {
        vec![
            at(
                1,
                Event::ToolCallRequested(ToolCallRequested {
                    tool_call_id: s(id),
                    run_id: s(run),
                    session_key: s(key),
                    tool: s("read"),
                    arguments: s("{}"),
                }),
            ),
            at(
                1,
                Event::ToolCallStarted(ToolCallStarted {
                    tool_call_id: s(id),
                    session_key: s(key),
                }),
            ),
            at(
                1,
                Event::ToolCallFinished(ToolCallFinished {
                    tool_call_id: s(id),
                    session_key: s(key),
                    outcome: ToolOutcome::Ok { output: s("text") },
                    duration_ms: 1,
                }),
            ),
        ]
    };
    let mut direct = run_started("tools.invoke:k", key);
    if let Event::AgentRunStarted(run) = &mut direct {
        run.trigger = s(crate::sessions::DIRECT_TOOL_TRIGGER);
    }
    let mut events = vec![at(0, session(key)), at(1, direct)];
    events.extend(call("tools.invoke:k", "http-k"));
    events.push(at(1, run_started("run-1", key)));
    events.extend(call("run-1", "call-1"));
    let state = fold(events);
    let session = &state.sessions.by_key[key];
    assert_eq!(
        session.transcript.len(),
        2,
        "only the model's call and its result are transcript entries"
    );
    assert_eq!(session.active_runs["tools.invoke:k"].tool_calls, 1);
    assert!(session.open_tool_calls.is_empty());
    assert_eq!(state.anomalies.total(), 0, "{:?}", state.anomalies);
}

#[test]
fn a_models_text_and_calls_point_at_the_reply_they_came_from() {
    let requested = |call_id: &str| {
        Event::LlmCallRequested(LlmCallRequested {
            call_id: s(call_id),
            run_id: s("r1"),
            session_key: s("k"),
            provider: s("gem"),
            model: s("gemini-3-pro"),
            attempt: 1,
            request: s("{}"),
        })
    };
    let completed = |call_id: &str, outcome: LlmOutcome| {
        Event::LlmCallCompleted(LlmCallCompleted {
            call_id: s(call_id),
            run_id: s("r1"),
            session_key: s("k"),
            provider: s("gem"),
            model: s("gemini-3-pro"),
            outcome,
            usage: Usage::default(),
            cost_micro_usd: 0,
            latency_ms: 1,
        })
    };
    let tool = |id: &str| {
        Event::ToolCallRequested(ToolCallRequested {
            tool_call_id: s(id),
            run_id: s("r1"),
            session_key: s("k"),
            tool: s("read"),
            arguments: s("{}"),
        })
    };
    let said = |role: Role| {
        Event::MessageAppended(MessageAppended {
            session_key: s("k"),
            message_id: s("m"),
            role,
            content: s("text"),
            run_id: Some(s("r1")),
            tool_call_id: None,
            origin: None,
        })
    };
    let failed = LlmOutcome::Failed {
        class: s("rate_limit"),
        message: s("slow down"),
        http_status: Some(429),
    };
    let ok = LlmOutcome::Ok {
        response: s("{}"),
        stop_reason: s("tool_calls"),
    };
    let state = fold(vec![
        at(0, session("k")),                // seq 0
        at(1, run_started("r1", "k")),      // 1
        at(1, requested("c1")),             // 2
        at(1, completed("c1", ok.clone())), // 3
        at(1, said(Role::Assistant)),       // 4
        at(1, tool("t1")),                  // 5
        at(1, requested("c2")),             // 6
        at(1, completed("c2", failed)),     // 7
        // Nothing after a failed reply points at a reply; nor does a user.
        at(1, tool("t2")),            // 8
        at(1, said(Role::Assistant)), // 9
        at(1, said(Role::User)),      // 10
    ]);
    let transcript = &state.sessions.by_key["k"].transcript;
    let replies: Vec<(u64, Option<u64>)> =
        transcript.iter().map(|e| (e.seq, e.reply_seq)).collect();
    assert_eq!(
        replies,
        [(4, Some(3)), (5, Some(3)), (8, None), (9, None), (10, None)]
    );
}

#[test]
fn compaction_moves_the_model_context_and_reset_clears_the_transcript() {
    let key = "agent:main:main";
    let message = |id: &str| {
        Event::MessageAppended(MessageAppended {
            session_key: s(key),
            message_id: s(id),
            role: Role::User,
            content: s(id),
            run_id: None,
            tool_call_id: None,
            origin: None,
        })
    };
    let mut events = vec![at(0, session(key))];
    events.extend(["m1", "m2", "m3"].map(|id| at(1, message(id))));
    events.push(at(
        1,
        Event::SessionCompacted(SessionCompacted {
            session_key: s(key),
            summary: s("two greetings"),
            messages_compacted: 2,
            tokens_before: 100,
            tokens_after: 10,
        }),
    ));
    events.push(at(
        1,
        Event::SessionPatched(SessionPatched {
            session_key: s(key),
            set: vec![(s("label"), s("\"work\""))],
            cleared: vec![],
        }),
    ));
    let state = fold(events.clone());
    let session = &state.sessions.by_key[key];
    let (summary, context) = session.model_context();
    assert_eq!(summary, Some("two greetings"));
    assert_eq!(context.len(), 1);
    assert_eq!(context[0].seq, 3, "m3");
    assert_eq!(session.transcript.len(), 3);
    assert_eq!(session.label.as_deref(), Some("work"));

    events.push(at(
        1,
        Event::SessionReset(SessionReset {
            session_key: s(key),
            new_session_id: s("sid-2"),
            reason: s("new"),
        }),
    ));
    let state = fold(events);
    let session = &state.sessions.by_key[key];
    assert!(session.transcript.is_empty());
    assert_eq!(session.model_context(), (None, &[][..]));
    assert_eq!(session.session_id, "sid-2");
    assert_eq!(session.settings["label"], "\"work\"");
}

#[test]
fn a_fork_takes_the_sources_transcript_up_to_its_seq_by_reference() {
    let key = "agent:main:main";
    let message = |id: &str, role: Role| {
        Event::MessageAppended(MessageAppended {
            session_key: s(key),
            message_id: s(id),
            role,
            content: s(id),
            run_id: None,
            tool_call_id: None,
            origin: None,
        })
    };
    let fork = |at_seq: u64, next: Option<u64>, source_id: &str, new_key: &str| {
        Event::SessionForked(SessionForked {
            session_key: s(new_key),
            session_id: s("sid-fork"),
            agent_id: s("main"),
            source_session_key: s(key),
            source_session_id: s(source_id),
            at_seq,
            settings: vec![(s("model"), s("\"other/model\""))],
            next_message_seq: next,
        })
    };
    // seqs: 0 created, 1 patch, 2 user, 3 assistant, 4 user, 5 assistant,
    // 6 compaction (of 2), then forks.
    let mut events = vec![
        at(0, session(key)),
        at(
            1,
            Event::SessionPatched(SessionPatched {
                session_key: s(key),
                set: vec![
                    (s("thinkingLevel"), s("\"low\"")),
                    (s("model"), s("\"a/b\"")),
                ],
                cleared: vec![],
            }),
        ),
        at(1, message("u1", Role::User)),
        at(1, message("a1", Role::Assistant)),
        at(1, message("u2", Role::User)),
        at(1, message("a2", Role::Assistant)),
        at(
            1,
            Event::SessionCompacted(SessionCompacted {
                session_key: s(key),
                summary: s("first exchange"),
                messages_compacted: 2,
                tokens_before: 100,
                tokens_after: 10,
            }),
        ),
    ];
    events.push(at(1, fork(3, Some(4), "sid-1", "fork-a"))); // 7: before the compaction
    events.push(at(1, fork(6, None, "sid-1", "fork-b"))); // 8: after it
    events.push(at(1, fork(3, Some(5), "sid-1", "fork-c"))); // 9: 5 is no user message
    events.push(at(1, fork(3, None, "sid-old", "fork-d"))); // 10: stale source id
    events.push(at(1, fork(3, None, "sid-1", "fork-a"))); // 11: key taken
    let state = fold(events);
    let sessions = &state.sessions.by_key;

    let a = &sessions["fork-a"];
    let seqs: Vec<u64> = a.transcript.iter().map(|entry| entry.seq).collect();
    assert_eq!(
        seqs,
        [2, 3, 4],
        "the prefix and the next user message, by seq"
    );
    assert_eq!(a.compaction, None, "the compaction came after seq 3");
    assert_eq!(a.settings["model"], "\"other/model\"", "the override wins");
    assert_eq!(
        a.settings["thinkingLevel"], "\"low\"",
        "the rest is inherited"
    );
    assert_eq!(a.origin.as_deref(), Some("fork"));
    let origin = a.forked_from.as_ref().unwrap();
    assert_eq!((origin.session_key.as_str(), origin.at_seq), (key, 3));
    assert_eq!(a.session_id, "sid-fork");

    let b = &sessions["fork-b"];
    assert_eq!(b.transcript.len(), 4);
    let (summary, context) = b.model_context();
    assert_eq!(summary, Some("first exchange"));
    assert_eq!(context.iter().map(|e| e.seq).collect::<Vec<_>>(), [4, 5]);

    assert!(!sessions.contains_key("fork-c"));
    assert!(!sessions.contains_key("fork-d"));
    assert_eq!(
        sessions["fork-a"].created_seq, 7,
        "the second fork-a changed nothing"
    );
    let kinds: Vec<&str> = state
        .anomalies
        .recent
        .iter()
        .map(|a| a.kind.as_str())
        .collect();
    for kind in [
        "fork.before_compaction",
        "fork.next_message_unknown",
        "fork.source_reset",
        "session.exists",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    assert_eq!(sessions[key].transcript.len(), 4, "the source is untouched");
}
