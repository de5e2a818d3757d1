//! Unit tests for the reducers' rules, and property tests for the crate's
//! promises: total, deterministic, and snapshot-equivalent. The sessions
//! projection's transcript rules (tool rounds, reply pointers, compaction,
//! forks) are in `sessions`, the chat channels' in `channels`.

use clawback_events::event::*;
use clawback_events::{Envelope, Event};
use proptest::prelude::*;

use crate::approvals::Settlement;
use crate::cron::CronRunStatus;
use crate::sessions::RunState;
use crate::testing::{chain, history};
use crate::{DecodeError, STATE_FORMAT_VERSION, State};

fn s(text: &str) -> String {
    text.to_owned()
}

/// Applies `events`, each `delay` ms after the previous one.
fn fold(events: Vec<(i64, Event)>) -> State {
    let mut state = State::default();
    for envelope in chain(&events) {
        state.apply(&envelope);
    }
    state
}

fn at(delay_ms: i64, event: Event) -> (i64, Event) {
    (delay_ms, event)
}

fn session(key: &str) -> Event {
    Event::SessionCreated(SessionCreated {
        session_key: s(key),
        session_id: s("sid-1"),
        agent_id: s("main"),
        label: None,
        origin: None,
    })
}

fn inbound(key: &str, message_id: &str, platform_id: &str) -> Event {
    Event::MessageAppended(MessageAppended {
        session_key: s(key),
        message_id: s(message_id),
        role: Role::User,
        content: s("hello"),
        run_id: None,
        tool_call_id: None,
        origin: Some(MessageOrigin {
            channel: s("telegram"),
            sender: s("42"),
            platform_message_id: Some(s(platform_id)),
        }),
    })
}

fn approval(id: &str, argv_hash: &str, expires_at_ms: i64) -> Event {
    Event::ApprovalRequested(ApprovalRequested {
        approval_id: s(id),
        kind: s("exec"),
        command: s("rm -rf /tmp/x"),
        argv_hash: s(argv_hash),
        session_key: None,
        agent_id: None,
        node_id: None,
        expires_at_ms,
    })
}

fn decide(id: &str, decision: Decision) -> Event {
    Event::ApprovalResolved(ApprovalResolved {
        approval_id: s(id),
        decision,
        reviewer: s("dev1"),
        grant_expires_at_ms: None,
    })
}

fn started() -> Event {
    Event::GatewayStarted(GatewayStarted {
        version: s("0.1.0"),
        bind: s("127.0.0.1:18789"),
    })
}

fn run_started(run_id: &str, key: &str) -> Event {
    Event::AgentRunStarted(AgentRunStarted {
        run_id: s(run_id),
        session_key: s(key),
        agent_id: s("main"),
        model: None,
        trigger: s("chat.send"),
    })
}

fn fired(job_id: &str, slot_ms: i64, run_id: &str) -> Event {
    Event::CronJobFired(CronJobFired {
        job_id: s(job_id),
        slot_ms,
        run_id: s(run_id),
    })
}

fn cron_job(job_id: &str) -> Event {
    Event::CronJobAdded(CronJobAdded {
        job_id: s(job_id),
        name: s("daily"),
        schedule: s("0 9 * * *"),
        payload: s("{}"),
        enabled: true,
    })
}

#[test]
fn a_redelivered_inbound_message_is_not_appended_twice() {
    let key = "agent:main:telegram:dm:42";
    let state = fold(vec![
        at(0, session(key)),
        at(1, inbound(key, "m1", "tg-1")),
        at(1, inbound(key, "m2", "tg-1")),
        at(1, inbound(key, "m3", "tg-2")),
    ]);
    let transcript = &state.sessions.by_key[key].transcript;
    let seqs: Vec<u64> = transcript.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [1, 3], "m1 and m3, not the redelivered m2");
    assert_eq!(state.sessions.inbound.duplicates_ignored, 1);
    assert!(state.sessions.inbound.contains("telegram", "tg-1"));
    assert_eq!(state.anomalies.count("message.redelivered"), 1);
}

#[test]
fn a_decision_after_expiry_counts_as_expired_and_grants_nothing() {
    let state = fold(vec![
        at(0, approval("a1", "argv-1", 100)),
        at(500, decide("a1", Decision::AllowAlways)),
    ]);
    assert!(state.approvals.pending.is_empty());
    assert_eq!(state.approvals.settled[0].outcome, Settlement::Expired);
    assert!(state.approvals.grant_for("argv-1", 500).is_none());
    assert_eq!(state.anomalies.count("approval.decided_after_expiry"), 1);
}

#[test]
fn only_the_first_decision_on_an_approval_counts() {
    let state = fold(vec![
        at(0, approval("a1", "argv-1", 10_000)),
        at(1, decide("a1", Decision::Deny)),
        at(1, decide("a1", Decision::AllowAlways)),
    ]);
    assert_eq!(state.approvals.totals.denied, 1);
    assert_eq!(state.approvals.totals.allowed_always, 0);
    assert!(state.approvals.grants.is_empty());
    assert_eq!(state.anomalies.count("approval.not_pending"), 1);
}

#[test]
fn an_allow_always_grant_is_bound_to_the_argv_hash_and_expires() {
    let mut events = vec![at(0, approval("a1", "argv-1", 10_000))];
    events.push(at(
        1,
        Event::ApprovalResolved(ApprovalResolved {
            approval_id: s("a1"),
            decision: Decision::AllowAlways,
            reviewer: s("dev1"),
            grant_expires_at_ms: Some(5_000),
        }),
    ));
    let state = fold(events);
    assert!(state.approvals.grant_for("argv-1", 4_999).is_some());
    assert!(state.approvals.grant_for("argv-1", 5_001).is_none());
    assert!(state.approvals.grant_for("argv-2", 1).is_none());
}

#[test]
fn a_cron_slot_is_claimed_once_even_across_restarts() {
    let state = fold(vec![
        at(0, cron_job("j1")),
        at(1, fired("j1", 60_000, "r1")),
        at(1, started()),
        at(1, fired("j1", 60_000, "r2")),
        at(1, fired("j1", 0, "r3")),
        at(1, fired("j1", 120_000, "r4")),
    ]);
    let job = &state.cron.jobs["j1"];
    let runs: Vec<&str> = job.runs.iter().map(|r| r.run_id.as_str()).collect();
    assert_eq!(runs, ["r1", "r4"]);
    assert_eq!(state.cron.duplicate_fires, 2);
    assert!(matches!(
        job.runs[0].status,
        CronRunStatus::Interrupted { restart_seq: 2, .. }
    ));
    assert!(state.cron.has_fired("j1", 120_000));
    assert!(!state.cron.has_fired("j1", 180_000));
}

#[test]
fn a_restart_interrupts_runs_and_clears_connections_and_presence() {
    let key = "agent:main:main";
    let state = fold(vec![
        at(0, session(key)),
        at(
            1,
            Event::ConnectionOpened(ConnectionOpened {
                conn_id: s("c1"),
                remote_addr: s("127.0.0.1:1"),
                client: ClientInfo {
                    id: s("cli"),
                    version: s("1"),
                    platform: s("linux"),
                    mode: s("cli"),
                    display_name: None,
                    instance_id: None,
                },
                role: s("operator"),
                scopes: vec![],
                device_id: None,
                auth_method: s("none"),
            }),
        ),
        at(1, run_started("run-1", key)),
        at(1, started()),
    ]);
    let session = &state.sessions.by_key[key];
    assert!(session.active_runs.is_empty());
    assert!(matches!(
        session.recent_runs[0].state,
        RunState::Interrupted { restart_seq: 3 }
    ));
    assert!(state.presence.connections.is_empty());
    assert_eq!(state.gateway.starts, 1);
}

#[test]
fn a_start_without_a_stop_is_an_unclean_restart() {
    let stopped = Event::GatewayStopped(GatewayStopped {
        reason: s("SIGTERM"),
    });
    let state = fold(vec![
        at(0, started()),
        at(1, stopped),
        at(1, started()),
        at(1, started()),
    ]);
    assert_eq!(state.gateway.starts, 3);
    assert_eq!(state.gateway.unclean_restarts, 1);
}

#[test]
fn a_reused_idempotency_key_is_refused_and_unconfirmed_lists_the_outbox() {
    let prepared = |id: &str, key: &str| {
        Event::DeliveryPrepared(DeliveryPrepared {
            delivery_id: s(id),
            idempotency_key: s(key),
            channel: s("telegram"),
            target: s("42"),
            session_key: None,
            text: s("hi"),
        })
    };
    let state = fold(vec![
        at(0, prepared("d1", "k1")),
        at(
            1,
            Event::DeliverySent(DeliverySent {
                delivery_id: s("d1"),
                platform_message_id: Some(s("tg-9")),
            }),
        ),
        at(1, prepared("d2", "k1")),
        at(1, prepared("d3", "k3")),
    ]);
    assert_eq!(state.anomalies.count("delivery.duplicate"), 1);
    let unconfirmed: Vec<&str> = state
        .deliveries
        .unconfirmed()
        .map(|d| d.prepared.delivery_id.as_str())
        .collect();
    assert_eq!(unconfirmed, ["d3"]);
    assert_eq!(state.deliveries.by_idempotency_key("k1"), Some("d1"));
}

#[test]
fn a_revoked_device_is_not_trusted_until_paired_again() {
    let paired = Event::DevicePaired(DevicePaired {
        device_id: s("dev1"),
        public_key: s("AAAA"),
        role: s("operator"),
        scopes: vec![],
        approved_by: s("auto-loopback"),
    });
    let revoked = Event::DeviceRevoked(DeviceRevoked {
        device_id: s("dev1"),
        reason: s("lost"),
    });
    let state = fold(vec![at(0, paired.clone()), at(1, revoked)]);
    assert!(!state.devices.is_trusted("dev1"));
    assert!(state.devices.revoked.contains_key("dev1"));
    let mut again = State::default();
    for envelope in chain(&[at(0, paired.clone()), at(1, state_revoked()), at(1, paired)]) {
        again.apply(&envelope);
    }
    assert!(again.devices.is_trusted("dev1"));
}

fn state_revoked() -> Event {
    Event::DeviceRevoked(DeviceRevoked {
        device_id: s("dev1"),
        reason: s("lost"),
    })
}

#[test]
fn usage_is_summed_exactly_per_model_and_session() {
    let key = "agent:main:main";
    let completed = |provider: &str, cost: u64| {
        Event::LlmCallCompleted(LlmCallCompleted {
            call_id: s("c"),
            run_id: s("r"),
            session_key: s(key),
            provider: s(provider),
            model: s("m"),
            outcome: LlmOutcome::Ok {
                response: s("{}"),
                stop_reason: s("stop"),
            },
            usage: Usage {
                input_tokens: 10,
                output_tokens: 5,
                cache_read_tokens: 0,
                cache_write_tokens: 0,
            },
            cost_micro_usd: cost,
            latency_ms: 1,
        })
    };
    let state = fold(vec![
        at(0, session(key)),
        at(1, completed("openai", 300)),
        at(1, completed("anthropic", 20)),
        at(1, completed("openai", 1)),
    ]);
    assert_eq!(state.usage.total.cost_micro_usd, 321);
    assert_eq!(state.usage.total.input_tokens, 30);
    assert_eq!(state.usage.by_model["openai"]["m"].calls, 2);
    assert_eq!(state.sessions.by_key[key].usage.cost_micro_usd, 321);
}

#[test]
fn decode_refuses_other_versions_and_trailing_bytes() {
    let state = fold(vec![at(0, session("k"))]);
    let mut bytes = state.encode();
    assert_eq!(State::decode(&bytes).unwrap(), state);
    bytes[0] = STATE_FORMAT_VERSION + 1;
    assert!(matches!(
        State::decode(&bytes),
        Err(DecodeError::UnknownVersion(_))
    ));
    let mut bytes = state.encode();
    bytes.push(0);
    assert!(matches!(
        State::decode(&bytes),
        Err(DecodeError::Malformed(_))
    ));
    assert!(matches!(State::decode(&[]), Err(DecodeError::Empty)));
}

#[test]
#[should_panic(expected = "in order")]
fn applying_out_of_order_is_a_caller_bug() {
    let envelopes = chain(&[at(0, session("k")), at(1, session("k2"))]);
    let mut state = State::default();
    state.apply(&envelopes[1]);
}

fn fold_envelopes(envelopes: &[Envelope]) -> State {
    let mut state = State::default();
    for envelope in envelopes {
        state.apply(envelope);
    }
    state
}

fn check_invariants(state: &State) {
    let inbound = &state.sessions.inbound;
    assert_eq!(inbound.ids.len(), inbound.order.len());
    for pending in state.approvals.pending.keys() {
        assert!(
            !state
                .approvals
                .settled
                .iter()
                .any(|s| &s.approval_id == pending)
        );
    }
    for session in state.sessions.by_key.values() {
        if let Some(compaction) = &session.compaction {
            assert!(compaction.context_start <= session.transcript.len());
        }
        // Forks reuse the source's seqs, so order must survive them.
        assert!(
            session
                .transcript
                .windows(2)
                .all(|pair| pair[0].seq < pair[1].seq),
            "transcript of {} out of order",
            session.key
        );
        assert!(session.recent_runs.len() <= crate::sessions::RECENT_RUNS_MAX);
        for run in session.active_runs.values() {
            assert_eq!(run.state, RunState::Running);
        }
    }
    for job in state.cron.jobs.values() {
        let slots: Vec<i64> = job
            .runs
            .iter()
            .filter(|run| !run.forced)
            .map(|run| run.slot_ms)
            .collect();
        assert!(
            slots.windows(2).all(|pair| pair[0] < pair[1]),
            "slots {slots:?}"
        );
    }
    let deliveries = &state.deliveries;
    assert_eq!(
        deliveries.keys.len(),
        deliveries.outbox.len() + deliveries.finished.len()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any history folds without panicking, keeps every invariant, and the
    /// same history always gives the same hash.
    #[test]
    fn reducers_are_total_and_deterministic(envelopes in history(120)) {
        let state = fold_envelopes(&envelopes);
        check_invariants(&state);
        prop_assert_eq!(state.next_seq, envelopes.len() as u64);
        prop_assert_eq!(fold_envelopes(&envelopes).state_hash(), state.state_hash());
    }

    /// A snapshot at any point (encode, decode) plus the tail reaches the
    /// same state, byte for byte, as folding the whole history.
    #[test]
    fn snapshot_plus_tail_equals_full_rebuild(envelopes in history(120), cut in any::<prop::sample::Index>()) {
        let full = fold_envelopes(&envelopes);
        let cut = if envelopes.is_empty() { 0 } else { cut.index(envelopes.len() + 1) };
        let snapshot = State::decode(&fold_envelopes(&envelopes[..cut]).encode()).unwrap();
        let mut resumed = snapshot;
        for envelope in &envelopes[cut..] {
            resumed.apply(envelope);
        }
        prop_assert_eq!(resumed.state_hash(), full.state_hash());
        prop_assert_eq!(resumed, full);
    }

    /// A snapshot payload from a damaged or hostile file is refused, never
    /// a panic (and never a huge allocation: postcard bounds preallocation).
    #[test]
    fn decoding_arbitrary_state_bytes_never_panics(
        tail in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut bytes = vec![STATE_FORMAT_VERSION];
        bytes.extend_from_slice(&tail);
        let _ = State::decode(&bytes);
    }

    /// The rebuild path (moving out of owned envelopes) and the live path
    /// (copying from shared ones) reach the same state.
    #[test]
    fn apply_owned_equals_apply(envelopes in history(120)) {
        let mut owned = State::default();
        for envelope in envelopes.iter().cloned() {
            owned.apply_owned(envelope);
        }
        prop_assert_eq!(owned, fold_envelopes(&envelopes));
    }
}

/// The hash must cover every projection: a field left out of the encoding
/// (a `serde(skip)`, a projection not in `State`) would let two different
/// states share a hash and make the live-equals-rebuild check meaningless.
#[test]
fn the_state_hash_covers_every_projection() {
    let base = fold(vec![at(0, session("k")), at(1, cron_job("j1"))]);
    type Mutation = (&'static str, fn(&mut State));
    let mutations: Vec<Mutation> = vec![
        ("gateway", |st| st.gateway.starts += 1),
        ("sessions", |st| {
            st.sessions.by_key.get_mut("k").unwrap().resets += 1
        }),
        ("inbound", |st| st.sessions.inbound.duplicates_ignored += 1),
        ("presence", |st| st.presence.state_version += 1),
        ("config", |st| st.config.versions += 1),
        ("approvals", |st| st.approvals.totals.requested += 1),
        ("cron", |st| {
            st.cron.jobs.get_mut("j1").unwrap().enabled = false
        }),
        ("devices", |st| {
            st.devices.revoked.insert(
                s("d"),
                crate::devices::Revocation {
                    reason: s("x"),
                    seq: 0,
                    ts_ms: 0,
                },
            );
        }),
        ("deliveries", |st| st.deliveries.totals.sent += 1),
        ("usage", |st| st.usage.total.cost_micro_usd += 1),
        ("anomalies", |st| {
            st.anomalies.counts.insert(s("x"), 1);
        }),
        ("clock", |st| st.last_ts_ms += 1),
    ];
    for (name, mutate) in mutations {
        let mut changed = base.clone();
        mutate(&mut changed);
        assert_ne!(
            changed.state_hash(),
            base.state_hash(),
            "{name} is not covered by the hash"
        );
    }
}

mod channels;
mod sessions;
