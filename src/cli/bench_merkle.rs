//! `clawback bench merkle`: what the Merkle tree costs and what its proofs
//! save, on a log of `--events` records written as `bench log` writes them.
//!
//! Side by side: the plain chain check (blake3 of every record) and the
//! tree build (the same pass plus a SHA-256 leaf and, amortized, one node
//! per record); an append's cost to the incremental tree; signing and
//! verifying a checkpoint; making a proof (one pass over the log) and
//! verifying it (a few dozen hashes). Output is Markdown for
//! docs/BENCHMARKS.md.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use clawback_events::event::Event;
use clawback_events::store::FjallStore;
use clawback_events::{Actor, Digest, Log, LogConfig, NewEvent, SystemClock};
use clawback_replay::SnapshotStore;
use clawback_replay::log_tree::{
    CHECKPOINT_STREAM, LogTree, latest_checkpoint, prove_consistency, prove_inclusion, scan_leaves,
};
use clawback_replay::merkle::note::{Checkpoint, NoteSigner};
use clawback_replay::merkle::proof::{verify_consistency, verify_inclusion};
use clawback_replay::merkle::tree::CompactTree;
use clawback_replay::proof_bundle::{InclusionBundle, verify_bundle};

#[derive(Args)]
pub struct MerkleBenchArgs {
    /// Records in the benchmark log.
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Where to put the benchmark's store (default: a temporary dir).
    #[arg(long, value_name = "DIR")]
    dir: Option<std::path::PathBuf>,
}

/// Runs `f` `times` times; the mean duration of one run.
fn mean(times: u32, mut f: impl FnMut()) -> Duration {
    let started = Instant::now();
    for _ in 0..times {
        f();
    }
    started.elapsed() / times
}

/// The fastest of three runs of `f` (the first warms the page cache, and
/// other processes on the machine only ever add time), and its result.
fn best_of_three<T>(mut f: impl FnMut() -> anyhow::Result<T>) -> anyhow::Result<(Duration, T)> {
    let mut best: Option<(Duration, T)> = None;
    for _ in 0..3 {
        let started = Instant::now();
        let value = f()?;
        let elapsed = started.elapsed();
        if best.as_ref().is_none_or(|(fastest, _)| elapsed < *fastest) {
            best = Some((elapsed, value));
        }
    }
    Ok(best.expect("three runs"))
}

fn rate(count: u64, elapsed: Duration) -> String {
    format!("{:.0}", count as f64 / elapsed.as_secs_f64())
}

fn shown(elapsed: Duration) -> String {
    let micros = elapsed.as_secs_f64() * 1e6;
    if micros >= 1_000.0 {
        format!("{:.2} ms", micros / 1e3)
    } else {
        format!("{micros:.1} µs")
    }
}

pub fn run(args: MerkleBenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.events >= 2, "--events must be at least 2");
    let temporary = super::bench::tempdir_in(args.dir.as_deref())?;
    let log_dir = temporary.path().join("log");
    let events = args.events;
    super::bench::fill_large_log(&log_dir, events)?;
    let store = Arc::new(FjallStore::open(&log_dir)?);
    println!("# clawback bench merkle\n");
    println!("machine: {}\n", super::bench::machine_description());
    println!("## Tree build against the plain chain check ({events} records)\n");
    println!("| operation | time (best of 3) | records/s | note |");
    println!("|---|---:|---:|---|");

    let (chain, (head, _, checked)) =
        best_of_three(|| Ok(clawback_events::recovery::verify_chain(&*store, 0)?))?;
    anyhow::ensure!(checked == events, "the chain check saw {checked} records");
    println!(
        "| chain check only (read, blake3, link) | {} | {} | the plain chain verify |",
        shown(chain),
        rate(events, chain)
    );

    let (build, tree) = best_of_three(|| {
        let mut tree = LogTree::new();
        tree.extend(&*store, events)?;
        Ok(tree)
    })?;
    anyhow::ensure!(
        tree.last_hash() == head,
        "the tree ends at the chain's head"
    );
    println!(
        "| tree build in one pass (chain check + SHA-256 leaf and nodes) | {} | {} | {:.2}x the chain check's time |",
        shown(build),
        rate(events, build),
        build.as_secs_f64() / chain.as_secs_f64()
    );

    let mut hashes: Vec<Digest> = Vec::with_capacity(events as usize);
    scan_leaves(&*store, 0, events, Digest::GENESIS, &mut |_, _, hash| {
        hashes.push(hash)
    })?;
    let (in_memory, root) = best_of_three(|| {
        let mut compact = CompactTree::new();
        for hash in &hashes {
            compact.push(clawback_replay::merkle::record_leaf(hash));
        }
        Ok(compact.root())
    })?;
    anyhow::ensure!(root == tree.root(), "the same root either way");
    println!(
        "| tree from chain hashes in memory (hashing alone) | {} | {} | {} per appended record, amortized |",
        shown(in_memory),
        rate(events, in_memory),
        shown(in_memory / events as u32)
    );

    // The gateway's checkpoint: extend from the last checkpoint's frontier.
    let signer = NoteSigner::from_seed("clawback/bench", &[7; 32])?;
    let verifier = signer.verifier();
    let sign = mean(1_000, || {
        std::hint::black_box(tree.checkpoint(&signer, 0));
    });
    let note = tree.checkpoint(&signer, 0).note;
    let open = mean(1_000, || {
        std::hint::black_box(Checkpoint::open(&note, &verifier).expect("verifies"));
    });
    println!(
        "| sign a checkpoint (Ed25519 + C2SP note) | {} | | |",
        shown(sign)
    );
    println!(
        "| verify a checkpoint (parse + Ed25519) | {} | | |",
        shown(open)
    );

    let config = LogConfig {
        verify_from: events,
        ..LogConfig::default()
    };
    let log = Log::open(store.clone(), config, Arc::new(SystemClock), None)?;
    log.append_blocking(vec![NewEvent::new(
        CHECKPOINT_STREAM,
        Actor::System,
        Event::MerkleCheckpoint(tree.checkpoint(&signer, 0)),
    )])?;
    log.close();
    let snapshots = SnapshotStore::new(temporary.path().join("snapshots"));
    let (verify, report) = best_of_three(|| {
        Ok(clawback_replay::audit::verify(
            &*store,
            &snapshots,
            Some(&verifier),
            &mut |_, _| {},
        )?)
    })?;
    anyhow::ensure!(report.is_ok(), "the benchmark log verifies: {report}");
    println!(
        "| audit verify (chain + tree + the checkpoint) | {} | {} | |",
        shown(verify),
        rate(events + 1, verify)
    );
    let checkpoint = latest_checkpoint(&*store)?.expect("just recorded");

    println!("\n## Proofs (tree size {events})\n");
    println!("| operation | time | size | note |");
    println!("|---|---:|---:|---|");
    for seq in [0, events / 2, events - 1] {
        let started = Instant::now();
        let inclusion = prove_inclusion(&*store, seq, events)?;
        let made = started.elapsed();
        anyhow::ensure!(inclusion.root == tree.root(), "proof root");
        let bundle =
            InclusionBundle::new(&inclusion, &checkpoint.event.note).map_err(anyhow::Error::msg)?;
        let text = serde_json::to_string_pretty(&bundle)?;
        let verified = mean(10_000, || {
            verify_inclusion(
                seq,
                events,
                &inclusion.leaf,
                &inclusion.path,
                &inclusion.root,
            )
            .expect("verifies");
        });
        let whole = mean(1_000, || {
            verify_bundle(&text, &verifier).expect("verifies");
        });
        println!(
            "| inclusion proof of seq {seq}: make (one pass over the log) | {} | {} hashes | |",
            shown(made),
            inclusion.path.len()
        );
        println!(
            "| inclusion proof of seq {seq}: verify the path | {} | | |",
            shown(verified)
        );
        println!(
            "| inclusion bundle of seq {seq}: verify offline (JSON, record hash, path, signature, decode) | {} | {} bytes | |",
            shown(whole),
            text.len()
        );
    }
    let old = events / 2 + 1;
    let started = Instant::now();
    let consistency = prove_consistency(&*store, old, events)?;
    let made = started.elapsed();
    let verified = mean(10_000, || {
        verify_consistency(
            old,
            events,
            &consistency.path,
            &consistency.old_root,
            &consistency.new_root,
        )
        .expect("verifies");
    });
    println!(
        "| consistency proof {old} -> {events}: make | {} | {} hashes | |",
        shown(made),
        consistency.path.len()
    );
    println!(
        "| consistency proof {old} -> {events}: verify | {} | | |",
        shown(verified)
    );
    Ok(ExitCode::SUCCESS)
}
