//! `chat.send`'s queue modes `steer` and `collect`: messages that arrive
//! while a run of their session is active, waiting for that run.
//!
//! Why a queue beside the lanes: a lane orders whole turns (`followup`);
//! these modes change what a turn is. A steered message joins the active
//! run at its next model-call boundary (after the current tool round; the
//! run takes it with [`SessionQueue::take_steered`] and records it as a
//! user message there), or, when the run ends first, becomes the next turn.
//! Collected messages become one turn after the run, in OpenClaw's collect
//! format ([`collect_prompt`]). Both are bounded per session
//! ([`PENDING_MAX`], OpenClaw's default cap); a full queue refuses the
//! message. The queue is memory only, as OpenClaw's: what reaches a run is
//! recorded there, and replay rebuilds the transcript from those records.

use std::collections::VecDeque;

use super::run::RunRequest;

/// Messages waiting per session (steered and collected together).
pub const PENDING_MAX: usize = 20;

/// The first line of a collected turn (OpenClaw's).
pub const COLLECT_TITLE: &str = "[Queued messages while agent was busy]";

/// A session's active run and what waits for it.
#[derive(Default)]
pub struct SessionQueue {
    /// The run executing now (it holds the session's lane).
    pub active: Option<String>,
    /// Steered messages not yet taken by the active run, in arrival order.
    pub steer: VecDeque<RunRequest>,
    /// Collected messages, in arrival order; the first one's id is the id
    /// of the turn they become.
    pub collect: Vec<RunRequest>,
}

impl SessionQueue {
    pub fn pending(&self) -> usize {
        self.steer.len() + self.collect.len()
    }

    pub fn is_idle(&self) -> bool {
        self.active.is_none() && self.pending() == 0
    }

    /// The steered messages for `run_id`, if it is the active run.
    pub fn take_steered(&mut self, run_id: &str) -> Vec<RunRequest> {
        if self.active.as_deref() == Some(run_id) {
            self.steer.drain(..).collect()
        } else {
            Vec::new()
        }
    }

    /// The collected messages as one turn: the first message's id, the
    /// last one's settings (as OpenClaw takes the last item's run), and
    /// the combined text.
    pub fn take_collected(&mut self) -> Option<RunRequest> {
        let first_id = self.collect.first()?.run_id.clone();
        let collected = std::mem::take(&mut self.collect);
        let texts: Vec<&str> = collected
            .iter()
            .map(|request| request.message.as_str())
            .collect();
        let message = collect_prompt(&texts);
        let mut turn = collected.into_iter().last()?;
        turn.run_id = first_id;
        turn.message = message;
        Some(turn)
    }
}

/// OpenClaw's collect format: the title, then each message as
/// `---\nQueued #N\n<text>`, blocks separated by a blank line.
pub fn collect_prompt(messages: &[&str]) -> String {
    let mut blocks = vec![COLLECT_TITLE.to_owned()];
    for (index, text) in messages.iter().enumerate() {
        blocks.push(
            format!("---\nQueued #{}\n{text}", index + 1)
                .trim()
                .to_owned(),
        );
    }
    blocks.join("\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collected_messages_take_openclaws_format() {
        assert_eq!(
            collect_prompt(&["one", "two  "]),
            "[Queued messages while agent was busy]\n\n---\nQueued #1\none\n\n---\nQueued #2\ntwo"
        );
    }
}
