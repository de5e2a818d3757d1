//! The log: one writer thread that appends with group commit, and the handle
//! every other part of clawback appends and subscribes through.
//!
//! Group commit: the writer blocks for the first queued append, takes
//! whatever else is queued (up to [`BATCH_EVENTS_MAX`] events), encodes and
//! chains the whole batch, writes it as one atomic store batch with one sync,
//! runs the commit hook (projections), publishes to subscribers, and only
//! then answers every appender in the batch. A lone append pays one sync and
//! nothing else. The one added wait is bounded and only under load: right
//! after answering many appenders, most have not asked again yet, so the
//! writer pauses once (`GATHER_PAUSE`, 50 µs) to let one sync cover them too.
//!
//! Invariants the writer keeps (and asserts):
//! - seqs are assigned here and only here, gap-free from the recovered tail;
//! - `ts_ms` never decreases along the log, whatever the clock does;
//! - an append is answered `Ok` only after its batch is durable; after a
//!   store failure the writer answers every pending and future append with
//!   an error and stops, since fjall refuses writes after a failed sync and a
//!   retry could acknowledge a half-written batch.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

use tokio::sync::{broadcast, mpsc, oneshot};

use crate::envelope::{Body, Digest, Envelope, NewEvent, validate_stream_name};
use crate::record;
use crate::recovery::{RecoveryError, RecoveryReport};
use crate::store::{AppendRecord, Durability, LogStore};
use crate::subscription::Subscription;

/// The most events one group-commit batch carries. Bounds the writer's memory
/// and the latency of the batch's sync.
pub const BATCH_EVENTS_MAX: usize = 5_000;

/// The most events one append may carry (one command's events are atomic).
pub const APPEND_EVENTS_MAX: usize = 1_000;

/// The largest encoded record accepted. LLM exchanges are the big ones;
/// anything larger belongs in a blob referenced from the event.
pub const RECORD_BYTES_MAX: usize = 32 * 1024 * 1024;

/// The source of `ts_ms`. Injected so that tests and benchmarks control time
/// and so that this crate reads no clock of its own.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> i64;
}

/// Wall-clock time, for the gateway.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as i64)
    }
}

/// Called by the writer with every durable batch, in log order, before any
/// appender of the batch is answered: so a caller that awaited its append sees
/// its own events in the projections (read-your-writes).
pub type CommitHook = Box<dyn FnMut(&[Arc<Envelope>]) + Send>;

pub struct LogConfig {
    /// Appends that may wait for the writer; a full queue makes appenders
    /// wait (backpressure), it never drops.
    pub queue_appends_max: usize,
    /// Envelopes kept for live subscribers; a subscriber further behind gets
    /// `Lagged` and resumes from the store.
    pub subscriber_buffer_events: usize,
    /// Recovery verifies the chain from this seq (0, or a trusted snapshot's).
    pub verify_from: u64,
    /// `Sync` for every real use; `Buffered` only for benchmarks that compare.
    pub durability: Durability,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            queue_appends_max: 16_384,
            subscriber_buffer_events: 8_192,
            verify_from: 0,
            durability: Durability::Sync,
        }
    }
}

/// What an append got: its seqs, in order, all durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub first_seq: u64,
    pub last_seq: u64,
    pub last_hash: Digest,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AppendError {
    #[error("invalid event: {0}")]
    Invalid(String),
    /// The session content could not be sealed (its key could not be made
    /// durable): nothing was appended.
    #[error("cannot seal session content: {0}")]
    Sealing(String),
    #[error(
        "the log writer has stopped and accepts no more appends: {0}; restart clawback to recover the log"
    )]
    WriterStopped(String),
}

struct Request {
    events: Vec<NewEvent>,
    reply: oneshot::Sender<Result<Committed, AppendError>>,
}

/// State readers may look at while the writer runs.
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn LogStore>,
    /// One past the last durable seq.
    pub(crate) next_seq: AtomicU64,
    pub(crate) head_hash: Mutex<Digest>,
    /// Why the writer stopped, once it has.
    pub(crate) stopped: Mutex<Option<String>>,
    /// Group commits done since open: with `next_seq`, how well batching works.
    pub(crate) batches_committed: AtomicU64,
    /// `None` once the writer has exited, so live subscribers see `Closed`.
    pub(crate) live: Mutex<Option<broadcast::Sender<Arc<Envelope>>>>,
}

/// The handle to an open log. Cheap to share behind an `Arc`; dropping the
/// last handle lets the writer drain and exit.
pub struct Log {
    shared: Arc<Shared>,
    requests: Mutex<Option<mpsc::Sender<Request>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    recovery: RecoveryReport,
    /// Seals session content before it is queued (set once, by the gateway).
    sealer: OnceLock<Arc<dyn crate::sealed::Sealer>>,
}

impl Log {
    /// Recovers `store` (see [`crate::recovery`]) and starts the writer.
    pub fn open(
        store: Arc<dyn LogStore>,
        config: LogConfig,
        clock: Arc<dyn Clock>,
        commit_hook: Option<CommitHook>,
    ) -> Result<Log, RecoveryError> {
        assert!(config.queue_appends_max > 0 && config.subscriber_buffer_events > 0);
        let recovery = crate::recovery::recover(&*store, config.verify_from)?;
        let (live, _) = broadcast::channel(config.subscriber_buffer_events);
        let shared = Arc::new(Shared {
            store,
            next_seq: AtomicU64::new(recovery.next_seq),
            head_hash: Mutex::new(recovery.tail_hash),
            stopped: Mutex::new(None),
            batches_committed: AtomicU64::new(0),
            live: Mutex::new(Some(live)),
        });
        let (sender, receiver) = mpsc::channel(config.queue_appends_max);
        let writer = Writer {
            shared: shared.clone(),
            requests: receiver,
            next_seq: recovery.next_seq,
            head_hash: recovery.tail_hash,
            last_ts_ms: recovery.tail_ts_ms,
            clock,
            commit_hook,
            durability: config.durability,
        };
        let handle = std::thread::Builder::new()
            .name("clawback-log-writer".to_owned())
            .spawn(move || writer.run())
            .map_err(|error| {
                RecoveryError::Store(crate::store::StoreError::Io(format!(
                    "cannot start the log writer thread: {error}"
                )))
            })?;
        Ok(Log {
            shared,
            requests: Mutex::new(Some(sender)),
            writer: Mutex::new(Some(handle)),
            recovery,
            sealer: OnceLock::new(),
        })
    }

    /// From now on, every appended event's session content is sealed by
    /// `sealer` before it is queued, so no appender can forget to. Set once,
    /// before the first append that may carry content; a second call is
    /// refused (the keys in use must not change under running appenders).
    pub fn seal_with(&self, sealer: Arc<dyn crate::sealed::Sealer>) -> Result<(), AppendError> {
        self.sealer
            .set(sealer)
            .map_err(|_| AppendError::Invalid("the log already has a sealer".to_owned()))
    }

    /// What recovery found when this log was opened.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// One past the last durable seq: the number of records in the log.
    pub fn next_seq(&self) -> u64 {
        self.shared.next_seq.load(Ordering::Acquire)
    }

    /// How many group commits (syncs) the writer has done since open.
    pub fn batches_committed(&self) -> u64 {
        self.shared.batches_committed.load(Ordering::Relaxed)
    }

    /// The hash of the last durable record.
    pub fn head_hash(&self) -> Digest {
        *self.shared.head_hash.lock().expect("head lock")
    }

    pub fn store(&self) -> &Arc<dyn LogStore> {
        &self.shared.store
    }

    /// Appends `events` atomically and durably. Resolves once they are
    /// synced and applied by the commit hook.
    pub async fn append(&self, events: Vec<NewEvent>) -> Result<Committed, AppendError> {
        let (request, reply) = self.prepare(events)?;
        let sender = self.sender()?;
        if sender.send(request).await.is_err() {
            return Err(self.stopped_error());
        }
        reply.await.unwrap_or_else(|_| Err(self.stopped_error()))
    }

    /// [`Log::append`] for threads outside an async runtime (CLI, tests).
    /// Must not be called from async code: it blocks the thread.
    pub fn append_blocking(&self, events: Vec<NewEvent>) -> Result<Committed, AppendError> {
        let (request, reply) = self.prepare(events)?;
        let sender = self.sender()?;
        if sender.blocking_send(request).is_err() {
            return Err(self.stopped_error());
        }
        reply
            .blocking_recv()
            .unwrap_or_else(|_| Err(self.stopped_error()))
    }

    /// Subscribes to every record from `from_seq` on: first the stored ones,
    /// then live ones as they commit, with no gap and no duplicate.
    pub fn subscribe(&self, from_seq: u64) -> Subscription {
        Subscription::new(self.shared.clone(), from_seq)
    }

    /// Stops accepting appends, lets the writer finish what is queued, and
    /// waits for it. Idempotent.
    pub fn close(&self) {
        self.requests.lock().expect("requests lock").take();
        if let Some(handle) = self.writer.lock().expect("writer lock").take() {
            // A writer that panicked has already answered nobody further; the
            // panic itself is reported by the thread.
            let _ = handle.join();
        }
    }

    /// Why the writer stopped, if it has.
    pub fn stopped_reason(&self) -> Option<String> {
        self.shared.stopped.lock().expect("stopped lock").clone()
    }

    fn sender(&self) -> Result<mpsc::Sender<Request>, AppendError> {
        self.requests
            .lock()
            .expect("requests lock")
            .clone()
            .ok_or_else(|| AppendError::WriterStopped("the log was closed".to_owned()))
    }

    fn stopped_error(&self) -> AppendError {
        AppendError::WriterStopped(
            self.stopped_reason()
                .unwrap_or_else(|| "the log was closed".to_owned()),
        )
    }

    #[allow(clippy::type_complexity)]
    fn prepare(
        &self,
        events: Vec<NewEvent>,
    ) -> Result<(Request, oneshot::Receiver<Result<Committed, AppendError>>), AppendError> {
        if events.is_empty() {
            return Err(AppendError::Invalid(
                "an append needs at least one event".to_owned(),
            ));
        }
        if events.len() > APPEND_EVENTS_MAX {
            return Err(AppendError::Invalid(format!(
                "an append carries at most {APPEND_EVENTS_MAX} events, got {}",
                events.len()
            )));
        }
        for event in &events {
            validate_stream_name(&event.stream).map_err(AppendError::Invalid)?;
        }
        let events = match self.sealer.get() {
            Some(sealer) => events
                .into_iter()
                .map(|new| {
                    let event = sealer
                        .seal(new.event, new.seal_for.as_deref())
                        .map_err(AppendError::Sealing)?;
                    Ok(NewEvent { event, ..new })
                })
                .collect::<Result<Vec<_>, AppendError>>()?,
            None => events,
        };
        let (reply, receiver) = oneshot::channel();
        Ok((Request { events, reply }, receiver))
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        self.close();
    }
}

/// The single writer. Owns the head of the chain; nothing else assigns seqs.
struct Writer {
    shared: Arc<Shared>,
    requests: mpsc::Receiver<Request>,
    next_seq: u64,
    head_hash: Digest,
    last_ts_ms: i64,
    clock: Arc<dyn Clock>,
    commit_hook: Option<CommitHook>,
    durability: Durability,
}

/// The previous batch must have carried this many appends before the writer
/// ever pauses to gather: below it, appenders are too few for a pause to pay.
const GATHER_AFTER_REQUESTS: usize = 16;
/// How long the writer pauses, at most once per batch, when many appenders
/// were just answered: about the time a woken appender needs to ask again,
/// and well under a sync.
const GATHER_PAUSE: std::time::Duration = std::time::Duration::from_micros(50);

/// A request whose events were encoded, waiting for the batch's sync.
struct Pending {
    reply: oneshot::Sender<Result<Committed, AppendError>>,
    first_seq: u64,
    count: usize,
}

impl Writer {
    fn run(mut self) {
        let mut batch: Vec<Request> = Vec::with_capacity(64);
        let mut previous_batch_requests = 0usize;
        while let Some(first) = self.requests.blocking_recv() {
            let mut events_in_batch = first.events.len();
            batch.push(first);
            self.take_queued(&mut batch, &mut events_in_batch);
            // Many appenders were just answered and most have not asked
            // again yet: pause once, briefly, so one sync covers them too.
            // Never when appenders are few, so a lone appender never waits.
            if previous_batch_requests >= GATHER_AFTER_REQUESTS
                && batch.len() < previous_batch_requests / 2
            {
                std::thread::sleep(GATHER_PAUSE);
                self.take_queued(&mut batch, &mut events_in_batch);
            }
            previous_batch_requests = batch.len();
            if let Err(reason) = self.commit(&mut batch) {
                self.stop(reason);
                return;
            }
        }
        self.shared.live.lock().expect("live lock").take();
    }

    /// Takes what is already queued, up to the batch limit; never waits.
    fn take_queued(&mut self, batch: &mut Vec<Request>, events_in_batch: &mut usize) {
        while *events_in_batch < BATCH_EVENTS_MAX {
            match self.requests.try_recv() {
                Ok(request) => {
                    *events_in_batch += request.events.len();
                    batch.push(request);
                }
                Err(_) => break,
            }
        }
    }

    /// Encodes, stores, syncs, publishes and answers one batch. An `Err`
    /// means the store failed: the batch's appenders were told, and the
    /// writer must stop.
    fn commit(&mut self, batch: &mut Vec<Request>) -> Result<(), String> {
        let batch_first_seq = self.next_seq;
        let mut next_seq = self.next_seq;
        let mut prev_hash = self.head_hash;
        let mut last_ts_ms = self.last_ts_ms;
        let now_ms = self.clock.now_ms().max(last_ts_ms);
        let mut encoded: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut envelopes: Vec<Arc<Envelope>> = Vec::new();
        let mut pending: Vec<Pending> = Vec::with_capacity(batch.len());

        for request in batch.drain(..) {
            let first_seq = next_seq;
            let mut request_records = Vec::with_capacity(request.events.len());
            let mut request_envelopes = Vec::with_capacity(request.events.len());
            let mut chain = prev_hash;
            let mut refused = None;
            for (offset, new_event) in request.events.into_iter().enumerate() {
                let seq = first_seq + offset as u64;
                let body = Body {
                    ts_ms: now_ms,
                    stream: new_event.stream,
                    actor: new_event.actor,
                    correlation: new_event.correlation,
                    causation: new_event.causation,
                    event: new_event.event,
                };
                let (bytes, hash) = record::encode(seq, &chain, &body);
                if bytes.len() > RECORD_BYTES_MAX {
                    refused = Some(format!(
                        "an event of kind {} encodes to {} bytes, the limit is {RECORD_BYTES_MAX}",
                        body.event.kind(),
                        bytes.len()
                    ));
                    break;
                }
                request_envelopes.push(Arc::new(Envelope {
                    seq,
                    body,
                    prev_hash: chain,
                    hash,
                }));
                request_records.push((seq, bytes));
                chain = hash;
            }
            if let Some(reason) = refused {
                // Only this request is refused; the chain continues from
                // before it, so the batch stays gap-free.
                let _ = request.reply.send(Err(AppendError::Invalid(reason)));
                continue;
            }
            let count = request_records.len();
            next_seq += count as u64;
            prev_hash = chain;
            last_ts_ms = now_ms;
            encoded.extend(request_records);
            envelopes.extend(request_envelopes);
            pending.push(Pending {
                reply: request.reply,
                first_seq,
                count,
            });
        }
        if pending.is_empty() {
            return Ok(());
        }

        let records: Vec<AppendRecord<'_>> = encoded
            .iter()
            .zip(envelopes.iter())
            .map(|((seq, bytes), envelope)| AppendRecord {
                seq: *seq,
                stream: &envelope.body.stream,
                bytes,
            })
            .collect();
        debug_assert!(
            records
                .windows(2)
                .all(|pair| pair[1].seq == pair[0].seq + 1)
        );
        assert_eq!(
            records.first().map(|record| record.seq),
            Some(batch_first_seq)
        );

        if let Err(error) = self.shared.store.append(&records, self.durability) {
            let reason = format!("appending seqs {batch_first_seq}..{next_seq} failed: {error}");
            for request in pending {
                let _ = request
                    .reply
                    .send(Err(AppendError::WriterStopped(reason.clone())));
            }
            return Err(reason);
        }

        // Durable from here on.
        self.next_seq = next_seq;
        self.head_hash = prev_hash;
        self.last_ts_ms = last_ts_ms;
        if let Some(hook) = self.commit_hook.as_mut() {
            hook(&envelopes);
        }
        *self.shared.head_hash.lock().expect("head lock") = prev_hash;
        self.shared.next_seq.store(next_seq, Ordering::Release);
        self.shared
            .batches_committed
            .fetch_add(1, Ordering::Relaxed);
        if let Some(live) = self.shared.live.lock().expect("live lock").as_ref() {
            for envelope in &envelopes {
                // No receivers is fine: subscribers read from the store too.
                let _ = live.send(envelope.clone());
            }
        }
        for request in pending {
            let last_seq = request.first_seq + request.count as u64 - 1;
            let last_hash = envelopes[(last_seq - batch_first_seq) as usize].hash;
            let _ = request.reply.send(Ok(Committed {
                first_seq: request.first_seq,
                last_seq,
                last_hash,
            }));
        }
        Ok(())
    }

    fn stop(mut self, reason: String) {
        *self.shared.stopped.lock().expect("stopped lock") = Some(reason.clone());
        self.shared.live.lock().expect("live lock").take();
        self.requests.close();
        while let Ok(request) = self.requests.try_recv() {
            let _ = request
                .reply
                .send(Err(AppendError::WriterStopped(reason.clone())));
        }
    }
}
