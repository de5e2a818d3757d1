//! `clawback fork <session-key> --at SEQ [--model M] [--prompt FILE]`: a
//! new session whose history is the given one's up to SEQ, and its next
//! turn run live by the running gateway (`clawback.sessions.fork`).
//!
//! The next turn's user message is the file given with `--prompt`, or else
//! the message the session received right after SEQ (the gateway refuses
//! the fork when there is none). By default the command waits for the
//! turn to end and prints the reply; `--no-wait` prints the new session
//! and run id and leaves the turn running. `clawback diff <session-key>
//! <fork-key>` then shows where the two diverged.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde_json::{Value, json};

use super::gateway_client::{Client, GatewayArgs};
use crate::state_dir::StateDir;

/// The longest `--prompt` file read: a message, not a corpus.
const PROMPT_BYTES_MAX: u64 = 1024 * 1024;

#[derive(Args)]
pub struct ForkArgs {
    /// The session to fork, e.g. `agent:main:main`.
    session_key: String,
    /// The last seq of its history the fork keeps (`clawback replay` shows
    /// the seqs).
    #[arg(long = "at", value_name = "SEQ")]
    at: u64,
    /// The model for the fork (`provider/model`), as `sessions.patch`
    /// sets it; default: the session's.
    #[arg(long, value_name = "MODEL")]
    model: Option<String>,
    /// A file whose text is the fork's next user message (default: the
    /// message the session received right after SEQ).
    #[arg(long, value_name = "FILE")]
    prompt: Option<std::path::PathBuf>,
    /// The new session's key (default `agent:<agent>:fork:<uuid>`).
    #[arg(long, value_name = "KEY")]
    new_key: Option<String>,
    /// Wait for the fork's turn to end and print its reply (the default).
    #[arg(long, overrides_with = "no_wait")]
    wait: bool,
    /// Print the new session and run id and return at once.
    #[arg(long, overrides_with = "wait")]
    no_wait: bool,
    /// How long to wait for the turn, in seconds.
    #[arg(long, default_value_t = 600, value_name = "SECONDS")]
    timeout: u64,
    #[command(flatten)]
    gateway: GatewayArgs,
}

pub fn run(state_dir: &StateDir, args: ForkArgs) -> anyhow::Result<ExitCode> {
    let message = match &args.prompt {
        Some(path) => Some(read_prompt(path)?),
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(fork(state_dir, &args, message))
}

fn read_prompt(path: &std::path::Path) -> anyhow::Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path)
        .map_err(|error| anyhow::anyhow!("cannot read --prompt {}: {error}", path.display()))?;
    let mut text = String::new();
    file.take(PROMPT_BYTES_MAX + 1)
        .read_to_string(&mut text)
        .map_err(|error| anyhow::anyhow!("cannot read --prompt {}: {error}", path.display()))?;
    anyhow::ensure!(
        text.len() as u64 <= PROMPT_BYTES_MAX,
        "--prompt {} is larger than {PROMPT_BYTES_MAX} bytes",
        path.display()
    );
    anyhow::ensure!(
        !text.trim().is_empty(),
        "--prompt {} is empty; write the fork's next user message in it",
        path.display()
    );
    Ok(text)
}

async fn fork(
    state_dir: &StateDir,
    args: &ForkArgs,
    message: Option<String>,
) -> anyhow::Result<ExitCode> {
    let mut client = Client::connect(state_dir, &args.gateway).await?;
    let mut params = json!({"sessionKey": args.session_key, "atSeq": args.at});
    if let Some(model) = &args.model {
        params["model"] = json!(model);
    }
    if let Some(message) = message {
        params["message"] = json!(message);
    }
    if let Some(key) = &args.new_key {
        params["newKey"] = json!(key);
    }
    params["timeoutMs"] = json!(args.timeout.saturating_mul(1000));
    let forked = client
        .call("clawback.sessions.fork", params, &mut |_| {})
        .await?;
    let key = forked["key"].as_str().unwrap_or_default().to_owned();
    let run_id = forked["runId"].as_str().unwrap_or_default().to_owned();
    println!(
        "forked {} at seq {} into {key} (run {run_id})",
        args.session_key, args.at
    );
    if args.no_wait {
        return Ok(ExitCode::SUCCESS);
    }
    // `agent.wait` bounds its own wait; a little more here covers the trip.
    let waited = tokio::time::timeout(
        Duration::from_secs(args.timeout.saturating_add(30)),
        client.call(
            "agent.wait",
            json!({"runId": run_id, "timeoutMs": args.timeout.saturating_mul(1000)}),
            &mut |_| {},
        ),
    )
    .await
    .map_err(|_| anyhow::anyhow!("the gateway did not answer agent.wait for run {run_id}"))??;
    Ok(report(&waited, &args.session_key, &key))
}

/// Prints the turn's end; the exit code says whether it completed.
fn report(waited: &Value, source: &str, key: &str) -> ExitCode {
    match waited["status"].as_str() {
        Some("ok") => {
            println!(
                "{}",
                waited["terminalReply"]["text"].as_str().unwrap_or_default()
            );
            println!("\n`clawback diff {source} {key}` shows where the two sessions diverged");
            ExitCode::SUCCESS
        }
        Some("timeout") => {
            eprintln!(
                "the fork's turn is still running; `clawback replay {key}` shows what it did so far"
            );
            ExitCode::from(1)
        }
        _ => {
            eprintln!(
                "the fork's turn failed: {}",
                waited["error"]["message"]
                    .as_str()
                    .map_or_else(|| waited.to_string(), str::to_owned)
            );
            ExitCode::from(1)
        }
    }
}
