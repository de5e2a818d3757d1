//! `clawback bench timeline`: what it costs to render a long session's
//! replay timeline (issue 7: "time to render the timeline of a 10k-event
//! session").
//!
//! Writes a state dir holding one session of `--events` records (complete
//! agent turns: inbound message, run, LLM call, tool call, reply,
//! delivery) interleaved with as much traffic of other sessions, so the
//! stream index has to skip. Then measures the three readers: the replay
//! crate in process (read + decode + summarise), the running gateway's
//! `clawback.timeline` over WebSocket (what the control UI does: pages of
//! 1000 summaries, then one step's recorded payloads), and `clawback
//! replay` as a process writing the rendered text to /dev/null. Also the
//! first `clawback.audit.status` of a fresh gateway, which re-checks the
//! whole chain.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use clawback_events::sealed::NoKeys;
use clawback_events::store::{Durability, LogStore};
use clawback_events::{Log, LogConfig, SystemClock};
use clawback_replay::timeline::{TimelineFilter, session_timeline};
use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::bench::{machine_description, session_created, tempdir_in, turn_event};
use super::bench_protocol::{Socket, connect, next_json, spawn_gateway};
use crate::content_keys::Keyring;
use crate::state_dir::StateDir;

const TOKEN: &str = "bench-token";
const SESSION: &str = "agent:main:long";
const PAGE: u64 = 1_000;

#[derive(Args)]
pub struct TimelineBenchArgs {
    /// Records in the measured session.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(2..))]
    events: u64,
    /// Runs of each measure (the table shows the best and the median).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Where to put the benchmark's state dir (default: a temporary dir).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Keep the state dir afterwards (its path is printed), e.g. to open
    /// the session in the control UI (`tests/ui/timeline_render.mjs`).
    #[arg(long)]
    keep: bool,
}

pub fn run(args: TimelineBenchArgs) -> anyhow::Result<std::process::ExitCode> {
    let temporary = tempdir_in(args.dir.as_deref())?;
    let root = temporary.path().join("state");
    println!("# clawback bench timeline\n");
    println!("machine: {}\n", machine_description());
    let records = fill(&root, args.events, true)?;
    println!(
        "state dir: one session of {} records among {records} records in all\n",
        args.events
    );
    println!("| reader | best | median | note |");
    println!("|---|---:|---:|---|");

    let store = StateDir::at(&root).open_existing_store()?;
    let keyring = Keyring::open_read_only(&StateDir::at(&root).content_keys())?;
    let (times, entries) = repeat(args.runs, || {
        let entries = session_timeline(&*store, &keyring, SESSION, &TimelineFilter::default())?;
        Ok(entries.len())
    })?;
    anyhow::ensure!(entries as u64 == args.events, "read {entries} entries");
    row(
        "replay crate in process: `session_timeline` (read, decode, open, summarise)",
        &times,
        &format!("{entries} entries, content sealed (AES-256-GCM) as the gateway writes it"),
    );
    drop(store);

    // The same session written in clear (as logs from before sealing are):
    // what opening the content costs, side by side.
    let clear_root = temporary.path().join("clear");
    fill(&clear_root, args.events, false)?;
    let clear_store = StateDir::at(&clear_root).open_existing_store()?;
    let (times, entries) = repeat(args.runs, || {
        let filter = TimelineFilter::default();
        let entries = session_timeline(&*clear_store, &NoKeys, SESSION, &filter)?;
        Ok(entries.len())
    })?;
    anyhow::ensure!(entries as u64 == args.events, "read {entries} entries");
    row(
        "the same reader on the session written in clear",
        &times,
        "nothing to open: the cost of sealing is the difference",
    );
    drop(clear_store);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (gateway, address) = spawn_gateway(&root, TOKEN)?;
    runtime.block_on(over_websocket(&address, &args))?;
    stop(gateway)?;

    for (label, extra) in [
        (
            "`clawback replay <session> --no-state`, output to /dev/null",
            &["--no-state"][..],
        ),
        (
            "`clawback replay <session>` (with the session state after it)",
            &[][..],
        ),
    ] {
        let (times, ()) = repeat(args.runs, || replay_process(&root, extra))?;
        row(
            label,
            &times,
            "a whole process: open the store, render, exit",
        );
    }
    if args.keep {
        println!("\nstate dir kept at {} (session {SESSION})", root.display());
        std::mem::forget(temporary);
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// Writes the state dir, its session content sealed when `sealed` (as the
/// gateway writes it); returns the number of records.
fn fill(root: &std::path::Path, events: u64, sealed: bool) -> anyhow::Result<u64> {
    let store = StateDir::at(root).open_store()?;
    let config = LogConfig {
        durability: Durability::Buffered,
        ..LogConfig::default()
    };
    let log = Log::open(store.clone(), config, Arc::new(SystemClock), None)?;
    if sealed {
        log.seal_with(Arc::new(Keyring::open(&StateDir::at(root).content_keys())?))?;
    }
    log.append_blocking(vec![
        session_created(SESSION.to_owned()),
        session_created("agent:main:other".to_owned()),
    ])?;
    let mut n = 0u64;
    // The session's records after its creation, each followed by one of
    // another session's, in batches as a busy gateway writes them.
    while n < events - 1 {
        let end = (n + 500).min(events - 1);
        let batch = (n..end)
            .flat_map(|n| {
                [
                    turn_event(n, SESSION.to_owned()),
                    turn_event(n, "agent:main:other".to_owned()),
                ]
            })
            .collect();
        log.append_blocking(batch)?;
        n = end;
    }
    log.close();
    store.sync()?;
    Ok(store.next_seq()?)
}

async fn over_websocket(address: &str, args: &TimelineBenchArgs) -> anyhow::Result<()> {
    let (mut socket, _) = connect(address, TOKEN).await?;
    let started = Instant::now();
    let status = call(&mut socket, "clawback.audit.status", json!({})).await?;
    let first_status = started.elapsed();
    anyhow::ensure!(status["chain"]["complete"] == true, "{status}");
    println!(
        "| first `clawback.audit.status` (re-checks the whole chain, {} records) | {} | | one call |",
        status["chain"]["verifiedRecords"],
        millis(first_status)
    );

    let (mut times, mut pages, mut entries) = (Vec::new(), 0, 0);
    for _ in 0..args.runs {
        let started = Instant::now();
        (pages, entries) = full_timeline(&mut socket).await?;
        times.push(started.elapsed());
    }
    anyhow::ensure!(entries == args.events, "read {entries} entries");
    row(
        "gateway `clawback.timeline`, the whole session in pages of 1000 summaries",
        &times,
        &format!("{pages} calls over one WebSocket"),
    );

    let (mut times, mut bytes) = (Vec::new(), 0);
    for _ in 0..args.runs {
        let started = Instant::now();
        let page = call(
            &mut socket,
            "clawback.timeline",
            json!({"sessionKey": SESSION, "limit": PAGE, "details": true}),
        )
        .await?;
        times.push(started.elapsed());
        bytes = page.to_string().len();
    }
    row(
        "gateway `clawback.timeline`, one page of 1000 with recorded payloads",
        &times,
        &format!("{} KB of JSON", bytes / 1024),
    );

    let mut times = Vec::new();
    for step in 0..args.runs.max(20) {
        let started = Instant::now();
        let page = call(
            &mut socket,
            "clawback.timeline",
            json!({"sessionKey": SESSION, "after": 5_000 + u64::from(step) * 13, "limit": 1, "details": true}),
        )
        .await?;
        times.push(started.elapsed());
        anyhow::ensure!(page["entries"][0]["detail"].is_object(), "{page}");
    }
    row(
        "gateway `clawback.timeline`, one step with its payload (a step-through click)",
        &times,
        "limit 1, details",
    );
    Ok(())
}

/// Reads the whole session page by page; returns (calls, entries).
async fn full_timeline(socket: &mut Socket) -> anyhow::Result<(u64, u64)> {
    let (mut after, mut pages, mut entries) = (None::<u64>, 0, 0);
    loop {
        let mut params = json!({"sessionKey": SESSION, "limit": PAGE});
        if let Some(after) = after {
            params["after"] = json!(after);
        }
        let page = call(socket, "clawback.timeline", params).await?;
        pages += 1;
        entries += page["entries"].as_array().map_or(0, Vec::len) as u64;
        after = page["nextAfter"].as_u64();
        if page["hasMore"] != true {
            return Ok((pages, entries));
        }
    }
}

async fn call(socket: &mut Socket, method: &str, params: Value) -> anyhow::Result<Value> {
    let request = json!({"type": "req", "id": "b", "method": method, "params": params});
    socket.send(Message::text(request.to_string())).await?;
    loop {
        let frame = next_json(socket).await?;
        if frame["type"] == "res" && frame["id"] == "b" {
            anyhow::ensure!(frame["ok"] == true, "{method} failed: {frame}");
            return Ok(frame["payload"].clone());
        }
    }
}

fn replay_process(root: &std::path::Path, extra: &[&str]) -> anyhow::Result<()> {
    let status = Command::new(std::env::current_exe()?)
        .arg("--state-dir")
        .arg(root)
        .args(["replay", SESSION, "--color", "never"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()?;
    anyhow::ensure!(status.success(), "clawback replay failed: {status}");
    Ok(())
}

/// Stops the gateway with SIGTERM, as an operator would, so it records its
/// stop and snapshot and releases the state dir.
fn stop(mut gateway: super::bench_protocol::Gateway) -> anyhow::Result<()> {
    // SAFETY: plain kill(2) on a child we own.
    let sent = unsafe { libc::kill(gateway.0.id() as i32, libc::SIGTERM) };
    anyhow::ensure!(sent == 0, "cannot signal the gateway");
    let deadline = Instant::now() + Duration::from_secs(30);
    while gateway.0.try_wait()?.is_none() {
        anyhow::ensure!(Instant::now() < deadline, "the gateway did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn repeat<T>(
    runs: u32,
    mut measure: impl FnMut() -> anyhow::Result<T>,
) -> anyhow::Result<(Vec<Duration>, T)> {
    let mut times = Vec::with_capacity(runs as usize);
    let mut last = None;
    for _ in 0..runs {
        let started = Instant::now();
        last = Some(measure()?);
        times.push(started.elapsed());
    }
    Ok((times, last.expect("runs >= 1")))
}

fn row(label: &str, times: &[Duration], note: &str) {
    let mut sorted = times.to_vec();
    sorted.sort();
    println!(
        "| {label} | {} | {} | {note} |",
        millis(sorted[0]),
        millis(sorted[sorted.len() / 2])
    );
}

fn millis(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1e3)
}
