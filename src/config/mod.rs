//! The gateway's config: a JSON5 file (OpenClaw's `openclaw.json` shape),
//! validated against typed sections, hashed for optimistic concurrency, and
//! recorded (redacted) in the log whenever it changes.
//!
//! - `json5`: text to values, and redaction that keeps the text's layout;
//! - `model`: the typed shape, its validation and its JSON Schema;
//! - `file`: the file on disk, its keyed hash, and crash-safe rewrites;
//! - `edit`: merge patches, the redaction marker sent back, changed paths.
//!
//! The file is what the user edits; the log is the history. Whenever the
//! gateway finds the file's hash differs from the last recorded one (at
//! start, before any `config.*` call) it records the new version first.

pub mod edit;
pub mod file;
mod gateway_section;
pub mod json5;
pub mod model;

use std::path::{Path, PathBuf};

use serde_json::Value;

pub use file::ConfigFile;
pub use model::Issue;

/// Where the config is when nothing says otherwise.
pub fn default_path(state_dir: &Path) -> PathBuf {
    state_dir.join("config.json5")
}

/// Where the key of the config hash is kept.
pub fn hash_key_path(state_dir: &Path) -> PathBuf {
    state_dir.join("config-hash.key")
}

/// The config as read now: text, hash, and what validation made of it.
pub struct Loaded {
    pub exists: bool,
    pub raw: String,
    pub hash: String,
    /// The document, or why it is not one.
    pub parsed: Result<Value, String>,
    /// The typed config and its warnings, or the problems found.
    pub checked: Result<model::Checked, Vec<Issue>>,
}

impl Loaded {
    pub fn read(file: &ConfigFile) -> anyhow::Result<Loaded> {
        let text = file.read()?;
        Ok(Loaded::from_text(file, text.exists, text.raw))
    }

    pub fn from_text(file: &ConfigFile, exists: bool, raw: String) -> Loaded {
        let hash = file.hash(&raw);
        let parsed = json5::parse_object(&raw);
        let checked = match &parsed {
            Ok(value) => model::check(value),
            Err(error) => Err(vec![Issue {
                path: String::new(),
                message: error.clone(),
            }]),
        };
        Loaded {
            exists,
            raw,
            hash,
            parsed,
            checked,
        }
    }

    pub fn is_valid(&self) -> bool {
        self.checked.is_ok()
    }

    pub fn issues(&self) -> &[Issue] {
        match &self.checked {
            Ok(_) => &[],
            Err(issues) => issues,
        }
    }

    pub fn warnings(&self) -> &[Issue] {
        match &self.checked {
            Ok(checked) => &checked.warnings,
            Err(_) => &[],
        }
    }

    /// The parsed document with secrets replaced (`{}` if it did not parse).
    pub fn redacted_value(&self) -> Value {
        let mut value = self
            .parsed
            .clone()
            .unwrap_or_else(|_| Value::Object(serde_json::Map::new()));
        crate::redact::redact_value(&mut value);
        value
    }

    /// The file's text with secrets replaced; a text that is not JSON5 is
    /// withheld whole, since what it hides cannot be known.
    pub fn redacted_raw(&self) -> String {
        json5::redact_text(&self.raw).unwrap_or_else(|| crate::redact::REDACTED.to_owned())
    }
}

/// One line per issue, for a person: `path: message`.
pub fn describe(issues: &[Issue]) -> String {
    issues
        .iter()
        .map(|issue| {
            if issue.path.is_empty() {
                issue.message.clone()
            } else {
                format!("{}: {}", issue.path, issue.message)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}
