//! `audit export`: the log as JSON Lines, one envelope a line, for other
//! tools (jq, SIEMs, notebooks).
//!
//! The line shape is a public interface: fields are only ever added. Hashes
//! are lowercase hex, so an outside verifier can recompute the chain from
//! the archive format and compare.

use std::io::Write;
use std::ops::ControlFlow;

use clawback_events::sealed::{ContentKeys, ContentState};
use clawback_events::store::LogStore;
use clawback_events::{Envelope, record};
use serde_json::json;

/// Which records to export. `since`/`until` are inclusive seq bounds.
#[derive(Debug, Clone, Default)]
pub struct ExportFilter {
    pub since_seq: Option<u64>,
    pub until_seq: Option<u64>,
    /// Only records of this stream (a session key).
    pub session: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("record at seq {seq} cannot be exported: {detail}")]
    Unreadable { seq: u64, detail: String },
    #[error("writing the export failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Store(#[from] clawback_events::store::StoreError),
}

/// One envelope as a JSON value: the export line shape.
pub fn envelope_json(envelope: &Envelope) -> serde_json::Value {
    json!({
        "seq": envelope.seq,
        "ts": envelope.body.ts_ms,
        "stream": envelope.body.stream,
        "kind": envelope.body.event.kind(),
        "actor": envelope.body.actor,
        "correlation": envelope.body.correlation,
        "causation": envelope.body.causation,
        "event": envelope.body.event,
        "prevHash": envelope.prev_hash.to_hex(),
        "hash": envelope.hash.to_hex(),
    })
}

/// An envelope as an export line with its session content opened by
/// `keys`: `event` is the event as recorded with its content (or `[purged]`
/// in place of content whose key a purge destroyed), and `content` says
/// which (`opened`, `purged`, `unreadable`; absent for records never
/// sealed).
pub fn opened_envelope_json(envelope: &Envelope, keys: &dyn ContentKeys) -> serde_json::Value {
    let readable = envelope.body.event.read(keys);
    let mut line = envelope_json(envelope);
    line["event"] = json!(*readable.event);
    mark_content(&mut line, &readable.content);
    line
}

/// Adds to an export line what its content is (see [`opened_envelope_json`]).
pub fn mark_content(line: &mut serde_json::Value, content: &ContentState) {
    match content {
        ContentState::Clear => {}
        ContentState::Opened => line["content"] = json!("opened"),
        ContentState::Purged => line["content"] = json!("purged"),
        ContentState::Unreadable(why) => {
            line["content"] = json!("unreadable");
            line["contentError"] = json!(why);
        }
    }
}

/// Writes the matching records to `out`, one JSON object per line, session
/// content opened with `keys` (see [`opened_envelope_json`]).
pub fn export(
    store: &dyn LogStore,
    keys: &dyn ContentKeys,
    filter: &ExportFilter,
    out: &mut dyn Write,
) -> Result<u64, ExportError> {
    let from = filter.since_seq.unwrap_or(0);
    let until = filter.until_seq.unwrap_or(u64::MAX);
    let mut written = 0u64;
    let mut failure: Option<ExportError> = None;
    let mut emit = |seq: u64, bytes: &[u8]| -> ControlFlow<()> {
        if seq > until {
            return ControlFlow::Break(());
        }
        let result = record::decode(seq, bytes)
            .map_err(|error| ExportError::Unreadable {
                seq,
                detail: error.to_string(),
            })
            .and_then(|envelope| {
                serde_json::to_writer(&mut *out, &opened_envelope_json(&envelope, keys))
                    .map_err(std::io::Error::from)?;
                out.write_all(b"\n")?;
                Ok(())
            });
        match result {
            Ok(()) => {
                written += 1;
                ControlFlow::Continue(())
            }
            Err(error) => {
                failure = Some(error);
                ControlFlow::Break(())
            }
        }
    };
    match &filter.session {
        None => store.scan(from, &mut emit)?,
        Some(session) => {
            let mut seqs = Vec::new();
            store.scan_stream(session, from, &mut |seq| {
                if seq > until {
                    return ControlFlow::Break(());
                }
                seqs.push(seq);
                ControlFlow::Continue(())
            })?;
            for seq in seqs {
                let Some(bytes) = store.get(seq)? else {
                    return Err(ExportError::Unreadable {
                        seq,
                        detail: "indexed record is missing".to_owned(),
                    });
                };
                if emit(seq, &bytes).is_break() {
                    break;
                }
            }
        }
    }
    if let Some(error) = failure {
        return Err(error);
    }
    out.flush()?;
    Ok(written)
}
