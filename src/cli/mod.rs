//! The command line: one subcommand per operator task.
//!
//! Exit codes: 0 success; 1 the command ran and found a problem (an audit
//! failure, a snapshot that does not match); 2 the command could not run
//! (bad arguments, a locked or missing state dir), with a message that says
//! how to fix it.

mod audit;
mod audit_proofs;
mod auth;
mod bench;
mod bench_agent;
mod bench_http;
mod bench_merkle;
mod bench_protocol;
mod bench_timeline;
mod debug;
mod demo;
mod diff;
mod fork;
mod gateway_client;
mod log;
mod progress;
mod replay;
mod snapshot;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::state_dir::StateDir;

#[derive(Parser)]
#[command(
    name = "clawback",
    version,
    about = "An event-sourced gateway for personal AI agents"
)]
pub struct Cli {
    /// Where clawback keeps its log and snapshots.
    #[arg(long, global = true, env = "CLAWBACK_STATE_DIR", value_name = "DIR")]
    state_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway server.
    Gateway {
        #[command(subcommand)]
        command: GatewayCommand,
    },
    /// Manage the encrypted provider credentials (auth profiles).
    Auth {
        #[command(subcommand)]
        command: auth::AuthCommand,
    },
    /// Verify, export, checkpoint and prove the audit log.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Create, list and restore projection snapshots.
    Snapshot {
        #[command(subcommand)]
        command: snapshot::SnapshotCommand,
    },
    /// Show one session's recorded timeline, without re-executing anything.
    Replay(replay::ReplayArgs),
    /// Fork a session at a seq and run its next turn live (through the
    /// running gateway); `--prompt FILE` gives the next user message.
    Fork(fork::ForkArgs),
    /// Where two sessions' behaviour diverged (e.g. a fork and its source),
    /// read from the log offline.
    Diff(diff::DiffArgs),
    /// Read the raw log.
    Log {
        #[command(subcommand)]
        command: log::LogCommand,
    },
    /// Measure the log: appends, rebuild, verify, restore.
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
    /// An offline, scripted conversation (a local model, a tool call that
    /// waits for an approval), then its replay and an audit of the log.
    Demo(demo::DemoArgs),
    /// Tools for tests and fixtures; not a stable interface.
    #[command(hide = true)]
    Debug {
        #[command(subcommand)]
        command: debug::DebugCommand,
    },
}

#[derive(Subcommand)]
enum GatewayCommand {
    /// Open the log, recover, and serve until SIGINT/SIGTERM.
    Run(crate::gateway::RunArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let state_dir = StateDir::resolve(cli.state_dir)?;
    match cli.command {
        Command::Gateway {
            command: GatewayCommand::Run(args),
        } => crate::gateway::run(&state_dir, args),
        Command::Audit { command } => audit::run(&state_dir, command),
        Command::Auth { command } => auth::run(&state_dir, command),
        Command::Snapshot { command } => snapshot::run(&state_dir, command),
        Command::Replay(args) => replay::run(&state_dir, args),
        Command::Fork(args) => fork::run(&state_dir, args),
        Command::Diff(args) => diff::run(&state_dir, args),
        Command::Log { command } => log::run(&state_dir, command),
        Command::Bench { command } => bench::run(command),
        Command::Demo(args) => demo::run(args),
        Command::Debug { command } => debug::run(&state_dir, command),
    }
}
