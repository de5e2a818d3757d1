//! `write`: creates or overwrites a file in the agent's workspace (parent
//! directories created), as OpenClaw's `write` tool. Confinement and the
//! atomic replace are `writing`'s; what was written is in the log as the
//! call's arguments.

use std::sync::Arc;

use serde_json::{Value, json};

use super::writing::{FILE_BYTES_MAX, prepare, replace};
use super::{Context, Tool, ToolFuture};

pub struct Write;

impl Tool for Write {
    fn name(&self) -> &'static str {
        "write"
    }

    fn description(&self) -> &'static str {
        "Write/overwrite a file in the agent's workspace; creates parent directories. \
         Use only for new files or complete rewrites (use `edit` for changes)."
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["path", "content"],
            "properties": {
                "path": {"type": "string", "minLength": 1, "maxLength": 4096,
                         "description": "The file, relative to the workspace."},
                "content": {"type": "string", "maxLength": FILE_BYTES_MAX,
                            "description": "The whole new content."},
            },
        })
    }

    fn run(&self, context: Arc<Context>, arguments: Value) -> ToolFuture {
        Box::pin(async move {
            let path = arguments["path"].as_str().unwrap_or_default().to_owned();
            let content = arguments["content"].as_str().unwrap_or_default().to_owned();
            let workspace = context.workspace.clone();
            tokio::task::spawn_blocking(move || write(&workspace, &path, &content))
                .await
                .map_err(|error| format!("the write failed: {error}"))?
        })
    }
}

fn write(workspace: &std::path::Path, path: &str, content: &str) -> Result<String, String> {
    let (root, target) = prepare(workspace, path)?;
    if std::fs::read(&target).is_ok_and(|existing| existing == content.as_bytes()) {
        return Ok(format!(
            "No changes made to {path}. The file already has identical content."
        ));
    }
    replace(&root, &target, content.as_bytes())?;
    Ok(format!(
        "Successfully wrote {} bytes to {path}.",
        content.len()
    ))
}
