//! `clawback audit verify|export|checkpoint|prove|check-proof|consistency`.
//! The Merkle commands live in `audit_proofs`; this module parses and
//! dispatches, and runs the two that read the whole log.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use clawback_replay::export::{ExportFilter, export};

use super::{audit_proofs, progress};
use crate::state_dir::StateDir;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Recompute every hash of the chain and the Merkle tree, and check
    /// every snapshot and every signed checkpoint against them.
    Verify {
        /// The log's checkpoint key to check signatures with (a verifier
        /// key `name+id+base64`, or a file holding one). Default: the state
        /// dir's own key.
        #[arg(long, value_name = "KEY")]
        key: Option<String>,
    },
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
    /// Print the latest signed checkpoint (C2SP format), or make one.
    Checkpoint(audit_proofs::CheckpointArgs),
    /// Write a self-contained proof that the record at SEQ is in the log.
    Prove(audit_proofs::ProveArgs),
    /// Verify a proof bundle with nothing but the log's public key.
    CheckProof(audit_proofs::CheckProofArgs),
    /// Prove the log only grew since an old checkpoint.
    Consistency(audit_proofs::ConsistencyArgs),
}

pub fn run(state_dir: &StateDir, command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Verify { key } => {
            let key = crate::checkpoint_key::verifier(key.as_deref(), &state_dir.checkpoint_key())?;
            let store = state_dir.open_existing_store()?;
            let bar = progress::bar("verify", 0);
            let report = clawback_replay::audit::verify(
                &*store,
                &state_dir.snapshots(),
                key.as_ref(),
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
            let store = state_dir.open_existing_store()?;
            let keyring = crate::content_keys::Keyring::open_read_only(&state_dir.content_keys())?;
            let filter = ExportFilter {
                since_seq: since,
                until_seq: until,
                session,
            };
            match output {
                Some(path) => {
                    let file = std::fs::File::create(&path)
                        .with_context(|| format!("cannot create {}", path.display()))?;
                    let mut out = std::io::BufWriter::new(file);
                    let count = export(&*store, &keyring, &filter, &mut out)?;
                    out.flush()?;
                    eprintln!("exported {count} records to {}", path.display());
                }
                None => {
                    let stdout = std::io::stdout();
                    let mut out = std::io::BufWriter::new(stdout.lock());
                    export(&*store, &keyring, &filter, &mut out)?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Checkpoint(args) => audit_proofs::checkpoint(state_dir, args),
        AuditCommand::Prove(args) => audit_proofs::prove(state_dir, args),
        AuditCommand::CheckProof(args) => audit_proofs::check_proof(state_dir, args),
        AuditCommand::Consistency(args) => audit_proofs::consistency(state_dir, args),
    }
}
