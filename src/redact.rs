//! Secrets out of anything that is recorded or shown: RPC params, configs.
//!
//! Why by key name: params and configs are free-form JSON owned by
//! OpenClaw's schemas; the secret-bearing fields follow a few naming patterns
//! (`token`, `password`, `apiKey`, `secret`, ...). Values under such keys are
//! replaced by OpenClaw's own sentinel, so an exported log reads like
//! OpenClaw's redacted config. A `raw` string (the JSON5 text `config.set`
//! and `config.patch` carry) is redacted inside the text; one that cannot be
//! read as JSON5 is replaced whole, because what it hides cannot be known.
//! Redaction is applied to every request, whatever the method, before the
//! event is built.

use serde_json::Value;

/// OpenClaw's marker for a redacted value.
pub const REDACTED: &str = "__OPENCLAW_REDACTED__";

/// Lowercased key fragments that mark a secret wherever they appear.
/// `token` is not among them: `maxTokens` and `inputTokens` are counts.
const SECRET_KEY_PARTS: &[&str] = &[
    "password",
    "secret",
    "apikey",
    "api_key",
    "authorization",
    "credential",
    "privatekey",
    "private_key",
    "cookie",
];

/// Nesting deeper than this is replaced wholesale: bounded work per request.
const DEPTH_MAX: usize = 64;

pub fn is_secret_key(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    // `token`, `botToken`, `GITHUB_TOKEN`, `refresh_token`: a token is a
    // key ending in it.
    lower.ends_with("token") || SECRET_KEY_PARTS.iter().any(|part| lower.contains(part))
}

fn redact(value: &mut Value, depth: usize) {
    if depth >= DEPTH_MAX {
        *value = Value::String(REDACTED.to_owned());
        return;
    }
    match value {
        Value::Object(object) => {
            for (key, field) in object.iter_mut() {
                if is_secret_key(key) && !field.is_null() {
                    *field = Value::String(REDACTED.to_owned());
                } else if key == "raw"
                    && let Value::String(text) = field
                {
                    *text = crate::config::json5::redact_text(text)
                        .unwrap_or_else(|| REDACTED.to_owned());
                } else {
                    redact(field, depth + 1);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                redact(item, depth + 1);
            }
        }
        _ => {}
    }
}

/// Replaces every secret in `value`, at any depth.
pub fn redact_value(value: &mut Value) {
    redact(value, 0);
}

/// The params as JSON text with secrets replaced; `{}` when absent.
pub fn redact_params(params: Option<&Value>) -> String {
    match params {
        None => "{}".to_owned(),
        Some(params) => {
            let mut copy = params.clone();
            redact(&mut copy, 0);
            copy.to_string()
        }
    }
}

/// [`redact_params`] for a request of `method`: answers to the setup
/// wizard are redacted whole, because which of them is a secret (an API
/// key step) depends on the wizard's state, not on a key name.
pub fn redact_rpc_params(method: &str, params: Option<&Value>) -> String {
    if method == "wizard.next"
        && let Some(Value::Object(object)) = params
        && let Some(Value::Object(answer)) = object.get("answer")
        && answer.contains_key("value")
    {
        let mut copy = Value::Object(object.clone());
        copy["answer"]["value"] = Value::String(REDACTED.to_owned());
        return redact_params(Some(&copy));
    }
    redact_params(params)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn wizard_answers_are_redacted_whole() {
        let params = json!({"sessionId": "s", "answer": {"stepId": "apiKey", "value": "sk-live"}});
        let text = redact_rpc_params("wizard.next", Some(&params));
        assert!(!text.contains("sk-live"), "{text}");
        assert!(text.contains("apiKey"), "{text}");
        let other = redact_rpc_params("wizard.status", Some(&json!({"sessionId": "s"})));
        assert_eq!(other, "{\"sessionId\":\"s\"}");
    }

    #[test]
    fn secrets_are_replaced_at_any_depth_and_the_rest_kept() {
        let params = json!({
            "raw": "{ gateway: { auth: { token: 'x-raw-secret' } } } // kept",
            "other": {"raw": "not json5 {"},
            "auth": {"token": "s3cret", "mode": "token"},
            "providers": [{"apiKey": "sk-1", "name": "openai"}],
            "GITHUB_TOKEN": "ghp", "nothing": null, "deviceToken": null,
            "usage": {"maxTokens": 8192, "inputTokens": 3}, "botToken": "bt-1",
        });
        let text = redact_params(Some(&params));
        assert!(!text.contains("s3cret") && !text.contains("sk-1") && !text.contains("ghp"));
        assert!(!text.contains("x-raw-secret"), "{text}");
        let redacted: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            redacted["raw"],
            format!("{{ gateway: {{ auth: {{ token: \"{REDACTED}\" }} }} }} // kept")
        );
        assert_eq!(redacted["other"]["raw"], REDACTED);
        assert_eq!(redacted["auth"]["mode"], "token");
        assert_eq!(redacted["providers"][0]["name"], "openai");
        assert_eq!(redacted["providers"][0]["apiKey"], REDACTED);
        assert_eq!(redacted["deviceToken"], Value::Null);
        assert_eq!(
            redacted["usage"],
            json!({"maxTokens": 8192, "inputTokens": 3})
        );
        assert_eq!(redacted["botToken"], REDACTED);
        assert_eq!(redact_params(None), "{}");
    }
}
