//! Where a tool may write, and how: a path inside the agent's workspace
//! that may not exist yet, and a file replaced atomically.
//!
//! Why its own module: `read` only opens files that exist, so resolving
//! every symlink and comparing with the workspace is enough. A write names
//! a file (and maybe directories) that do not exist yet, so the path is
//! checked component by component: `..` may not climb out, every existing
//! directory on the way is resolved (a symlink to a directory is followed
//! only if it stays inside), missing ones are created one at a time (a
//! created directory cannot be a link), and the file is written to a fresh
//! temporary name beside the target (`create_new`: never through a link)
//! and renamed over it, which replaces a link rather than following it. On
//! Linux the temporary file's real path is checked once more after it is
//! opened, so a directory swapped for a link mid-way is caught.
//!
//! Invariant: nothing outside the resolved workspace is created, written
//! or replaced.

use std::io::Write as _;
use std::path::{Component, Path, PathBuf};

/// The largest file a tool writes (as `read` reads at most).
pub const FILE_BYTES_MAX: usize = 1024 * 1024;

/// The workspace's resolved root, and `requested` as a path inside it
/// whose parent directories exist (created if missing).
pub fn prepare(workspace: &Path, requested: &str) -> Result<(PathBuf, PathBuf), String> {
    if requested.contains('\0') {
        return Err("the path contains a NUL byte".to_owned());
    }
    let root = super::read::workspace_root(workspace)?;
    let relative = relative_inside(&root, workspace, requested)?;
    let Some(file_name) = relative.file_name().map(ToOwned::to_owned) else {
        return Err(format!("{requested} names no file"));
    };
    let mut directory = root.clone();
    if let Some(parent) = relative.parent() {
        for component in parent.components() {
            let next = directory.join(component);
            match std::fs::symlink_metadata(&next) {
                Ok(metadata) if metadata.file_type().is_symlink() => {
                    let target = std::fs::canonicalize(&next)
                        .map_err(|error| format!("{requested}: {error}"))?;
                    if !target.starts_with(&root) || !target.is_dir() {
                        return Err(outside(requested));
                    }
                    directory = target;
                }
                Ok(metadata) if metadata.is_dir() => directory = next,
                Ok(_) => {
                    return Err(format!(
                        "{requested}: {} is a file, not a directory",
                        next.strip_prefix(&root).unwrap_or(&next).display()
                    ));
                }
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                    std::fs::create_dir(&next).map_err(|error| format!("{requested}: {error}"))?;
                    directory = next;
                }
                Err(error) => return Err(format!("{requested}: {error}")),
            }
        }
    }
    let target = directory.join(file_name);
    // An existing link as the file itself: write where it points, if that
    // is inside; the rename then replaces the target, not the link.
    let target = match std::fs::symlink_metadata(&target) {
        Ok(metadata) if metadata.file_type().is_symlink() => {
            let resolved = std::fs::canonicalize(&target).map_err(|_| {
                format!("{requested} is a link to nothing; remove it or write another path")
            })?;
            if !resolved.starts_with(&root) {
                return Err(outside(requested));
            }
            resolved
        }
        Ok(metadata) if metadata.is_dir() => {
            return Err(format!("{requested} is a directory, not a file"));
        }
        _ => target,
    };
    debug_assert!(target.starts_with(&root));
    Ok((root, target))
}

/// `requested` as a normal relative path under the workspace: absolute
/// paths must name the workspace (as given or resolved) as a prefix, and
/// `..` may not climb above it.
fn relative_inside(root: &Path, workspace: &Path, requested: &str) -> Result<PathBuf, String> {
    let path = Path::new(requested);
    let path = if path.is_absolute() {
        path.strip_prefix(root)
            .or_else(|_| path.strip_prefix(workspace))
            .map_err(|_| outside(requested))?
    } else {
        path
    };
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => normal.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                if !normal.pop() {
                    return Err(outside(requested));
                }
            }
            Component::RootDir | Component::Prefix(_) => return Err(outside(requested)),
        }
    }
    if normal.as_os_str().is_empty() {
        return Err(format!(
            "{requested} names the workspace itself, not a file"
        ));
    }
    Ok(normal)
}

fn outside(requested: &str) -> String {
    format!("{requested} is outside the agent's workspace; tools write only inside it")
}

/// Replaces `target` (inside `root`) with `bytes`: a temporary file beside
/// it, synced, then renamed over it. An existing file's permissions are
/// kept.
pub fn replace(root: &Path, target: &Path, bytes: &[u8]) -> Result<(), String> {
    if bytes.len() > FILE_BYTES_MAX {
        return Err(format!(
            "the content is {} bytes; files are written up to {FILE_BYTES_MAX} bytes",
            bytes.len()
        ));
    }
    let directory = target.parent().ok_or("the file has no directory")?;
    let name = target
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = directory.join(format!(".{name}.{}.clawback-tmp", uuid::Uuid::new_v4()));
    let shown = target
        .strip_prefix(root)
        .unwrap_or(target)
        .display()
        .to_string();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temporary)
        .map_err(|error| format!("{shown}: {error}"))?;
    let written = (|| {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let opened = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
                .map_err(|error| format!("{shown}: {error}"))?;
            if !opened.starts_with(root) {
                return Err(outside(&shown));
            }
        }
        if let Ok(existing) = std::fs::metadata(target) {
            let _ = file.set_permissions(existing.permissions());
        }
        file.write_all(bytes)
            .map_err(|error| format!("{shown}: {error}"))?;
        file.sync_all()
            .map_err(|error| format!("{shown}: {error}"))?;
        std::fs::rename(&temporary, target).map_err(|error| format!("{shown}: {error}"))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_and_missing_directories_are_created() {
        let dir = tempfile::tempdir().unwrap();
        let workspace = dir.path().join("ws");
        std::fs::create_dir(&workspace).unwrap();
        let (root, target) = prepare(&workspace, "notes/today/a.md").unwrap();
        assert_eq!(target, root.join("notes/today/a.md"));
        assert!(root.join("notes/today").is_dir());
        replace(&root, &target, b"hello").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "hello");
        let (_, again) = prepare(&workspace, "./notes/../notes/today/a.md").unwrap();
        assert_eq!(again, target);
        let absolute = root.join("b.md");
        assert_eq!(
            prepare(&workspace, absolute.to_str().unwrap()).unwrap().1,
            absolute
        );

        for escape in ["../x", "notes/../../x", "/etc/passwd", ".", "a\0b"] {
            assert!(prepare(&workspace, escape).is_err(), "{escape}");
        }
        assert!(!dir.path().join("x").exists());
    }

    #[test]
    fn links_out_of_the_workspace_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let workspace = dir.path().join("ws");
        let outside_dir = dir.path().join("outside");
        std::fs::create_dir_all(&workspace).unwrap();
        std::fs::create_dir_all(&outside_dir).unwrap();
        std::os::unix::fs::symlink(&outside_dir, workspace.join("out")).unwrap();
        std::os::unix::fs::symlink(outside_dir.join("f"), workspace.join("f")).unwrap();
        assert!(
            prepare(&workspace, "out/x.txt")
                .unwrap_err()
                .contains("outside")
        );
        assert!(
            prepare(&workspace, "f").is_err(),
            "a dangling link out is refused"
        );
        std::fs::write(outside_dir.join("f"), "secret").unwrap();
        assert!(prepare(&workspace, "f").unwrap_err().contains("outside"));
        assert_eq!(
            std::fs::read_to_string(outside_dir.join("f")).unwrap(),
            "secret"
        );
        // A link that stays inside is followed.
        std::fs::create_dir(workspace.join("real")).unwrap();
        std::os::unix::fs::symlink(workspace.join("real"), workspace.join("alias")).unwrap();
        let (root, target) = prepare(&workspace, "alias/y").unwrap();
        assert_eq!(target, root.join("real/y"));
    }
}
