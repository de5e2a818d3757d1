//! `clawback audit checkpoint|prove|check-proof|consistency`: the Merkle
//! tree's signed checkpoints and proofs from the command line.
//!
//! Exit codes follow `cli/mod.rs`: 0 proven, 1 the proof or the log failed
//! a check (tampering, forgery, a log that shrank), 2 the command could not
//! run (bad input, no key, no checkpoint yet), always with what to do.
//! `check-proof` needs no state dir: only the bundle and a public key.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use clawback_events::store::LogStore;
use clawback_events::{Log, LogConfig, SystemClock};
use clawback_replay::log_tree::{
    StoredCheckpoint, TreeError, latest_checkpoint, prove_consistency, prove_inclusion,
    stored_checkpoints,
};
use clawback_replay::merkle::note::{Checkpoint, NOTE_BYTES_MAX, NoteVerifier};
use clawback_replay::merkle::proof::verify_consistency;
use clawback_replay::merkle::to_base64;
use clawback_replay::proof_bundle::{
    BUNDLE_BYTES_MAX, BundleError, ConsistencyBundle, InclusionBundle, Verified, verify_bundle,
};

use crate::checkpoint_key;
use crate::gateway::checkpoints::Checkpointer;
use crate::state_dir::StateDir;
use crate::timefmt::rfc3339_ms;

#[derive(Args)]
pub struct CheckpointArgs {
    /// Sign a checkpoint of the whole log now (the gateway must be
    /// stopped), then print it.
    #[arg(long)]
    create: bool,
    /// Print the public key outside verifiers pin (`name+id+base64`).
    #[arg(long, conflicts_with = "create")]
    verifier_key: bool,
}

#[derive(Args)]
pub struct ProveArgs {
    /// The seq of the record to prove.
    seq: u64,
    /// Prove against the checkpoint of this tree size (default: the newest
    /// checkpoint).
    #[arg(long, value_name = "N")]
    size: Option<u64>,
    /// Write the bundle here instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Args)]
pub struct CheckProofArgs {
    /// A bundle written by `audit prove` or `audit consistency -o`.
    file: PathBuf,
    /// The log's public key (`name+id+base64`, or a file holding it).
    /// Default: the key of the state dir, when there is one.
    #[arg(long, value_name = "PUBKEY")]
    key: Option<String>,
}

#[derive(Args)]
pub struct ConsistencyArgs {
    /// A checkpoint saved earlier (`clawback audit checkpoint > FILE`).
    #[arg(long, value_name = "OLD_CHECKPOINT_FILE")]
    from: PathBuf,
    /// The log's public key; default: the state dir's.
    #[arg(long, value_name = "PUBKEY")]
    key: Option<String>,
    /// Also write the proof as a bundle others can check.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// A check failed: say what and why, exit 1.
fn failed(message: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    println!("FAILED: {message}");
    Ok(ExitCode::from(1))
}

fn describe(checkpoint: &Checkpoint) -> String {
    format!(
        "tree size {}, root {}, signed {}",
        checkpoint.size,
        to_base64(&checkpoint.root),
        rfc3339_ms(checkpoint.time_ms)
    )
}

fn no_checkpoint_yet() -> anyhow::Error {
    anyhow::anyhow!(
        "this log has no checkpoint yet: the gateway signs one every --checkpoint-every records or --checkpoint-interval, and at stop; or run `clawback audit checkpoint --create` while the gateway is stopped"
    )
}

fn write_output(output: Option<&Path>, text: &str) -> anyhow::Result<()> {
    match output {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
        }
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

fn read_bounded(path: &Path, limit: u64, what: &str) -> anyhow::Result<String> {
    let length = std::fs::metadata(path)
        .with_context(|| format!("cannot read {what} {}", path.display()))?
        .len();
    if length > limit {
        bail!(
            "{} is {length} bytes, more than any {what} ({limit})",
            path.display()
        );
    }
    std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {what} {} as UTF-8 text", path.display()))
}

/// The state dir's key, or the one given; an error with the fix when none.
fn required_key(state_dir: &StateDir, explicit: Option<&str>) -> anyhow::Result<NoteVerifier> {
    checkpoint_key::verifier(explicit, &state_dir.checkpoint_key())?.with_context(|| {
        format!(
            "no key to check against: pass --key <verifier key> (the log's operator prints it with `clawback audit checkpoint --verifier-key`); {} does not exist",
            state_dir.checkpoint_key().display()
        )
    })
}

pub fn checkpoint(state_dir: &StateDir, args: CheckpointArgs) -> anyhow::Result<ExitCode> {
    if args.verifier_key {
        let signer = checkpoint_key::load(&state_dir.checkpoint_key())?.with_context(|| {
            format!(
                "no checkpoint key at {}: the gateway makes it on its first start, or `clawback audit checkpoint --create` does",
                state_dir.checkpoint_key().display()
            )
        })?;
        println!("{}", signer.verifier().to_verifier_key());
        return Ok(ExitCode::SUCCESS);
    }
    let store = state_dir.open_existing_store()?;
    if args.create {
        let checkpointer =
            Checkpointer::new(checkpoint_key::load_or_create(&state_dir.checkpoint_key())?);
        // The checkpointer checks every record since the last checkpoint;
        // recovery need only look at the tail.
        let config = LogConfig {
            verify_from: store.next_seq()?,
            ..LogConfig::default()
        };
        let log = Log::open(store.clone(), config, Arc::new(SystemClock), None)?;
        let event = match checkpointer.make(&*store, log.next_seq()) {
            Ok(event) => event,
            Err(error @ TreeError::Corrupt { .. }) => return failed(error),
            Err(error) => return Err(error.into()),
        };
        let committed = log.append_blocking(vec![event])?;
        log.close();
        eprintln!("checkpoint recorded at seq {}", committed.first_seq);
    }
    let latest = latest_checkpoint(&*store)?.ok_or_else(no_checkpoint_yet)?;
    print!("{}", latest.event.note);
    let key = checkpoint_key::load(&state_dir.checkpoint_key())?;
    match key.map(|signer| Checkpoint::open(&latest.event.note, &signer.verifier())) {
        Some(Ok(checkpoint)) => {
            eprintln!(
                "recorded at seq {}; covers seqs below {}; {}",
                latest.seq,
                checkpoint.size,
                describe(&checkpoint)
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(Err(error)) => {
            eprintln!(
                "FAILED: the checkpoint at seq {} does not verify with the state dir's key: {error}",
                latest.seq
            );
            Ok(ExitCode::from(1))
        }
        None => {
            eprintln!(
                "recorded at seq {}; not verified: the state dir has no checkpoint key",
                latest.seq
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The checkpoint a proof is made against: of `size` if given, else the
/// newest.
fn chosen_checkpoint(
    stored: &[StoredCheckpoint],
    size: Option<u64>,
) -> anyhow::Result<(&StoredCheckpoint, Checkpoint)> {
    let readable = stored
        .iter()
        .rev()
        .filter_map(|stored| stored.parsed.as_ref().ok().map(|parsed| (stored, parsed)));
    let found = match size {
        None => readable.take(1).next(),
        Some(size) => readable.clone().find(|(_, parsed)| parsed.size == size),
    };
    match (found, size) {
        (Some((stored, parsed)), _) => Ok((stored, parsed.clone())),
        (None, None) => Err(no_checkpoint_yet()),
        (None, Some(size)) => {
            let sizes: Vec<String> = stored
                .iter()
                .rev()
                .filter_map(|stored| stored.parsed.as_ref().ok())
                .take(5)
                .map(|parsed| parsed.size.to_string())
                .collect();
            bail!(
                "no checkpoint of tree size {size}; the newest sizes are: {}; pass one of them to --size, or leave --size out for the newest",
                sizes.join(", ")
            )
        }
    }
}

pub fn prove(state_dir: &StateDir, args: ProveArgs) -> anyhow::Result<ExitCode> {
    let store = state_dir.open_existing_store()?;
    let records = store.next_seq()?;
    if args.seq >= records {
        bail!(
            "the log has {records} records (seqs 0 to {}); there is no seq {}",
            records.saturating_sub(1),
            args.seq
        );
    }
    let stored = stored_checkpoints(&*store)?;
    let (chosen, unverified) = chosen_checkpoint(&stored, args.size)?;
    if args.seq >= unverified.size {
        bail!(
            "seq {} is not covered by the checkpoint of tree size {} (it covers seqs below {}); wait for the gateway's next checkpoint, or stop it and run `clawback audit checkpoint --create`",
            args.seq,
            unverified.size,
            unverified.size
        );
    }
    let checkpoint = match checkpoint_key::load(&state_dir.checkpoint_key())? {
        Some(signer) => match Checkpoint::open(&chosen.event.note, &signer.verifier()) {
            Ok(checkpoint) => checkpoint,
            Err(error) => {
                return failed(format_args!(
                    "the checkpoint at seq {} does not verify with this state dir's key: {error}",
                    chosen.seq
                ));
            }
        },
        None => {
            eprintln!(
                "warning: the state dir has no checkpoint key; the checkpoint's signature was not checked here (check-proof will)"
            );
            unverified
        }
    };
    let inclusion = match prove_inclusion(&*store, args.seq, checkpoint.size) {
        Ok(inclusion) => inclusion,
        Err(error @ TreeError::Corrupt { .. }) => return failed(error),
        Err(error) => return Err(error.into()),
    };
    if inclusion.root != checkpoint.root {
        return failed(format_args!(
            "the log's first {} records hash to {}, but the checkpoint at seq {} signed {}: the log changed after it was signed; run `clawback audit verify`",
            checkpoint.size,
            to_base64(&inclusion.root),
            chosen.seq,
            to_base64(&checkpoint.root)
        ));
    }
    let bundle =
        InclusionBundle::new(&inclusion, &chosen.event.note).map_err(anyhow::Error::msg)?;
    let text = format!("{}\n", serde_json::to_string_pretty(&bundle)?);
    write_output(args.output.as_deref(), &text)?;
    eprintln!(
        "proof of seq {} against the checkpoint of tree size {} (recorded at seq {}): {} bytes",
        args.seq,
        checkpoint.size,
        chosen.seq,
        text.len()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn check_proof(state_dir: &StateDir, args: CheckProofArgs) -> anyhow::Result<ExitCode> {
    let key = required_key(state_dir, args.key.as_deref())?;
    let text = read_bounded(&args.file, BUNDLE_BYTES_MAX, "proof bundle")?;
    match verify_bundle(&text, &key) {
        Ok(Verified::Inclusion {
            seq,
            kind,
            stream,
            ts_ms,
            checkpoint,
        }) => {
            println!(
                "OK: record {seq} ({kind} on {stream}, recorded {}) is in the log {} at tree size {}, checkpoint signed {} by {}",
                rfc3339_ms(ts_ms),
                checkpoint.origin,
                checkpoint.size,
                rfc3339_ms(checkpoint.time_ms),
                key.label()
            );
            Ok(ExitCode::SUCCESS)
        }
        Ok(Verified::Consistency { old, new }) => {
            println!(
                "OK: the log {} at tree size {} (signed {}) extends its tree of size {} (signed {}) unchanged, by {}",
                new.origin,
                new.size,
                rfc3339_ms(new.time_ms),
                old.size,
                rfc3339_ms(old.time_ms),
                key.label()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(error @ BundleError::Unreadable(_)) => Err(error.into()),
        Err(error) => failed(error),
    }
}

pub fn consistency(state_dir: &StateDir, args: ConsistencyArgs) -> anyhow::Result<ExitCode> {
    let key = required_key(state_dir, args.key.as_deref())?;
    let old_note = read_bounded(&args.from, NOTE_BYTES_MAX as u64, "checkpoint")?;
    let old = match Checkpoint::open(&old_note, &key) {
        Ok(old) => old,
        Err(error) => {
            return failed(format_args!(
                "the old checkpoint {} does not verify: {error}",
                args.from.display()
            ));
        }
    };
    let store = state_dir.open_existing_store()?;
    let latest = latest_checkpoint(&*store)?.ok_or_else(no_checkpoint_yet)?;
    let new = match Checkpoint::open(&latest.event.note, &key) {
        Ok(new) => new,
        Err(error) => {
            return failed(format_args!(
                "the log's newest checkpoint (seq {}) does not verify: {error}",
                latest.seq
            ));
        }
    };
    if new.size < old.size {
        return failed(format_args!(
            "the log's newest checkpoint has tree size {}, smaller than the old checkpoint's {}: the log lost records since, or the old checkpoint belongs to another log",
            new.size, old.size
        ));
    }
    let proof = match prove_consistency(&*store, old.size, new.size) {
        Ok(proof) => proof,
        Err(error @ TreeError::Corrupt { .. }) => return failed(error),
        Err(error) => return Err(error.into()),
    };
    if proof.old_root != old.root {
        return failed(format_args!(
            "NOT CONSISTENT: the log's first {} records hash to {}, not to the old checkpoint's root {}: history before seq {} was rewritten",
            old.size,
            to_base64(&proof.old_root),
            to_base64(&old.root),
            old.size
        ));
    }
    if proof.new_root != new.root {
        return failed(format_args!(
            "the log's first {} records no longer hash to its newest checkpoint's root: records changed after it was signed; run `clawback audit verify`",
            new.size
        ));
    }
    verify_consistency(old.size, new.size, &proof.path, &old.root, &new.root)
        .context("the consistency proof just made does not verify (a bug)")?;
    if let Some(output) = &args.output {
        let bundle = ConsistencyBundle::new(&proof, &old_note, &latest.event.note);
        write_output(
            Some(output),
            &format!("{}\n", serde_json::to_string_pretty(&bundle)?),
        )?;
    }
    println!(
        "consistent: the log's checkpoint at seq {} ({}) extends the old checkpoint ({}) with {} more records and none changed ({} proof hashes)",
        latest.seq,
        describe(&new),
        describe(&old),
        new.size - old.size,
        proof.path.len()
    );
    Ok(ExitCode::SUCCESS)
}
