//! `clawback bench protocol`: the gateway as OpenClaw's clients see it.
//!
//! Starts the real gateway (this binary, `gateway run`) on loopback with a
//! token and a fresh state dir, and measures from outside over WebSocket:
//! start to first hello-ok, connect-to-hello-ok latency, `health` latency on
//! one connection, `health` throughput over 100 concurrent connections, and
//! resident memory idle and after the load. Every `health` is a real call:
//! it is recorded in the log (fsync'd) before it is answered.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Args;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const OWN_TOKEN: &str = "bench-token";

#[derive(Args)]
pub struct ProtocolBenchArgs {
    /// Sequential connects measured for connect-to-hello-ok.
    #[arg(long, default_value_t = 200)]
    connects: u32,
    /// Sequential `health` calls on one connection.
    #[arg(long, default_value_t = 2_000)]
    calls: u32,
    /// Concurrent connections for the throughput run.
    #[arg(long, default_value_t = 100)]
    connections: u32,
    /// `health` calls per connection in the throughput run.
    #[arg(long, default_value_t = 200)]
    calls_per_connection: u32,
    /// Measure a gateway that is already running at this address
    /// (`127.0.0.1:18789`), e.g. OpenClaw's, instead of starting clawback.
    /// Start time is then not measured.
    #[arg(long, value_name = "HOST:PORT", requires = "token")]
    against: Option<String>,
    /// The token of the gateway given with --against.
    #[arg(long)]
    token: Option<String>,
    /// With --against: the gateway's process id, for its RSS.
    #[arg(long)]
    pid: Option<u32>,
    /// With --against: when the gateway was spawned (unix ms). The benchmark
    /// then retries the handshake until it succeeds (at most 3 minutes) and
    /// reports the start time to the first hello-ok.
    #[arg(long, value_name = "UNIX_MS")]
    spawned_at_ms: Option<i64>,
}

pub(super) type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The gateway child; killed if the benchmark fails half way.
pub struct Gateway(pub Child);

/// Starts this binary's gateway on a free loopback port with `token`;
/// returns it and its address once it prints that it listens.
pub fn spawn_gateway(
    state_dir: &std::path::Path,
    token: &str,
) -> anyhow::Result<(Gateway, String)> {
    let mut child = Command::new(std::env::current_exe()?)
        .arg("--state-dir")
        .arg(state_dir)
        .args(["gateway", "run", "--bind", "127.0.0.1:0", "--token", token])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let gateway = Gateway(child);
    let mut lines = BufReader::new(stdout).lines();
    let address = loop {
        let line = lines
            .next()
            .ok_or_else(|| anyhow::anyhow!("the gateway exited before listening"))??;
        if let Some(rest) = line.strip_prefix("clawback gateway listening on http://") {
            break rest.split(' ').next().unwrap_or_default().to_owned();
        }
    };
    // Keep draining its output so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Ok((gateway, address))
}

impl Gateway {
    /// Stops the gateway as an operator would (SIGTERM) and waits, bounded.
    pub fn stop(mut self) -> anyhow::Result<()> {
        // SAFETY: kill(2) on a child process this handle owns.
        let sent = unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        anyhow::ensure!(sent == 0, "cannot signal the gateway");
        for _ in 0..300 {
            if self.0.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        anyhow::bail!("the gateway did not stop within 30 s")
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn run(args: ProtocolBenchArgs) -> anyhow::Result<std::process::ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!("# clawback bench protocol\n");
    println!("machine: {}\n", super::bench::machine_description());
    if let Some(address) = args.against.clone() {
        let token = args.token.clone().unwrap_or_default();
        println!("gateway: the one at {address} (started elsewhere)\n");
        println!("| measure | value | note |");
        println!("|---|---:|---|");
        if let Some(spawned_at_ms) = args.spawned_at_ms {
            let ready_ms = runtime.block_on(first_hello(&address, &token))?;
            println!(
                "| start to first hello-ok | {} ms | from spawn, retrying every 2 ms |",
                ready_ms - spawned_at_ms
            );
            // Let start-up work settle before reading idle memory.
            std::thread::sleep(Duration::from_secs(2));
        }
        if let Some(pid) = args.pid {
            println!("| idle RSS | {:.1} MB | |", rss_kib(pid) as f64 / 1024.0);
        }
        runtime.block_on(measure(&address, &token, &args, ""))?;
        if let Some(pid) = args.pid {
            println!(
                "| RSS after the load | {:.1} MB | |",
                rss_kib(pid) as f64 / 1024.0
            );
        }
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let state_dir = super::bench::tempdir_in(None)?;
    println!("gateway: clawback, started by the benchmark\n");

    let started = Instant::now();
    let (gateway, address) = spawn_gateway(state_dir.path(), OWN_TOKEN)?;
    let start_to_hello = runtime.block_on(async {
        let (socket, _) = connect(&address, OWN_TOKEN).await?;
        drop(socket);
        anyhow::Ok(started.elapsed())
    })?;
    let idle_rss = rss_kib(gateway.0.id());

    println!("| measure | value | note |");
    println!("|---|---:|---|");
    println!(
        "| start to first hello-ok (empty log) | {:.1} ms | process spawn included |",
        start_to_hello.as_secs_f64() * 1e3
    );
    println!(
        "| idle RSS after start | {:.1} MB | |",
        idle_rss as f64 / 1024.0
    );

    runtime.block_on(measure(
        &address,
        OWN_TOKEN,
        &args,
        "each recorded and fsync'd before the answer",
    ))?;
    println!(
        "| RSS after the load | {:.1} MB | |",
        rss_kib(gateway.0.id()) as f64 / 1024.0
    );
    Ok(std::process::ExitCode::SUCCESS)
}

/// Handshake latency, sequential health latency, and concurrent health
/// throughput against the gateway at `address`.
async fn measure(
    address: &str,
    token: &str,
    args: &ProtocolBenchArgs,
    health_note: &str,
) -> anyhow::Result<()> {
    let mut connects = Histogram::<u64>::new(3)?;
    for _ in 0..args.connects {
        let (socket, elapsed) = connect(address, token).await?;
        connects.record(elapsed.as_micros() as u64)?;
        drop(socket);
    }
    println!(
        "| connect to hello-ok, p50 / p99 ({} sequential) | {} / {} | new socket each |",
        args.connects,
        micros(connects.value_at_quantile(0.5)),
        micros(connects.value_at_quantile(0.99))
    );

    let (mut socket, _) = connect(address, token).await?;
    let mut calls = Histogram::<u64>::new(3)?;
    for n in 0..args.calls {
        let started = Instant::now();
        health(&mut socket, n).await?;
        calls.record(started.elapsed().as_micros() as u64)?;
    }
    println!(
        "| `health` p50 / p99 ({} sequential, one connection) | {} / {} | {health_note} |",
        args.calls,
        micros(calls.value_at_quantile(0.5)),
        micros(calls.value_at_quantile(0.99))
    );

    // Connections are opened one by one before timing: the figure is
    // request throughput, not a handshake storm (OpenClaw answers 503 to
    // many simultaneous upgrades).
    let mut sockets = Vec::with_capacity(args.connections as usize);
    for _ in 0..args.connections {
        sockets.push(connect(address, token).await?.0);
    }
    let started = Instant::now();
    let tasks: Vec<_> = sockets
        .into_iter()
        .map(|mut socket| {
            let per_connection = args.calls_per_connection;
            tokio::spawn(async move {
                for n in 0..per_connection {
                    health(&mut socket, n).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let elapsed = started.elapsed();
    let total = u64::from(args.connections) * u64::from(args.calls_per_connection);
    println!(
        "| `health` throughput, {} open connections x {} calls | {:.0} calls/s | |",
        args.connections,
        args.calls_per_connection,
        total as f64 / elapsed.as_secs_f64()
    );
    anyhow::Ok(())
}

/// How often the start measurement retries: the figure's resolution. A
/// refused TCP connect costs microseconds, so this can be short.
const START_RETRY: Duration = Duration::from_millis(2);

/// Retries the handshake until it succeeds; returns when (unix ms).
async fn first_hello(address: &str, token: &str) -> anyhow::Result<i64> {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if connect(address, token).await.is_ok() {
            return Ok(std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis() as i64);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no hello-ok from {address} within 3 minutes"
        );
        tokio::time::sleep(START_RETRY).await;
    }
}

/// Opens a socket and completes the handshake; returns it and the time to
/// hello-ok.
pub(super) async fn connect(address: &str, token: &str) -> anyhow::Result<(Socket, Duration)> {
    let started = Instant::now();
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{address}/")).await?;
    let challenge = next_json(&mut socket).await?;
    anyhow::ensure!(
        challenge["event"] == "connect.challenge",
        "no challenge: {challenge}"
    );
    let connect = json!({"type": "req", "id": "c", "method": "connect", "params": {
        "minProtocol": 4, "maxProtocol": 4,
        "client": {"id": "cli", "version": "bench", "platform": "linux", "mode": "cli"},
        "role": "operator", "scopes": ["operator.read"], "auth": {"token": token},
    }});
    socket.send(Message::text(connect.to_string())).await?;
    let hello = next_json(&mut socket).await?;
    anyhow::ensure!(hello["ok"] == true, "connect refused: {hello}");
    Ok((socket, started.elapsed()))
}

async fn health(socket: &mut Socket, n: u32) -> anyhow::Result<()> {
    let id = format!("h{n}");
    let request = json!({"type": "req", "id": id, "method": "health"});
    socket.send(Message::text(request.to_string())).await?;
    loop {
        let frame = next_json(socket).await?;
        if frame["type"] == "res" && frame["id"] == id.as_str() {
            anyhow::ensure!(frame["ok"] == true, "health failed: {frame}");
            return Ok(());
        }
    }
}

pub(super) async fn next_json(socket: &mut Socket) -> anyhow::Result<Value> {
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) => return Ok(serde_json::from_str(&text)?),
            Some(Ok(Message::Close(frame))) => anyhow::bail!("closed: {frame:?}"),
            Some(Ok(_)) => {}
            Some(Err(error)) => return Err(error.into()),
            None => anyhow::bail!("socket ended"),
        }
    }
}

/// Resident set size of `pid` in KiB, from /proc (0 where unavailable).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}

pub(super) fn micros(value: u64) -> String {
    if value >= 1_000 {
        format!("{:.2} ms", value as f64 / 1e3)
    } else {
        format!("{value} µs")
    }
}
