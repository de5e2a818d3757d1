//! The gateway server: open the log, recover, restore the projections,
//! record the start, serve OpenClaw's WebSocket protocol and a health
//! endpoint on one port, and on SIGINT or SIGTERM tell clients, record the
//! stop, snapshot, and close the log cleanly.
//!
//! This module owns the process lifecycle; `protocol/` owns the wire.

mod health;
pub mod protocol;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use clawback_events::event::{
    Event, GatewayStarted, GatewayStopped, PresenceChange, PresenceChanged, PresenceEntry,
};
use clawback_events::log::CommitHook;
use clawback_events::{Actor, Clock, Log, LogConfig, NewEvent, SystemClock};
use clawback_projections::State;
use clawback_replay::restore_after_recovery;

use crate::state_dir::StateDir;

/// How long a stopping gateway waits for its sockets to record their close.
const SOCKETS_CLOSE_WAIT: Duration = Duration::from_secs(3);

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
    /// Shared token clients must present (OpenClaw's gateway.auth.token).
    /// Without --token or --password, only loopback binds are allowed and
    /// anyone who can reach the port is admitted.
    #[arg(
        long,
        env = "CLAWBACK_GATEWAY_TOKEN",
        hide_env_values = true,
        conflicts_with = "password"
    )]
    token: Option<String>,
    /// Shared password instead of a token (OpenClaw's gateway.auth.password).
    #[arg(long, env = "CLAWBACK_GATEWAY_PASSWORD", hide_env_values = true)]
    password: Option<String>,
}

/// What request handlers share.
pub struct Gateway {
    pub log: Log,
    pub state: Arc<RwLock<State>>,
    pub started: Instant,
    /// This process's id in `hello-ok.server.bootId` and presence.
    pub boot_id: String,
    pub auth: protocol::connect::Auth,
    pub auth_limiter: protocol::AuthLimiter,
    /// Events for every socket (`tick`, `shutdown`).
    pub pushes: tokio::sync::broadcast::Sender<protocol::Push>,
    /// Shown as the sessions store path in health.
    pub log_path: String,
    /// Open WebSocket connections.
    pub sockets: std::sync::atomic::AtomicUsize,
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
    let auth = match (&args.token, &args.password) {
        (Some(token), _) if !token.is_empty() => protocol::connect::Auth::token(token),
        (_, Some(password)) if !password.is_empty() => protocol::connect::Auth::password(password),
        _ if args.bind.ip().is_loopback() => protocol::connect::Auth::None,
        _ => anyhow::bail!(
            "refusing to listen on {} without authentication: pass --token TOKEN (or set \
             CLAWBACK_GATEWAY_TOKEN), or bind to 127.0.0.1",
            args.bind
        ),
    };
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
    let boot_id = uuid::Uuid::new_v4().to_string();
    // The start, and the gateway's own presence entry (OpenClaw lists itself
    // first, as mode "gateway", reason "self").
    log.append(vec![
        NewEvent::new(
            "gateway",
            Actor::System,
            Event::GatewayStarted(GatewayStarted {
                version: env!("CARGO_PKG_VERSION").to_owned(),
                bind: local.to_string(),
            }),
        ),
        NewEvent::new(
            "gateway",
            Actor::System,
            Event::PresenceChanged(PresenceChanged {
                key: boot_id.clone(),
                change: PresenceChange::Upsert(self_presence(local)),
            }),
        ),
    ])
    .await?;
    let (pushes, _) = tokio::sync::broadcast::channel(protocol::PUSH_BUFFER);
    let gateway = Arc::new(Gateway {
        log,
        state,
        started,
        boot_id,
        auth,
        auth_limiter: protocol::AuthLimiter::default(),
        pushes,
        log_path: state_dir.log_dir().display().to_string(),
        sockets: std::sync::atomic::AtomicUsize::new(0),
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
    let ticker = tokio::spawn(tick_periodically(gateway.clone()));
    let app = health::router(gateway.clone()).merge(protocol_router(gateway.clone()));
    let (stop_sender, stop_receiver) = tokio::sync::oneshot::channel();
    let stop = {
        let gateway = gateway.clone();
        async move {
            let stop = wait_for_stop(&gateway, signals).await;
            // Tell every socket first: `shutdown`, then close 1012, as
            // OpenClaw does; upgraded sockets are not part of the HTTP
            // server's graceful shutdown.
            let _ = gateway.pushes.send(protocol::Push::Shutdown);
            let _ = stop_sender.send(stop);
        }
    };
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stop)
    .await
    .context("the HTTP server failed")?;
    snapshotter.abort();
    ticker.abort();
    wait_for_sockets(&gateway, SOCKETS_CLOSE_WAIT).await;
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

/// The WebSocket endpoint. Any path upgrades (OpenClaw's CLI uses `/`).
fn protocol_router(gateway: Arc<Gateway>) -> axum::Router {
    axum::Router::new()
        .route("/", axum::routing::any(upgrade))
        .fallback(upgrade)
        .with_state(gateway)
}

async fn upgrade(
    axum::extract::State(gateway): axum::extract::State<Arc<Gateway>>,
    axum::extract::ConnectInfo(remote): axum::extract::ConnectInfo<SocketAddr>,
    upgrade: Result<
        axum::extract::WebSocketUpgrade,
        axum::extract::ws::rejection::WebSocketUpgradeRejection,
    >,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let Ok(upgrade) = upgrade else {
        return (
            axum::http::StatusCode::NOT_FOUND,
            "not found: this port serves OpenClaw's WebSocket protocol and /healthz",
        )
            .into_response();
    };
    upgrade
        .max_message_size(protocol::policy::MAX_PAYLOAD_BYTES)
        .on_upgrade(move |socket| async move {
            let sockets = &gateway.sockets;
            sockets.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            protocol::connection::serve(socket, remote, gateway.clone()).await;
            gateway
                .sockets
                .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        })
}

/// Waits until every socket has closed (and recorded it), at most `limit`.
async fn wait_for_sockets(gateway: &Gateway, limit: Duration) {
    let deadline = Instant::now() + limit;
    while gateway.sockets.load(std::sync::atomic::Ordering::SeqCst) > 0 && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The global `tick`, every `tickIntervalMs`, phase-aligned to the clock as
/// OpenClaw's is.
async fn tick_periodically(gateway: Arc<Gateway>) {
    let period = protocol::policy::TICK_INTERVAL;
    loop {
        let now_ms = SystemClock.now_ms().max(0) as u64;
        let period_ms = period.as_millis() as u64;
        let wait = Duration::from_millis(period_ms - now_ms % period_ms);
        tokio::time::sleep(wait).await;
        let payload = serde_json::json!({"ts": SystemClock.now_ms()});
        let _ = gateway.pushes.send(protocol::Push::Event {
            name: "tick",
            payload,
        });
    }
}

/// The gateway's own presence entry.
fn self_presence(local: SocketAddr) -> PresenceEntry {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty());
    let version = env!("CARGO_PKG_VERSION");
    let platform = std::env::consts::OS.to_owned();
    let text = format!(
        "Gateway: {} ({}) · clawback {version} · mode gateway · reason self",
        host.as_deref().unwrap_or("unknown"),
        local.ip()
    );
    PresenceEntry {
        host,
        ip: Some(local.ip().to_string()),
        version: Some(version.to_owned()),
        platform: Some(platform),
        mode: Some("gateway".to_owned()),
        reason: Some("self".to_owned()),
        text: Some(text),
        device_id: None,
        roles: Vec::new(),
        scopes: Vec::new(),
    }
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
