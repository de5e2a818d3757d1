//! The agent turn an OpenAI-style request asks for: its `messages` (or
//! `/v1/responses` `input` items) folded into one user message and an extra
//! system prompt, as OpenClaw folds them.
//!
//! Why fold instead of replaying the array as a transcript: the session
//! keeps its own transcript (the log's), and a client's array is only what
//! that client remembers. OpenClaw gives the agent the last user (or tool)
//! message as the message to answer, with the earlier ones quoted before it
//! as context; `system` and `developer` messages become the run's extra
//! system prompt. Matching that keeps prompts identical for clients that
//! move between the two gateways.
//!
//! Pure: no state, no I/O; `tests` pins the shapes.

use serde_json::Value;

/// OpenClaw's markers around quoted history (its `buildHistoryContext`).
const HISTORY_MARKER: &str = "[Chat messages since your last reply - for context]";
const CURRENT_MARKER: &str = "[Current message - respond to this]";

/// What a request folds into.
#[derive(Debug, PartialEq, Eq)]
pub struct Prompt {
    /// The run's message; empty when the request has nothing to answer.
    pub message: String,
    pub extra_system_prompt: Option<String>,
}

/// Why a request cannot become a turn.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused(pub String);

/// One conversation entry after normalization.
struct Entry {
    role: &'static str,
    sender: String,
    body: String,
}

/// Folds Chat Completions `messages`. Image parts are refused (clawback's
/// runs carry text only), as is anything that is not an array of objects.
pub fn from_messages(messages: &[Value]) -> Result<Prompt, Refused> {
    let mut system = Vec::new();
    let mut entries = Vec::new();
    for (index, message) in messages.iter().enumerate() {
        let Some(object) = message.as_object() else {
            return Err(Refused(format!("messages.{index}: must be an object")));
        };
        let role = object
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim();
        if has_image(object.get("content")) {
            return Err(Refused(format!(
                "messages.{index}: image_url parts are not supported by clawback yet; send text"
            )));
        }
        let content = if role == "function" && object.get("content") == Some(&Value::Null) {
            Some(String::new())
        } else {
            text_content(object.get("content"))
        };
        let content = content.map(|text| text.trim().to_owned());
        match role {
            "system" | "developer" => {
                if let Some(text) = content.filter(|text| !text.is_empty()) {
                    system.push(text);
                }
                continue;
            }
            "user" | "assistant" | "tool" | "function" => {}
            _ => continue,
        }
        let role: &'static str = match role {
            "user" => "user",
            "assistant" => "assistant",
            _ => "tool",
        };
        let tool_calls = if role == "assistant" {
            assistant_tool_calls(object.get("tool_calls"))
        } else {
            String::new()
        };
        let body = [content.clone().unwrap_or_default(), tool_calls]
            .into_iter()
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join("\n");
        let name = str_field(object, "name");
        let tool_call_id = str_field(object, "tool_call_id");
        let is_tool_result = role == "tool"
            && content.is_some()
            && if object.get("role").and_then(Value::as_str) == Some("function") {
                !name.is_empty()
            } else {
                !tool_call_id.is_empty()
            };
        if body.is_empty() && !is_tool_result {
            continue;
        }
        let sender = match role {
            "assistant" => "Assistant".to_owned(),
            "user" => "User".to_owned(),
            _ if !tool_call_id.is_empty() => format!("Tool:{tool_call_id}"),
            _ if !name.is_empty() => format!("Tool:{name}"),
            _ => "Tool".to_owned(),
        };
        entries.push(Entry { role, sender, body });
    }
    Ok(Prompt {
        message: fold(&entries),
        extra_system_prompt: (!system.is_empty()).then(|| system.join("\n\n")),
    })
}

/// Folds `/v1/responses` `input`: a string is the message; an item list
/// is read like `messages` (`message` items by role, `function_call_output`
/// items as tool results); `instructions` joins the system prompt.
pub fn from_input(input: &Value, instructions: Option<&str>) -> Result<Prompt, Refused> {
    let mut prompt = match input {
        Value::String(text) => Prompt {
            message: text.trim().to_owned(),
            extra_system_prompt: None,
        },
        Value::Array(items) => {
            let mut messages = Vec::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                let kind = item
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("message");
                match kind {
                    "message" => messages.push(item.clone()),
                    "function_call_output" => messages.push(serde_json::json!({
                        "role": "tool",
                        "tool_call_id": item.get("call_id").cloned().unwrap_or(Value::Null),
                        "content": item.get("output").cloned().unwrap_or(Value::Null),
                    })),
                    other => {
                        return Err(Refused(format!(
                            "input.{index}: items of type {other:?} are not supported by clawback yet"
                        )));
                    }
                }
            }
            from_messages(&messages)?
        }
        _ => {
            return Err(Refused(
                "input: must be a string or an array of items".to_owned(),
            ));
        }
    };
    if let Some(instructions) = instructions.map(str::trim).filter(|text| !text.is_empty()) {
        prompt.extra_system_prompt = Some(match prompt.extra_system_prompt {
            Some(system) => format!("{instructions}\n\n{system}"),
            None => instructions.to_owned(),
        });
    }
    Ok(prompt)
}

/// OpenClaw's `buildAgentMessageFromConversationEntries`: the last user or
/// tool entry is the current message; the ones before it are history.
fn fold(entries: &[Entry]) -> String {
    let Some(current) = entries
        .iter()
        .rposition(|entry| entry.role == "user" || entry.role == "tool")
        .or_else(|| entries.len().checked_sub(1))
    else {
        return String::new();
    };
    let history: Vec<String> = entries[..current]
        .iter()
        .map(|entry| format!("{}: {}", entry.sender, entry.body))
        .collect();
    let entry = &entries[current];
    if history.is_empty() && entry.role != "tool" {
        return entry.body.clone();
    }
    let current = format!("{}: {}", entry.sender, entry.body);
    if history.join("\n").trim().is_empty() {
        return current;
    }
    [
        HISTORY_MARKER,
        &history.join("\n"),
        "",
        CURRENT_MARKER,
        &current,
    ]
    .join("\n")
}

/// A string, or the text parts of a content array joined by newlines.
fn text_content(content: Option<&Value>) -> Option<String> {
    match content? {
        Value::String(text) => Some(text.clone()),
        Value::Array(parts) => {
            let texts: Vec<Option<&str>> = parts
                .iter()
                .map(|part| {
                    let kind = part.get("type").and_then(Value::as_str);
                    match (kind, part.get("text").and_then(Value::as_str)) {
                        (Some("text" | "input_text" | "output_text"), Some(text)) => Some(text),
                        _ => part.get("input_text").and_then(Value::as_str),
                    }
                })
                .collect();
            let joined = texts
                .iter()
                .flatten()
                .copied()
                .collect::<Vec<_>>()
                .join("\n");
            (!joined.trim().is_empty() || texts.iter().all(Option::is_some)).then_some(joined)
        }
        _ => None,
    }
}

fn has_image(content: Option<&Value>) -> bool {
    content.and_then(Value::as_array).is_some_and(|parts| {
        parts.iter().any(|part| {
            matches!(
                part.get("type").and_then(Value::as_str),
                Some("image_url" | "input_image")
            )
        })
    })
}

/// An assistant message's tool calls, one line each, as OpenClaw renders
/// them into history.
fn assistant_tool_calls(calls: Option<&Value>) -> String {
    let Some(calls) = calls.and_then(Value::as_array) else {
        return String::new();
    };
    calls
        .iter()
        .filter_map(|call| {
            let id = call.get("id").and_then(Value::as_str)?.trim();
            let function = call.get("function")?;
            let name = function.get("name").and_then(Value::as_str)?.trim();
            if id.is_empty() || name.is_empty() {
                return None;
            }
            let arguments = match function.get("arguments") {
                Some(Value::String(text)) => text.clone(),
                None | Some(Value::Null) => String::new(),
                Some(other) => other.to_string(),
            };
            Some(format!(
                "tool_call id={id} name={name} arguments={arguments}"
            ))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn str_field(object: &serde_json::Map<String, Value>, key: &str) -> String {
    object
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .unwrap_or("")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fold_messages(messages: Value) -> Prompt {
        from_messages(messages.as_array().unwrap()).unwrap()
    }

    #[test]
    fn one_user_message_is_the_message_itself() {
        let prompt = fold_messages(json!([{"role": "user", "content": "  hi  "}]));
        assert_eq!(prompt.message, "hi");
        assert_eq!(prompt.extra_system_prompt, None);
    }

    #[test]
    fn system_and_developer_messages_become_the_extra_system_prompt() {
        let prompt = fold_messages(json!([
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use metric."}]},
            {"role": "user", "content": "How far?"},
        ]));
        assert_eq!(prompt.message, "How far?");
        assert_eq!(
            prompt.extra_system_prompt.as_deref(),
            Some("Be brief.\n\nUse metric.")
        );
    }

    #[test]
    fn earlier_turns_are_quoted_before_the_last_user_message() {
        let prompt = fold_messages(json!([
            {"role": "user", "content": "My name is Ada."},
            {"role": "assistant", "content": "Hello Ada."},
            {"role": "user", "content": [{"type": "text", "text": "What is my name?"}]},
        ]));
        assert_eq!(
            prompt.message,
            "[Chat messages since your last reply - for context]\nUser: My name is Ada.\n\
             Assistant: Hello Ada.\n\n[Current message - respond to this]\nUser: What is my name?"
        );
    }

    #[test]
    fn a_tool_result_is_the_current_message_with_the_call_in_history() {
        let prompt = fold_messages(json!([
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "-3C"},
        ]));
        assert_eq!(
            prompt.message,
            "[Chat messages since your last reply - for context]\nUser: Weather?\n\
             Assistant: tool_call id=call_1 name=weather arguments={\"city\":\"Oslo\"}\n\n\
             [Current message - respond to this]\nTool:call_1: -3C"
        );
    }

    #[test]
    fn nothing_to_answer_folds_to_an_empty_message() {
        assert_eq!(fold_messages(json!([])).message, "");
        assert_eq!(
            fold_messages(json!([{"role": "system", "content": "x"}])).message,
            ""
        );
    }

    #[test]
    fn images_and_non_objects_are_refused_with_the_index() {
        let image = json!([{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}]}]);
        let refused = from_messages(image.as_array().unwrap()).unwrap_err();
        assert!(
            refused.0.starts_with("messages.0: image_url"),
            "{refused:?}"
        );
        let refused = from_messages(&[json!("hi")]).unwrap_err();
        assert_eq!(refused.0, "messages.0: must be an object");
    }

    #[test]
    fn responses_input_as_string_or_items_with_instructions() {
        let prompt = from_input(&json!("hello"), Some("Be terse.")).unwrap();
        assert_eq!(prompt.message, "hello");
        assert_eq!(prompt.extra_system_prompt.as_deref(), Some("Be terse."));
        let items = json!([
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "2+2?"}]},
        ]);
        assert_eq!(from_input(&items, None).unwrap().message, "2+2?");
        let refused = from_input(&json!([{"type": "reasoning"}]), None).unwrap_err();
        assert!(refused.0.contains("\"reasoning\""), "{refused:?}");
        assert!(from_input(&json!(3), None).is_err());
    }
}
