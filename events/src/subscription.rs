//! Subscriptions: read the log from any seq, then follow it live.
//!
//! Why this shape: the writer must never wait for a reader. Live envelopes go
//! through a bounded broadcast ring; a subscriber that falls further behind
//! than the ring holds gets an explicit [`SubscriptionError::Lagged`] with the
//! seq to resume from, and resumes by subscribing again from that seq, which
//! reads the missed records from the store. Nothing is ever silently skipped:
//! every record is delivered once, in seq order, or the subscriber is told
//! exactly where its view stops.

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::broadcast;

use crate::envelope::Envelope;
use crate::log::Shared;

/// How many stored records one catch-up read takes.
const CATCH_UP_CHUNK_RECORDS: usize = 1_024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    #[error("subscriber lagged behind the live buffer; resume from seq {resume_from}")]
    Lagged { resume_from: u64 },
    #[error("the log was closed")]
    Closed,
    #[error("record at seq {seq} cannot be read: {detail}")]
    Unreadable { seq: u64, detail: String },
}

pub struct Subscription {
    shared: Arc<Shared>,
    live: broadcast::Receiver<Arc<Envelope>>,
    /// The seq this subscriber receives next.
    next: u64,
    /// Records below this seq come from the store; from it on, from `live`.
    live_start: u64,
    backlog: VecDeque<Arc<Envelope>>,
}

impl Subscription {
    pub(crate) fn new(shared: Arc<Shared>, from_seq: u64) -> Subscription {
        // Subscribe before reading the head: every record at or above the
        // head is sent after this point, so it reaches `live`; records below
        // it are already in the store.
        let live = match shared.live.lock().expect("live lock").as_ref() {
            Some(sender) => sender.subscribe(),
            // The writer has exited: after the stored records, `Closed`.
            None => broadcast::channel(1).1,
        };
        let live_start = shared.next_seq.load(Ordering::Acquire);
        Subscription {
            shared,
            live,
            next: from_seq,
            live_start,
            backlog: VecDeque::new(),
        }
    }

    /// The seq the next delivered envelope will have.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// The next envelope, waiting for it if the subscriber is at the head.
    pub async fn recv(&mut self) -> Result<Arc<Envelope>, SubscriptionError> {
        loop {
            if let Some(envelope) = self.next_stored()? {
                return Ok(envelope);
            }
            let received = self.live.recv().await;
            if let Some(outcome) = self.accept(received) {
                return outcome;
            }
        }
    }

    /// [`Subscription::recv`] for threads outside an async runtime.
    pub fn blocking_recv(&mut self) -> Result<Arc<Envelope>, SubscriptionError> {
        loop {
            if let Some(envelope) = self.next_stored()? {
                return Ok(envelope);
            }
            let received = self.live.blocking_recv();
            if let Some(outcome) = self.accept(received) {
                return outcome;
            }
        }
    }

    /// The next stored envelope while catching up, or `None` once caught up.
    fn next_stored(&mut self) -> Result<Option<Arc<Envelope>>, SubscriptionError> {
        if self.backlog.is_empty() && self.next < self.live_start {
            self.read_chunk()?;
        }
        Ok(self.backlog.pop_front().inspect(|envelope| {
            self.next = envelope.seq + 1;
        }))
    }

    fn read_chunk(&mut self) -> Result<(), SubscriptionError> {
        let end = self.live_start;
        let mut failure = None;
        let backlog = &mut self.backlog;
        let mut expected = self.next;
        self.shared
            .store
            .scan(self.next, &mut |seq, bytes| {
                if seq >= end || backlog.len() >= CATCH_UP_CHUNK_RECORDS {
                    return ControlFlow::Break(());
                }
                if seq != expected {
                    failure = Some(SubscriptionError::Unreadable {
                        seq: expected,
                        detail: "record is missing".to_owned(),
                    });
                    return ControlFlow::Break(());
                }
                match crate::record::decode(seq, bytes) {
                    Ok(envelope) => {
                        backlog.push_back(Arc::new(envelope));
                        expected += 1;
                        ControlFlow::Continue(())
                    }
                    Err(error) => {
                        failure = Some(SubscriptionError::Unreadable {
                            seq,
                            detail: error.to_string(),
                        });
                        ControlFlow::Break(())
                    }
                }
            })
            .map_err(|error| SubscriptionError::Unreadable {
                seq: self.next,
                detail: error.to_string(),
            })?;
        if let Some(error) = failure {
            return Err(error);
        }
        if self.backlog.is_empty() && self.next < end {
            return Err(SubscriptionError::Unreadable {
                seq: self.next,
                detail: "record is missing".to_owned(),
            });
        }
        Ok(())
    }

    /// Turns one live receive into a delivery, a skip (`None`: a duplicate of
    /// something read from the store), or an error.
    fn accept(
        &mut self,
        received: Result<Arc<Envelope>, broadcast::error::RecvError>,
    ) -> Option<Result<Arc<Envelope>, SubscriptionError>> {
        match received {
            Ok(envelope) if envelope.seq < self.next => None,
            Ok(envelope) if envelope.seq == self.next => {
                self.next += 1;
                Some(Ok(envelope))
            }
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                Some(Err(SubscriptionError::Lagged {
                    resume_from: self.next,
                }))
            }
            Err(broadcast::error::RecvError::Closed) => Some(Err(SubscriptionError::Closed)),
        }
    }
}
