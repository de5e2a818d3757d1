//! `clawback replay <session-key>`: a session's recorded timeline.
//!
//! Reads only what was recorded; nothing is re-executed. `--until` stops at a
//! seq, `--run` keeps one run's events, `--json` prints the export shape for
//! tools, `--step` waits for Enter between events. After the timeline, the
//! session's projected state at the stop point (model context, settings, open
//! runs, usage) is printed, restored from the newest snapshot at or below it.
//! While a gateway holds the store, the timeline is read through it
//! (`clawback.timeline`, the control UI's reader), without the state.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use clawback_replay::restore;
use clawback_replay::session_state::describe;
use clawback_replay::timeline::{Category, TimelineFilter, session_timeline};

use serde_json::json;

use super::gateway_client::{Client, GatewayArgs};
use crate::state_dir::StateDir;

/// Entries asked for per `clawback.timeline` page (its maximum).
const PAGE_LIMIT: u64 = 1_000;

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
    /// Where the running gateway is, when it holds the store.
    #[command(flatten)]
    gateway: GatewayArgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// One line of the timeline, wherever it was read.
struct Row {
    seq: u64,
    ts_ms: i64,
    actor: String,
    category: Category,
    summary: String,
    /// The record in the export shape (for `--json`).
    record: serde_json::Value,
}

pub fn run(state_dir: &StateDir, args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let store = match state_dir.open_existing_store() {
        Ok(store) => store,
        // A running gateway holds the store: read the timeline through it.
        Err(error) if super::gateway_client::store_is_locked(&error) => {
            let rows = rows_through_gateway(state_dir, &args)?;
            let mut out = std::io::stdout().lock();
            if !print_rows(&mut out, &rows, &args)? {
                return Ok(ExitCode::SUCCESS);
            }
            if !args.json && !args.no_state {
                writeln!(
                    out,
                    "\n(read through the running gateway; the session's state after the \
                     timeline is printed when the gateway is stopped, or see the control UI)"
                )?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        Err(error) => return Err(error),
    };
    let filter = TimelineFilter {
        until_seq: args.until,
        run_id: args.run.clone(),
    };
    let keyring = crate::content_keys::Keyring::open_read_only(&state_dir.content_keys())?;
    let entries = session_timeline(&*store, &keyring, &args.session_key, &filter)?;
    let rows: Vec<Row> = entries
        .iter()
        .map(|entry| {
            let mut record = clawback_replay::export::envelope_json(&entry.envelope);
            clawback_replay::export::mark_content(&mut record, &entry.content);
            Row {
                seq: entry.envelope.seq,
                ts_ms: entry.envelope.body.ts_ms,
                actor: entry.envelope.body.actor.label(),
                category: entry.category,
                summary: entry.summary.clone(),
                record,
            }
        })
        .collect();
    let mut out = std::io::stdout().lock();
    if !print_rows(&mut out, &rows, &args)? {
        return Ok(ExitCode::SUCCESS);
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

/// Prints the timeline; false when the user quit a `--step` walk.
fn print_rows(out: &mut impl Write, rows: &[Row], args: &ReplayArgs) -> anyhow::Result<bool> {
    if rows.is_empty() {
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
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    for row in rows {
        if args.json {
            writeln!(out, "{}", row.record)?;
        } else {
            let line = format!(
                "{:>8}  {}  {:<22}  {}",
                row.seq,
                format_ts(row.ts_ms),
                row.actor,
                row.summary
            );
            if color {
                writeln!(out, "\x1b[{}m{line}\x1b[0m", ansi_color(row.category))?;
            } else {
                writeln!(out, "{line}")?;
            }
        }
        if args.step {
            out.flush()?;
            let mut answer = String::new();
            if input.read_line(&mut answer)? == 0 || answer.trim() == "q" {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// The timeline read page by page through `clawback.timeline`; a record
/// too large for its page's payload budget is fetched alone.
fn rows_through_gateway(state_dir: &StateDir, args: &ReplayArgs) -> anyhow::Result<Vec<Row>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut client = Client::connect(state_dir, &args.gateway).await?;
        let mut rows = Vec::new();
        let mut after: Option<u64> = None;
        // Bounded: each page advances `after`; a session has at most the
        // log's records.
        loop {
            let mut params = json!({"sessionKey": args.session_key, "limit": PAGE_LIMIT,
                                    "details": args.json});
            if let Some(after) = after {
                params["after"] = json!(after);
            }
            if let Some(until) = args.until {
                params["until"] = json!(until);
            }
            if let Some(run) = &args.run {
                params["runId"] = json!(run);
            }
            let page = client
                .call("clawback.timeline", params.clone(), &mut |_| {})
                .await?;
            for entry in page["entries"].as_array().into_iter().flatten() {
                let seq = entry["seq"].as_u64().unwrap_or_default();
                let mut record = entry["detail"]["record"].clone();
                if args.json && entry.get("detailOmittedBytes").is_some() {
                    let mut alone = params.clone();
                    alone["after"] = json!(seq.saturating_sub(1));
                    alone["limit"] = json!(1);
                    let single = client.call("clawback.timeline", alone, &mut |_| {}).await?;
                    record = single["entries"][0]["detail"]["record"].clone();
                }
                rows.push(Row {
                    seq,
                    ts_ms: entry["ts"].as_i64().unwrap_or_default(),
                    actor: entry["actor"].as_str().unwrap_or_default().to_owned(),
                    category: Category::from_name(entry["category"].as_str().unwrap_or_default()),
                    summary: entry["summary"].as_str().unwrap_or_default().to_owned(),
                    record,
                });
            }
            match (page["hasMore"].as_bool(), page["nextAfter"].as_u64()) {
                (Some(true), Some(next)) if Some(next) != after => after = Some(next),
                _ => return Ok(rows),
            }
        }
    })
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
