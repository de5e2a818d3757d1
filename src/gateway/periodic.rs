//! What the gateway does on a timer while it serves: the `tick` and
//! `health` broadcast, the expiry of approvals nobody decided in time, and
//! snapshots as the log grows.
//!
//! Apart from `gateway/mod.rs`, which owns the process lifecycle (start,
//! serve, stop); these tasks are spawned there and aborted at stop.

use std::sync::Arc;
use std::time::Duration;

use clawback_events::event::Event;
use clawback_events::{Actor, Clock, NewEvent, SystemClock};

use super::{Gateway, protocol};

/// A snapshot is taken when the log has grown this much since the last one,
/// so a restart replays at most this many records.
const SNAPSHOT_EVERY_EVENTS: u64 = 100_000;
const SNAPSHOTS_KEPT: usize = 3;

/// The global `tick`, every `tickIntervalMs`, phase-aligned to the clock as
/// OpenClaw's is.
pub(super) async fn tick_periodically(gateway: Arc<Gateway>) {
    let period = protocol::policy::TICK_INTERVAL;
    loop {
        let now_ms = SystemClock.now_ms().max(0) as u64;
        let period_ms = period.as_millis() as u64;
        let wait = Duration::from_millis(period_ms - now_ms % period_ms);
        tokio::time::sleep(wait).await;
        let payload = serde_json::json!({"ts": SystemClock.now_ms()});
        let _ = gateway.pushes.send(protocol::Push::event("tick", payload));
        // Then the health snapshot, as OpenClaw sends it after each tick.
        gateway
            .health_version
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let presence = gateway
            .state
            .read()
            .expect("state lock")
            .presence
            .state_version;
        let _ = gateway.pushes.send(protocol::Push::versioned(
            "health",
            protocol::methods::health(&gateway),
            gateway.state_version(presence),
        ));
    }
}

/// How often pending approvals are checked against their deadline.
const APPROVAL_EXPIRY_CHECK: Duration = Duration::from_secs(1);

/// Records `approval.expired` for pending approvals past their deadline:
/// nobody decided in time, which means deny. Runs after a restart too, so
/// requests left pending by a previous process expire as well.
pub(super) async fn expire_approvals(gateway: Arc<Gateway>) {
    loop {
        tokio::time::sleep(APPROVAL_EXPIRY_CHECK).await;
        let now = SystemClock.now_ms();
        let due: Vec<String> = {
            let state = gateway.state.read().expect("state lock");
            state
                .approvals
                .due_for_expiry(now)
                .map(|pending| pending.request.approval_id.clone())
                .collect()
        };
        if due.is_empty() {
            continue;
        }
        // Under the write lock: a decision and an expiry never both land.
        let _write = gateway.writes.lock().await;
        let still_due: Vec<(String, u64)> = {
            let state = gateway.state.read().expect("state lock");
            due.into_iter()
                .filter_map(|id| {
                    let requested_seq = state.approvals.pending.get(&id)?.requested_seq;
                    Some((id, requested_seq))
                })
                .collect()
        };
        // On the request's own stream, as decisions are.
        let still_due: Vec<NewEvent> = still_due
            .into_iter()
            .map(|(approval_id, requested_seq)| {
                NewEvent::new(
                    protocol::methods::approvals::request_stream(&gateway, requested_seq),
                    Actor::System,
                    Event::ApprovalExpired(clawback_events::event::ApprovalExpired { approval_id }),
                )
            })
            .collect();
        if !still_due.is_empty()
            && let Err(error) = gateway.log.append(still_due).await
        {
            tracing::error!(
                subsystem = "approvals",
                "cannot record expired approvals: {error}"
            );
        }
    }
}

pub(super) fn take_snapshot(
    gateway: &Gateway,
    snapshots: &clawback_replay::SnapshotStore,
) -> anyhow::Result<()> {
    let state = gateway.state.read().expect("state lock").clone();
    snapshots.create(&state, SystemClock.now_ms())?;
    snapshots.prune(SNAPSHOTS_KEPT)?;
    Ok(())
}

pub(super) async fn snapshot_periodically(
    gateway: Arc<Gateway>,
    snapshots: clawback_replay::SnapshotStore,
    mut last_seq: u64,
) {
    let snapshots = Arc::new(snapshots);
    loop {
        tokio::time::sleep(Duration::from_secs(30)).await;
        let next_seq = gateway.log.next_seq();
        if next_seq < last_seq + SNAPSHOT_EVERY_EVENTS {
            continue;
        }
        let gateway = gateway.clone();
        let snapshots = snapshots.clone();
        match tokio::task::spawn_blocking(move || take_snapshot(&gateway, &snapshots)).await {
            Ok(Ok(())) => last_seq = next_seq,
            Ok(Err(error)) => {
                eprintln!("snapshot failed (the log is unaffected): {error:#}");
                tracing::warn!(subsystem = "snapshots", "snapshot failed: {error:#}");
            }
            Err(error) => eprintln!("snapshot task failed: {error}"),
        }
    }
}
