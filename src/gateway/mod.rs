//! The gateway server. For now: open the log, recover, restore the
//! projections, record the start, serve a health endpoint, and on SIGINT or
//! SIGTERM record the stop, snapshot, and close the log cleanly.
//!
//! The OpenClaw WebSocket protocol arrives in its own module; this one owns
//! the process lifecycle every later part runs inside.

mod health;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use clawback_events::event::{Event, GatewayStarted, GatewayStopped};
use clawback_events::log::CommitHook;
use clawback_events::{Actor, Clock, Log, LogConfig, NewEvent, SystemClock};
use clawback_projections::State;
use clawback_replay::restore_after_recovery;

use crate::state_dir::StateDir;

/// A snapshot is taken when the log has grown this much since the last one,
/// so a restart replays at most this many records.
const SNAPSHOT_EVERY_EVENTS: u64 = 100_000;
const SNAPSHOTS_KEPT: usize = 3;

#[derive(Args)]
pub struct RunArgs {
    /// Address to listen on. Loopback by default: exposing the gateway is a
    /// decision, not an accident.
    #[arg(long, default_value = "127.0.0.1:18789", env = "CLAWBACK_BIND")]
    bind: SocketAddr,
}

/// What request handlers share.
pub struct Gateway {
    pub log: Log,
    pub state: Arc<RwLock<State>>,
    pub started: Instant,
}

pub fn run(state_dir: &StateDir, args: RunArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(state_dir, args))
}

async fn serve(state_dir: &StateDir, args: RunArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let store = state_dir.open_store()?;
    let snapshots = state_dir.snapshots();
    // Recovery need only verify the chain from the newest snapshot on; the
    // restore below checks that snapshot against the record before it.
    let verify_from = snapshots
        .list()
        .ok()
        .and_then(|all| all.first().map(|newest| newest.next_seq.saturating_sub(1)))
        .unwrap_or(0);

    let state = Arc::new(RwLock::new(State::default()));
    let hook: CommitHook = {
        let state = state.clone();
        Box::new(move |batch| {
            let mut state = state.write().expect("state lock");
            for envelope in batch {
                state.apply(envelope);
            }
        })
    };
    let config = LogConfig {
        verify_from,
        ..LogConfig::default()
    };
    let log = Log::open(store.clone(), config, Arc::new(SystemClock), Some(hook))?;
    println!("{}", log.recovery());

    // No append can happen before this restore completes: nothing else has
    // the log yet, so the commit hook only ever sees restored state.
    // Recovery just verified every hash from `verified_from` to the tail;
    // restore only link-checks that range instead of hashing it again.
    let verified_from = log.recovery().verified_from;
    let restored =
        restore_after_recovery(&*store, &snapshots, None, verified_from, &mut |_, _| {})?;
    for (file, reason) in &restored.skipped {
        println!("skipped snapshot {file}: {reason}");
    }
    println!(
        "state restored at seq {} ({} from a snapshot, {} tail records)",
        restored.state.next_seq,
        restored
            .snapshot_seq
            .map_or("not".to_owned(), |seq| format!("seq {seq}")),
        restored.tail_records
    );
    let last_snapshot_seq = restored.snapshot_seq.unwrap_or(0);
    *state.write().expect("state lock") = restored.state;

    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}: is another gateway running? use --bind ADDR",
                args.bind
            )
        })?;
    let local = listener.local_addr()?;
    log.append(vec![NewEvent::new(
        "gateway",
        Actor::System,
        Event::GatewayStarted(GatewayStarted {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            bind: local.to_string(),
        }),
    )])
    .await?;
    let gateway = Arc::new(Gateway {
        log,
        state,
        started,
    });
    // Handlers are installed before anyone is told we are up: a SIGTERM sent
    // right after the "listening" line must stop us cleanly, not kill us.
    let signals = Signals::install().context("cannot install signal handlers")?;
    println!(
        "clawback gateway listening on http://{local} (state dir {})",
        state_dir.root().display()
    );

    let snapshotter = tokio::spawn(snapshot_periodically(
        gateway.clone(),
        state_dir.snapshots(),
        last_snapshot_seq,
    ));
    let app = health::router(gateway.clone());
    let (stop_sender, stop_receiver) = tokio::sync::oneshot::channel();
    let stop = {
        let gateway = gateway.clone();
        async move {
            let _ = stop_sender.send(wait_for_stop(&gateway, signals).await);
        }
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
        .context("the HTTP server failed")?;
    snapshotter.abort();
    let reason = stop_receiver.await.unwrap_or(Stop::Signal);
    if let Stop::WriterFailed(reason) = reason {
        // Nothing more can be recorded; the next start recovers the log.
        eprintln!(
            "error: the log writer stopped: {reason}; exiting so that a restart recovers the log"
        );
        return Ok(ExitCode::from(1));
    }

    gateway
        .log
        .append(vec![NewEvent::new(
            "gateway",
            Actor::System,
            Event::GatewayStopped(GatewayStopped {
                reason: "signal".to_owned(),
            }),
        )])
        .await?;
    take_snapshot(&gateway, &state_dir.snapshots())?;
    gateway.log.close();
    println!(
        "clawback gateway stopped; log ends before seq {}",
        gateway.log.next_seq()
    );
    Ok(ExitCode::SUCCESS)
}

enum Stop {
    Signal,
    WriterFailed(String),
}

/// Resolves on SIGINT/SIGTERM, or when the log writer has stopped after a
/// storage failure: a gateway that cannot record must not keep serving.
async fn wait_for_stop(gateway: &Gateway, signals: Signals) -> Stop {
    let writer_failed = async {
        loop {
            if let Some(reason) = gateway.log.stopped_reason() {
                return reason;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    tokio::select! {
        () = signals.recv() => Stop::Signal,
        reason = writer_failed => Stop::WriterFailed(reason),
    }
}

/// SIGINT and SIGTERM, registered when created.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Signals {})
        }
    }

    async fn recv(mut self) {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => {}
                _ = self.terminate.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn take_snapshot(
    gateway: &Gateway,
    snapshots: &clawback_replay::SnapshotStore,
) -> anyhow::Result<()> {
    let state = gateway.state.read().expect("state lock").clone();
    snapshots.create(&state, SystemClock.now_ms())?;
    snapshots.prune(SNAPSHOTS_KEPT)?;
    Ok(())
}

async fn snapshot_periodically(
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
            Ok(Err(error)) => eprintln!("snapshot failed (the log is unaffected): {error:#}"),
            Err(error) => eprintln!("snapshot task failed: {error}"),
        }
    }
}
