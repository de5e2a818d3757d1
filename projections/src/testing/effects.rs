//! Side effects: approvals, deliveries, cron, devices.

use clawback_events::Event;
use clawback_events::event::*;
use proptest::prelude::*;

use super::*;

pub(super) fn side_effect_events() -> impl Strategy<Value = Event> {
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
