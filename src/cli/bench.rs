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
use clawback_events::record;
use clawback_events::store::{AppendRecord, Durability, FjallStore, LogStore};
use clawback_events::{Actor, Body, Digest, Log, LogConfig, NewEvent, SystemClock};
use clawback_projections::State;
use clawback_replay::{SnapshotStore, rebuild_from, restore};
use hdrhistogram::Histogram;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Append throughput, rebuild, verify, snapshot restore.
    Log(LogBenchArgs),
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
    }
}

fn bench_log(args: LogBenchArgs) -> anyhow::Result<ExitCode> {
    let temporary = tempdir_in(args.dir.as_deref())?;
    let root = temporary.path().to_path_buf();
    println!("# clawback bench log\n");
    println!("machine: {}\n", machine_description());

    println!(
        "## Durable appends (each append is one ~200-byte event, acknowledged after fdatasync)\n"
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
    println!(
        "| full rebuild of all projections from seq 0 | {} | {:.0} | state hash {} |",
        seconds(rebuild),
        args.events as f64 / rebuild.as_secs_f64(),
        state.state_hash().short()
    );

    let snapshots = SnapshotStore::new(root.join("snapshots"));
    let started = Instant::now();
    let report = clawback_replay::audit::verify(&store, &snapshots, &mut |_, _| {})?;
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

struct AppendRun {
    appends: u64,
    elapsed: Duration,
    latency: Histogram<u64>,
    syncs: u64,
}

fn bench_event(writer: usize, n: u64) -> NewEvent {
    let session = format!("agent:main:bench-{writer}");
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
    let log = Arc::new(Log::open(
        store,
        LogConfig::default(),
        Arc::new(SystemClock),
        None,
    )?);
    let started = Instant::now();
    let histograms = run_writers(writers, per_writer, {
        let log = log.clone();
        move |writer, n| {
            log.append_blocking(vec![bench_event(writer, n)])?;
            Ok(())
        }
    })?;
    let elapsed = started.elapsed();
    Ok(AppendRun {
        appends: writers as u64 * per_writer,
        elapsed,
        latency: histograms,
        syncs: log.batches_committed(),
    })
}

/// The baseline: the same records, the same store, but every append takes
/// the store alone and syncs before the next may start.
fn append_one_sync_each(dir: &Path, writers: usize, per_writer: u64) -> anyhow::Result<AppendRun> {
    let store = Arc::new(FjallStore::open(dir)?);
    let head = Arc::new(Mutex::new((0u64, Digest::GENESIS)));
    let started = Instant::now();
    let histograms = run_writers(writers, per_writer, {
        let store = store.clone();
        move |writer, n| {
            let new_event = bench_event(writer, n);
            let mut head = head.lock().expect("head lock");
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
            store.append(
                &[AppendRecord {
                    seq,
                    stream: &body.stream,
                    bytes: &bytes,
                }],
                Durability::Sync,
            )?;
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

/// Runs `writers` threads, each calling `append` `per_writer` times, and
/// returns the merged latency histogram (microseconds).
fn run_writers(
    writers: usize,
    per_writer: u64,
    append: impl Fn(usize, u64) -> anyhow::Result<()> + Send + Sync + 'static,
) -> anyhow::Result<Histogram<u64>> {
    let append = Arc::new(append);
    let threads: Vec<_> = (0..writers)
        .map(|writer| {
            let append = append.clone();
            std::thread::spawn(move || -> anyhow::Result<Histogram<u64>> {
                let mut histogram = Histogram::<u64>::new(3)?;
                for n in 0..per_writer {
                    let started = Instant::now();
                    append(writer, n)?;
                    histogram.record(started.elapsed().as_micros() as u64)?;
                }
                Ok(histogram)
            })
        })
        .collect();
    let mut merged = Histogram::<u64>::new(3)?;
    for thread in threads {
        merged.add(thread.join().expect("writer thread")?)?;
    }
    Ok(merged)
}

/// A mixed workload: chat messages, LLM request/response pairs, tool calls,
/// over 1,000 sessions.
fn workload_event(n: u64) -> NewEvent {
    let session = format!("agent:main:s{}", n % 1_000);
    let run_id = format!("run-{}", n / 10);
    let event = match n % 10 {
        0 => Event::LlmCallRequested(LlmCallRequested {
            call_id: format!("llm-{n}"),
            run_id,
            session_key: session.clone(),
            provider: "openai".to_owned(),
            model: "gpt-5".to_owned(),
            attempt: 1,
            request: format!(
                "{{\"model\":\"gpt-5\",\"messages\":[{{\"role\":\"user\",\"content\":\"question {n} with some context attached to make it realistic\"}}]}}"
            ),
        }),
        1 => Event::LlmCallCompleted(LlmCallCompleted {
            call_id: format!("llm-{}", n - 1),
            run_id,
            session_key: session.clone(),
            provider: "openai".to_owned(),
            model: "gpt-5".to_owned(),
            outcome: LlmOutcome::Ok {
                response: format!(
                    "{{\"choices\":[{{\"message\":{{\"content\":\"answer {n}\"}}}}]}}"
                ),
                stop_reason: "stop".to_owned(),
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
        2 => Event::ToolCallFinished(ToolCallFinished {
            tool_call_id: format!("call-{n}"),
            session_key: session.clone(),
            outcome: ToolOutcome::Ok {
                output: "file-a\nfile-b\n".to_owned(),
            },
            duration_ms: 12,
        }),
        _ => Event::MessageAppended(MessageAppended {
            session_key: session.clone(),
            message_id: format!("m{n}"),
            role: if n.is_multiple_of(2) {
                Role::User
            } else {
                Role::Assistant
            },
            content: format!(
                "message {n}: a typical chat line of a hundred bytes or so, as people send them"
            ),
            run_id: None,
            tool_call_id: None,
            origin: None,
        }),
    };
    NewEvent::new(session, Actor::System, event)
}

fn fill_large_log(dir: &Path, events: u64) -> anyhow::Result<(Duration, u64)> {
    let store = Arc::new(FjallStore::open(dir)?);
    let config = LogConfig {
        durability: Durability::Buffered,
        ..LogConfig::default()
    };
    let log = Log::open(store.clone(), config, Arc::new(SystemClock), None)?;
    let started = Instant::now();
    let mut n = 0u64;
    while n < events {
        let batch_end = (n + 1_000).min(events);
        log.append_blocking((n..batch_end).map(workload_event).collect())?;
        n = batch_end;
    }
    log.close();
    store.sync()?;
    Ok((started.elapsed(), store.disk_bytes()))
}

fn tempdir_in(dir: Option<&Path>) -> anyhow::Result<TempDir> {
    let base = match dir {
        Some(dir) => dir.to_path_buf(),
        None => std::env::temp_dir(),
    };
    let path = base.join(format!("clawback-bench-{}", std::process::id()));
    std::fs::create_dir_all(&path)?;
    Ok(TempDir(path))
}

/// Removes the benchmark's stores when done.
struct TempDir(PathBuf);

impl TempDir {
    fn path(&self) -> &Path {
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

fn machine_description() -> String {
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
