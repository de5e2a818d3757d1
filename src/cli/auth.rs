//! `clawback auth`: the encrypted auth profiles (see `crate::credentials`).
//!
//! Secrets are read from standard input, never from arguments (which the
//! shell history and `ps` keep), and never printed.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::credentials::{Credential, Profiles};
use crate::state_dir::StateDir;

#[derive(Subcommand)]
pub enum AuthCommand {
    /// List the profiles: id, provider, type (never the secret).
    List,
    /// Add or replace a profile; the key or token is read from stdin.
    Add {
        /// `provider:name`, e.g. `openai:work`.
        id: String,
        /// The provider id as in `models.providers` (default: the part of
        /// the id before `:`).
        #[arg(long)]
        provider: Option<String>,
        /// `api-key` (default) or `token`.
        #[arg(long, default_value = "api-key", value_parser = ["api-key", "token"])]
        r#type: String,
        /// For a token: when it stops being valid (unix ms).
        #[arg(long)]
        expires_ms: Option<i64>,
    },
    /// Remove a profile.
    Remove { id: String },
    /// Import OpenClaw's `auth-profiles.json` (profiles with the same id
    /// are replaced).
    Import { file: PathBuf },
}

pub fn run(state_dir: &StateDir, command: AuthCommand) -> anyhow::Result<ExitCode> {
    let store = state_dir.credentials();
    let mut profiles = store.load()?;
    match command {
        AuthCommand::List => {
            if profiles.profiles.is_empty() {
                println!(
                    "no auth profiles ({}); add one with `clawback auth add`",
                    store.path().display()
                );
            }
            for (id, credential) in &profiles.profiles {
                println!("{id}  {}  {}", credential.provider(), credential.kind());
            }
            return Ok(ExitCode::SUCCESS);
        }
        AuthCommand::Add {
            id,
            provider,
            r#type,
            expires_ms,
        } => {
            let provider = match provider {
                Some(provider) => provider,
                None => match id.split_once(':') {
                    Some((provider, name)) if !provider.is_empty() && !name.is_empty() => {
                        provider.to_owned()
                    }
                    _ => bail!("the id \"{id}\" is not provider:name; or pass --provider"),
                },
            };
            let mut secret = String::new();
            std::io::stdin()
                .read_to_string(&mut secret)
                .context("cannot read the secret from stdin")?;
            let secret = secret.trim().to_owned();
            if secret.is_empty() {
                bail!(
                    "no secret on stdin: pipe it in, e.g. `printenv OPENAI_API_KEY | clawback auth add {id}`"
                );
            }
            let credential = match r#type.as_str() {
                "token" => Credential::Token {
                    provider,
                    token: secret,
                    expires: expires_ms,
                },
                _ => Credential::ApiKey {
                    provider,
                    key: secret,
                },
            };
            profiles.profiles.insert(id.clone(), credential);
            println!(
                "auth profile {id} saved (encrypted) in {}",
                store.path().display()
            );
        }
        AuthCommand::Remove { id } => {
            if profiles.profiles.remove(&id).is_none() {
                eprintln!("error: no auth profile {id} (clawback auth list)");
                return Ok(ExitCode::from(2));
            }
            println!("auth profile {id} removed");
        }
        AuthCommand::Import { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let imported: Profiles = serde_json::from_str(&text).with_context(|| {
                format!("{} is not an OpenClaw auth-profiles.json", file.display())
            })?;
            let count = imported.profiles.len();
            profiles.profiles.extend(imported.profiles);
            println!(
                "{count} auth profile(s) imported into {} (encrypted); the original file is unchanged: delete it",
                store.path().display()
            );
        }
    }
    profiles.version = 1;
    store.save(&profiles)?;
    Ok(ExitCode::SUCCESS)
}
