//! `read`: a text file inside the agent's workspace, by lines.
//!
//! Why confinement is checked on the resolved path: `..` and symlinks can
//! both point outside the workspace while the path as written looks
//! inside. The path is resolved (every symlink followed), must lie under
//! the resolved workspace, and on Linux the opened file's own path is
//! checked again, so a symlink swapped in between the check and the open
//! is caught too.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};

use super::{Context, Tool, ToolFuture};

/// The most of a file read: a bound on memory per call (the output is cut
/// further, to `OUTPUT_BYTES_MAX`).
pub const FILE_BYTES_MAX: u64 = 1024 * 1024;
/// Lines returned when the call names no `limit` (OpenClaw's read tool
/// returns 2000 too).
pub const LINES_DEFAULT: u64 = 2_000;

pub struct Read;

impl Tool for Read {
    fn name(&self) -> &'static str {
        "read"
    }

    fn description(&self) -> &'static str {
        "Read a text file in the agent's workspace. `path` is relative to the workspace \
         (absolute paths must lie inside it). Returns up to `limit` lines from line `offset` \
         (1-based); long outputs are truncated."
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["path"],
            "properties": {
                "path": {"type": "string", "minLength": 1, "maxLength": 4096,
                         "description": "The file, relative to the workspace."},
                "offset": {"type": "integer", "minimum": 1,
                           "description": "The first line to return (1-based)."},
                "limit": {"type": "integer", "minimum": 1, "maximum": 100000,
                          "description": "How many lines to return."},
            },
        })
    }

    fn run(&self, context: Arc<Context>, arguments: Value) -> ToolFuture {
        Box::pin(async move {
            let path = arguments["path"].as_str().unwrap_or_default().to_owned();
            let offset = arguments["offset"].as_u64().unwrap_or(1);
            let limit = arguments["limit"].as_u64().unwrap_or(LINES_DEFAULT);
            let workspace = context.workspace.clone();
            tokio::task::spawn_blocking(move || read(&workspace, &path, offset, limit))
                .await
                .map_err(|error| format!("the read failed: {error}"))?
        })
    }
}

/// The workspace with every link resolved: what confined paths must lie
/// under.
pub fn workspace_root(workspace: &Path) -> Result<PathBuf, String> {
    std::fs::canonicalize(workspace).map_err(|error| {
        format!(
            "the agent's workspace {} cannot be opened: {error}",
            workspace.display()
        )
    })
}

/// `requested` resolved inside `workspace`, or why not.
pub fn confine(workspace: &Path, requested: &str) -> Result<PathBuf, String> {
    if requested.contains('\0') {
        return Err("the path contains a NUL byte".to_owned());
    }
    let root = workspace_root(workspace)?;
    let candidate = root.join(requested);
    let resolved = std::fs::canonicalize(&candidate).map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => format!("{requested}: no such file in the workspace"),
        _ => format!("{requested}: {error}"),
    })?;
    if !resolved.starts_with(&root) {
        return Err(format!(
            "{requested} is outside the agent's workspace; only files inside it can be read"
        ));
    }
    Ok(resolved)
}

fn read(workspace: &Path, requested: &str, offset: u64, limit: u64) -> Result<String, String> {
    let path = confine(workspace, requested)?;
    // Only regular files: opening a FIFO or a device could block the call
    // (and a thread) for good.
    let kind = std::fs::metadata(&path).map_err(|error| format!("{requested}: {error}"))?;
    if kind.is_dir() {
        return Err(format!("{requested} is a directory, not a file"));
    }
    if !kind.is_file() {
        return Err(format!("{requested} is not a regular file"));
    }
    let file = std::fs::File::open(&path).map_err(|error| format!("{requested}: {error}"))?;
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let opened = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
            .map_err(|error| format!("{requested}: {error}"))?;
        let root = workspace_root(workspace)?;
        if !opened.starts_with(&root) {
            return Err(format!("{requested} is outside the agent's workspace"));
        }
    }
    let metadata = file
        .metadata()
        .map_err(|error| format!("{requested}: {error}"))?;
    if !metadata.is_file() {
        return Err(format!("{requested} is not a regular file"));
    }
    let mut bytes = Vec::new();
    file.take(FILE_BYTES_MAX)
        .read_to_end(&mut bytes)
        .map_err(|error| format!("{requested}: {error}"))?;
    let cut_short = metadata.len() > FILE_BYTES_MAX;
    if cut_short {
        // The cut may split a character; keep what decodes.
        let valid = match std::str::from_utf8(&bytes) {
            Ok(_) => bytes.len(),
            Err(error) => error.valid_up_to(),
        };
        bytes.truncate(valid);
    }
    let text =
        String::from_utf8(bytes).map_err(|_| format!("{requested} is not a UTF-8 text file"))?;
    let total_lines = text.lines().count() as u64;
    if offset > total_lines.max(1) {
        return Err(format!(
            "offset {offset} is beyond the end of {requested} ({total_lines} lines)"
        ));
    }
    let mut out: String = text
        .lines()
        .skip((offset - 1) as usize)
        .take(limit as usize)
        .collect::<Vec<_>>()
        .join("\n");
    let next = offset + limit;
    if next <= total_lines {
        out.push_str(&format!(
            "\n[{} more lines; continue with offset={next}]",
            total_lines - next + 1
        ));
    }
    if cut_short {
        out.push_str(&format!(
            "\n[the file is {} bytes; only the first {FILE_BYTES_MAX} were read]",
            metadata.len()
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let workspace = dir.path().join("workspace");
        std::fs::create_dir_all(workspace.join("notes")).expect("mkdir");
        std::fs::write(workspace.join("notes/a.txt"), "one\ntwo\nthree\n").expect("write");
        std::fs::write(dir.path().join("secret.txt"), "outside").expect("write");
        (dir, workspace)
    }

    #[test]
    fn reads_lines_inside_the_workspace() {
        let (_dir, workspace) = setup();
        assert_eq!(
            read(&workspace, "notes/a.txt", 1, 10),
            Ok("one\ntwo\nthree".to_owned())
        );
        assert_eq!(
            read(&workspace, "notes/a.txt", 2, 1),
            Ok("two\n[1 more lines; continue with offset=3]".to_owned())
        );
        let absolute = workspace.join("notes/a.txt");
        assert!(read(&workspace, absolute.to_str().expect("utf-8"), 1, 1).is_ok());
        assert_eq!(
            read(&workspace, "notes/./../notes/a.txt", 3, 5),
            Ok("three".to_owned())
        );
    }

    #[test]
    fn paths_escaping_the_workspace_are_refused() {
        let (dir, workspace) = setup();
        let refused = |path: &str| {
            let error = read(&workspace, path, 1, 10).unwrap_err();
            assert!(
                error.contains("outside the agent's workspace"),
                "{path}: {error}"
            );
        };
        refused("../secret.txt");
        refused("notes/../../secret.txt");
        refused(dir.path().join("secret.txt").to_str().expect("utf-8"));
        refused("/etc/passwd");
        std::os::unix::fs::symlink(dir.path().join("secret.txt"), workspace.join("link"))
            .expect("symlink");
        refused("link");
        std::os::unix::fs::symlink(dir.path(), workspace.join("up")).expect("symlink");
        refused("up/secret.txt");
        assert!(
            read(&workspace, "missing.txt", 1, 1)
                .unwrap_err()
                .contains("no such file")
        );
        assert!(
            read(&workspace, "notes", 1, 1)
                .unwrap_err()
                .contains("is a directory")
        );
        assert!(read(&workspace, "a\0b", 1, 1).unwrap_err().contains("NUL"));
    }

    #[test]
    fn large_and_binary_files_are_bounded_or_refused() {
        let (_dir, workspace) = setup();
        std::fs::write(workspace.join("bin"), [0xff, 0xfe, 0x00]).expect("write");
        assert!(
            read(&workspace, "bin", 1, 1)
                .unwrap_err()
                .contains("not a UTF-8 text file")
        );
        let big = "x".repeat(FILE_BYTES_MAX as usize + 10);
        std::fs::write(workspace.join("big"), &big).expect("write");
        let out = read(&workspace, "big", 1, 1).expect("read");
        assert!(out.ends_with(&format!(
            "[the file is {} bytes; only the first {FILE_BYTES_MAX} were read]",
            FILE_BYTES_MAX + 10
        )));
    }
}
