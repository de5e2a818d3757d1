//! The gateway itself, nodes, the HTTP surface and chat channels.

use clawback_events::Event;
use clawback_events::event::*;
use proptest::prelude::*;

use super::*;

pub(super) fn gateway_events() -> impl Strategy<Value = Event> {
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

pub(super) fn http_events() -> impl Strategy<Value = Event> {
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
pub(super) fn channel_events() -> impl Strategy<Value = Event> {
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
