//! The agent's workspace files (AGENTS.md, SOUL.md, ...): read into the
//! system prompt of every turn, listed and edited through
//! `agents.files.list/get/set`.
//!
//! Why the prompt is rebuilt from the files each turn: a user edits them
//! between turns and expects the next turn to see it. What the model was
//! given is on record anyway: the exact request body is in
//! `llm.call.requested`.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sha2::Digest;

use crate::config::model::ConfigFile;

/// The files OpenClaw's agents read, in prompt order.
pub const FILES: &[&str] = &[
    "AGENTS.md",
    "SOUL.md",
    "TOOLS.md",
    "IDENTITY.md",
    "USER.md",
    "HEARTBEAT.md",
    "BOOTSTRAP.md",
    "MEMORY.md",
];
/// Characters of one file that go into the prompt; the rest is cut, and
/// the prompt says so.
const FILE_PROMPT_CHARS_MAX: usize = 20_000;
/// The largest file `agents.files.set` writes.
pub const FILE_BYTES_MAX: usize = 1024 * 1024;

/// Where an agent's workspace is: its entry's `workspace`, the default
/// `agents.defaults.workspace`, or `<state-dir>/workspace` (`workspace-<id>`
/// for agents other than main).
pub fn dir(config: &ConfigFile, state_root: &Path, agent_id: &str) -> PathBuf {
    let agents = config.agents.as_ref();
    let configured = agents
        .and_then(|agents| agents.entries.get(agent_id))
        .and_then(|entry| entry.workspace.clone())
        .or_else(|| {
            agents
                .and_then(|agents| agents.defaults.as_ref())
                .and_then(|defaults| defaults.workspace.clone())
                .map(|workspace| {
                    if agent_id == "main" {
                        workspace
                    } else {
                        format!("{workspace}-{agent_id}")
                    }
                })
        });
    match configured {
        Some(path) => expand_home(&path),
        None if agent_id == "main" => state_root.join("workspace"),
        None => state_root.join(format!("workspace-{agent_id}")),
    }
}

fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

/// Whether `name` is a workspace file (and so safe to join to the dir).
pub fn is_file_name(name: &str) -> bool {
    FILES.contains(&name)
}

/// A file's entry as `agents.files.*` answer it.
pub fn entry(dir: &Path, name: &str, with_content: bool) -> Value {
    let path = dir.join(name);
    let mut entry = json!({"name": name, "path": path.display().to_string()});
    match std::fs::read(&path) {
        Ok(bytes) => {
            entry["missing"] = json!(false);
            entry["size"] = json!(bytes.len());
            entry["hash"] = json!(sha256_hex(&bytes));
            if let Some(modified) = std::fs::metadata(&path)
                .and_then(|metadata| metadata.modified())
                .ok()
                .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
            {
                entry["updatedAtMs"] = json!(modified.as_millis() as u64);
            }
            if with_content {
                entry["content"] = json!(String::from_utf8_lossy(&bytes));
            }
        }
        Err(_) => {
            entry["missing"] = json!(true);
        }
    }
    entry
}

/// Writes a workspace file atomically; with `expected_hash`, only if the
/// file still has that content (sha256 hex).
pub fn write(
    dir: &Path,
    name: &str,
    content: &str,
    expected_hash: Option<&str>,
) -> Result<(), String> {
    let path = dir.join(name);
    if let Some(expected) = expected_hash {
        let current = std::fs::read(&path).ok().map(|bytes| sha256_hex(&bytes));
        if current.as_deref() != Some(expected) {
            return Err(format!(
                "{name} changed since it was read; re-read it and retry"
            ));
        }
    }
    std::fs::create_dir_all(dir)
        .map_err(|error| format!("cannot create {}: {error}", dir.display()))?;
    let temporary = dir.join(format!(".{name}.tmp"));
    std::fs::write(&temporary, content)
        .and_then(|()| std::fs::rename(&temporary, &path))
        .map_err(|error| format!("cannot write {}: {error}", path.display()))
}

/// The workspace files as system prompt sections, in order.
pub fn prompt_sections(dir: &Path) -> String {
    let mut sections = String::new();
    for name in FILES {
        let Ok(text) = std::fs::read_to_string(dir.join(name)) else {
            continue;
        };
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        sections.push_str(&format!("\n\n## {name}\n\n"));
        match text.char_indices().nth(FILE_PROMPT_CHARS_MAX) {
            None => sections.push_str(text),
            Some((cut, _)) => {
                sections.push_str(&text[..cut]);
                sections.push_str(&format!(
                    "\n\n[{name} is cut here: it is longer than {FILE_PROMPT_CHARS_MAX} characters]"
                ));
            }
        }
    }
    sections
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_round_trip_with_a_hash_guard_and_feed_the_prompt() {
        let dir = tempfile::tempdir().unwrap();
        let workspace = dir.path().join("ws");
        assert_eq!(entry(&workspace, "SOUL.md", false)["missing"], true);
        write(&workspace, "SOUL.md", "Be kind.", None).unwrap();
        let soul = entry(&workspace, "SOUL.md", true);
        assert_eq!(soul["content"], "Be kind.");
        let hash = soul["hash"].as_str().unwrap().to_owned();
        assert!(
            write(&workspace, "SOUL.md", "x", Some("0000"))
                .unwrap_err()
                .contains("changed")
        );
        write(&workspace, "SOUL.md", "Be brief.", Some(&hash)).unwrap();
        write(&workspace, "AGENTS.md", "Use tools.", None).unwrap();
        assert_eq!(
            prompt_sections(&workspace),
            "\n\n## AGENTS.md\n\nUse tools.\n\n## SOUL.md\n\nBe brief."
        );
        assert!(!is_file_name("../etc/passwd") && is_file_name("USER.md"));
    }
}
