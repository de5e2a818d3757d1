//! `hooks.mappings`: which mapping owns a `POST <hooks.path>/<name>`, and
//! the `{{...}}` templates that turn its JSON body into a message.
//!
//! Pure functions of the request and the config (the clock only through
//! `now`, passed in), so they are tested here without a server. The
//! template language is OpenClaw's: `{{payload.a.b}}` or `{{a.b}}`, array
//! indexes (`{{messages[0].subject}}`), `{{headers.x-event-type}}`,
//! `{{query.kind}}`, `{{path}}`, `{{now}}`; a missing or null value is
//! empty, an object or array is its JSON.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::config::model::HookMapping;

/// Items of a `forEach` array acted on, at most (OpenClaw's cap; the rest
/// are dropped with a warning).
pub const FOR_EACH_ITEMS_MAX: usize = 200;

/// What a template can see.
pub struct TemplateContext<'a> {
    pub payload: &'a Value,
    /// Lowercased names; secret-bearing headers are left out by the caller.
    pub headers: &'a BTreeMap<String, String>,
    pub query: &'a BTreeMap<String, String>,
    pub path: &'a str,
    pub now: &'a str,
}

/// A mapping's path as matched: without leading or trailing slashes.
pub fn normalize_path(path: &str) -> &str {
    path.trim().trim_matches('/')
}

/// The first mapping that owns `sub_path` with this payload: both its
/// `match.path` and `match.source` (when given) must hold.
pub fn find<'a>(
    mappings: &'a [HookMapping],
    sub_path: &str,
    payload: &Value,
) -> Option<&'a HookMapping> {
    let sub_path = normalize_path(sub_path);
    mappings.iter().find(|mapping| {
        let Some(rule) = &mapping.r#match else {
            return true;
        };
        let path_ok = rule
            .path
            .as_deref()
            .is_none_or(|path| normalize_path(path) == sub_path);
        let source_ok = rule
            .source
            .as_deref()
            .is_none_or(|source| payload.get("source").and_then(Value::as_str) == Some(source));
        path_ok && source_ok
    })
}

/// The payloads a mapping acts on: the payload itself, or with `forEach`
/// one per item of that array (the array replaced by `[item]`), at most
/// `FOR_EACH_ITEMS_MAX`; and how many items were dropped.
pub fn expand(mapping: &HookMapping, payload: &Value) -> (Vec<Value>, usize) {
    let Some(key) = &mapping.for_each else {
        return (vec![payload.clone()], 0);
    };
    let Some(items) = payload.get(key).and_then(Value::as_array) else {
        return (Vec::new(), 0);
    };
    let dropped = items.len().saturating_sub(FOR_EACH_ITEMS_MAX);
    let payloads = items
        .iter()
        .take(FOR_EACH_ITEMS_MAX)
        .map(|item| {
            let mut copy = payload.clone();
            copy[key.as_str()] = Value::Array(vec![item.clone()]);
            copy
        })
        .collect();
    (payloads, dropped)
}

/// Whether `text` holds a `{{...}}` expression.
pub fn is_templated(text: &str) -> bool {
    text.contains("{{") && text.contains("}}")
}

/// Renders `template`: each `{{ expr }}` replaced by its value.
pub fn render(template: &str, context: &TemplateContext<'_>) -> String {
    let mut output = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        let Some(close) = rest[open + 2..].find("}}") else {
            break;
        };
        output.push_str(&rest[..open]);
        let expression = rest[open + 2..open + 2 + close].trim();
        output.push_str(&as_text(resolve(expression, context)));
        rest = &rest[open + 2 + close + 2..];
    }
    output.push_str(rest);
    output
}

fn as_text(value: Option<Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text,
        Some(other @ (Value::Number(_) | Value::Bool(_))) => other.to_string(),
        Some(other) => other.to_string(),
    }
}

fn resolve(expression: &str, context: &TemplateContext<'_>) -> Option<Value> {
    let strings = |map: &BTreeMap<String, String>| {
        Value::Object(
            map.iter()
                .map(|(key, value)| (key.clone(), Value::String(value.clone())))
                .collect::<Map<String, Value>>(),
        )
    };
    match expression {
        "path" => return Some(Value::String(context.path.to_owned())),
        "now" => return Some(Value::String(context.now.to_owned())),
        _ => {}
    }
    if let Some(rest) = expression.strip_prefix("headers.") {
        return lookup(&strings(context.headers), rest);
    }
    if let Some(rest) = expression.strip_prefix("query.") {
        return lookup(&strings(context.query), rest);
    }
    let rest = expression.strip_prefix("payload.").unwrap_or(expression);
    lookup(context.payload, rest)
}

/// `a.b[0].c` in `value`.
fn lookup(value: &Value, path: &str) -> Option<Value> {
    if path.is_empty() {
        return None;
    }
    let mut current = value;
    for segment in path.split('.') {
        let (name, mut indexes) = match segment.find('[') {
            Some(at) => (&segment[..at], &segment[at..]),
            None => (segment, ""),
        };
        if !name.is_empty() {
            current = current.as_object()?.get(name)?;
        }
        while let Some(inner) = indexes.strip_prefix('[') {
            let close = inner.find(']')?;
            let index: usize = inner[..close].parse().ok()?;
            current = current.as_array()?.get(index)?;
            indexes = &inner[close + 1..];
        }
        if !indexes.is_empty() {
            return None;
        }
    }
    Some(current.clone())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn mapping(value: Value) -> HookMapping {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn templates_read_the_payload_headers_query_path_and_clock() {
        let payload = json!({"messages": [{"subject": "Hi", "n": 2}], "from": {"name": "Ann"},
                             "flag": true, "nothing": null});
        let headers = BTreeMap::from([("x-event-type".to_owned(), "push".to_owned())]);
        let query = BTreeMap::from([("kind".to_owned(), "mail".to_owned())]);
        let context = TemplateContext {
            payload: &payload,
            headers: &headers,
            query: &query,
            path: "gmail",
            now: "2026-11-25T16:00:00.000Z",
        };
        assert_eq!(
            render(
                "{{ messages[0].subject }}/{{payload.from.name}}/{{messages[0].n}}/{{flag}}/{{nothing}}/{{missing.deep}}",
                &context
            ),
            "Hi/Ann/2/true//"
        );
        assert_eq!(
            render(
                "{{headers.x-event-type}} {{query.kind}} {{path}} {{now}}",
                &context
            ),
            "push mail gmail 2026-11-25T16:00:00.000Z"
        );
        assert_eq!(render("{{from}}", &context), r#"{"name":"Ann"}"#);
        assert_eq!(
            render("open {{ never closed", &context),
            "open {{ never closed"
        );
        assert!(is_templated("hook:{{id}}") && !is_templated("hook:static"));
    }

    #[test]
    fn the_first_matching_mapping_wins_and_for_each_fans_out() {
        let mappings = vec![
            mapping(json!({"id": "a", "match": {"path": "/github/", "source": "ci"}})),
            mapping(json!({"id": "b", "match": {"path": "github"}, "forEach": "items"})),
        ];
        let found =
            |path: &str, payload: Value| find(&mappings, path, &payload).and_then(|m| m.id.clone());
        assert_eq!(
            found("github", json!({"source": "ci"})).as_deref(),
            Some("a")
        );
        assert_eq!(
            found("/github", json!({"source": "other"})).as_deref(),
            Some("b")
        );
        assert_eq!(found("gitlab", json!({})), None);
        let (payloads, dropped) = expand(&mappings[1], &json!({"items": [1, 2], "x": 0}));
        assert_eq!(
            payloads,
            vec![json!({"items": [1], "x": 0}), json!({"items": [2], "x": 0})]
        );
        assert_eq!(dropped, 0);
        assert_eq!(expand(&mappings[1], &json!({"items": []})).0.len(), 0);
        assert_eq!(expand(&mappings[1], &json!({})).0.len(), 0);
        let many = json!({"items": (0..250).collect::<Vec<_>>()});
        let (payloads, dropped) = expand(&mappings[1], &many);
        assert_eq!((payloads.len(), dropped), (FOR_EACH_ITEMS_MAX, 50));
    }
}
