//! Files only this user may read, written whole or not at all.
//!
//! Why one place: the auth profiles, their key, the checkpoint key and the
//! content keys are all secrets that must survive a crash intact. Each is
//! written to a 0600 temporary file, synced, renamed over the name, and the
//! directory synced, so after a crash the name holds the old bytes or the
//! new ones, and a rename the caller was told about is not lost.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

/// Writes `bytes` to `path` atomically and durably, readable by this user
/// only; creates the directory if missing.
pub fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().context("the path has no directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut temp_name = path
        .file_name()
        .context("the path has no file name")?
        .to_owned();
    temp_name.push(".tmp");
    let temp = dir.join(temp_name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&temp)
        .with_context(|| format!("cannot write {}", temp.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    sync_dir(dir)
}

/// Makes a rename or unlink in `dir` durable.
pub fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::File::open(dir)
        .and_then(|handle| handle.sync_all())
        .with_context(|| format!("cannot sync {}", dir.display()))
}
