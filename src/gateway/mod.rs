//! The gateway server: open the log, recover, restore the projections,
//! record the start, serve OpenClaw's WebSocket protocol and a health
//! endpoint on one port, and on SIGINT or SIGTERM tell clients, record the
//! stop, snapshot, and close the log cleanly.
//!
//! This module owns the process lifecycle; `protocol/` owns the wire.

mod chain_watch;
pub(crate) mod checkpoints;
mod control_ui;
mod fanout;
mod health;
pub mod http;
pub mod listen;
pub mod logs;
mod periodic;
pub mod protocol;

use axum::serve::ListenerExt;
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
use clawback_events::{Actor, Log, LogConfig, NewEvent, SystemClock};
use clawback_projections::State;
use clawback_replay::restore_after_recovery;

use crate::state_dir::StateDir;
use periodic::{expire_approvals, snapshot_periodically, take_snapshot, tick_periodically};

/// How long a stopping gateway waits for its sockets to record their close.
const SOCKETS_CLOSE_WAIT: Duration = Duration::from_secs(3);

#[derive(Args)]
pub struct RunArgs {
    /// Address to listen on (default 127.0.0.1:18789, or the config's
    /// gateway.port and gateway.bind). Loopback by default: exposing the
    /// gateway is a decision, not an accident.
    #[arg(long, env = "CLAWBACK_BIND")]
    bind: Option<SocketAddr>,
    /// The config file (JSON5; an OpenClaw openclaw.json works). Default:
    /// <state-dir>/config.json5, or OPENCLAW_CONFIG_PATH when set.
    #[arg(long, env = "CLAWBACK_CONFIG")]
    config: Option<std::path::PathBuf>,
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
    /// Sign a Merkle checkpoint of the log once this many records were
    /// recorded since the last one.
    #[arg(long, env = "CLAWBACK_CHECKPOINT_EVERY", default_value_t = 10_000, value_name = "RECORDS",
          value_parser = clap::value_parser!(u64).range(1..))]
    checkpoint_every: u64,
    /// Sign a checkpoint at least this often while records arrive (e.g.
    /// 30s, 5m).
    #[arg(long, env = "CLAWBACK_CHECKPOINT_INTERVAL", default_value = "1m", value_name = "DURATION",
          value_parser = parse_interval)]
    checkpoint_interval: Duration,
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    let interval = humantime::parse_duration(text)
        .map_err(|error| format!("{error} (write e.g. 30s, 5m or 1h)"))?;
    if interval < Duration::from_secs(1) {
        return Err("the checkpoint interval must be at least 1s".to_owned());
    }
    Ok(interval)
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
    /// The config file, and the typed config last applied from it.
    pub config_file: crate::config::ConfigFile,
    applied_config: RwLock<Arc<crate::config::model::ConfigFile>>,
    /// Serializes handlers that check state and then record (see
    /// `protocol::methods`).
    pub writes: Arc<tokio::sync::Mutex<()>>,
    /// The diagnostic log `logs.tail` serves.
    pub logs: Arc<logs::LogFiles>,
    /// Bumped with every `health` broadcast (`stateVersion.health`).
    health_version: std::sync::atomic::AtomicU64,
    /// Agent runs.
    pub agent: Arc<crate::agent::Runtime>,
    /// The state dir (default agent workspaces live under it).
    pub state_root: std::path::PathBuf,
    /// Connections waiting for exec approval decisions.
    pub approvals: protocol::methods::approvals::Waiters,
    /// Setup wizards in progress.
    pub wizards: protocol::methods::wizard::Wizards,
    /// The cron scheduler's switch and doorbell.
    pub cron: crate::cron::Scheduler,
    /// `node.invoke` requests waiting for their node.
    pub node_invokes: protocol::methods::node_invoke::Invokes,
    /// What the HTTP endpoints keep between requests (`http/`).
    pub http: http::HttpState,
    /// Chat channel accounts (`channels/`).
    pub channels: crate::channels::Hub,
    /// How far this process has re-checked the chain (`clawback.audit.status`).
    pub chain_watch: chain_watch::ChainWatch,
    /// Checks the signatures of this gateway's Merkle checkpoints.
    pub checkpoint_verifier: clawback_replay::merkle::note::NoteVerifier,
    /// The per-session data keys: seals content on its way into the log
    /// (installed as the log's sealer) and opens it for readers.
    pub keyring: Arc<crate::content_keys::Keyring>,
}

impl Gateway {
    /// The auth profile store (read on each run, so `clawback auth` edits
    /// apply to the next turn without a restart).
    pub fn credentials(&self) -> crate::credentials::Store {
        crate::state_dir::StateDir::at(&self.state_root).credentials()
    }

    /// The config in effect (settings read live, such as models).
    pub fn config(&self) -> Arc<crate::config::model::ConfigFile> {
        self.applied_config.read().expect("config lock").clone()
    }

    /// `stateVersion` as OpenClaw sends it: per-kind counters a client
    /// compares to drop stale snapshots.
    pub fn state_version(&self, presence: u64) -> serde_json::Value {
        let health = self
            .health_version
            .load(std::sync::atomic::Ordering::Relaxed);
        serde_json::json!({"presence": presence, "health": health})
    }

    pub fn apply_config(&self, config: crate::config::model::ConfigFile) {
        *self.applied_config.write().expect("config lock") = Arc::new(config);
    }
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
    let text_logs = logs::LogFiles::open(state_dir.text_logs_dir())?;
    {
        use tracing_subscriber::layer::SubscriberExt;
        let subscriber = tracing_subscriber::registry().with(logs::FileLayer(text_logs.clone()));
        // A second gateway in one process (tests) keeps the first's logger.
        let _ = tracing::subscriber::set_global_default(subscriber);
    }
    let result = serve_logged(state_dir, args, started, text_logs.clone()).await;
    if let Err(error) = &result {
        tracing::error!(subsystem = "gateway", "gateway failed: {error:#}");
    }
    text_logs.close();
    result
}

async fn serve_logged(
    state_dir: &StateDir,
    args: RunArgs,
    started: Instant,
    text_logs: Arc<logs::LogFiles>,
) -> anyhow::Result<ExitCode> {
    let config_path = args
        .config
        .clone()
        .or_else(|| std::env::var_os("OPENCLAW_CONFIG_PATH").map(std::path::PathBuf::from))
        .unwrap_or_else(|| crate::config::default_path(state_dir.root()));
    let config_file = crate::config::ConfigFile::open(
        config_path,
        &crate::config::hash_key_path(state_dir.root()),
    )?;
    let loaded = crate::config::Loaded::read(&config_file)?;
    let typed = match &loaded.checked {
        Ok(checked) => checked.typed.clone(),
        Err(issues) => anyhow::bail!(
            "the config {} is invalid: {}; fix it (the last valid version, if any, is {}.last-good)",
            config_file.path().display(),
            crate::config::describe(issues),
            config_file.path().display()
        ),
    };
    if loaded.exists {
        config_file.mark_good(&loaded.raw)?;
    }
    let bind = args
        .bind
        .map_or_else(|| listen::bind_from_config(&typed), Ok)?;
    let auth = resolve_auth(&args, &typed, bind)?;
    http::hooks::check_token(&typed, &auth)
        .map_err(|problem| anyhow::anyhow!("refusing to start: {problem}"))?;
    // The checkpoint key before the log: a key the gateway may not use
    // (others can read it) stops the start with the fix, before anything
    // is recorded.
    let checkpointer = Arc::new(checkpoints::Checkpointer::new(
        crate::checkpoint_key::load_or_create(&state_dir.checkpoint_key())?,
    ));
    let checkpoint_policy = checkpoints::CheckpointPolicy {
        every_records: args.checkpoint_every,
        interval: args.checkpoint_interval,
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
    // Session content is sealed under per-session keys from the first
    // append on; purges a crash interrupted are finished before anyone can
    // read.
    let keyring = Arc::new(crate::content_keys::Keyring::start(
        &state_dir.content_keys(),
        &restored.state.purges,
    )?);
    log.seal_with(keyring.clone())?;
    *state.write().expect("state lock") = restored.state;

    let listener = tokio::net::TcpListener::bind(bind).await.with_context(|| {
        format!("cannot listen on {bind}: is another gateway running? use --bind ADDR")
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
    let cron_enabled = typed.cron_enabled();
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
        config_file,
        applied_config: RwLock::new(Arc::new(typed)),
        writes: Arc::new(tokio::sync::Mutex::new(())),
        logs: text_logs,
        health_version: std::sync::atomic::AtomicU64::new(0),
        agent: Arc::new(crate::agent::Runtime::new()?),
        state_root: state_dir.root().to_path_buf(),
        approvals: protocol::methods::approvals::Waiters::default(),
        cron: crate::cron::Scheduler::new(cron_enabled),
        wizards: protocol::methods::wizard::Wizards::default(),
        node_invokes: protocol::methods::node_invoke::Invokes::default(),
        http: http::HttpState::default(),
        channels: crate::channels::Hub::default(),
        chain_watch: chain_watch::ChainWatch::default(),
        checkpoint_verifier: checkpointer.verifier(),
        keyring,
    });
    // A config edited while the gateway was down is recorded before anyone
    // connects, so the history shows what this run started with.
    if let Some(event) = protocol::methods::observe_config_file(&gateway, &loaded) {
        gateway
            .log
            .append(vec![NewEvent::new("config", Actor::System, event)])
            .await?;
    }
    // Handlers are installed before anyone is told we are up: a SIGTERM sent
    // right after the "listening" line must stop us cleanly, not kill us.
    let signals = Signals::install().context("cannot install signal handlers")?;
    println!(
        "clawback gateway listening on http://{local} (state dir {})",
        state_dir.root().display()
    );
    tracing::info!(
        subsystem = "gateway",
        version = env!("CARGO_PKG_VERSION"),
        "listening on ws://{local} (config {}, auth {})",
        gateway.config_file.path().display(),
        gateway.auth.method()
    );

    let snapshotter = tokio::spawn(snapshot_periodically(
        gateway.clone(),
        state_dir.snapshots(),
        last_snapshot_seq,
    ));
    let checkpointing = tokio::spawn(checkpoints::checkpoint_periodically(
        gateway.clone(),
        checkpointer.clone(),
        checkpoint_policy,
    ));
    let ticker = tokio::spawn(tick_periodically(gateway.clone()));
    let expiry = tokio::spawn(expire_approvals(gateway.clone()));
    let scheduler = tokio::spawn(crate::cron::run_scheduler(gateway.clone()));
    // Pushes follow the log from here on: everything recorded after the
    // start is announced to the sockets that may see it.
    let fanout = tokio::spawn(fanout::run(gateway.clone(), gateway.log.next_seq()));
    // Channels are registered before the listener opens (their webhook
    // routes find them), settle what the previous process left
    // unconfirmed, then take messages; the listener does not wait for that.
    crate::channels::register_all(&gateway);
    tokio::spawn({
        let gateway = gateway.clone();
        async move { crate::channels::start(&gateway).await }
    });
    let app = health::router(gateway.clone())
        .merge(control_ui::router(gateway.clone()))
        .merge(http::router(gateway.clone()))
        .merge(protocol_router(gateway.clone()));
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
        listener.tap_io(|tcp| {
            // Small frames (answers, events) go out at once, not after
            // Nagle's delay.
            let _ = tcp.set_nodelay(true);
        }),
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stop)
    .await
    .context("the HTTP server failed")?;
    snapshotter.abort();
    checkpointing.abort();
    ticker.abort();
    fanout.abort();
    expiry.abort();
    scheduler.abort();
    wait_for_sockets(&gateway, SOCKETS_CLOSE_WAIT).await;
    let reason = stop_receiver.await.unwrap_or(Stop::Signal);
    if let Stop::WriterFailed(reason) = reason {
        tracing::error!(subsystem = "gateway", "the log writer stopped: {reason}");
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
    // The last checkpoint covers everything this process recorded, its stop
    // included; a failure here loses no event, only this signature.
    if let Err(error) = checkpoints::checkpoint_now(&gateway, &checkpointer).await {
        eprintln!("the final checkpoint failed (the log is unaffected): {error:#}");
        tracing::error!(
            subsystem = "checkpoints",
            "final checkpoint failed: {error:#}"
        );
    }
    take_snapshot(&gateway, &state_dir.snapshots())?;
    gateway.log.close();
    println!(
        "clawback gateway stopped; log ends before seq {}",
        gateway.log.next_seq()
    );
    tracing::info!(
        subsystem = "gateway",
        "stopped; the event log ends before seq {}",
        gateway.log.next_seq()
    );
    Ok(ExitCode::SUCCESS)
}

/// The shared secret clients must present (see `listen::secret`); no
/// secret is allowed on loopback only.
fn resolve_auth(
    args: &RunArgs,
    config: &crate::config::model::ConfigFile,
    bind: SocketAddr,
) -> anyhow::Result<protocol::connect::Auth> {
    use protocol::connect::Auth;
    let auth = match listen::secret(args.token.clone(), args.password.clone(), Some(config))? {
        Some(listen::Secret::Token(token)) => Auth::token(&token),
        Some(listen::Secret::Password(password)) => Auth::password(&password),
        None => Auth::None,
    };
    if matches!(auth, Auth::None) && !bind.ip().is_loopback() {
        anyhow::bail!(
            "refusing to listen on {bind} without authentication: pass --token TOKEN (or set \
             CLAWBACK_GATEWAY_TOKEN, or gateway.auth.token in the config), or bind to 127.0.0.1"
        );
    }
    Ok(auth)
}

/// The WebSocket endpoint. Any path upgrades (OpenClaw's CLI uses `/`);
/// a plain `GET /` gets the control UI's page.
fn protocol_router(gateway: Arc<Gateway>) -> axum::Router {
    axum::Router::new()
        .route("/", axum::routing::any(upgrade))
        .fallback(upgrade)
        .with_state(gateway)
}

async fn upgrade(
    axum::extract::State(gateway): axum::extract::State<Arc<Gateway>>,
    axum::extract::ConnectInfo(remote): axum::extract::ConnectInfo<SocketAddr>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    upgrade: Result<
        axum::extract::WebSocketUpgrade,
        axum::extract::ws::rejection::WebSocketUpgradeRejection,
    >,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let Ok(upgrade) = upgrade else {
        if uri.path() == "/"
            && (method == axum::http::Method::GET || method == axum::http::Method::HEAD)
        {
            return control_ui::page_response(&gateway, &headers);
        }
        return (
            axum::http::StatusCode::NOT_FOUND,
            "not found: this port serves OpenClaw's WebSocket protocol, the control UI at /, and /healthz",
        )
            .into_response();
    };
    // A browser page may open a socket to any address; only the gateway's
    // own page, or an origin the config lists, may open this one.
    if let Err(refused) = control_ui::check_origin(&gateway, &headers) {
        tracing::warn!(
            subsystem = "ws",
            remote = remote.to_string(),
            "WebSocket upgrade refused: {refused}"
        );
        return (axum::http::StatusCode::FORBIDDEN, refused).into_response();
    }
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
