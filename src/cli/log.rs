//! `clawback log tail|archive|import|truncate`: the raw log, for operators.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use clawback_events::store::{AppendRecord, Durability, LogStore};
use clawback_events::{archive, record};

use crate::state_dir::StateDir;

#[derive(Subcommand)]
pub enum LogCommand {
    /// Print the last records of the log.
    Tail {
        /// How many records.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: u64,
        /// One JSON object per line (the export shape).
        #[arg(long)]
        json: bool,
    },
    /// Write the log (or its records from --since) to a portable archive file.
    Archive {
        #[arg(long, short, value_name = "FILE")]
        output: PathBuf,
        #[arg(long, value_name = "SEQ", default_value_t = 0)]
        since: u64,
    },
    /// Load an archive into an empty state dir, verifying the chain as it goes.
    Import {
        #[arg(value_name = "FILE")]
        archive: PathBuf,
    },
    /// Cut the log at SEQ, deleting that record and every later one. For a log
    /// damaged at SEQ when losing the later events is acceptable.
    Truncate {
        #[arg(long, value_name = "SEQ")]
        from: u64,
        /// Confirm that the records are to be deleted for good.
        #[arg(long)]
        yes: bool,
    },
}

pub fn run(state_dir: &StateDir, command: LogCommand) -> anyhow::Result<ExitCode> {
    match command {
        LogCommand::Tail { lines, json } => {
            let store = state_dir.open_existing_store()?;
            // Session content is shown opened, as `audit export` shows it.
            let keyring = crate::content_keys::Keyring::open_read_only(&state_dir.content_keys())?;
            let from = store.next_seq()?.saturating_sub(lines);
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            let mut failure = None;
            store.scan(from, &mut |seq, bytes| {
                let line = match record::decode(seq, bytes) {
                    Ok(envelope) if json => {
                        clawback_replay::export::opened_envelope_json(&envelope, &keyring)
                            .to_string()
                    }
                    Ok(envelope) => {
                        let (_, summary) = clawback_replay::timeline::summarize(
                            &envelope.body.event.read(&keyring).event,
                        );
                        format!(
                            "{seq:>8}  {}  {:<24}  {:<18}  {summary}",
                            super::replay::format_ts(envelope.body.ts_ms),
                            envelope.body.stream,
                            envelope.body.actor.label()
                        )
                    }
                    Err(error) => {
                        failure = Some(anyhow::anyhow!(
                            "record at seq {seq} cannot be read: {error}"
                        ));
                        return ControlFlow::Break(());
                    }
                };
                if writeln!(out, "{line}").is_err() {
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            })?;
            match failure {
                Some(error) => Err(error),
                None => Ok(ExitCode::SUCCESS),
            }
        }
        LogCommand::Archive { output, since } => {
            let store = state_dir.open_existing_store()?;
            let file = std::fs::File::create(&output)
                .with_context(|| format!("cannot create {}", output.display()))?;
            let mut out = std::io::BufWriter::new(file);
            let count = archive::write(&*store, since, &mut out)?;
            out.into_inner()
                .map_err(|error| error.into_error())?
                .sync_all()?;
            println!("archived {count} records to {}", output.display());
            Ok(ExitCode::SUCCESS)
        }
        LogCommand::Import { archive: path } => {
            let store = state_dir.open_store()?;
            import(&*store, &path)?;
            Ok(ExitCode::SUCCESS)
        }
        LogCommand::Truncate { from, yes } => {
            let store = state_dir.open_existing_store()?;
            let next = store.next_seq()?;
            if from >= next {
                println!("the log has {next} records; nothing at or after seq {from}");
                return Ok(ExitCode::SUCCESS);
            }
            if !yes {
                anyhow::bail!(
                    "this deletes {} records (seqs {from}..{}) for good; run again with --yes to confirm, after archiving them (`clawback log archive --since {from} -o FILE`) if they may matter",
                    next - from,
                    next - 1
                );
            }
            let removed = store.truncate_from(from)?;
            // Snapshots past the cut describe records that no longer exist.
            let snapshots = state_dir.snapshots();
            for info in snapshots.list()? {
                if info.next_seq > from {
                    std::fs::remove_file(&info.path)?;
                }
            }
            println!("removed {removed} records; the log now ends before seq {from}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Imports an archive into an empty store, checking every link first.
pub fn import(store: &dyn LogStore, path: &std::path::Path) -> anyhow::Result<()> {
    if store.next_seq()? != 0 {
        anyhow::bail!("the state dir already holds a log; import only into an empty --state-dir");
    }
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut input = std::io::BufReader::new(file);
    let mut expected_prev = clawback_events::Digest::GENESIS;
    let mut expected_seq = 0u64;
    let mut pending: Vec<(u64, String, Vec<u8>)> = Vec::new();
    let mut failure = None;
    let store_ref = store;
    let flush =
        |pending: &mut Vec<(u64, String, Vec<u8>)>, durability: Durability| -> anyhow::Result<()> {
            let records: Vec<AppendRecord<'_>> = pending
                .iter()
                .map(|(seq, stream, bytes)| AppendRecord {
                    seq: *seq,
                    stream,
                    bytes,
                })
                .collect();
            store_ref.append(&records, durability)?;
            pending.clear();
            Ok(())
        };
    archive::read(
        &mut input,
        &mut |seq, bytes| match clawback_events::recovery::check_link(
            seq,
            expected_seq,
            bytes,
            Some(&expected_prev),
        )
        .map_err(anyhow::Error::from)
        .and_then(|hash| Ok((hash, record::decode(seq, bytes)?)))
        {
            Ok((hash, envelope)) => {
                expected_prev = hash;
                expected_seq += 1;
                pending.push((seq, envelope.body.stream, bytes.to_vec()));
                if pending.len() >= 4_096
                    && let Err(error) = flush(&mut pending, Durability::Buffered)
                {
                    failure = Some(error);
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            }
            Err(error) => {
                failure =
                    Some(error.context(format!("archive {} is not a valid log", path.display())));
                ControlFlow::Break(())
            }
        },
    )?;
    if let Some(error) = failure {
        return Err(error);
    }
    if expected_seq == 0 {
        anyhow::bail!("archive {} holds no records", path.display());
    }
    flush(&mut pending, Durability::Buffered)?;
    // One sync makes the whole import durable.
    store.sync()?;
    println!(
        "imported {expected_seq} records, head hash {}",
        expected_prev.to_hex()
    );
    Ok(())
}
