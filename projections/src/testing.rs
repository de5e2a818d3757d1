//! Proptest strategies for event histories.
//!
//! Why a small id pool: random ids would almost never refer to each other,
//! and the interesting cases are the interactions (a message for a deleted
//! session, a decision on an expired approval, a slot fired twice, a restart
//! in the middle of a run). Drawing every id from a few values makes those
//! happen in nearly every generated history.

use clawback_events::event::*;
use clawback_events::{Actor, Body, Digest, Envelope, Event, NewEvent};
use proptest::prelude::*;

fn id(prefix: &'static str, pool: u8) -> impl Strategy<Value = String> {
    (0..pool).prop_map(move |n| format!("{prefix}{n}"))
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z ]{1,12}",
        Just("\"quoted\"".to_owned())
    ]
}

fn ms() -> impl Strategy<Value = i64> {
    0i64..5_000
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![
        Just(Role::System),
        Just(Role::User),
        Just(Role::Assistant),
        Just(Role::Tool)
    ]
}

fn decision() -> impl Strategy<Value = Decision> {
    prop_oneof![
        Just(Decision::AllowOnce),
        Just(Decision::AllowAlways),
        Just(Decision::Deny)
    ]
}

fn usage() -> impl Strategy<Value = Usage> {
    (0u64..1000, 0u64..1000, 0u64..10, 0u64..10).prop_map(|(i, o, r, w)| Usage {
        input_tokens: i,
        output_tokens: o,
        cache_read_tokens: r,
        cache_write_tokens: w,
    })
}

fn client() -> impl Strategy<Value = ClientInfo> {
    (id("client", 2), proptest::option::of(id("inst", 3))).prop_map(|(id, instance_id)| {
        ClientInfo {
            id,
            version: "2026.9.6".to_owned(),
            platform: "linux".to_owned(),
            mode: "cli".to_owned(),
            display_name: None,
            instance_id,
        }
    })
}

fn presence_entry() -> impl Strategy<Value = PresenceEntry> {
    (
        proptest::option::of(text()),
        proptest::option::of(id("dev", 3)),
    )
        .prop_map(|(text, device_id)| PresenceEntry {
            host: Some("host".to_owned()),
            ip: None,
            version: None,
            platform: None,
            mode: Some("cli".to_owned()),
            reason: Some("connect".to_owned()),
            text,
            device_id,
            roles: vec!["operator".to_owned()],
            scopes: vec!["operator.read".to_owned()],
        })
}

fn gateway_events() -> impl Strategy<Value = Event> {
    prop_oneof![
        Just(Event::GatewayStarted(GatewayStarted {
            version: "0.1.0".to_owned(),
            bind: "127.0.0.1:18789".to_owned(),
        })),
        text().prop_map(|reason| Event::GatewayStopped(GatewayStopped { reason })),
        (id("conn", 3), client(), proptest::option::of(id("dev", 3))).prop_map(
            |(conn_id, client, device_id)| Event::ConnectionOpened(ConnectionOpened {
                conn_id,
                remote_addr: "127.0.0.1:5000".to_owned(),
                client,
                role: "operator".to_owned(),
                scopes: vec!["operator.admin".to_owned()],
                device_id,
                auth_method: "token".to_owned(),
            })
        ),
        (id("conn", 3), 1000u16..4999).prop_map(|(conn_id, code)| Event::ConnectionClosed(
            ConnectionClosed {
                conn_id,
                code,
                reason: String::new(),
            }
        )),
        (id("conn", 3), id("req", 4), id("method", 3)).prop_map(|(conn_id, request_id, method)| {
            Event::RpcReceived(RpcReceived {
                conn_id,
                request_id,
                method,
                params_redacted: "{}".to_owned(),
            })
        }),
        (id("conn", 3), id("req", 4), any::<bool>()).prop_map(|(conn_id, request_id, ok)| {
            Event::RpcAnswered(RpcAnswered {
                conn_id,
                request_id,
                method: "health".to_owned(),
                outcome: if ok {
                    RpcOutcome::Ok
                } else {
                    RpcOutcome::Error {
                        code: "INVALID_REQUEST".to_owned(),
                        message: "bad".to_owned(),
                    }
                },
            })
        }),
        (id("inst", 3), proptest::option::of(presence_entry())).prop_map(|(key, entry)| {
            Event::PresenceChanged(PresenceChanged {
                key,
                change: match entry {
                    Some(entry) => PresenceChange::Upsert(entry),
                    None => PresenceChange::Removed {
                        reason: "disconnect".to_owned(),
                    },
                },
            })
        }),
        (id("cfg", 4), text()).prop_map(|(config_hash, source)| Event::ConfigChanged(
            ConfigChanged {
                config_hash,
                config_redacted: "{}".to_owned(),
                source,
            }
        )),
    ]
}

fn session_events() -> impl Strategy<Value = Event> {
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

fn run_events() -> impl Strategy<Value = Event> {
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

fn side_effect_events() -> impl Strategy<Value = Event> {
    prop_oneof![
        (id("ap", 4), id("argv", 3), ms()).prop_map(|(approval_id, argv_hash, expires_at_ms)| {
            Event::ApprovalRequested(ApprovalRequested {
                approval_id,
                kind: "exec".to_owned(),
                command: "rm -rf /tmp/x".to_owned(),
                argv_hash,
                session_key: Some("agent:main:s0".to_owned()),
                agent_id: Some("main".to_owned()),
                node_id: None,
                expires_at_ms,
            })
        }),
        (id("ap", 4), decision(), proptest::option::of(ms())).prop_map(
            |(approval_id, decision, grant_expires_at_ms)| Event::ApprovalResolved(
                ApprovalResolved {
                    approval_id,
                    decision,
                    reviewer: "dev0".to_owned(),
                    grant_expires_at_ms,
                }
            )
        ),
        id("ap", 4).prop_map(|approval_id| Event::ApprovalExpired(ApprovalExpired { approval_id })),
        (id("req", 3), id("ap", 4), id("argv", 3)).prop_map(
            |(request_id, grant_approval_id, argv_hash)| {
                Event::ApprovalGrantApplied(ApprovalGrantApplied {
                    request_id,
                    grant_approval_id,
                    command: "ls".to_owned(),
                    argv_hash,
                    session_key: None,
                    agent_id: None,
                })
            }
        ),
        (id("dl", 4), id("idem", 4), text()).prop_map(|(delivery_id, idempotency_key, text)| {
            Event::DeliveryPrepared(DeliveryPrepared {
                delivery_id,
                idempotency_key,
                channel: "telegram".to_owned(),
                target: "42".to_owned(),
                session_key: None,
                text,
            })
        }),
        (id("dl", 4), proptest::option::of(id("pm", 6))).prop_map(
            |(delivery_id, platform_message_id)| Event::DeliverySent(DeliverySent {
                delivery_id,
                platform_message_id,
            })
        ),
        (id("dl", 4), any::<bool>()).prop_map(|(delivery_id, retryable)| Event::DeliveryFailed(
            DeliveryFailed {
                delivery_id,
                error: "timeout".to_owned(),
                retryable,
            }
        )),
        (id("job", 3), any::<bool>()).prop_map(|(job_id, enabled)| Event::CronJobAdded(
            CronJobAdded {
                job_id,
                name: "daily".to_owned(),
                schedule: "0 9 * * *".to_owned(),
                payload: "{}".to_owned(),
                enabled,
            }
        )),
        id("job", 3).prop_map(|job_id| Event::CronJobRemoved(CronJobRemoved { job_id })),
        (id("job", 3), 0i64..6, id("crun", 4)).prop_map(|(job_id, slot, run_id)| {
            Event::CronJobFired(CronJobFired {
                job_id,
                slot_ms: slot * 60_000,
                run_id,
            })
        }),
        (id("job", 3), id("crun", 4), any::<bool>()).prop_map(|(job_id, run_id, ok)| {
            Event::CronJobFinished(CronJobFinished {
                job_id,
                run_id,
                ok,
                error: (!ok).then(|| "failed".to_owned()),
            })
        }),
        id("node", 2).prop_map(|node_id| Event::NodePaired(NodePaired {
            node_id,
            display_name: "phone".to_owned(),
            platform: "ios".to_owned(),
            capabilities: vec!["camera".to_owned()],
        })),
        id("node", 2).prop_map(|node_id| Event::NodeUnpaired(NodeUnpaired { node_id })),
        id("dev", 3).prop_map(|device_id| Event::DevicePaired(DevicePaired {
            device_id,
            public_key: "AAAA".to_owned(),
            role: "operator".to_owned(),
            scopes: vec!["operator.admin".to_owned()],
            approved_by: "auto-loopback".to_owned(),
        })),
        id("dev", 3).prop_map(|device_id| Event::DeviceRevoked(DeviceRevoked {
            device_id,
            reason: "lost".to_owned(),
        })),
        (id("req", 3), id("dev", 3)).prop_map(|(request_id, device_id)| {
            Event::DevicePairRequested(DevicePairRequested {
                request_id,
                device_id,
                public_key: "AAAA".to_owned(),
                role: "operator".to_owned(),
                scopes: vec!["operator.read".to_owned()],
                remote_ip: "10.0.0.2".to_owned(),
                client_id: "openclaw-tui".to_owned(),
                client_mode: "ui".to_owned(),
                display_name: None,
            })
        }),
        (id("req", 3), id("dev", 3), any::<bool>()).prop_map(
            |(request_id, device_id, approved)| {
                Event::DevicePairResolved(DevicePairResolved {
                    request_id,
                    device_id,
                    approved,
                    reviewer: "conn-1".to_owned(),
                })
            }
        ),
        id("dev", 3).prop_map(|device_id| Event::DeviceTokenIssued(DeviceTokenIssued {
            device_id,
            role: "operator".to_owned(),
            scopes: vec!["operator.admin".to_owned()],
            token_digest: "ab12".to_owned(),
        })),
        id("wake", 2).prop_map(|word| Event::VoiceWakeChanged(VoiceWakeChanged {
            triggers: vec![word],
        })),
        id("pol", 2).prop_map(|hash| Event::ExecPolicyChanged(ExecPolicyChanged {
            hash,
            policy: "{\"version\":1}".to_owned(),
        })),
        id("run", 3).prop_map(|run_id| Event::ModelCooldown(ModelCooldown {
            provider: "openai".to_owned(),
            model: "gpt".to_owned(),
            run_id,
            class: "rate_limit".to_owned(),
            until_ms: 60_000,
        })),
        id("dev", 3).prop_map(|device_id| Event::DeviceTokenRevoked(DeviceTokenRevoked {
            device_id,
            role: "operator".to_owned(),
            reason: "rotated out".to_owned(),
        })),
        (id("profile", 2), any::<bool>()).prop_map(|(profile_id, refreshed)| {
            Event::AuthProfileRefreshed(AuthProfileRefreshed {
                profile_id,
                provider: "anthropic".to_owned(),
                outcome: if refreshed {
                    RefreshOutcome::Refreshed { expires_ms: 60_000 }
                } else {
                    RefreshOutcome::Failed {
                        reason: "invalid_grant".to_owned(),
                        http_status: Some(400),
                    }
                },
            })
        }),
        // A signed tree head: the note is opaque to the reducers.
        any::<u8>().prop_map(|byte| Event::MerkleCheckpoint(MerkleCheckpoint {
            note: format!("clawback/test\n{byte}\nAAAA\n\n\u{2014} clawback/test AAAA\n"),
            chain_hash: Digest([byte; 32]),
            frontier: vec![[byte; 32]; (byte % 4) as usize],
        })),
    ]
}

fn node_surface(commands: Vec<String>) -> NodeSurface {
    NodeSurface {
        client_id: "node-host".to_owned(),
        client_mode: "node".to_owned(),
        display_name: Some("mac".to_owned()),
        platform: "darwin".to_owned(),
        version: "2026.9.6".to_owned(),
        device_family: None,
        model_identifier: None,
        remote_ip: None,
        caps: vec!["system".to_owned()],
        commands,
        permissions: None,
    }
}

/// Node connections, surface requests and decisions, renames, invokes;
/// node ids overlap device ids (a node is a device) and connection ids.
pub fn node_events() -> impl Strategy<Value = Event> {
    let commands = || proptest::collection::vec(id("cmd", 3), 0..3);
    prop_oneof![
        (id("conn", 3), id("dev", 3), commands()).prop_map(|(conn_id, node_id, commands)| {
            Event::NodeConnected(NodeConnected {
                conn_id,
                node_id,
                surface: node_surface(commands),
            })
        }),
        (id("nreq", 3), id("dev", 3), commands(), any::<bool>()).prop_map(
            |(request_id, node_id, commands, silent)| {
                Event::NodePairRequested(NodePairRequested {
                    request_id,
                    node_id,
                    surface: node_surface(commands),
                    silent,
                })
            }
        ),
        (id("nreq", 3), id("dev", 3), any::<bool>()).prop_map(|(request_id, node_id, ok)| {
            Event::NodePairResolved(NodePairResolved {
                request_id,
                node_id,
                decision: if ok { "approved" } else { "rejected" }.to_owned(),
                reviewer: "conn-1".to_owned(),
            })
        }),
        (id("dev", 3), id("name", 2)).prop_map(|(node_id, display_name)| {
            Event::NodeRenamed(NodeRenamed {
                node_id,
                display_name,
            })
        }),
        id("dev", 3).prop_map(|node_id| Event::NodeUnpaired(NodeUnpaired { node_id })),
        (id("inv", 3), id("dev", 3)).prop_map(|(invoke_id, node_id)| {
            Event::NodeInvokeRequested(NodeInvokeRequested {
                invoke_id,
                node_id,
                node_conn_id: "conn-1".to_owned(),
                command: "system.notify".to_owned(),
                params_redacted: Some("{}".to_owned()),
                timeout_ms: 30_000,
                idempotency_key: "k".to_owned(),
                session_key: None,
            })
        }),
        (id("inv", 3), id("dev", 3), any::<bool>()).prop_map(|(invoke_id, node_id, ok)| {
            Event::NodeInvokeFinished(NodeInvokeFinished {
                invoke_id,
                node_id,
                ok,
                error_code: (!ok).then(|| "TIMEOUT".to_owned()),
                error_message: None,
                payload_bytes: 2,
                payload_blake3: None,
            })
        }),
    ]
}

fn http_events() -> impl Strategy<Value = Event> {
    prop_oneof![
        (id("key", 3), id("run", 4), id("body", 2), id("s", 3)).prop_map(
            |(idempotency_key, run_id, body_hash, session_key)| {
                Event::HttpRequestAccepted(HttpRequestAccepted {
                    endpoint: "chat.completions".to_owned(),
                    idempotency_key,
                    body_hash,
                    run_id,
                    session_key,
                })
            }
        ),
        (
            id("key", 3),
            id("run", 4),
            prop_oneof![Just(200u16), Just(500u16)]
        )
            .prop_map(|(idempotency_key, run_id, status)| {
                Event::HttpRequestAnswered(HttpRequestAnswered {
                    endpoint: "chat.completions".to_owned(),
                    idempotency_key,
                    run_id,
                    status,
                    answer: "{}".to_owned(),
                })
            }),
    ]
}

/// Channel messages (some redelivered, some refused), reply parts entering
/// the outbox under the run's part keys, and settled replies.
fn channel_events() -> impl Strategy<Value = Event> {
    prop_oneof![
        (
            id("msg", 4),
            id("acct", 2),
            id("run", 4),
            id("s", 3),
            any::<bool>(),
            proptest::option::of(id("cur", 5)),
        )
            .prop_map(
                |(platform_message_id, account_id, run_id, session_key, ok, cursor)| {
                    let admission = if ok {
                        Admission::Admitted {
                            agent_id: "main".to_owned(),
                            session_key,
                            run_id,
                        }
                    } else {
                        Admission::Refused {
                            reason: "not in allowFrom".to_owned(),
                        }
                    };
                    Event::ChannelMessageReceived(ChannelMessageReceived {
                        channel: "telegram".to_owned(),
                        account_id,
                        platform_message_id,
                        cursor,
                        chat_kind: "direct".to_owned(),
                        chat_id: "42".to_owned(),
                        thread_id: None,
                        sender_id: "42".to_owned(),
                        sender_name: None,
                        text: "hi".to_owned(),
                        admission,
                    })
                }
            ),
        (id("d", 4), id("run", 4), 0u32..3).prop_map(|(delivery_id, run_id, part)| {
            Event::DeliveryPrepared(DeliveryPrepared {
                delivery_id,
                idempotency_key: format!("{run_id}#{part}"),
                channel: "telegram".to_owned(),
                target: "{}".to_owned(),
                session_key: None,
                text: "part".to_owned(),
            })
        }),
        (id("preq", 4), id("sender", 3), 0i64..5_000).prop_map(
            |(request_id, sender_id, expires_at_ms)| {
                Event::ChannelPairingRequested(ChannelPairingRequested {
                    channel: "telegram".to_owned(),
                    account_id: "default".to_owned(),
                    request_id,
                    code: "ABCD2345".to_owned(),
                    sender_id,
                    sender_name: None,
                    chat_id: "42".to_owned(),
                    expires_at_ms,
                })
            }
        ),
        (id("preq", 4), id("sender", 3), any::<bool>()).prop_map(|(request_id, sender_id, ok)| {
            Event::ChannelPairingResolved(ChannelPairingResolved {
                channel: "telegram".to_owned(),
                account_id: "default".to_owned(),
                request_id,
                sender_id,
                decision: if ok { "approved" } else { "dismissed" }.to_owned(),
                reviewer: "conn:1".to_owned(),
            })
        }),
        id("run", 4).prop_map(|run_id| {
            Event::ChannelReplyCompleted(ChannelReplyCompleted {
                run_id,
                outcome: "replied".to_owned(),
            })
        }),
    ]
}

/// Any event, with ids drawn from small pools so events interact.
pub fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        1 => gateway_events(),
        3 => session_events(),
        3 => run_events(),
        3 => side_effect_events(),
        2 => node_events(),
        1 => http_events(),
        1 => channel_events(),
    ]
}

/// A history of events with the time each happened after the previous one
/// (0 to 999 ms, so approval deadlines fall inside and outside histories).
pub fn timed_events(max_len: usize) -> impl Strategy<Value = Vec<(i64, Event)>> {
    proptest::collection::vec(
        (0i64..1000, event(), proptest::bool::weighted(0.3)),
        0..max_len,
    )
    .prop_map(|events| {
        events
            .into_iter()
            .map(|(delay, event, sealed)| (delay, if sealed { seal(event) } else { event }))
            .collect()
    })
}

/// `event` with its session content sealed, as the gateway's keyring would
/// (a fixed test key per session, a nonce from the content): reducers must
/// fold it exactly as the clear event. A purge of some keys comes with it.
fn seal(event: Event) -> Event {
    use clawback_events::event::SessionPurged;
    use clawback_events::sealed::{self, ContentKey};
    let Some(session_key) = event.session_key().map(str::to_owned) else {
        return event;
    };
    let key = ContentKey {
        id: format!("{:032x}", session_key.len()),
        bytes: [7u8; 32],
    };
    let nonce_source = blake3::hash(format!("{event:?}").as_bytes());
    let nonce: [u8; 12] = nonce_source.as_bytes()[..12].try_into().expect("12 bytes");
    match sealed::seal(event.clone(), None, &key, nonce) {
        // A sealed deletion does not exist; purge the session's key instead.
        Ok(unchanged) if unchanged == event && matches!(event, Event::SessionDeleted(_)) => {
            Event::SessionPurged(SessionPurged {
                session_key,
                key_ids: vec![key.id],
            })
        }
        Ok(sealed) => sealed,
        Err(_) => event,
    }
}

/// What an appender would hand the log for `event`.
pub fn new_event(event: Event) -> NewEvent {
    let stream = event.session_key().unwrap_or("gateway").to_owned();
    NewEvent::new(stream, Actor::System, event)
}

/// Chains `events` into envelopes exactly as the log's writer would, starting
/// at seq 0 and time 0.
pub fn chain(events: &[(i64, Event)]) -> Vec<Envelope> {
    let mut prev_hash = Digest::GENESIS;
    let mut ts_ms = 0i64;
    let mut envelopes = Vec::with_capacity(events.len());
    for (seq, (delay_ms, event)) in events.iter().enumerate() {
        ts_ms += delay_ms;
        let new = new_event(event.clone());
        let body = Body {
            ts_ms,
            stream: new.stream,
            actor: new.actor,
            correlation: None,
            causation: None,
            event: new.event,
        };
        let seq = seq as u64;
        let (_, hash) = clawback_events::record::encode(seq, &prev_hash, &body);
        envelopes.push(Envelope {
            seq,
            body,
            prev_hash,
            hash,
        });
        prev_hash = hash;
    }
    envelopes
}

/// A chained history of up to `max_len` envelopes.
pub fn history(max_len: usize) -> impl Strategy<Value = Vec<Envelope>> {
    timed_events(max_len).prop_map(|events| chain(&events))
}
