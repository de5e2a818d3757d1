//! `clawback replay <session-key>`: a session's recorded timeline.
//!
//! Reads only what was recorded; nothing is re-executed. `--until` stops at a
//! seq, `--run` keeps one run's events, `--json` prints the export shape for
//! tools, `--step` waits for Enter between events. After the timeline, the
//! session's projected state at the stop point (model context, settings, open
//! runs, usage) is printed, restored from the newest snapshot at or below it.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use clawback_replay::restore;
use clawback_replay::session_state::describe;
use clawback_replay::timeline::{Category, TimelineFilter, session_timeline};

use crate::state_dir::StateDir;

#[derive(Args)]
pub struct ReplayArgs {
    /// The session key, e.g. `agent:main:main`.
    session_key: String,
    /// Stop after this seq.
    #[arg(long, value_name = "SEQ")]
    until: Option<u64>,
    /// Only the events of this run.
    #[arg(long, value_name = "RUN_ID")]
    run: Option<String>,
    /// One JSON object per event (the export shape).
    #[arg(long)]
    json: bool,
    /// Walk event by event: press Enter for the next one, q to quit.
    #[arg(long)]
    step: bool,
    /// Do not print the session's state after the timeline.
    #[arg(long)]
    no_state: bool,
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
}

#[derive(Clone, Copy, ValueEnum)]
enum ColorChoice {
    Auto,
    Always,
    Never,
}

pub fn run(state_dir: &StateDir, args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let store = state_dir.open_existing_store()?;
    let filter = TimelineFilter {
        until_seq: args.until,
        run_id: args.run.clone(),
    };
    let keyring = crate::content_keys::Keyring::open_read_only(&state_dir.content_keys())?;
    let entries = session_timeline(&*store, &keyring, &args.session_key, &filter)?;
    if entries.is_empty() {
        anyhow::bail!(
            "no recorded events for session `{}`{}; `clawback log tail` shows recent streams",
            args.session_key,
            args.until
                .map(|seq| format!(" up to seq {seq}"))
                .unwrap_or_default()
        );
    }
    let color = match args.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    for entry in &entries {
        if args.json {
            writeln!(
                out,
                "{}",
                clawback_replay::export::envelope_json(&entry.envelope)
            )?;
        } else {
            let line = format!(
                "{:>8}  {}  {:<22}  {}",
                entry.envelope.seq,
                format_ts(entry.envelope.body.ts_ms),
                entry.envelope.body.actor.label(),
                entry.summary
            );
            if color {
                writeln!(out, "\x1b[{}m{line}\x1b[0m", ansi_color(entry.category))?;
            } else {
                writeln!(out, "{line}")?;
            }
        }
        if args.step {
            out.flush()?;
            let mut answer = String::new();
            if input.read_line(&mut answer)? == 0 || answer.trim() == "q" {
                return Ok(ExitCode::SUCCESS);
            }
        }
    }
    if !args.json && !args.no_state {
        // The state after `--until`'s seq, or as of the end of the log.
        let until = args.until.map(|seq| seq.saturating_add(1));
        let restored = restore(&*store, &state_dir.snapshots(), until, &mut |_, _| {})?;
        let as_of = restored.state.next_seq.saturating_sub(1);
        writeln!(out)?;
        match describe(&*store, &keyring, &restored.state, &args.session_key) {
            Some(lines) => {
                for line in lines {
                    writeln!(out, "{line}")?;
                }
            }
            None => writeln!(
                out,
                "session {} does not exist as of seq {as_of} (deleted)",
                args.session_key
            )?,
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn ansi_color(category: Category) -> &'static str {
    match category {
        Category::Inbound => "36",   // cyan
        Category::Assistant => "32", // green
        Category::Llm => "35",       // magenta
        Category::Tool => "33",      // yellow
        Category::Approval => "1;31",
        Category::Delivery => "34",
        Category::Session | Category::Run => "1",
        Category::Other => "2",
    }
}

/// `2026-11-24 13:05:09.123` (UTC) from unix milliseconds.
pub fn format_ts(ts_ms: i64) -> String {
    crate::timefmt::display(ts_ms)
}

#[cfg(test)]
mod tests {
    use super::format_ts;

    #[test]
    fn timestamps_format_as_utc() {
        assert_eq!(format_ts(0), "1970-01-01 00:00:00.000");
        assert_eq!(format_ts(1_764_000_000_123), "2025-11-24 16:00:00.123");
        assert_eq!(format_ts(951_782_400_000), "2000-02-29 00:00:00.000");
    }
}
