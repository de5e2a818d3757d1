//! `clawback audit verify|export`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use clawback_replay::export::{ExportFilter, export};

use super::progress;
use crate::state_dir::StateDir;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Recompute every hash of the chain and check every snapshot against it.
    Verify,
    /// Write the log as JSON Lines (one envelope per line).
    Export {
        /// First seq to export (inclusive).
        #[arg(long, value_name = "SEQ")]
        since: Option<u64>,
        /// Last seq to export (inclusive).
        #[arg(long, value_name = "SEQ")]
        until: Option<u64>,
        /// Only this session's events.
        #[arg(long, value_name = "SESSION_KEY")]
        session: Option<String>,
        /// Write here instead of stdout.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

pub fn run(state_dir: &StateDir, command: AuditCommand) -> anyhow::Result<ExitCode> {
    let store = state_dir.open_existing_store()?;
    match command {
        AuditCommand::Verify => {
            let bar = progress::bar("verify", 0);
            let report = clawback_replay::audit::verify(
                &*store,
                &state_dir.snapshots(),
                &mut progress::reporter(&bar),
            )?;
            bar.finish_and_clear();
            println!("{report}");
            Ok(if report.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        AuditCommand::Export {
            since,
            until,
            session,
            output,
        } => {
            let filter = ExportFilter {
                since_seq: since,
                until_seq: until,
                session,
            };
            let count = match output {
                Some(path) => {
                    let file = std::fs::File::create(&path)
                        .with_context(|| format!("cannot create {}", path.display()))?;
                    let mut out = std::io::BufWriter::new(file);
                    let count = export(&*store, &filter, &mut out)?;
                    out.flush()?;
                    eprintln!("exported {count} records to {}", path.display());
                    count
                }
                None => {
                    let stdout = std::io::stdout();
                    let mut out = std::io::BufWriter::new(stdout.lock());
                    export(&*store, &filter, &mut out)?
                }
            };
            let _ = count;
            Ok(ExitCode::SUCCESS)
        }
    }
}
