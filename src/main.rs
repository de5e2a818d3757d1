//! The `clawback` binary: the gateway server and the operator's command line
//! in one executable.
//!
//! `main` only parses arguments and maps outcomes to exit codes; each command
//! lives in its own module under `cli/`, the server under `gateway/`.

mod agent;
mod channels;
mod checkpoint_key;
mod cli;
mod config;
mod content_keys;
mod credentials;
mod cron;
mod exec;
mod gateway;
mod private_file;
mod redact;
mod state_dir;
mod timefmt;
mod untrusted;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of the system allocator: the log's hot paths (decoding
/// records, folding them into projections) are many small allocations freed
/// on another thread, where glibc's malloc made a rebuild take 1.6x as long (see
/// docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli::run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
