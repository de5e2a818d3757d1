//! `edit`: exact text replacements in one file of the agent's workspace,
//! as OpenClaw's `edit` tool (`edits: [{oldText, newText}]`, or one
//! `oldText`/`newText` pair).
//!
//! Why exact and unique: a model's idea of a file can be stale; an
//! `oldText` that is missing or appears twice is refused with a message
//! that says which, so the model re-reads instead of corrupting the file.
//! Every `oldText` is matched against the original (not against the
//! result of earlier edits), edits may not overlap, and CRLF files keep
//! their line endings.

use std::sync::Arc;

use serde_json::{Value, json};

use super::writing::{FILE_BYTES_MAX, replace};
use super::{Context, Tool, ToolFuture};

/// Replacements one call may make.
pub const EDITS_MAX: usize = 100;

pub struct Edit;

impl Tool for Edit {
    fn name(&self) -> &'static str {
        "edit"
    }

    fn description(&self) -> &'static str {
        "Exact single-file replacements in the agent's workspace. Each oldText must match the \
         original file exactly once; edits must not overlap. Merge nearby changes into one edit."
    }

    fn parameters(&self) -> Value {
        let pair = json!({
            "type": "object", "additionalProperties": false, "required": ["oldText", "newText"],
            "properties": {
                "oldText": {"type": "string", "minLength": 1,
                            "description": "Exact original text; unique in the file."},
                "newText": {"type": "string", "description": "Replacement text."},
            },
        });
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["path"],
            "properties": {
                "path": {"type": "string", "minLength": 1, "maxLength": 4096,
                         "description": "The file, relative to the workspace."},
                "edits": {"type": "array", "minItems": 1, "maxItems": EDITS_MAX, "items": pair,
                          "description": "Targeted replacements against the original file."},
                "oldText": {"type": "string", "minLength": 1,
                            "description": "One replacement's original text (instead of edits)."},
                "newText": {"type": "string",
                            "description": "One replacement's new text (with oldText)."},
            },
        })
    }

    fn run(&self, context: Arc<Context>, arguments: Value) -> ToolFuture {
        Box::pin(async move {
            let path = arguments["path"].as_str().unwrap_or_default().to_owned();
            let edits = edits(&arguments)?;
            let workspace = context.workspace.clone();
            tokio::task::spawn_blocking(move || edit(&workspace, &path, &edits))
                .await
                .map_err(|error| format!("the edit failed: {error}"))?
        })
    }
}

fn edits(arguments: &Value) -> Result<Vec<(String, String)>, String> {
    let single = (
        arguments.get("oldText").and_then(Value::as_str),
        arguments.get("newText").and_then(Value::as_str),
    );
    match (arguments.get("edits").and_then(Value::as_array), single) {
        (Some(_), (Some(_), _) | (_, Some(_))) => {
            Err("give either edits or oldText/newText, not both".to_owned())
        }
        (Some(edits), _) => Ok(edits
            .iter()
            .map(|edit| {
                (
                    edit["oldText"].as_str().unwrap_or_default().to_owned(),
                    edit["newText"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()),
        (None, (Some(old), Some(new))) => Ok(vec![(old.to_owned(), new.to_owned())]),
        (None, _) => Err("give edits: [{oldText, newText}] (or oldText and newText)".to_owned()),
    }
}

fn edit(
    workspace: &std::path::Path,
    path: &str,
    edits: &[(String, String)],
) -> Result<String, String> {
    let target = super::read::confine(workspace, path).map_err(|error| {
        if error.contains("no such file") {
            format!("{error}; create it with write")
        } else {
            error
        }
    })?;
    let root = super::read::workspace_root(workspace)?;
    let metadata = std::fs::metadata(&target).map_err(|error| format!("{path}: {error}"))?;
    if !metadata.is_file() {
        return Err(format!("{path} is not a regular file"));
    }
    if metadata.len() > FILE_BYTES_MAX as u64 {
        return Err(format!(
            "{path} is larger than {FILE_BYTES_MAX} bytes; edit a smaller file"
        ));
    }
    let bytes = std::fs::read(&target).map_err(|error| format!("{path}: {error}"))?;
    let original =
        String::from_utf8(bytes).map_err(|_| format!("{path} is not a UTF-8 text file"))?;
    let (bom, body) = match original.strip_prefix('\u{feff}') {
        Some(body) => ("\u{feff}", body),
        None => ("", original.as_str()),
    };
    let crlf = body.contains("\r\n");
    let normal = body.replace("\r\n", "\n");
    let changed = apply(&normal, edits, path)?;
    let Some((result, count)) = changed else {
        return Ok(format!(
            "No changes made to {path}. The replacement text is identical to the original."
        ));
    };
    let result = if crlf {
        result.replace('\n', "\r\n")
    } else {
        result
    };
    replace(&root, &target, format!("{bom}{result}").as_bytes())?;
    Ok(format!("Successfully replaced {count} block(s) in {path}."))
}

/// The edited text and how many edits changed it, or `None` if none did.
fn apply(
    text: &str,
    edits: &[(String, String)],
    path: &str,
) -> Result<Option<(String, usize)>, String> {
    let mut spans: Vec<(usize, usize, String)> = Vec::new();
    for (index, (old, new)) in edits.iter().enumerate() {
        let old = old.replace("\r\n", "\n");
        let new = new.replace("\r\n", "\n");
        let mut found = text.match_indices(old.as_str());
        let Some((start, _)) = found.next() else {
            return Err(format!(
                "edit {}: oldText was not found in {path}; read the file again and copy the text exactly",
                index + 1
            ));
        };
        if found.next().is_some() {
            return Err(format!(
                "edit {}: oldText appears more than once in {path}; include more surrounding text so it is unique",
                index + 1
            ));
        }
        if old != new {
            spans.push((start, start + old.len(), new));
        }
    }
    if spans.is_empty() {
        return Ok(None);
    }
    spans.sort_by_key(|span| span.0);
    if spans.windows(2).any(|pair| pair[0].1 > pair[1].0) {
        return Err(format!("edits overlap in {path}; merge them into one edit"));
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end, new) in &spans {
        out.push_str(&text[at..*start]);
        out.push_str(new);
        at = *end;
    }
    out.push_str(&text[at..]);
    Ok(Some((out, spans.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(edits: &[(&str, &str)]) -> Vec<(String, String)> {
        edits
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn edits_match_the_original_once_and_never_overlap() {
        let text = "alpha\nbeta\ngamma\n";
        let (out, count) = apply(text, &pairs(&[("beta", "BETA"), ("alpha", "ALPHA")]), "f")
            .unwrap()
            .unwrap();
        assert_eq!((out.as_str(), count), ("ALPHA\nBETA\ngamma\n", 2));
        assert!(
            apply(text, &pairs(&[("delta", "x")]), "f")
                .unwrap_err()
                .contains("not found")
        );
        assert!(
            apply("a a", &pairs(&[("a", "b")]), "f")
                .unwrap_err()
                .contains("more than once")
        );
        assert!(
            apply(
                text,
                &pairs(&[("alpha\nbeta", "x"), ("beta\ngamma", "y")]),
                "f"
            )
            .unwrap_err()
            .contains("overlap")
        );
        assert_eq!(apply(text, &pairs(&[("beta", "beta")]), "f").unwrap(), None);
    }

    #[test]
    fn crlf_files_keep_their_line_endings_and_bom() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("w.txt"), "\u{feff}one\r\ntwo\r\n").unwrap();
        let said = edit(dir.path(), "w.txt", &pairs(&[("one\ntwo", "uno\ndos")])).unwrap();
        assert_eq!(said, "Successfully replaced 1 block(s) in w.txt.");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("w.txt")).unwrap(),
            "\u{feff}uno\r\ndos\r\n"
        );
        assert!(
            edit(dir.path(), "missing.txt", &pairs(&[("a", "b")]))
                .unwrap_err()
                .contains("create it with write")
        );
    }
}
