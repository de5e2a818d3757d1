//! Argument validation against a tool's JSON Schema, before the tool runs.
//!
//! Why our own validator: the registry's schemas use a small, fixed subset
//! of JSON Schema (`type`, `properties`, `required`,
//! `additionalProperties: false`, `minimum`/`maximum`,
//! `minLength`/`maxLength`, `enum`, `items`, `minItems`/`maxItems`,
//! `description`), and a full validator
//! crate would be a large dependency for it. `supported` lets the
//! registry's tests refuse a schema that uses anything else, so a keyword
//! can never be silently ignored.

use serde_json::Value;

/// The keywords `validate` enforces (plus `description`, which it ignores).
const KEYWORDS: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "enum",
    "items",
    "minItems",
    "maxItems",
    "description",
];

/// Whether `schema` only uses keywords `validate` enforces; the first one
/// it does not, as an error.
pub fn supported(schema: &Value) -> Result<(), String> {
    let Some(object) = schema.as_object() else {
        return Err("a schema must be an object".to_owned());
    };
    for (key, value) in object {
        if !KEYWORDS.contains(&key.as_str()) {
            return Err(format!("unsupported keyword {key}"));
        }
        if key == "properties" {
            for property in value.as_object().into_iter().flat_map(|map| map.values()) {
                supported(property)?;
            }
        }
        if key == "items" {
            supported(value)?;
        }
        if key == "additionalProperties" && value != &Value::Bool(false) {
            return Err("additionalProperties must be false".to_owned());
        }
    }
    Ok(())
}

/// Checks `value` against `schema`; the error names the failing path, as
/// the model needs to correct itself.
pub fn validate(schema: &Value, value: &Value) -> Result<(), String> {
    check(schema, value, "")
}

fn check(schema: &Value, value: &Value, path: &str) -> Result<(), String> {
    let at = if path.is_empty() { "/" } else { path };
    if let Some(kind) = schema["type"].as_str() {
        let ok = match kind {
            "object" => value.is_object(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "array" => value.is_array(),
            _ => false,
        };
        if !ok {
            return Err(format!("at {at}: must be {}", article(kind)));
        }
    }
    if let Some(choices) = schema["enum"].as_array()
        && !choices.contains(value)
    {
        let names: Vec<String> = choices.iter().map(Value::to_string).collect();
        return Err(format!("at {at}: must be one of {}", names.join(", ")));
    }
    if let Some(number) = value.as_f64() {
        if let Some(minimum) = schema["minimum"].as_f64()
            && number < minimum
        {
            return Err(format!("at {at}: must be >= {minimum}"));
        }
        if let Some(maximum) = schema["maximum"].as_f64()
            && number > maximum
        {
            return Err(format!("at {at}: must be <= {maximum}"));
        }
    }
    if let Some(text) = value.as_str() {
        let length = text.chars().count() as u64;
        if let Some(min) = schema["minLength"].as_u64()
            && length < min
        {
            return Err(format!("at {at}: must have at least {min} characters"));
        }
        if let Some(max) = schema["maxLength"].as_u64()
            && length > max
        {
            return Err(format!("at {at}: must have at most {max} characters"));
        }
    }
    if let Some(items) = value.as_array() {
        let count = items.len() as u64;
        if let Some(min) = schema["minItems"].as_u64()
            && count < min
        {
            return Err(format!("at {at}: must have at least {min} items"));
        }
        if let Some(max) = schema["maxItems"].as_u64()
            && count > max
        {
            return Err(format!("at {at}: must have at most {max} items"));
        }
        if schema.get("items").is_some() {
            for (index, item) in items.iter().enumerate() {
                check(&schema["items"], item, &format!("{path}/{index}"))?;
            }
        }
    }
    if let Some(object) = value.as_object() {
        let properties = schema["properties"].as_object();
        for name in schema["required"].as_array().into_iter().flatten() {
            if let Some(name) = name.as_str()
                && !object.contains_key(name)
            {
                return Err(format!("at {at}: must have required property '{name}'"));
            }
        }
        for (name, item) in object {
            match properties.and_then(|properties| properties.get(name)) {
                Some(property) => check(property, item, &format!("{path}/{name}"))?,
                None if schema["additionalProperties"] == Value::Bool(false) => {
                    return Err(format!("at {at}: unknown property '{name}'"));
                }
                None => {}
            }
        }
    }
    Ok(())
}

fn article(kind: &str) -> String {
    match kind {
        "object" | "integer" | "array" => format!("an {kind}"),
        _ => format!("a {kind}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "additionalProperties": false, "required": ["path"],
               "properties": {"path": {"type": "string", "minLength": 1},
                              "limit": {"type": "integer", "minimum": 1, "maximum": 10},
                              "mode": {"type": "string", "enum": ["a", "b"]}}})
    }

    #[test]
    fn arguments_are_checked_with_the_failing_path() {
        let schema = schema();
        assert_eq!(validate(&schema, &json!({"path": "x", "limit": 3})), Ok(()));
        let error = |value: Value| validate(&schema, &value).unwrap_err();
        assert_eq!(error(json!("x")), "at /: must be an object");
        assert_eq!(error(json!({})), "at /: must have required property 'path'");
        assert_eq!(
            error(json!({"path": "x", "other": 1})),
            "at /: unknown property 'other'"
        );
        assert_eq!(error(json!({"path": 7})), "at /path: must be a string");
        assert_eq!(
            error(json!({"path": ""})),
            "at /path: must have at least 1 characters"
        );
        assert_eq!(
            error(json!({"path": "x", "limit": 2.5})),
            "at /limit: must be an integer"
        );
        assert_eq!(
            error(json!({"path": "x", "limit": 11})),
            "at /limit: must be <= 10"
        );
        assert_eq!(
            error(json!({"path": "x", "mode": "c"})),
            "at /mode: must be one of \"a\", \"b\""
        );
    }

    #[test]
    fn schemas_using_unenforced_keywords_are_refused() {
        assert_eq!(supported(&schema()), Ok(()));
        assert!(supported(&json!({"type": "object", "pattern": "x"})).is_err());
        assert!(
            supported(&json!({"type": "object", "properties": {"a": {"format": "uri"}}})).is_err()
        );
        assert!(supported(&json!({"additionalProperties": true})).is_err());
    }

    #[test]
    fn array_items_are_checked_each_with_its_index() {
        let schema = json!({"type": "object", "properties": {"edits": {
            "type": "array", "minItems": 1, "maxItems": 2,
            "items": {"type": "object", "required": ["oldText"], "additionalProperties": false,
                      "properties": {"oldText": {"type": "string"}}}}}});
        assert_eq!(supported(&schema), Ok(()));
        assert_eq!(
            validate(&schema, &json!({"edits": [{"oldText": "a"}]})),
            Ok(())
        );
        let error = |value: Value| validate(&schema, &value).unwrap_err();
        assert_eq!(
            error(json!({"edits": []})),
            "at /edits: must have at least 1 items"
        );
        assert_eq!(
            error(json!({"edits": [{"oldText": "a"}, {"oldText": "b"}, {"oldText": "c"}]})),
            "at /edits: must have at most 2 items"
        );
        assert_eq!(
            error(json!({"edits": [{"oldText": "a"}, {"oldText": 1}]})),
            "at /edits/1/oldText: must be a string"
        );
        let unsupported = json!({"type": "array", "items": {"type": "string", "pattern": "x"}});
        assert_eq!(
            supported(&unsupported),
            Err("unsupported keyword pattern".to_owned())
        );
    }
}
