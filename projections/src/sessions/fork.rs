//! `session.forked`: a session whose history is another's up to a seq.
//!
//! Why apart: the fork reducer checks more than any other session event
//! (the source, its history id, the key, the next message) and shares only
//! the `Session` shape with the rest.

use clawback_events::event::SessionForked;

use super::*;

impl Sessions {
    /// A new session whose transcript is the source's entries up to
    /// `at_seq` (the same seqs: nothing is copied but the index), with the
    /// source's compaction if it was made by then, and its settings with
    /// the fork's on top. A fork that names a missing source, a source
    /// reset since (another id), a taken key, or a next message that is
    /// not a user message of the source after `at_seq` changes nothing.
    pub(crate) fn forked(&mut self, at: At, event: SessionForked, anomalies: &mut Anomalies) {
        if self.by_key.contains_key(&event.session_key) {
            anomalies.record(
                at,
                "session.exists",
                format!(
                    "fork into session {} that exists; ignored",
                    event.session_key
                ),
            );
            return;
        }
        let Some(source) = self.by_key.get(&event.source_session_key) else {
            anomalies.record(
                at,
                "session.unknown",
                format!(
                    "fork of session {} that does not exist; ignored",
                    event.source_session_key
                ),
            );
            return;
        };
        if source.session_id != event.source_session_id {
            anomalies.record(
                at,
                "fork.source_reset",
                format!(
                    "fork of session {} id {}, which is now id {}; ignored",
                    event.source_session_key, event.source_session_id, source.session_id
                ),
            );
            return;
        }
        let mut transcript: Vec<TranscriptEntry> = source
            .transcript
            .iter()
            .take_while(|entry| entry.seq <= event.at_seq)
            .copied()
            .collect();
        let prefix_len = transcript.len();
        if let Some(next_seq) = event.next_message_seq {
            let next = source.transcript.iter().find(|entry| {
                entry.seq == next_seq && entry.seq > event.at_seq && entry.role == Role::User
            });
            match next {
                Some(entry) => transcript.push(*entry),
                None => {
                    anomalies.record(
                        at,
                        "fork.next_message_unknown",
                        format!(
                            "fork names seq {next_seq} as the next user message of session {}, \
                             which is not one after seq {}; ignored",
                            event.source_session_key, event.at_seq
                        ),
                    );
                    return;
                }
            }
        }
        // Only the latest compaction is kept: one made after `at_seq`
        // cannot say what the context was then (the gateway refuses such
        // forks), so the fork gets none rather than a wrong summary.
        let compaction = match &source.compaction {
            Some(compaction) if compaction.seq <= event.at_seq => Some(Compaction {
                context_start: compaction.context_start.min(prefix_len),
                ..compaction.clone()
            }),
            Some(compaction) => {
                anomalies.record(
                    at,
                    "fork.before_compaction",
                    format!(
                        "fork of session {} at seq {}, before its compaction at seq {}; \
                         the fork has no summary",
                        event.source_session_key, event.at_seq, compaction.seq
                    ),
                );
                None
            }
            None => None,
        };
        let mut settings = source.settings.clone();
        settings.extend(event.settings);
        let label = settings.get("label").map(|value| json_string_or_raw(value));
        let key = event.session_key.clone();
        let session = Session {
            key: event.session_key,
            session_id: event.session_id,
            agent_id: event.agent_id,
            label,
            origin: Some("fork".to_owned()),
            created_seq: at.seq,
            created_ts_ms: at.ts_ms,
            updated_ts_ms: at.ts_ms,
            settings,
            transcript,
            compaction,
            resets: 0,
            active_runs: BTreeMap::new(),
            recent_runs: VecDeque::new(),
            open_tool_calls: BTreeMap::new(),
            usage: UsageTotals::default(),
            history_start_seq: at.seq,
            forked_from: Some(ForkOrigin {
                session_key: event.source_session_key,
                at_seq: event.at_seq,
            }),
        };
        self.by_key.insert(key, session);
    }
}
