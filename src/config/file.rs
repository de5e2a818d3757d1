//! The config file on disk: where it is, what it says, its hash, and safe
//! rewrites.
//!
//! Why the hash is keyed: the hash is recorded in the log next to the
//! redacted config, so an unkeyed digest of the whole file would let anyone
//! holding the log test guesses of a weak secret offline. The key lives in
//! the state directory, never in the log; a client only ever compares hashes.
//!
//! Why rewrites go through a temporary file: a crash mid-write must leave
//! either the old file or the new one, never half of each. The previous
//! version is kept as `.bak`, and the newest version that passed validation
//! as `.last-good` (OpenClaw's names), so a bad hand edit can be undone.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// The hash format clients see: OpenClaw sends `hmac-sha256:v1:<b64url>`;
/// this says honestly which keyed function produced it.
const HASH_PREFIX: &str = "blake3-keyed:v1:";
const KEY_BYTES: usize = 32;
/// A config file larger than this is refused: configs are kilobytes.
pub const CONFIG_BYTES_MAX: u64 = 4 * 1024 * 1024;

pub struct ConfigFile {
    path: PathBuf,
    key: [u8; KEY_BYTES],
}

/// The file as read: its text, or absent.
pub struct FileText {
    pub exists: bool,
    pub raw: String,
}

impl ConfigFile {
    /// `path` is the config; `key_path` holds the hash key, created with
    /// fresh random bytes (mode 0600) on first use.
    pub fn open(path: PathBuf, key_path: &Path) -> anyhow::Result<ConfigFile> {
        let key = load_or_create_key(key_path)?;
        Ok(ConfigFile { path, key })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn read(&self) -> anyhow::Result<FileText> {
        match std::fs::metadata(&self.path) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(FileText {
                    exists: false,
                    raw: String::new(),
                });
            }
            Err(error) => {
                return Err(error).with_context(|| format!("cannot read {}", self.path.display()));
            }
            Ok(metadata) if metadata.len() > CONFIG_BYTES_MAX => anyhow::bail!(
                "{} is {} bytes, more than the {CONFIG_BYTES_MAX} a config may have",
                self.path.display(),
                metadata.len()
            ),
            Ok(_) => {}
        }
        let raw = std::fs::read_to_string(&self.path)
            .with_context(|| format!("cannot read {} as UTF-8 text", self.path.display()))?;
        Ok(FileText { exists: true, raw })
    }

    /// The hash of a file's exact text: what `baseHash` is compared to.
    pub fn hash(&self, raw: &str) -> String {
        let digest = blake3::keyed_hash(&self.key, raw.as_bytes());
        format!("{HASH_PREFIX}{}", digest.to_hex())
    }

    /// Replaces the file with `text`: the old one becomes `.bak`, the new
    /// one is written beside it, synced, renamed over, and copied to
    /// `.last-good`.
    pub fn write(&self, text: &str) -> anyhow::Result<()> {
        let directory = self
            .path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(directory)
            .with_context(|| format!("cannot create {}", directory.display()))?;
        if self.path.exists() {
            std::fs::copy(&self.path, self.sibling(".bak"))
                .with_context(|| format!("cannot back up {}", self.path.display()))?;
        }
        let temporary = self.sibling(".tmp");
        write_synced(&temporary, text)?;
        std::fs::rename(&temporary, &self.path)
            .with_context(|| format!("cannot replace {}", self.path.display()))?;
        sync_directory(directory);
        self.mark_good(text)
    }

    /// Records `text` as the newest config that passed validation.
    pub fn mark_good(&self, text: &str) -> anyhow::Result<()> {
        let last_good = self.sibling(".last-good");
        let temporary = self.sibling(".last-good.tmp");
        write_synced(&temporary, text)?;
        std::fs::rename(&temporary, &last_good)
            .with_context(|| format!("cannot write {}", last_good.display()))
    }

    fn sibling(&self, suffix: &str) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    }
}

fn write_synced(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        // Configs hold secrets: readable by the owner only.
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn sync_directory(directory: &Path) {
    // Best effort: makes the rename durable on filesystems that need it.
    if let Ok(handle) = std::fs::File::open(directory) {
        let _ = handle.sync_all();
    }
}

fn load_or_create_key(path: &Path) -> anyhow::Result<[u8; KEY_BYTES]> {
    match std::fs::read(path) {
        Ok(bytes) => bytes.try_into().map_err(|bytes: Vec<u8>| {
            anyhow::anyhow!(
                "{} holds {} bytes, not the {KEY_BYTES} of a config hash key; delete it to \
                 make a new one (clients then re-read the config once)",
                path.display(),
                bytes.len()
            )
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; KEY_BYTES];
            getrandom::fill(&mut key)
                .map_err(|error| anyhow::anyhow!("no randomness for the config key: {error}"))?;
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create {}", parent.display()))?;
            }
            let temporary = path.with_extension("tmp");
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options
                .open(&temporary)
                .with_context(|| format!("cannot write {}", temporary.display()))?;
            file.write_all(&key)
                .and_then(|()| file.sync_all())
                .with_context(|| format!("cannot write {}", temporary.display()))?;
            std::fs::rename(&temporary, path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(key)
        }
        Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_keep_a_backup_and_the_last_good_copy() {
        let dir = tempfile::tempdir().unwrap();
        let file =
            ConfigFile::open(dir.path().join("config.json5"), &dir.path().join("k")).unwrap();
        assert!(!file.read().unwrap().exists);
        file.write("{ a: 1 }").unwrap();
        file.write("{ a: 2 }").unwrap();
        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
        assert_eq!(read("config.json5"), "{ a: 2 }");
        assert_eq!(read("config.json5.bak"), "{ a: 1 }");
        assert_eq!(read("config.json5.last-good"), "{ a: 2 }");
        assert!(!dir.path().join("config.json5.tmp").exists());
    }

    #[test]
    fn the_hash_is_keyed_stable_and_sensitive_to_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k");
        let one = ConfigFile::open(dir.path().join("c"), &key).unwrap();
        let again = ConfigFile::open(dir.path().join("c"), &key).unwrap();
        assert_eq!(one.hash("{a:1}"), again.hash("{a:1}"));
        assert_ne!(one.hash("{a:1}"), one.hash("{a:1} "));
        let other = tempfile::tempdir().unwrap();
        let elsewhere = ConfigFile::open(other.path().join("c"), &other.path().join("k")).unwrap();
        assert_ne!(one.hash("{a:1}"), elsewhere.hash("{a:1}"));
        assert!(one.hash("").starts_with(HASH_PREFIX));
    }
}
