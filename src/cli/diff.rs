//! `clawback diff <session-a> <session-b>`: where two sessions' behaviour
//! diverged, read offline from the log (like `clawback replay`), or, while
//! a gateway holds the store, through it (`clawback.sessions.diff`).
//!
//! The comparison is `clawback_replay::diff` (pure, tested there); this
//! renders it: the shared prefix, the steps from the first difference on,
//! side by side (`a` then `b` for each step), and what each side did after
//! the prefix (models, tokens, cost, tool calls, final reply). Nothing
//! here depends on the clock, so the output of a given log is stable.

use std::io::Write;
use std::process::ExitCode;

use clap::Args;
use clawback_replay::diff::{
    Diff, SessionStep, SessionSteps, Summary, describe_step, diff, session_steps,
};

use super::gateway_client::{Client, GatewayArgs};
use crate::state_dir::StateDir;

/// Steps shown after the divergence point, per side; the rest are counted.
const STEPS_SHOWN_MAX: usize = 40;
/// Texts in a step are clipped to this many characters.
const TEXT_CHARS_MAX: usize = 100;

#[derive(Args)]
pub struct DiffArgs {
    /// The first session (e.g. the source of a fork).
    session_a: String,
    /// The second session (e.g. the fork).
    session_b: String,
    /// The comparison as one JSON object (every step, in full).
    #[arg(long)]
    json: bool,
    /// Where the running gateway is, when it holds the store.
    #[command(flatten)]
    gateway: GatewayArgs,
}

pub fn run(state_dir: &StateDir, args: DiffArgs) -> anyhow::Result<ExitCode> {
    let compared = match state_dir.open_existing_store() {
        Ok(store) => {
            let keyring = crate::content_keys::Keyring::open_read_only(&state_dir.content_keys())?;
            let read = |key: &str| {
                session_steps(&*store, &keyring, key).map_err(|error| {
                    anyhow::anyhow!("{error}; `clawback log tail` shows recent streams")
                })
            };
            diff(read(&args.session_a)?, read(&args.session_b)?)
        }
        // A running gateway holds the store: ask it.
        Err(error) if super::gateway_client::store_is_locked(&error) => {
            through_gateway(state_dir, &args)?
        }
        Err(error) => return Err(error),
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&compared)?)?;
    } else {
        for line in render(&compared) {
            writeln!(out, "{line}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn through_gateway(state_dir: &StateDir, args: &DiffArgs) -> anyhow::Result<Diff> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut client = Client::connect(state_dir, &args.gateway).await?;
        let answer = client
            .call(
                "clawback.sessions.diff",
                serde_json::json!({"a": args.session_a, "b": args.session_b}),
                &mut |_| {},
            )
            .await?;
        serde_json::from_value(answer)
            .map_err(|error| anyhow::anyhow!("the gateway's diff does not read: {error}"))
    })
}

/// The text report, line by line.
pub fn render(compared: &Diff) -> Vec<String> {
    let mut lines = vec![
        header("a", &compared.a),
        header("b", &compared.b),
        String::new(),
    ];
    let shared = compared.shared;
    lines.push(match shared {
        0 => "shared prefix: none (they differ from the first step)".to_owned(),
        _ => format!(
            "shared prefix: {shared} steps (a up to seq {}, b up to seq {})",
            compared.a.steps[shared - 1].seq,
            compared.b.steps[shared - 1].seq
        ),
    });
    if compared.identical() {
        lines.push("the two sessions behaved the same throughout".to_owned());
    } else {
        lines.push(format!("diverged at step {}:", shared + 1));
        let longest = compared.a.steps.len().max(compared.b.steps.len());
        let end = longest.min(shared + STEPS_SHOWN_MAX);
        for index in shared..end {
            lines.push(format!("  step {}", index + 1));
            lines.push(side("a", compared.a.steps.get(index)));
            lines.push(side("b", compared.b.steps.get(index)));
        }
        if longest > end {
            lines.push(format!(
                "  ... {} more steps (--json has them all)",
                longest - end
            ));
        }
    }
    lines.push(String::new());
    lines.push(format!(
        "after the shared prefix ({} steps in a, {} in b):",
        compared.a.steps.len() - shared,
        compared.b.steps.len() - shared
    ));
    lines.extend(summary("a", &compared.summary_a));
    lines.extend(summary("b", &compared.summary_b));
    lines
}

fn header(side: &str, steps: &SessionSteps) -> String {
    format!(
        "{side}: {} ({} steps{})",
        steps.session_key,
        steps.steps.len(),
        steps
            .forked_from
            .as_ref()
            .map(|(source, seq)| format!(", forked from {source} at seq {seq}"))
            .unwrap_or_default()
    )
}

fn side(name: &str, step: Option<&SessionStep>) -> String {
    match step {
        Some(step) => format!(
            "    {name} {:>7}  {}",
            format!("#{}", step.seq),
            describe_step(&step.step, TEXT_CHARS_MAX)
        ),
        None => format!("    {name} {:>7}  (no more steps)", "-"),
    }
}

fn summary(name: &str, summary: &Summary) -> Vec<String> {
    vec![
        format!(
            "  {name}: models [{}], {} LLM calls, {} in / {} out tokens, ${}.{:06}, tool calls [{}]",
            summary.models.join(", "),
            summary.llm_calls,
            summary.input_tokens,
            summary.output_tokens,
            summary.cost_micro_usd / 1_000_000,
            summary.cost_micro_usd % 1_000_000,
            summary.tool_calls.join(", ")
        ),
        format!(
            "  {name}: final reply: {}",
            summary.final_reply.as_deref().map_or_else(
                || "(none)".to_owned(),
                |text| clawback_replay::timeline::clip(text, TEXT_CHARS_MAX)
            )
        ),
    ]
}
