//! The diff's alignment (pure) and its reading of forks from a log.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use clawback_events::event::*;
use clawback_events::store::MemoryStore;
use clawback_events::{Actor, Clock, Event, Log, LogConfig, NewEvent};

use crate::diff::{SessionStep, SessionSteps, Step, diff, session_steps};

fn steps(key: &str, steps: Vec<Step>) -> SessionSteps {
    SessionSteps {
        session_key: key.to_owned(),
        forked_from: None,
        steps: steps
            .into_iter()
            .enumerate()
            .map(|(seq, step)| SessionStep {
                seq: seq as u64,
                inherited: false,
                step,
            })
            .collect(),
    }
}

fn user(text: &str) -> Step {
    Step::User {
        text: text.to_owned(),
    }
}

fn request(model: &str, prompt_bytes: usize) -> Step {
    Step::LlmRequest {
        provider: "local".to_owned(),
        model: model.to_owned(),
        prompt_bytes,
        tools: vec!["read".to_owned()],
    }
}

fn response(model: &str, text: &str, tokens: u64) -> Step {
    Step::LlmResponse {
        provider: "local".to_owned(),
        model: model.to_owned(),
        text: text.to_owned(),
        tool_calls: Vec::new(),
        input_tokens: tokens,
        output_tokens: tokens,
        cost_micro_usd: tokens * 10,
    }
}

fn reply(text: &str) -> Step {
    Step::Reply {
        text: text.to_owned(),
    }
}

#[test]
fn the_shared_prefix_ends_at_the_first_different_behaviour() {
    let a = steps(
        "a",
        vec![
            user("hi"),
            request("m1", 100),
            response("m1", "hello", 5),
            reply("hello"),
            user("again"),
            request("m1", 200),
            response("m1", "one", 7),
        ],
    );
    let b = steps(
        "b",
        vec![
            user("hi"),
            // Another size, ids and tokens are measurements, not behaviour.
            request("m1", 104),
            response("m1", "hello", 6),
            reply("hello"),
            user("again"),
            request("m2", 200),
            response("m2", "two", 3),
            Step::ToolCall {
                tool: "read".to_owned(),
                arguments: "{\"path\":\"x\"}".to_owned(),
            },
        ],
    );
    let result = diff(a, b);
    assert_eq!(result.shared, 5, "the model of the second request differs");
    assert!(!result.identical());
    assert_eq!(result.summary_a.models, ["local/m1"]);
    assert_eq!(result.summary_b.models, ["local/m2"]);
    assert_eq!(
        (result.summary_a.input_tokens, result.summary_b.input_tokens),
        (7, 3)
    );
    assert_eq!(result.summary_b.tool_calls, ["read"]);
    assert_eq!(result.summary_a.cost_micro_usd, 70);
}

#[test]
fn different_arguments_or_results_are_a_divergence_and_equal_histories_are_identical() {
    let call = |arguments: &str| Step::ToolCall {
        tool: "exec".to_owned(),
        arguments: arguments.to_owned(),
    };
    let a = steps("a", vec![user("x"), call("{\"command\":\"ls\"}")]);
    let b = steps("b", vec![user("x"), call("{\"command\":\"ls -l\"}")]);
    assert_eq!(diff(a.clone(), b).shared, 1);
    let same = diff(a.clone(), a.clone());
    assert!(same.identical());
    assert_eq!(same.summary_a.tool_calls, Vec::<String>::new());

    // One side stopping early diverges where it stops.
    let longer = steps(
        "c",
        vec![user("x"), call("{\"command\":\"ls\"}"), reply("done")],
    );
    let result = diff(a, longer);
    assert_eq!(result.shared, 2);
    assert!(!result.identical());
    assert_eq!(result.summary_b.final_reply.as_deref(), Some("done"));

    // Unrelated sessions share nothing from the first message on.
    let other = steps("d", vec![user("y")]);
    assert_eq!(diff(other, steps("e", vec![user("x")])).shared, 0);
}

struct StepClock(AtomicI64);

impl Clock for StepClock {
    fn now_ms(&self) -> i64 {
        self.0.fetch_add(10, Ordering::SeqCst)
    }
}

fn message(key: &str, role: Role, text: &str) -> Event {
    Event::MessageAppended(MessageAppended {
        session_key: key.to_owned(),
        message_id: text.to_owned(),
        role,
        content: text.to_owned(),
        run_id: None,
        tool_call_id: None,
        origin: None,
    })
}

#[test]
fn a_fork_reads_its_sources_steps_up_to_the_fork_and_the_reused_message() {
    let store = Arc::new(MemoryStore::new());
    let log = Log::open(
        store.clone(),
        LogConfig::default(),
        Arc::new(StepClock(AtomicI64::new(1_000))),
        None,
    )
    .expect("open");
    let append = |key: &str, event: Event| {
        log.append_blocking(vec![NewEvent::new(key.to_owned(), Actor::Cli, event)])
            .expect("append")
    };
    let source = "agent:main:main";
    append(
        source,
        Event::SessionCreated(SessionCreated {
            session_key: source.to_owned(),
            session_id: "sid".to_owned(),
            agent_id: "main".to_owned(),
            label: None,
            origin: None,
        }),
    ); // 0
    append(source, message(source, Role::User, "one")); // 1
    append(source, message(source, Role::Assistant, "first")); // 2
    append(source, message(source, Role::User, "two")); // 3
    append(source, message(source, Role::Assistant, "second")); // 4
    let fork = "agent:main:fork";
    append(
        fork,
        Event::SessionForked(SessionForked {
            session_key: fork.to_owned(),
            session_id: "sid-fork".to_owned(),
            agent_id: "main".to_owned(),
            source_session_key: source.to_owned(),
            source_session_id: "sid".to_owned(),
            at_seq: 2,
            settings: Vec::new(),
            next_message_seq: Some(3),
        }),
    ); // 5
    append(fork, message(fork, Role::Assistant, "another second")); // 6
    // A fork of the fork at a seq the fork inherited (before its own record).
    let again = "agent:main:again";
    append(
        again,
        Event::SessionForked(SessionForked {
            session_key: again.to_owned(),
            session_id: "sid-again".to_owned(),
            agent_id: "main".to_owned(),
            source_session_key: fork.to_owned(),
            source_session_id: "sid-fork".to_owned(),
            at_seq: 1,
            settings: Vec::new(),
            next_message_seq: None,
        }),
    ); // 7
    log.close();
    let twice =
        session_steps(&*store, &clawback_events::sealed::NoKeys, again).expect("fork of a fork");
    let seqs: Vec<u64> = twice.steps.iter().map(|step| step.seq).collect();
    assert_eq!(seqs, [1], "the source's first message, through the fork");

    let forked =
        session_steps(&*store, &clawback_events::sealed::NoKeys, fork).expect("fork steps");
    assert_eq!(forked.forked_from, Some((source.to_owned(), 2)));
    let seqs: Vec<(u64, bool)> = forked
        .steps
        .iter()
        .map(|step| (step.seq, step.inherited))
        .collect();
    assert_eq!(seqs, [(1, true), (2, true), (3, true), (6, false)]);

    let result = diff(
        session_steps(&*store, &clawback_events::sealed::NoKeys, source).unwrap(),
        forked,
    );
    assert_eq!(result.shared, 3, "up to the reused user message");
    assert_eq!(result.summary_a.final_reply.as_deref(), Some("second"));
    assert_eq!(
        result.summary_b.final_reply.as_deref(),
        Some("another second")
    );
    assert!(matches!(
        session_steps(&*store, &clawback_events::sealed::NoKeys, "agent:main:nope"),
        Err(crate::diff::DiffError::UnknownSession(_))
    ));
}
