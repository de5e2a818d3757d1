//! Signed checkpoints while the gateway serves: every `--checkpoint-every`
//! records or every `--checkpoint-interval`, whichever comes first, the
//! gateway extends the log's Merkle tree to the durable tail, signs the tree
//! head and records it as a `merkle.checkpoint` event; and once more at
//! stop, after `gateway.stopped`.
//!
//! Why off the writer: the tree is extended by re-reading the new records
//! from the store (each hash and link checked) on a blocking thread, so the
//! append path pays nothing for it. Why the tree is resumed from the latest
//! checkpoint's frontier: a restart then reads only the records since it,
//! not the whole log. A checkpoint is made only when something besides the
//! previous checkpoint was recorded, so an idle gateway does not sign an
//! endless chain of checkpoints of checkpoints.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clawback_events::event::Event;
use clawback_events::store::LogStore;
use clawback_events::{Actor, Clock, NewEvent, SystemClock};
use clawback_replay::log_tree::{CHECKPOINT_STREAM, LogTree, TreeError, latest_checkpoint};
use clawback_replay::merkle::note::{Checkpoint, NoteSigner};

use super::Gateway;

/// How often the task looks at the log's size; the interval is only as
/// precise as this.
const POLL: Duration = Duration::from_secs(1);

/// When to checkpoint.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointPolicy {
    /// Checkpoint once this many records were recorded since the last one.
    pub every_records: u64,
    /// Checkpoint at least this often while records arrive.
    pub interval: Duration,
}

/// The tree as of the last checkpoint, and the key that signs. Shared by
/// the gateway and `clawback audit checkpoint --create`.
pub struct Checkpointer {
    signer: NoteSigner,
    /// A std mutex: held only on blocking threads, never across an await.
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// `None` until resumed from the log on first use.
    tree: Option<LogTree>,
    /// The seq of the newest checkpoint record.
    last_checkpoint_seq: Option<u64>,
}

impl Checkpointer {
    pub fn new(signer: NoteSigner) -> Checkpointer {
        Checkpointer {
            signer,
            state: Mutex::new(State::default()),
        }
    }

    /// The key that checks this gateway's signatures.
    pub fn verifier(&self) -> clawback_replay::merkle::note::NoteVerifier {
        self.signer.verifier()
    }

    /// The seq of the newest checkpoint record, once known.
    fn last_checkpoint_seq(&self) -> Option<u64> {
        self.state
            .lock()
            .expect("checkpointer lock")
            .last_checkpoint_seq
    }

    /// Extends the tree to `until` (the durable tail) and signs it.
    /// Blocking: reads the records since the last checkpoint.
    pub fn make(&self, store: &dyn LogStore, until: u64) -> Result<NewEvent, TreeError> {
        self.ensure_resumed(store)?;
        let mut state = self.state.lock().expect("checkpointer lock");
        let tree = state.tree.as_mut().expect("resumed above");
        tree.extend(store, until)?;
        let event = tree.checkpoint(&self.signer, SystemClock.now_ms());
        Ok(NewEvent::new(
            CHECKPOINT_STREAM,
            Actor::System,
            Event::MerkleCheckpoint(event),
        ))
    }

    /// Loads the tree of the latest checkpoint, once. Blocking.
    fn ensure_resumed(&self, store: &dyn LogStore) -> Result<(), TreeError> {
        let mut state = self.state.lock().expect("checkpointer lock");
        if state.tree.is_none() {
            let (tree, seq) = self.resume(store)?;
            state.tree = Some(tree);
            state.last_checkpoint_seq = seq;
        }
        Ok(())
    }

    /// The tree at the latest stored checkpoint, when it was signed by this
    /// key and still describes the log; else the empty tree (the next
    /// checkpoint reads the whole log once).
    fn resume(&self, store: &dyn LogStore) -> Result<(LogTree, Option<u64>), TreeError> {
        let Some(latest) = latest_checkpoint(store)? else {
            return Ok((LogTree::new(), None));
        };
        let resumed = Checkpoint::open(&latest.event.note, &self.signer.verifier())
            .map_err(|error| error.to_string())
            .and_then(|checkpoint| LogTree::resume(store, &latest.event, &checkpoint));
        match resumed {
            Ok(tree) => Ok((tree, Some(latest.seq))),
            Err(reason) => {
                tracing::warn!(
                    subsystem = "checkpoints",
                    "the checkpoint at seq {} cannot be continued ({reason}); rebuilding the tree from seq 0",
                    latest.seq
                );
                Ok((LogTree::new(), Some(latest.seq)))
            }
        }
    }

    /// Notes that the checkpoint made last was recorded at `seq`.
    pub fn recorded(&self, seq: u64) {
        self.state
            .lock()
            .expect("checkpointer lock")
            .last_checkpoint_seq = Some(seq);
    }
}

/// Makes one checkpoint of the durable log and records it.
pub(super) async fn checkpoint_now(
    gateway: &Arc<Gateway>,
    checkpointer: &Arc<Checkpointer>,
) -> anyhow::Result<u64> {
    let until = gateway.log.next_seq();
    let event = {
        let store = gateway.log.store().clone();
        let checkpointer = checkpointer.clone();
        tokio::task::spawn_blocking(move || checkpointer.make(&*store, until)).await??
    };
    let committed = gateway.log.append(vec![event]).await?;
    checkpointer.recorded(committed.first_seq);
    Ok(committed.first_seq)
}

pub(super) async fn checkpoint_periodically(
    gateway: Arc<Gateway>,
    checkpointer: Arc<Checkpointer>,
    policy: CheckpointPolicy,
) {
    assert!(policy.every_records > 0 && !policy.interval.is_zero());
    let store = gateway.log.store().clone();
    let resuming = checkpointer.clone();
    match tokio::task::spawn_blocking(move || resuming.ensure_resumed(&*store)).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::error!(
            subsystem = "checkpoints",
            "cannot read the latest checkpoint: {error}"
        ),
        Err(error) => tracing::error!(subsystem = "checkpoints", "resume task failed: {error}"),
    }
    let mut last_made = Instant::now();
    let mut retry_at: Option<Instant> = None;
    loop {
        tokio::time::sleep(POLL.min(policy.interval)).await;
        // Records recorded after the newest checkpoint (which covers all
        // before it): nothing but that checkpoint means nothing to sign.
        let since = checkpointer.last_checkpoint_seq().map_or(0, |seq| seq + 1);
        let fresh = gateway.log.next_seq().saturating_sub(since);
        let due =
            fresh >= policy.every_records || (fresh > 0 && last_made.elapsed() >= policy.interval);
        if !due || retry_at.is_some_and(|at| Instant::now() < at) {
            continue;
        }
        last_made = Instant::now();
        retry_at = None;
        if let Err(error) = checkpoint_now(&gateway, &checkpointer).await {
            // The log is unaffected. A failure (a record that fails its
            // hash, a full disk) is retried after one interval, not every
            // poll, so it is reported, not flooded.
            retry_at = Some(Instant::now() + policy.interval);
            tracing::error!(subsystem = "checkpoints", "checkpoint failed: {error:#}");
            eprintln!("checkpoint failed (the log is unaffected): {error:#}");
        }
    }
}
