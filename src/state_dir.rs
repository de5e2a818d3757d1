//! The state directory: where one clawback instance keeps everything.
//!
//! ```text
//! <state-dir>/            default ~/.clawback, or --state-dir, or CLAWBACK_STATE_DIR
//!   log/                  the event log (fjall): the source of truth
//!   snapshots/            projection snapshots: a cache of the log, safe to delete
//!   logs/                 the gateway's own text log (JSON lines per day), for `logs.tail`
//!   config.json5          the config (unless --config says otherwise)
//!   config-hash.key       the key of the config hash (never in the log)
//!   auth-profiles.enc     provider credentials, AES-256-GCM (`clawback auth`)
//!   auth-profiles.key     their key, unless CLAWBACK_AUTH_KEY is set
//!   checkpoint.key        the Ed25519 key that signs the log's checkpoints (0600)
//!   content-keys/         per-session data keys sealing session content in the log
//!                         (crypto-shredding: a purge destroys a session's key)
//! ```
//!
//! Only this module knows the layout, so moving a folder is a one-line change.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clawback_events::store::FjallStore;
use clawback_replay::SnapshotStore;

pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// `explicit` (from `--state-dir`/the env), else `~/.clawback`.
    pub fn resolve(explicit: Option<PathBuf>) -> anyhow::Result<StateDir> {
        let root = match explicit {
            Some(path) => path,
            None => {
                let home = std::env::var_os("HOME").context(
                    "HOME is not set, so the default state dir ~/.clawback is unknown; pass --state-dir DIR",
                )?;
                PathBuf::from(home).join(".clawback")
            }
        };
        Ok(StateDir { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The state dir at `root` (the gateway keeps only the root path).
    pub fn at(root: &Path) -> StateDir {
        StateDir {
            root: root.to_path_buf(),
        }
    }

    /// The encrypted auth profiles and their key.
    pub fn credentials(&self) -> crate::credentials::Store {
        crate::credentials::Store::new(
            self.root.join("auth-profiles.enc"),
            self.root.join("auth-profiles.key"),
        )
    }

    /// The key that signs the log's Merkle checkpoints; never in the log.
    pub fn checkpoint_key(&self) -> PathBuf {
        self.root.join("checkpoint.key")
    }

    /// The per-session data keys of sealed session content; never in the
    /// log (see `content_keys`).
    pub fn content_keys(&self) -> PathBuf {
        self.root.join("content-keys")
    }

    pub fn log_dir(&self) -> PathBuf {
        self.root.join("log")
    }

    /// The gateway's diagnostic log files (not the event log).
    pub fn text_logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }

    pub fn snapshots(&self) -> SnapshotStore {
        SnapshotStore::new(self.root.join("snapshots"))
    }

    /// Opens the log store, creating the state dir on first use.
    pub fn open_store(&self) -> anyhow::Result<Arc<FjallStore>> {
        std::fs::create_dir_all(&self.root)
            .with_context(|| format!("cannot create the state dir {}", self.root.display()))?;
        let store = FjallStore::open(self.log_dir())?;
        Ok(Arc::new(store))
    }

    /// Opens the log store of an existing state dir, for read-only commands:
    /// a missing dir is an error that says what to do, not a new empty log.
    pub fn open_existing_store(&self) -> anyhow::Result<Arc<FjallStore>> {
        if !self.log_dir().exists() {
            anyhow::bail!(
                "no clawback log at {}; start the gateway once (`clawback gateway run`) or pass --state-dir DIR",
                self.log_dir().display()
            );
        }
        self.open_store()
    }
}
