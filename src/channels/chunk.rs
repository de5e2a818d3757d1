//! Cutting a reply into messages: at a platform's text limit, and in blocks
//! while it streams.
//!
//! Why care where the cut falls: a message that ends inside a code fence
//! renders the rest of the conversation as code on most platforms. Cuts
//! prefer a paragraph break, then a line break, then a space, and a cut that
//! must fall inside a fence (a fence longer than the limit) closes it and
//! reopens it with the same opening line in the next part.
//!
//! [`split`] depends on the text alone, so a restart that has to send the
//! rest of a reply cuts it exactly as the first process did. [`Blocks`]
//! (block streaming: OpenClaw's `minChars` 800, `maxChars` 1200, idle 1000
//! ms) also depends on when text arrived.

use super::settings::BlockChunk;

/// `text` in parts of at most `limit` chars (a reopened fence line aside),
/// each trimmed; empty parts dropped.
pub fn split(text: &str, limit: usize) -> Vec<String> {
    assert!(
        limit >= 16,
        "a text limit below 16 chars cannot hold a fence"
    );
    let mut parts = Vec::new();
    let mut rest = text.to_owned();
    // Each round removes at least one char, so this ends; the bound makes
    // that an assertion rather than a hope.
    for _ in 0..=text.len() {
        match cut(&rest, limit / 2, limit) {
            None => {
                push_trimmed(&mut parts, &rest);
                return parts;
            }
            Some(at) => {
                let (head, tail) = cut_at(&rest, at);
                push_trimmed(&mut parts, &head);
                rest = tail;
            }
        }
    }
    unreachable!("split makes progress every round");
}

fn push_trimmed(parts: &mut Vec<String>, part: &str) {
    let trimmed = part.trim();
    if !trimmed.is_empty() {
        parts.push(trimmed.to_owned());
    }
}

/// Splits at byte `at`; a cut inside a code fence closes the fence in the
/// head and reopens it (same opening line) in the tail.
fn cut_at(text: &str, at: usize) -> (String, String) {
    let (head, tail) = text.split_at(at);
    match open_fence(text, at) {
        Some(opener) => (
            format!("{}\n```", head.trim_end()),
            format!("{opener}\n{}", tail.trim_start_matches('\n')),
        ),
        None => (head.to_owned(), tail.to_owned()),
    }
}

/// The opening line of the code fence `at` (a byte index) is inside, if any.
fn open_fence(text: &str, at: usize) -> Option<String> {
    let mut open: Option<&str> = None;
    let mut line_start = 0;
    for line in text[..at].split_inclusive('\n') {
        let line_end = line_start + line.len();
        // A fence line counts only once it is complete (or the cut is after it).
        if line.trim_start().starts_with("```") && (line.ends_with('\n') || line_end == at) {
            open = match open {
                Some(_) => None,
                None => Some(line.trim_end()),
            };
        }
        line_start = line_end;
    }
    open.map(|opener| opener.trim_start().to_owned())
}

/// Where to cut `text` (a byte index, on a char boundary) so the head has at
/// most `max` chars and, if it can, at least `min`; `None` if it all fits.
fn cut(text: &str, min: usize, max: usize) -> Option<usize> {
    let limit = text.char_indices().nth(max).map(|(at, _)| at)?;
    let floor = text.char_indices().nth(min).map_or(limit, |(at, _)| at);
    let window = &text[..limit];
    let outside = |at: usize| open_fence(text, at).is_none();
    let after = |pattern: &str| {
        let mut best = None;
        for (at, _) in window.match_indices(pattern) {
            let end = at + pattern.len();
            if end >= floor && end < limit.max(1) && outside(end) {
                best = Some(end);
            }
        }
        best
    };
    if let Some(at) = after("\n\n").or_else(|| after("\n")).or_else(|| after(" ")) {
        return Some(at);
    }
    // Inside a fence longer than the limit: cut at its last line break.
    if let Some(at) = window.rfind('\n').filter(|at| *at > 0) {
        return Some(at + 1);
    }
    Some(limit)
}

/// Block streaming: the text of a run as it grows, cut into blocks of
/// `min_chars..=max_chars` at good boundaries, or whatever is waiting after
/// `idle_ms` without new text.
pub struct Blocks {
    chunk: BlockChunk,
    /// The platform's own limit (a block never exceeds it).
    limit: usize,
    /// Bytes of the run's text already taken into blocks.
    taken: usize,
    /// The fence the next block reopens (its head closed it).
    reopen: Option<String>,
}

impl Blocks {
    pub fn new(chunk: &BlockChunk, limit: usize) -> Blocks {
        let max = chunk.max_chars.clamp(16, limit);
        Blocks {
            chunk: BlockChunk {
                min_chars: chunk.min_chars.min(max),
                max_chars: max,
                idle_ms: chunk.idle_ms,
            },
            limit,
            taken: 0,
            reopen: None,
        }
    }

    pub fn idle(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.chunk.idle_ms)
    }

    /// The blocks `text` (the whole text so far) completes.
    pub fn ready(&mut self, text: &str) -> Vec<String> {
        self.resync(text);
        let mut out = Vec::new();
        for _ in 0..=text.len() {
            let pending = &text[self.taken..];
            let Some(at) = cut(pending, self.chunk.min_chars, self.chunk.max_chars) else {
                break;
            };
            let block = self.take(text, self.taken + at);
            out.extend(block);
        }
        out
    }

    /// What waits after `idle_ms` without new text, unless it ends inside a
    /// code fence (the fence's end is coming).
    pub fn flush_idle(&mut self, text: &str) -> Option<String> {
        self.resync(text);
        if self.taken == text.len() || open_fence(text, text.len()).is_some() {
            return None;
        }
        self.take(text, text.len())
    }

    /// The rest, once the run ended, in parts the platform accepts.
    pub fn finish(&mut self, text: &str) -> Vec<String> {
        self.resync(text);
        let rest = format!("{}{}", self.opener(), &text[self.taken..]);
        self.taken = text.len();
        self.reopen = None;
        split(&rest, self.limit)
    }

    fn opener(&self) -> String {
        self.reopen
            .as_ref()
            .map(|opener| format!("{opener}\n"))
            .unwrap_or_default()
    }

    fn take(&mut self, text: &str, end: usize) -> Option<String> {
        let mut block = format!("{}{}", self.opener(), &text[self.taken..end]);
        self.reopen = open_fence(text, end);
        if self.reopen.is_some() {
            block = format!("{}\n```", block.trim_end());
        }
        self.taken = end;
        let block = block.trim().to_owned();
        (!block.is_empty()).then_some(block)
    }

    /// A fallback to another model restarts the text: blocks already sent
    /// stay sent, and the new text continues from its own end of them.
    fn resync(&mut self, text: &str) {
        if self.taken > text.len() || !text.is_char_boundary(self.taken) {
            self.taken = text.len();
            self.reopen = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_prefers_paragraphs_and_respects_the_limit() {
        let text = format!(
            "{}\n\n{}\n\n{}",
            "a".repeat(30),
            "b".repeat(30),
            "c".repeat(30)
        );
        let parts = split(&text, 70);
        assert_eq!(
            parts,
            vec![
                format!("{}\n\n{}", "a".repeat(30), "b".repeat(30)),
                "c".repeat(30)
            ]
        );
        assert_eq!(split("short", 4096), vec!["short"]);
        assert!(split("   \n ", 100).is_empty());
        let words = "word ".repeat(100);
        for part in split(&words, 64) {
            assert!(part.chars().count() <= 64, "{part:?}");
        }
        let unbroken = "x".repeat(100);
        assert_eq!(split(&unbroken, 40).concat(), unbroken);
    }

    #[test]
    fn a_cut_inside_a_long_fence_closes_and_reopens_it() {
        let code: String = (0..40).map(|n| format!("line {n}\n")).collect();
        let text = format!("Here:\n\n```rust\n{code}```\nDone.");
        let parts = split(&text, 120);
        assert!(parts.len() > 2);
        for part in &parts {
            assert_eq!(
                part.matches("```").count() % 2,
                0,
                "unbalanced fence in {part:?}"
            );
            assert!(part.chars().count() <= 120 + "```rust\n".len(), "{part:?}");
        }
        assert!(parts[1].starts_with("```rust\n"));
    }

    #[test]
    fn blocks_wait_for_min_cut_by_max_and_flush_when_idle() {
        let chunk = BlockChunk {
            min_chars: 20,
            max_chars: 40,
            idle_ms: 1000,
        };
        let mut blocks = Blocks::new(&chunk, 4096);
        let mut text = String::from("Hello there.");
        assert!(blocks.ready(&text).is_empty(), "below min: wait");
        text.push_str(" This sentence pushes the text past the max size.");
        let ready = blocks.ready(&text);
        assert_eq!(ready.len(), 1);
        assert!(ready[0].chars().count() <= 40);
        let idle = blocks.flush_idle(&text).expect("idle flush");
        assert_eq!(format!("{} {idle}", ready[0]), text);
        assert!(blocks.flush_idle(&text).is_none());
        text.push_str(" More.");
        assert_eq!(blocks.finish(&text), vec!["More."]);
    }

    #[test]
    fn an_idle_pause_inside_a_fence_does_not_flush() {
        let chunk = BlockChunk {
            min_chars: 10,
            max_chars: 200,
            idle_ms: 1000,
        };
        let mut blocks = Blocks::new(&chunk, 4096);
        let text = "Code:\n```\nfn main() {";
        assert!(blocks.flush_idle(text).is_none());
        let done = format!("{text}\n}}\n```\n");
        assert_eq!(blocks.flush_idle(&done).as_deref(), Some(done.trim()));
    }
}
