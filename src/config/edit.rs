//! Changes to a config document: merge patches, the redaction marker sent
//! back, and which paths changed.
//!
//! Why here and not in the handlers: these are pure functions over JSON
//! values, the part of `config.set`/`config.patch` worth testing on its own.

use serde_json::{Map, Value};

use crate::redact::REDACTED;

/// RFC 7396 JSON merge patch: objects merge key by key, `null` deletes,
/// anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let target = target.as_object_mut().expect("made an object above");
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// A client that edits what `config.get` returned sends the redaction
/// marker back where secrets were. Each marker is replaced by the value at
/// the same path in the current config, so secrets survive a round trip
/// without ever being shown. A marker with nothing behind it is an error
/// naming the path: writing the marker itself would destroy the secret.
pub fn restore_redacted(new: &mut Value, current: &Value) -> Result<(), String> {
    restore(new, Some(current), &mut String::new())
}

fn restore(new: &mut Value, current: Option<&Value>, path: &mut String) -> Result<(), String> {
    match new {
        Value::String(text) if text == REDACTED => match current {
            Some(value) if !value.is_null() && value != &Value::String(REDACTED.to_owned()) => {
                *new = value.clone();
                Ok(())
            }
            _ => Err(format!(
                "{}: holds the redaction marker {REDACTED} but the current config has no value \
                 there; send the real value",
                display(path)
            )),
        },
        Value::Object(object) => {
            for (key, value) in object.iter_mut() {
                let before = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                let inner = current.and_then(|current| current.get(key.as_str()));
                restore(value, inner, path)?;
                path.truncate(before);
            }
            Ok(())
        }
        Value::Array(items) => {
            for (index, value) in items.iter_mut().enumerate() {
                let before = path.len();
                path.push_str(&format!("[{index}]"));
                let inner = current.and_then(|current| current.get(index));
                restore(value, inner, path)?;
                path.truncate(before);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn display(path: &str) -> &str {
    if path.is_empty() {
        "(the whole config)"
    } else {
        path
    }
}

/// The dotted paths whose values differ, down to the first non-object on
/// either side, sorted.
pub fn changed_paths(old: &Value, new: &Value) -> Vec<String> {
    let mut paths = Vec::new();
    diff(old, new, &mut String::new(), &mut paths);
    paths.sort();
    paths
}

fn diff(old: &Value, new: &Value, path: &mut String, paths: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(old), Value::Object(new)) => {
            let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
            for key in keys {
                let before = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                let missing = Value::Null;
                diff(
                    old.get(key).unwrap_or(&missing),
                    new.get(key).unwrap_or(&missing),
                    path,
                    paths,
                );
                path.truncate(before);
            }
        }
        (old, new) if old != new => paths.push(path.clone()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let mut target = json!({"a": {"b": 1, "c": 2}, "d": [1], "e": 5});
        merge_patch(
            &mut target,
            &json!({"a": {"b": null, "x": 3}, "d": {"k": 1}, "e": null}),
        );
        assert_eq!(target, json!({"a": {"c": 2, "x": 3}, "d": {"k": 1}}));
    }

    #[test]
    fn the_redaction_marker_keeps_the_current_secret_or_is_refused() {
        let current = json!({"gateway": {"auth": {"token": "t0"}}, "list": [{"apiKey": "k"}]});
        let mut new = json!({"gateway": {"auth": {"token": REDACTED, "mode": "token"}},
                             "list": [{"apiKey": REDACTED}]});
        restore_redacted(&mut new, &current).unwrap();
        assert_eq!(new["gateway"]["auth"]["token"], "t0");
        assert_eq!(new["list"][0]["apiKey"], "k");
        let mut orphan = json!({"models": {"providers": {"x": {"apiKey": REDACTED}}}});
        let error = restore_redacted(&mut orphan, &current).unwrap_err();
        assert!(error.starts_with("models.providers.x.apiKey:"), "{error}");
    }

    #[test]
    fn changed_paths_are_the_differing_leaves() {
        let old = json!({"agents": {"defaults": {"maxConcurrent": 8}}, "gateway": {"port": 1}});
        let new = json!({"agents": {"defaults": {"maxConcurrent": 4}}, "gateway": {"port": 1}, "hooks": {"enabled": true}});
        assert_eq!(
            changed_paths(&old, &new),
            ["agents.defaults.maxConcurrent", "hooks"]
        );
        assert!(changed_paths(&new, &new).is_empty());
    }
}
