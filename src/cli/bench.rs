//! `clawback bench log`: the log's figures, measured on this machine.
//!
//! Durable appends compare group commit (the log's writer) side by side with
//! one sync per append (the same store, each append synced alone), at 1, 10
//! and 100 concurrent writers. Then, on a log of `--events` records: full
//! rebuild, chain verification, snapshot creation and restore. Output is a
//! Markdown report for docs/BENCHMARKS.md.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use clawback_events::event::*;
use clawback_events::log::CommitHook;
use clawback_events::record;
use clawback_events::store::{AppendRecord, Durability, FjallStore, LogStore};
use clawback_events::{Actor, Body, Digest, Log, LogConfig, NewEvent, SystemClock};
use clawback_projections::State;
use clawback_replay::{SnapshotStore, rebuild_after_recovery, rebuild_from, restore};
use hdrhistogram::Histogram;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Append throughput, rebuild, verify, snapshot restore.
    Log(LogBenchArgs),
    /// The gateway over WebSocket: start, handshake, health latency and
    /// throughput, memory.
    Protocol(super::bench_protocol::ProtocolBenchArgs),
    /// Agent turns against an instant local provider: what the gateway
    /// adds to a turn.
    Agent(super::bench_agent::AgentBenchArgs),
    /// `/v1/chat/completions` against an instant local provider, side by
    /// side with calling the provider directly.
    Http(super::bench_http::HttpBenchArgs),
    /// The Merkle tree: build rate against the chain check, checkpoint
    /// signing, proof making and verification.
    Merkle(super::bench_merkle::MerkleBenchArgs),
    /// A long session's replay timeline: `clawback.timeline` on a running
    /// gateway (the control UI's read) and `clawback replay`.
    Timeline(super::bench_timeline::TimelineBenchArgs),
}

#[derive(Args)]
pub struct LogBenchArgs {
    /// Records in the log used for rebuild, verify and restore.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Appends each writer makes in the group-commit runs.
    #[arg(long, default_value_t = 2_000)]
    appends_per_writer: u64,
    /// Total appends in each one-sync-per-append run (they are slow).
    #[arg(long, default_value_t = 2_000)]
    unbatched_appends: u64,
    /// Where to put the benchmark's stores (default: a temporary dir).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

pub fn run(command: BenchCommand) -> anyhow::Result<ExitCode> {
    match command {
        BenchCommand::Log(args) => bench_log(args),
        BenchCommand::Protocol(args) => super::bench_protocol::run(args),
        BenchCommand::Agent(args) => super::bench_agent::run(args),
        BenchCommand::Http(args) => super::bench_http::run(args),
        BenchCommand::Merkle(args) => super::bench_merkle::run(args),
        BenchCommand::Timeline(args) => super::bench_timeline::run(args),
    }
}

fn bench_log(args: LogBenchArgs) -> anyhow::Result<ExitCode> {
    let temporary = tempdir_in(args.dir.as_deref())?;
    let root = temporary.path().to_path_buf();
    println!("# clawback bench log\n");
    println!("machine: {}\n", machine_description());

    println!(
        "## Durable appends (each append is one ~200-byte event, acknowledged after fdatasync; group commit also applies it to the projections first, as the gateway does)\n"
    );
    println!(
        "| writers | mode | appends | events/s | append p50 | append p99 | syncs | events per sync |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|");
    for writers in [1usize, 10, 100] {
        let grouped = append_group_commit(
            &root.join(format!("group-{writers}")),
            writers,
            args.appends_per_writer,
        )?;
        let per_writer = args.unbatched_appends.div_ceil(writers as u64).max(1);
        let unbatched =
            append_one_sync_each(&root.join(format!("single-{writers}")), writers, per_writer)?;
        for (mode, run) in [
            ("group commit", &grouped),
            ("one sync per append", &unbatched),
        ] {
            println!(
                "| {writers} | {mode} | {} | {:.0} | {} | {} | {} | {:.1} |",
                run.appends,
                run.appends as f64 / run.elapsed.as_secs_f64(),
                micros(run.latency.value_at_quantile(0.5)),
                micros(run.latency.value_at_quantile(0.99)),
                run.syncs,
                run.appends as f64 / run.syncs.max(1) as f64,
            );
        }
        println!(
            "| {writers} | **group commit / one sync per append** | | **{:.1}x** | | | | |",
            (grouped.appends as f64 / grouped.elapsed.as_secs_f64())
                / (unbatched.appends as f64 / unbatched.elapsed.as_secs_f64())
        );
    }

    println!(
        "\n## Rebuild, verify, snapshot restore ({} events)\n",
        args.events
    );
    let log_dir = root.join("large");
    let (fill_elapsed, log_bytes) = fill_large_log(&log_dir, args.events)?;
    let store = FjallStore::open(&log_dir)?;
    println!("| operation | time | events/s | note |");
    println!("|---|---:|---:|---|");
    println!(
        "| load (buffered appends of 1,000-event batches, one final sync) | {} | {:.0} | {:.0} MB on disk |",
        seconds(fill_elapsed),
        args.events as f64 / fill_elapsed.as_secs_f64(),
        log_bytes as f64 / 1e6
    );

    let started = Instant::now();
    let mut state = State::default();
    rebuild_from(&store, &mut state, None, &mut |_, _| {})?;
    let rebuild = started.elapsed();
    anyhow::ensure!(
        state.anomalies.total() == 0,
        "the workload should fold without anomalies: {:?}",
        state.anomalies.recent
    );
    println!(
        "| full rebuild of all projections from seq 0, every hash checked | {} | {:.0} | state hash {} |",
        seconds(rebuild),
        args.events as f64 / rebuild.as_secs_f64(),
        state.state_hash().short()
    );

    // What the gateway does at start without a snapshot: recovery has just
    // verified every hash, so the rebuild only checks links.
    let started = Instant::now();
    let mut trusted = State::default();
    rebuild_after_recovery(&store, &mut trusted, None, 0, &mut |_, _| {})?;
    let rebuild_trusted = started.elapsed();
    anyhow::ensure!(trusted == state, "the link-checked rebuild differs");
    println!(
        "| full rebuild at gateway start (hashes just verified by recovery, links checked) | {} | {:.0} | same state |",
        seconds(rebuild_trusted),
        args.events as f64 / rebuild_trusted.as_secs_f64()
    );

    print_rebuild_breakdown(&store, args.events)?;

    let snapshots = SnapshotStore::new(root.join("snapshots"));
    let started = Instant::now();
    let report = clawback_replay::audit::verify(&store, &snapshots, None, &mut |_, _| {})?;
    let verify = started.elapsed();
    anyhow::ensure!(
        report.is_ok(),
        "benchmark log failed verification: {report}"
    );
    println!(
        "| audit verify (every hash and link) | {} | {:.0} | |",
        seconds(verify),
        args.events as f64 / verify.as_secs_f64()
    );

    let started = Instant::now();
    let info = snapshots.create(&state, 0)?;
    let create = started.elapsed();
    println!(
        "| snapshot create at seq {} | {} | | {:.0} MB file |",
        info.next_seq,
        seconds(create),
        info.file_bytes as f64 / 1e6
    );
    let started = Instant::now();
    let report = clawback_replay::audit::verify(&store, &snapshots, None, &mut |_, _| {})?;
    let verify_fold = started.elapsed();
    anyhow::ensure!(report.is_ok(), "snapshot failed verification: {report}");
    println!(
        "| audit verify with that snapshot (chain + fold to the snapshot's state hash) | {} | {:.0} | |",
        seconds(verify_fold),
        args.events as f64 / verify_fold.as_secs_f64()
    );
    let started = Instant::now();
    let restored = restore(&store, &snapshots, None, &mut |_, _| {})?;
    let restore_elapsed = started.elapsed();
    anyhow::ensure!(
        restored.state.state_hash() == state.state_hash(),
        "restore differs from rebuild"
    );
    println!(
        "| restore = newest snapshot + tail (tail {} events) | {} | | same state hash as the rebuild |",
        restored.tail_records,
        seconds(restore_elapsed)
    );

    // A snapshot 10% behind the head: restore must also apply the tail.
    let mut partial = State::default();
    rebuild_from(
        &store,
        &mut partial,
        Some(args.events * 9 / 10),
        &mut |_, _| {},
    )?;
    std::fs::remove_file(&info.path)?;
    snapshots.create(&partial, 0)?;
    let started = Instant::now();
    let restored = restore(&store, &snapshots, None, &mut |_, _| {})?;
    let restore_tail = started.elapsed();
    anyhow::ensure!(
        restored.state.state_hash() == state.state_hash(),
        "restore differs from rebuild"
    );
    println!(
        "| restore from a snapshot at 90% + tail ({} events) | {} | | same state hash as the rebuild |",
        restored.tail_records,
        seconds(restore_tail)
    );
    Ok(ExitCode::SUCCESS)
}

/// Where a rebuild's time goes, each stage measured alone on one thread:
/// reading records, checking their hashes, decoding bodies, applying them.
fn print_rebuild_breakdown(store: &FjallStore, events: u64) -> anyhow::Result<()> {
    let stage = |name: &str, elapsed: Duration| {
        println!(
            "| rebuild stage: {name} | {} | {:.0} | one thread |",
            seconds(elapsed),
            events as f64 / elapsed.as_secs_f64()
        );
    };
    let mut bytes_read = 0usize;
    let started = Instant::now();
    store.scan(0, &mut |_, bytes| {
        bytes_read += bytes.len();
        std::ops::ControlFlow::Continue(())
    })?;
    stage("read records from the store", started.elapsed());
    anyhow::ensure!(bytes_read > 0, "the benchmark log is empty");

    let started = Instant::now();
    store.scan(0, &mut |seq, bytes| {
        let view = record::RecordView::parse(bytes).expect("bench records parse");
        view.verify(seq).expect("bench records verify");
        std::ops::ControlFlow::Continue(())
    })?;
    stage("read + check hashes", started.elapsed());

    let started = Instant::now();
    store.scan(0, &mut |seq, bytes| {
        drop(record::decode(seq, bytes).expect("bench records decode"));
        std::ops::ControlFlow::Continue(())
    })?;
    stage("read + check hashes + decode", started.elapsed());

    let mut envelopes = Vec::with_capacity(usize::try_from(events).unwrap_or(0));
    store.scan(0, &mut |seq, bytes| {
        envelopes.push(record::decode(seq, bytes).expect("bench records decode"));
        std::ops::ControlFlow::Continue(())
    })?;
    let mut state = State::default();
    let started = Instant::now();
    for envelope in &envelopes {
        state.apply(envelope);
    }
    stage(
        "apply decoded envelopes to the projections",
        started.elapsed(),
    );
    Ok(())
}

struct AppendRun {
    appends: u64,
    elapsed: Duration,
    latency: Histogram<u64>,
    syncs: u64,
}

fn bench_session(writer: usize) -> String {
    format!("agent:main:bench-{writer}")
}

fn bench_event(writer: usize, n: u64) -> NewEvent {
    let session = bench_session(writer);
    NewEvent::new(
        session.clone(),
        Actor::System,
        Event::MessageAppended(MessageAppended {
            session_key: session,
            message_id: format!("w{writer}-{n}"),
            role: Role::User,
            content: "a typical short chat message of about one hundred bytes, as people send them to agents".to_owned(),
            run_id: None,
            tool_call_id: None,
            origin: None,
        }),
    )
}

fn append_group_commit(dir: &Path, writers: usize, per_writer: u64) -> anyhow::Result<AppendRun> {
    let store = Arc::new(FjallStore::open(dir)?);
    // As in the gateway: every committed batch is applied to the projections
    // before its appenders are answered.
    let state = Arc::new(Mutex::new(State::default()));
    let hook: CommitHook = {
        let state = state.clone();
        Box::new(move |batch| {
            let mut state = state.lock().expect("state lock");
            for envelope in batch {
                state.apply(envelope);
            }
        })
    };
    let log = Arc::new(Log::open(
        store,
        LogConfig::default(),
        Arc::new(SystemClock),
        Some(hook),
    )?);
    log.append_blocking(
        (0..writers)
            .map(bench_session)
            .map(session_created)
            .collect(),
    )?;
    let batches_before = log.batches_committed();
    let started = Instant::now();
    let histograms = run_writers(writers, per_writer, {
        let log = log.clone();
        move |writer, n| {
            let log = log.clone();
            async move {
                log.append(vec![bench_event(writer, n)]).await?;
                Ok(())
            }
        }
    })?;
    let elapsed = started.elapsed();
    Ok(AppendRun {
        appends: writers as u64 * per_writer,
        elapsed,
        latency: histograms,
        syncs: log.batches_committed() - batches_before,
    })
}

/// The baseline: the same records, the same store, but every append takes
/// the store alone and syncs before the next may start.
fn append_one_sync_each(dir: &Path, writers: usize, per_writer: u64) -> anyhow::Result<AppendRun> {
    let store = Arc::new(FjallStore::open(dir)?);
    let head = Arc::new(tokio::sync::Mutex::new((0u64, Digest::GENESIS)));
    let started = Instant::now();
    let histograms = run_writers(writers, per_writer, move |writer, n| {
        let store = store.clone();
        let head = head.clone();
        async move {
            let new_event = bench_event(writer, n);
            let mut head = head.lock().await;
            let (seq, prev) = *head;
            let body = Body {
                ts_ms: 0,
                stream: new_event.stream,
                actor: new_event.actor,
                correlation: None,
                causation: None,
                event: new_event.event,
            };
            let (bytes, hash) = record::encode(seq, &prev, &body);
            let record = AppendRecord {
                seq,
                stream: &body.stream,
                bytes: &bytes,
            };
            tokio::task::block_in_place(|| store.append(&[record], Durability::Sync))?;
            *head = (seq + 1, hash);
            Ok(())
        }
    })?;
    let elapsed = started.elapsed();
    let appends = writers as u64 * per_writer;
    Ok(AppendRun {
        appends,
        elapsed,
        latency: histograms,
        syncs: appends,
    })
}

/// Runs `writers` tasks on a runtime shaped like the gateway's (one worker
/// thread per core), each awaiting `append` `per_writer` times, and returns
/// the merged latency histogram (microseconds). Tasks, not threads: the
/// gateway's appenders are request handlers on the async runtime.
fn run_writers<F, Fut>(writers: usize, per_writer: u64, append: F) -> anyhow::Result<Histogram<u64>>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let append = Arc::new(append);
    runtime.block_on(async move {
        let tasks: Vec<_> = (0..writers)
            .map(|writer| {
                let append = append.clone();
                tokio::spawn(async move {
                    let mut histogram = Histogram::<u64>::new(3)?;
                    for n in 0..per_writer {
                        let started = Instant::now();
                        append(writer, n).await?;
                        histogram.record(started.elapsed().as_micros() as u64)?;
                    }
                    Ok::<_, anyhow::Error>(histogram)
                })
            })
            .collect();
        let mut merged = Histogram::<u64>::new(3)?;
        for task in tasks {
            merged.add(task.await??)?;
        }
        Ok(merged)
    })
}

/// Events per agent turn in the workload.
const TURN_EVENTS: u64 = 12;
/// Sessions the workload spreads its turns over.
const WORKLOAD_SESSIONS: u64 = 1_000;

fn workload_session(turn: u64) -> String {
    format!("agent:main:s{}", turn % WORKLOAD_SESSIONS)
}

/// The workload after its sessions exist: the `n`th event of a sequence of
/// complete agent turns (inbound message from a channel, run, LLM call, tool
/// call, tool result, reply, delivery), round-robin over the sessions, so
/// every event is one the reducers accept and the rebuild measures the
/// normal path, not the anomaly path.
fn workload_event(n: u64) -> NewEvent {
    turn_event(n, workload_session(n / TURN_EVENTS))
}

/// The `n`th event of the workload's turns, all in `session`.
pub(super) fn turn_event(n: u64, session: String) -> NewEvent {
    let turn = n / TURN_EVENTS;
    let run_id = format!("run-{turn}");
    let message = |role: Role, content: String, origin: Option<MessageOrigin>| {
        Event::MessageAppended(MessageAppended {
            session_key: session.clone(),
            message_id: format!("m{n}"),
            role,
            content,
            run_id: Some(run_id.clone()),
            tool_call_id: None,
            origin,
        })
    };
    let event = match n % TURN_EVENTS {
        0 => message(
            Role::User,
            format!(
                "message {turn}: a typical chat line of a hundred bytes or so, as people send them"
            ),
            Some(MessageOrigin {
                channel: "telegram".to_owned(),
                sender: "42".to_owned(),
                platform_message_id: Some(format!("tg-{turn}")),
            }),
        ),
        1 => Event::AgentRunStarted(AgentRunStarted {
            run_id: run_id.clone(),
            session_key: session.clone(),
            agent_id: "main".to_owned(),
            model: Some("openai/gpt-5".to_owned()),
            trigger: "channel".to_owned(),
        }),
        2 => Event::LlmCallRequested(LlmCallRequested {
            call_id: format!("llm-{turn}"),
            run_id: run_id.clone(),
            session_key: session.clone(),
            provider: "openai".to_owned(),
            model: "gpt-5".to_owned(),
            attempt: 1,
            request: format!(
                "{{\"model\":\"gpt-5\",\"messages\":[{{\"role\":\"user\",\"content\":\"question {turn} with some context attached to make it realistic\"}}]}}"
            ),
        }),
        3 => Event::LlmCallCompleted(LlmCallCompleted {
            call_id: format!("llm-{turn}"),
            run_id: run_id.clone(),
            session_key: session.clone(),
            provider: "openai".to_owned(),
            model: "gpt-5".to_owned(),
            outcome: LlmOutcome::Ok {
                response: format!(
                    "{{\"choices\":[{{\"message\":{{\"tool_calls\":[{{\"id\":\"call-{turn}\",\"function\":{{\"name\":\"exec\"}}}}]}}}}]}}"
                ),
                stop_reason: "tool_calls".to_owned(),
            },
            usage: Usage {
                input_tokens: 120,
                output_tokens: 40,
                cache_read_tokens: 0,
                cache_write_tokens: 0,
            },
            cost_micro_usd: 350,
            latency_ms: 900,
        }),
        4 => Event::ToolCallRequested(ToolCallRequested {
            tool_call_id: format!("call-{turn}"),
            run_id: run_id.clone(),
            session_key: session.clone(),
            tool: "exec".to_owned(),
            arguments: "{\"command\":\"ls /tmp\"}".to_owned(),
        }),
        5 => Event::ToolCallStarted(ToolCallStarted {
            tool_call_id: format!("call-{turn}"),
            session_key: session.clone(),
        }),
        6 => Event::ToolCallFinished(ToolCallFinished {
            tool_call_id: format!("call-{turn}"),
            session_key: session.clone(),
            outcome: ToolOutcome::Ok {
                output: "file-a\nfile-b\n".to_owned(),
            },
            duration_ms: 12,
        }),
        7 => message(Role::Tool, "file-a\nfile-b\n".to_owned(), None),
        8 => message(
            Role::Assistant,
            format!("answer {turn}: two files, file-a and file-b."),
            None,
        ),
        9 => Event::AgentRunFinished(AgentRunFinished {
            run_id: run_id.clone(),
            session_key: session.clone(),
            status: RunStatus::Completed,
        }),
        10 => Event::DeliveryPrepared(DeliveryPrepared {
            delivery_id: format!("d-{turn}"),
            idempotency_key: format!("telegram:42:{turn}"),
            channel: "telegram".to_owned(),
            target: "42".to_owned(),
            session_key: Some(session.clone()),
            text: format!("answer {turn}: two files, file-a and file-b."),
        }),
        _ => Event::DeliverySent(DeliverySent {
            delivery_id: format!("d-{turn}"),
            platform_message_id: Some(format!("tg-out-{turn}")),
        }),
    };
    NewEvent::new(session, Actor::System, event)
}

pub(super) fn session_created(session_key: String) -> NewEvent {
    NewEvent::new(
        session_key.clone(),
        Actor::System,
        Event::SessionCreated(SessionCreated {
            session_key,
            session_id: "bench".to_owned(),
            agent_id: "main".to_owned(),
            label: None,
            origin: Some("telegram".to_owned()),
        }),
    )
}

pub(super) fn fill_large_log(dir: &Path, events: u64) -> anyhow::Result<(Duration, u64)> {
    let store = Arc::new(FjallStore::open(dir)?);
    let config = LogConfig {
        durability: Durability::Buffered,
        ..LogConfig::default()
    };
    let log = Log::open(store.clone(), config, Arc::new(SystemClock), None)?;
    let started = Instant::now();
    let sessions = WORKLOAD_SESSIONS.min(events);
    log.append_blocking(
        (0..sessions)
            .map(workload_session)
            .map(session_created)
            .collect(),
    )?;
    let mut n = 0u64;
    let turns_events = events - sessions;
    while n < turns_events {
        let batch_end = (n + 1_000).min(turns_events);
        log.append_blocking((n..batch_end).map(workload_event).collect())?;
        n = batch_end;
    }
    log.close();
    store.sync()?;
    Ok((started.elapsed(), store.disk_bytes()))
}

pub fn tempdir_in(dir: Option<&Path>) -> anyhow::Result<TempDir> {
    let base = match dir {
        Some(dir) => dir.to_path_buf(),
        None => std::env::temp_dir(),
    };
    let path = base.join(format!("clawback-bench-{}", std::process::id()));
    std::fs::create_dir_all(&path)?;
    Ok(TempDir(path))
}

/// Removes the benchmark's stores when done.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn micros(value: u64) -> String {
    if value >= 1_000 {
        format!("{:.2} ms", value as f64 / 1e3)
    } else {
        format!("{value} µs")
    }
}

fn seconds(elapsed: Duration) -> String {
    format!("{:.3} s", elapsed.as_secs_f64())
}

pub fn machine_description() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|model| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "{cores} cores, {cpu}, {} build",
        if cfg!(debug_assertions) {
            "debug (numbers not representative)"
        } else {
            "release"
        }
    )
}
