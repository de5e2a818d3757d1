//! JSON5 text in, JSON values out, and redaction that keeps the text's shape.
//!
//! Why a parser with positions (jsonc-parser, which reads all of JSON5):
//! `config.get` returns the file as written, comments included, with secrets
//! replaced. Finding each secret's literal in the text and replacing only
//! that span keeps the user's formatting; re-serializing would drop it.

use jsonc_parser::ast;
use jsonc_parser::common::Ranged;
use jsonc_parser::{CollectOptions, ParseOptions};
use serde_json::Value;

use crate::redact::{REDACTED, is_secret_key, redact_value};

/// Nesting deeper than this is refused: bounded work on any input.
const DEPTH_MAX: usize = 64;

/// Parses a JSON5 document whose top level must be an object. Empty (or
/// whitespace-only) text is the empty object, as an empty config file means
/// "all defaults".
pub fn parse_object(text: &str) -> Result<Value, String> {
    if text.trim().is_empty() {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    // The parser recurses per level: refuse deep nesting before it runs, so
    // a hostile document cannot overflow the stack.
    if nesting(text) > DEPTH_MAX {
        return Err(format!("nested deeper than {DEPTH_MAX} levels"));
    }
    let value: Value = jsonc_parser::parse_to_serde_value(text, &ParseOptions::default())
        .map_err(|error| format!("not valid JSON5: {error}"))?;
    match value {
        Value::Object(_) => Ok(value),
        other => Err(format!(
            "the top level must be an object, not {}",
            kind(&other)
        )),
    }
}

/// The text with the value of every secret-named key replaced by OpenClaw's
/// sentinel, everything else (comments, layout) untouched. `None` when the
/// text is not a JSON5 object.
///
/// The result is checked: it must parse to exactly the redacted value of the
/// original. If a span-level edit ever disagreed (an exotic literal), the
/// redacted value is returned as plain JSON instead, so a secret can never
/// slip through the text form.
pub fn redact_text(text: &str) -> Option<String> {
    let mut expected = parse_object(text).ok()?;
    redact_value(&mut expected);
    let parsed =
        jsonc_parser::parse_to_ast(text, &CollectOptions::default(), &ParseOptions::default())
            .ok()?;
    let mut spans = Vec::new();
    if let Some(root) = &parsed.value {
        secret_spans(root, &mut spans, 0);
    }
    let mut redacted = text.to_owned();
    spans.sort_unstable_by_key(|span: &(usize, usize)| std::cmp::Reverse(span.0));
    for (start, end) in spans {
        redacted.replace_range(start..end, &format!("\"{REDACTED}\""));
    }
    match parse_object(&redacted) {
        Ok(value) if value == expected => Some(redacted),
        _ => serde_json::to_string_pretty(&expected).ok(),
    }
}

fn secret_spans(value: &ast::Value<'_>, spans: &mut Vec<(usize, usize)>, depth: usize) {
    if depth >= DEPTH_MAX {
        return;
    }
    match value {
        ast::Value::Object(object) => {
            for property in &object.properties {
                let secret = is_secret_key(property.name.as_str())
                    && !matches!(property.value, ast::Value::NullKeyword(_));
                if secret {
                    let range = property.value.range();
                    spans.push((range.start, range.end));
                } else {
                    secret_spans(&property.value, spans, depth + 1);
                }
            }
        }
        ast::Value::Array(array) => {
            for element in &array.elements {
                secret_spans(element, spans, depth + 1);
            }
        }
        _ => {}
    }
}

/// The deepest bracket nesting in JSON5 text, skipping strings and
/// comments. An over-estimate on malformed text is fine: it only refuses.
fn nesting(text: &str) -> usize {
    let bytes = text.as_bytes();
    let (mut depth, mut deepest, mut index) = (0usize, 0usize, 0usize);
    while index < bytes.len() {
        match bytes[index] {
            quote @ (b'"' | b'\'') => {
                index += 1;
                while index < bytes.len() && bytes[index] != quote {
                    index += if bytes[index] == b'\\' { 2 } else { 1 };
                }
            }
            b'/' if bytes.get(index + 1) == Some(&b'/') => {
                while index < bytes.len() && bytes[index] != b'\n' {
                    index += 1;
                }
            }
            b'/' if bytes.get(index + 1) == Some(&b'*') => {
                index += 2;
                while index + 1 < bytes.len() && !(bytes[index] == b'*' && bytes[index + 1] == b'/')
                {
                    index += 1;
                }
                index += 1;
            }
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        index += 1;
    }
    deepest
}

pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn json5_documents_parse_and_the_top_level_must_be_an_object() {
        let text =
            "// comment\n{ gateway: { port: 18789, bind: 'loopback', }, /* c */ hex: 0x10, }";
        let value = parse_object(text).unwrap();
        assert_eq!(
            value,
            json!({"gateway": {"port": 18789, "bind": "loopback"}, "hex": 16})
        );
        assert_eq!(parse_object("  \n").unwrap(), json!({}));
        let error = parse_object("[1, 2]").unwrap_err();
        assert!(error.contains("top level must be an object"), "{error}");
        let error = parse_object("{ gateway: ").unwrap_err();
        assert!(
            error.starts_with("not valid JSON5:") && error.contains("line 1"),
            "{error}"
        );
        let deep = format!("{}1{}", "{a:".repeat(100_000), "}".repeat(100_000));
        let error = parse_object(&deep).unwrap_err();
        assert!(error.contains("nested deeper"), "{error}");
        let fine = format!("{}1{}", "{a:".repeat(60), "}".repeat(60));
        assert!(parse_object(&fine).is_ok());
        let quoted = format!(
            "{{ a: '{}', b: \"{{{{\" /* [[[ */ }} // {{{{",
            "{".repeat(100)
        );
        assert!(parse_object(&quoted).is_ok(), "{quoted}");
    }

    #[test]
    fn redaction_replaces_only_secret_literals_and_keeps_comments() {
        let text = "{\n  // the shared token\n  gateway: { auth: { mode: 'token', token: 'tok-123' } },\n  models: { providers: { local: { apiKey: \"sk-9\", baseUrl: 'http://x' } } },\n  list: [{ password: 'pw' }, { password: null }],\n}\n";
        let redacted = redact_text(text).unwrap();
        for secret in ["tok-123", "sk-9", "'pw'"] {
            assert!(!redacted.contains(secret), "{secret} leaked: {redacted}");
        }
        assert!(redacted.contains("// the shared token"));
        assert!(redacted.contains("mode: 'token'"));
        assert!(redacted.contains("password: null"));
        assert!(redact_text("not json5").is_none());
    }
}
