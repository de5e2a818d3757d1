//! The three frame kinds of OpenClaw's WebSocket protocol (v4), as JSON.
//!
//! Why closed structs: OpenClaw rejects unknown keys on frames and params
//! (`additionalProperties:false`), and clients rely on that strictness, so
//! `deny_unknown_fields` reproduces it. Shapes follow
//! `packages/gateway-protocol/src/schema/frames.ts` as observed on the wire
//! (shared/openclaw/protocol.md §1.1).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A client request. `type` is checked by [`parse_request`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestFrame {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    pub method: String,
    /// Omitted entirely by the CLI for parameterless methods.
    #[serde(default)]
    pub params: Option<Value>,
    #[serde(default)]
    pub traceparent: Option<String>,
    /// Accepted so the frame schema matches OpenClaw's; clawback serves one
    /// profile, so there is nothing to compare it with.
    #[serde(default, rename = "expectedProfileId")]
    #[allow(dead_code)]
    pub expected_profile_id: Option<String>,
}

/// OpenClaw's `ErrorShape`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorShape {
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
    #[serde(rename = "retryAfterMs", skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// Error codes (`ErrorCodes` in gateway-error-details.ts).
pub mod codes {
    pub const INVALID_REQUEST: &str = "INVALID_REQUEST";
    pub const FORBIDDEN: &str = "FORBIDDEN";
    pub const NOT_PAIRED: &str = "NOT_PAIRED";
    pub const UNAVAILABLE: &str = "UNAVAILABLE";
}

impl ErrorShape {
    pub fn new(code: &'static str, message: impl Into<String>) -> ErrorShape {
        ErrorShape {
            code,
            message: message.into(),
            details: None,
            retryable: None,
            retry_after_ms: None,
        }
    }

    pub fn with_message(mut self, message: impl Into<String>) -> ErrorShape {
        self.message = message.into();
        self
    }

    pub fn with_details(mut self, details: Value) -> ErrorShape {
        self.details = Some(details);
        self
    }

    pub fn invalid(message: impl Into<String>) -> ErrorShape {
        ErrorShape::new(codes::INVALID_REQUEST, message)
    }
}

/// Why a text frame is not a request.
#[derive(Debug, PartialEq)]
pub struct FrameError {
    /// The request id, when the frame got far enough to have one.
    pub id: Option<String>,
    pub error: ErrorShape,
}

/// Parses one text frame as a request, with OpenClaw's error messages.
pub fn parse_request(text: &str) -> Result<RequestFrame, FrameError> {
    let value: Value = serde_json::from_str(text).map_err(|error| FrameError {
        id: None,
        error: ErrorShape::invalid(format!("invalid frame: {error}")),
    })?;
    let id = value.get("id").and_then(Value::as_str).map(str::to_owned);
    let frame: RequestFrame = serde_json::from_value(value).map_err(|error| FrameError {
        id: id.clone(),
        error: ErrorShape::invalid(format!("invalid request frame: {error}")),
    })?;
    if frame.kind != "req" {
        return Err(FrameError {
            id,
            error: ErrorShape::invalid(format!(
                "invalid request frame: type must be \"req\", got {:?}",
                frame.kind
            )),
        });
    }
    if frame.id.is_empty() || frame.method.is_empty() {
        return Err(FrameError {
            id,
            error: ErrorShape::invalid("invalid request frame: id and method must be non-empty"),
        });
    }
    if frame
        .traceparent
        .as_ref()
        .is_some_and(|trace| trace.len() > 128)
    {
        return Err(FrameError {
            id,
            error: ErrorShape::invalid("invalid request frame: traceparent is longer than 128"),
        });
    }
    Ok(frame)
}

/// A `res` frame.
pub fn response_ok(id: &str, payload: Value) -> String {
    serde_json::json!({"type": "res", "id": id, "ok": true, "payload": payload}).to_string()
}

/// A failed `res` frame.
pub fn response_error(id: &str, error: &ErrorShape) -> String {
    serde_json::json!({"type": "res", "id": id, "ok": false, "error": error}).to_string()
}

/// An `event` frame. `seq` is per connection; `connect.challenge` has none.
pub fn event(name: &str, payload: Value, seq: Option<u64>, state_version: Option<Value>) -> String {
    let mut frame = serde_json::json!({"type": "event", "event": name, "payload": payload});
    if let Some(seq) = seq {
        frame["seq"] = seq.into();
    }
    if let Some(state_version) = state_version {
        frame["stateVersion"] = state_version;
    }
    frame.to_string()
}

/// An `event` frame around a payload serialized once for every socket
/// (only `seq` differs between sockets). The same JSON as [`event`].
pub fn event_serialized(
    name: &str,
    payload_json: &str,
    seq: u64,
    state_version_json: Option<&str>,
) -> String {
    let name = serde_json::to_string(name).unwrap_or_else(|_| "\"\"".to_owned());
    match state_version_json {
        Some(version) => format!(
            r#"{{"event":{name},"payload":{payload_json},"seq":{seq},"stateVersion":{version},"type":"event"}}"#
        ),
        None => {
            format!(r#"{{"event":{name},"payload":{payload_json},"seq":{seq},"type":"event"}}"#)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pre_serialized_event_is_the_same_frame() {
        let payload = serde_json::json!({"presence": [{"ts": 1}], "text": "a\"b"});
        let version = serde_json::json!({"presence": 3, "health": 1});
        assert_eq!(
            event_serialized(
                "presence",
                &payload.to_string(),
                7,
                Some(&version.to_string())
            ),
            event("presence", payload.clone(), Some(7), Some(version))
        );
        assert_eq!(
            event_serialized("tick", &payload.to_string(), 2, None),
            event("tick", payload, Some(2), None)
        );
    }

    #[test]
    fn requests_parse_with_and_without_params() {
        let frame = parse_request(r#"{"type":"req","id":"1:a","method":"health"}"#).unwrap();
        assert_eq!(
            (frame.id.as_str(), frame.method.as_str()),
            ("1:a", "health")
        );
        assert!(frame.params.is_none());
        let frame =
            parse_request(r#"{"type":"req","id":"2","method":"x","params":{"a":1}}"#).unwrap();
        assert_eq!(frame.params.unwrap()["a"], 1);
    }

    #[test]
    fn bad_frames_are_refused_with_the_id_when_known() {
        let error = parse_request(r#"{"type":"req","id":"7","method":"h","extra":1}"#)
            .expect_err("unknown key");
        assert_eq!(error.id.as_deref(), Some("7"));
        assert!(
            error.error.message.contains("unknown field `extra`"),
            "{error:?}"
        );
        let error = parse_request("not json").expect_err("not json");
        assert_eq!(error.id, None);
        let error = parse_request(r#"{"type":"event","id":"1","method":"h"}"#).expect_err("type");
        assert!(error.error.message.contains("type must be \"req\""));
    }

    #[test]
    fn events_carry_seq_only_when_given() {
        let challenge = event("connect.challenge", serde_json::json!({}), None, None);
        assert!(!challenge.contains("seq"));
        let tick = event("tick", serde_json::json!({"ts": 1}), Some(3), None);
        assert!(tick.contains(r#""seq":3"#));
    }
}
