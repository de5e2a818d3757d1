//! `clawback snapshot create|list|restore`.
//!
//! A snapshot is a cache of the log (projection state at a seq, tied to the
//! chain hash there). `restore` is what the gateway does at start: the newest
//! snapshot that verifies, plus the log's tail; `--check` also rebuilds from
//! seq 0 and proves both give the same state hash.

use std::process::ExitCode;
use std::time::Instant;

use clap::Subcommand;
use clawback_events::Clock;
use clawback_projections::State;
use clawback_replay::{rebuild_from, restore};

use super::progress;
use crate::state_dir::StateDir;

#[derive(Subcommand)]
pub enum SnapshotCommand {
    /// Snapshot the current state (restored from the newest snapshot + tail).
    Create {
        /// Keep only this many newest snapshots afterwards.
        #[arg(long, default_value_t = 3)]
        keep: usize,
    },
    /// List snapshots, newest first, each checked against the log.
    List,
    /// Restore the state from the newest valid snapshot plus the log's tail.
    Restore {
        /// Also rebuild from seq 0 and compare the state hashes.
        #[arg(long)]
        check: bool,
    },
}

pub fn run(state_dir: &StateDir, command: SnapshotCommand) -> anyhow::Result<ExitCode> {
    let store = state_dir.open_existing_store()?;
    let snapshots = state_dir.snapshots();
    match command {
        SnapshotCommand::Create { keep } => {
            let bar = progress::bar("restore", 0);
            let restored = restore(&*store, &snapshots, None, &mut progress::reporter(&bar))?;
            bar.finish_and_clear();
            let info = snapshots.create(&restored.state, clawback_events::SystemClock.now_ms())?;
            let pruned = snapshots.prune(keep.max(1))?;
            println!(
                "snapshot {} written: covers seqs below {}, state hash {}, {} bytes{}",
                info.file_name,
                info.next_seq,
                restored.state.state_hash().to_hex(),
                info.file_bytes,
                if pruned > 0 {
                    format!(" ({pruned} older removed)")
                } else {
                    String::new()
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        SnapshotCommand::List => {
            let all = snapshots.list()?;
            if all.is_empty() {
                println!("no snapshots in {}", snapshots.dir().display());
            }
            let mut all_ok = true;
            for info in all {
                match snapshots.load(&info).and_then(|(header, _)| {
                    clawback_replay::snapshot::check_against_log(&info.file_name, &header, &*store)
                        .map(|()| header)
                }) {
                    Ok(header) => println!(
                        "{}  seqs below {:>10}  state {}  chain {}  {} bytes  OK",
                        info.file_name,
                        header.next_seq,
                        header.state_hash.short(),
                        header.chain_hash.short(),
                        info.file_bytes
                    ),
                    Err(error) => {
                        all_ok = false;
                        println!("{}  INVALID: {error}", info.file_name);
                    }
                }
            }
            Ok(if all_ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        SnapshotCommand::Restore { check } => {
            let started = Instant::now();
            let bar = progress::bar("restore", 0);
            let restored = restore(&*store, &snapshots, None, &mut progress::reporter(&bar))?;
            bar.finish_and_clear();
            let elapsed = started.elapsed();
            for (file, reason) in &restored.skipped {
                println!("skipped snapshot {file}: {reason}");
            }
            match restored.snapshot_seq {
                Some(seq) => println!(
                    "restored from snapshot at seq {seq} + {} tail records in {:.1} ms",
                    restored.tail_records,
                    elapsed.as_secs_f64() * 1e3
                ),
                None => println!(
                    "no valid snapshot: rebuilt {} records from seq 0 in {:.1} ms",
                    restored.tail_records,
                    elapsed.as_secs_f64() * 1e3
                ),
            }
            let hash = restored.state.state_hash();
            println!(
                "state hash {} at seq {}",
                hash.to_hex(),
                restored.state.next_seq
            );
            if check {
                let bar = progress::bar("rebuild", 0);
                let mut full = State::default();
                rebuild_from(&*store, &mut full, None, &mut progress::reporter(&bar))?;
                bar.finish_and_clear();
                let full_hash = full.state_hash();
                if full_hash == hash {
                    println!("check: a full rebuild from seq 0 gives the same state hash");
                } else {
                    println!(
                        "check FAILED: a full rebuild from seq 0 gives {}, the restore gave {}",
                        full_hash.to_hex(),
                        hash.to_hex()
                    );
                    return Ok(ExitCode::from(1));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
