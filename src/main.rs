//! The `clawback` binary: the gateway server and the operator's command line
//! in one executable.
//!
//! `main` only parses arguments and maps outcomes to exit codes; each command
//! lives in its own module under `cli/`, the server under `gateway/`.

mod cli;
mod gateway;
mod state_dir;

use std::process::ExitCode;

use clap::Parser;

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
