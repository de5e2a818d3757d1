//! Waiting for a run's answer and sending it, shared by the endpoints:
//! one JSON body, or an SSE body a pump task writes into.
//!
//! Why here: both endpoints answer the same way (the recorded answer of a
//! keyed request, so the client hears back only once it is durable; else
//! the run's outcome rendered) and stream the same way (a bounded channel
//! the response body reads; the pump sees the client leave when the
//! channel closes); only their shapes differ, and those come in as
//! `Render` and `Failed`.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use super::turn::{self, Begun, Ids, Render, Turn};
use super::{Surface, admit, json_response, read_object, sse_response};
use crate::agent::RunOutcome;
use crate::gateway::Gateway;

/// Chunks buffered for a slow client before the pump waits for it.
const STREAM_BUFFER: usize = 64;

/// Whether the reply stopped at its token cap (providers say `length`,
/// `max_tokens`, ...): `finish_reason: "length"`, `status: "incomplete"`.
pub fn truncated(outcome: &RunOutcome) -> bool {
    let reason = outcome.stop_reason.to_ascii_lowercase();
    reason.contains("length") || reason.contains("max_tokens")
}

/// An endpoint's answer when the run gave none (or its answer could not
/// be recorded).
pub type Failed = fn(&Ids, String) -> (StatusCode, Value);

/// The task recording a keyed request's answer (see `turn`).
pub type Recorder = tokio::task::JoinHandle<Result<(StatusCode, Value), String>>;

/// The run's answer: the recorded one for a keyed request, else rendered
/// from the outcome.
pub async fn finish(
    ids: &Ids,
    outcome: watch::Receiver<Option<RunOutcome>>,
    recorded: Option<Recorder>,
    render: Render,
    failed: Failed,
) -> (StatusCode, Value) {
    match recorded {
        Some(recorder) => match recorder.await {
            Ok(Ok(answer)) => answer,
            Ok(Err(why)) => failed(ids, why),
            Err(join) => failed(ids, format!("the answer task failed: {join}")),
        },
        None => match crate::agent::wait(outcome).await {
            Some(outcome) => render(ids, &outcome),
            None => failed(ids, "the run ended without an outcome".to_owned()),
        },
    }
}

/// Waits for the answer and sends it as one JSON body.
pub async fn answered(begun: Begun, render: Render, failed: Failed) -> Response {
    let (status, answer) = match begun {
        Begun::Answered { status, answer, .. } => (status, answer),
        Begun::Running {
            ids,
            outcome,
            recorded,
            mut abort_on_leave,
            ..
        } => {
            let result = finish(&ids, outcome, recorded, render, failed).await;
            if let Some(guard) = &mut abort_on_leave {
                guard.disarm();
            }
            result
        }
    };
    json_response(status, answer)
}

/// An SSE response whose body `pump` writes, chunk by chunk.
pub fn streamed<F, P>(pump: P) -> Response
where
    P: FnOnce(mpsc::Sender<Bytes>) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let (sender, receiver) = mpsc::channel::<Bytes>(STREAM_BUFFER);
    tokio::spawn(pump(sender));
    let body = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver
            .recv()
            .await
            .map(|chunk| (Ok::<_, Infallible>(chunk), receiver))
    });
    sse_response(Body::from_stream(body))
}

/// What every endpoint does before its own parsing: the endpoint is on,
/// the method is POST, the caller holds the secret, the body is a JSON
/// object within the limit.
#[allow(clippy::result_large_err)]
pub async fn intake(
    gateway: &Gateway,
    surface: Surface,
    method: &Method,
    headers: &HeaderMap,
    remote: SocketAddr,
    body: Body,
) -> Result<serde_json::Map<String, Value>, Response> {
    admit(gateway, surface, method, Method::POST, headers, remote)?;
    read_object(headers, body).await
}

/// An endpoint's checked request: the turn, whether it streams, the
/// sampling settings its model cannot carry, and how its stream is
/// written.
pub struct Checked<P> {
    pub turn: Turn,
    pub stream: bool,
    pub ignored: Vec<&'static str>,
    pub pump: P,
}

/// Starts (or finds) the turn and answers it whole or streamed, naming
/// what was not applied in `x-clawback-ignored`.
pub async fn serve<P, F>(
    gateway: &Arc<Gateway>,
    checked: Checked<P>,
    render: Render,
    failed: Failed,
) -> Response
where
    P: FnOnce(Begun, mpsc::Sender<Bytes>) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let Checked {
        turn,
        stream,
        ignored,
        pump,
    } = checked;
    let begun = match turn::begin(gateway, turn, stream, render).await {
        Ok(begun) => begun,
        Err(refused) => return refused,
    };
    let mut response = if stream {
        streamed(move |sender| pump(begun, sender))
    } else {
        answered(begun, render, failed).await
    };
    if !ignored.is_empty()
        && let Ok(value) = HeaderValue::from_str(&ignored.join(", "))
    {
        response.headers_mut().insert("x-clawback-ignored", value);
    }
    response
}

/// How an endpoint's stream writes what a followed run does; `Err` means
/// the client left.
pub trait StreamWriter {
    /// New reply text.
    fn text(&self, piece: &str) -> impl Future<Output = Result<(), ()>> + Send;
    /// The run ended without an outcome: the endpoint's failure, then the end.
    fn lost(&self) -> impl Future<Output = Result<(), ()>> + Send;
    /// Resolves when the client has gone.
    fn gone(&self) -> impl Future<Output = ()> + Send;
}

/// Streams `follow`'s text through `writer` until the run ends; its
/// outcome, or `None` once a lost run was reported.
pub async fn follow_to_end<W: StreamWriter>(
    writer: &W,
    follow: &mut turn::Follow,
) -> Result<Option<Box<RunOutcome>>, ()> {
    loop {
        tokio::select! {
            step = follow.next() => match step {
                turn::Step::Text(piece) => writer.text(&piece).await?,
                turn::Step::Finished(finished) => return Ok(Some(finished)),
                turn::Step::Lost => {
                    writer.lost().await?;
                    return Ok(None);
                }
            },
            () = writer.gone() => return Err(()),
        }
    }
}

/// What is left to send of the whole reply after what streamed: OpenClaw's
/// "No response" when nothing came at all; `None` when the reply does not
/// extend what was sent (it cannot be appended to a stream).
pub fn remainder(follow: &turn::Follow, finished: &RunOutcome) -> Option<String> {
    match follow.rest_of(finished)? {
        rest if rest.is_empty() && follow.sent().is_empty() => {
            Some(super::chat::NO_RESPONSE.to_owned())
        }
        rest => Some(rest),
    }
}
