//! Bedrock's ConverseStream: SigV4 (or API key) checked, then binary
//! AWS event-stream frames.

use std::sync::Mutex;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::tool_reply;

/// The AWS test key pair the Bedrock endpoint signs with (AWS's own
/// documentation example, never a real key), and the session token it
/// expects when one is sent.
pub const AWS_ACCESS_KEY_ID: &str = "AKIDEXAMPLE";
pub const AWS_SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
pub const AWS_SESSION_TOKEN: &str = "session-token-for-tests";
pub const AWS_REGION: &str = "us-east-1";
/// The AWS environment of a gateway that signs with the test keys.
pub fn aws_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("AWS_ACCESS_KEY_ID", AWS_ACCESS_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", AWS_SECRET_ACCESS_KEY),
        ("AWS_SESSION_TOKEN", AWS_SESSION_TOKEN),
    ]
}

/// A Bedrock API key (`Authorization: Bearer`).
pub const BEDROCK_API_KEY: &str = "bedrock-api-key-test-91c2";

/// Bedrock's ConverseStream: the request authenticated (SigV4 recomputed,
/// or the API key), then binary event-stream frames, delivered in 13-byte
/// pieces so frames straddle reads. `throttled` answers a
/// `throttlingException` frame after `messageStart`; `tool-model` asks for
/// `read` with a `toolUse` block whose input streams in pieces.
pub(super) fn bedrock(
    seen: &Mutex<Vec<Value>>,
    model: &str,
    raw_path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let auth = match bearer {
        Some(key) if key == BEDROCK_API_KEY => Ok("bearer".to_owned()),
        Some(_) => Err((
            "UnrecognizedClientException",
            "The security token included in the request is invalid.".to_owned(),
        )),
        None => verify_sigv4(headers, raw_path, body),
    };
    seen.lock().expect("requests").push(json!({
        "bedrock": model, "path": raw_path, "body": request,
        "auth": auth.as_ref().map(String::as_str).unwrap_or("refused"),
    }));
    if let Err((kind, message)) = auth {
        return Response::builder()
            .status(StatusCode::FORBIDDEN)
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                "x-amzn-ErrorType",
                format!("{kind}:http://internal.amazon.com/coral/com.amazon.coral.service/"),
            )
            .body(Body::from(json!({"message": message}).to_string()))
            .expect("response");
    }
    let event = |kind: &str, payload: Value| {
        frame(
            &[
                (":event-type", kind),
                (":content-type", "application/json"),
                (":message-type", "event"),
            ],
            payload.to_string().as_bytes(),
        )
    };
    let mut frames = vec![event(
        "messageStart",
        json!({"p": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS", "role": "assistant"}),
    )];
    let stop = |frames: &mut Vec<Vec<u8>>, reason: &str, input: u64, output: u64| {
        frames.push(event(
            "messageStop",
            json!({"p": "abcdefghijklmnopqrstuvw", "stopReason": reason}),
        ));
        frames.push(event("metadata", json!({"metrics": {"latencyMs": 412}, "p": "abcdef",
            "usage": {"inputTokens": input, "outputTokens": output, "totalTokens": input + output}})));
    };
    let text_block = |frames: &mut Vec<Vec<u8>>, index: u64, text: &str| {
        for piece in text.split_inclusive(' ') {
            frames.push(event(
                "contentBlockDelta",
                json!({"contentBlockIndex": index,
                "delta": {"text": piece}, "p": "abcdefghijk"}),
            ));
        }
        frames.push(event(
            "contentBlockStop",
            json!({"contentBlockIndex": index, "p": "abcdefghijklm"}),
        ));
    };
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    match model {
        "throttled" => frames.push(frame(
            &[
                (":exception-type", "throttlingException"),
                (":content-type", "application/json"),
                (":message-type", "exception"),
            ],
            json!({"message": "Too many requests, please wait before trying again."})
                .to_string()
                .as_bytes(),
        )),
        "tool-model" | "anthropic.claude-tool-v1:0" => {
            // With thinking on, Claude wants its reasoning back before the
            // tool call it made, as Bedrock answers otherwise.
            let thinking = request["additionalModelRequestFields"]["thinking"].is_object();
            let assistant = messages.iter().rev().find(|m| m["role"] == "assistant");
            if thinking
                && let Some(assistant) = assistant
                && assistant["content"][0]["reasoningContent"]["reasoningText"]["signature"]
                    != "sig-mock-1"
            {
                return Response::builder()
                    .status(StatusCode::BAD_REQUEST)
                    .header(header::CONTENT_TYPE, "application/json")
                    .header(
                        "x-amzn-ErrorType",
                        "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/",
                    )
                    .body(Body::from(
                        json!({"message": "messages.1.content.0.type: Expected `thinking` or \
                            `redacted_thinking`, but found `tool_use`. When `thinking` is enabled, \
                            a final `assistant` message must start with a thinking block."})
                        .to_string(),
                    ))
                    .expect("response");
            }
            let result = messages
                .last()
                .and_then(|last| last["content"].as_array())
                .and_then(|blocks| blocks.iter().find(|b| b["toolResult"].is_object()))
                .and_then(|block| block["toolResult"]["content"][0]["text"].as_str());
            match result {
                Some(result) => {
                    text_block(&mut frames, 0, &tool_reply(result));
                    stop(&mut frames, "end_turn", 52, 9);
                }
                None => {
                    let mut index = 0;
                    if thinking {
                        for delta in [
                            json!({"text": "I should read "}),
                            json!({"text": "the file."}),
                            json!({"signature": "sig-mock-1"}),
                        ] {
                            frames.push(event(
                                "contentBlockDelta",
                                json!({"contentBlockIndex": 0,
                                       "delta": {"reasoningContent": delta}, "p": "abc"}),
                            ));
                        }
                        frames.push(event(
                            "contentBlockStop",
                            json!({"contentBlockIndex": 0, "p": "a"}),
                        ));
                        index = 1;
                    }
                    text_block(&mut frames, index, "Let me look.");
                    index += 1;
                    frames.push(event("contentBlockStart", json!({"contentBlockIndex": index,
                        "start": {"toolUse": {"toolUseId": "tooluse_mock1", "name": "read"}}, "p": "abcd"})));
                    for piece in ["{\"path\": ", "\"notes.txt\"}"] {
                        frames.push(event(
                            "contentBlockDelta",
                            json!({"contentBlockIndex": index,
                            "delta": {"toolUse": {"input": piece}}, "p": "abcdefg"}),
                        ));
                    }
                    frames.push(event(
                        "contentBlockStop",
                        json!({"contentBlockIndex": index, "p": "ab"}),
                    ));
                    stop(&mut frames, "tool_use", 40, 21);
                }
            }
        }
        _ => {
            let said = messages
                .iter()
                .rev()
                .find(|m| m["role"] == "user")
                .and_then(|m| m["content"][0]["text"].as_str())
                .unwrap_or("")
                .to_owned();
            text_block(
                &mut frames,
                0,
                &format!("Bedrock mock here. You said: {said}"),
            );
            stop(&mut frames, "end_turn", 19, 8);
        }
    }
    let bytes = frames.concat();
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(13).map(|piece| Ok(piece.to_vec())).collect();
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/vnd.amazon.eventstream")
        .body(Body::from_stream(futures_util::stream::iter(pieces)))
        .expect("response")
}

/// One event-stream frame with string headers: prelude (total and headers
/// lengths, CRC32 of both), headers, payload, CRC32 of all before it.
pub fn frame(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut head = Vec::new();
    for (name, value) in headers {
        head.push(name.len() as u8);
        head.extend_from_slice(name.as_bytes());
        head.push(7); // string
        head.extend_from_slice(&(value.len() as u16).to_be_bytes());
        head.extend_from_slice(value.as_bytes());
    }
    let total = 12 + head.len() + payload.len() + 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(head.len() as u32).to_be_bytes());
    let prelude = crc32fast::hash(&out);
    out.extend_from_slice(&prelude.to_be_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::sign(&key, data.as_bytes()).as_ref().to_vec()
}

/// Recomputes the request's SigV4 signature from what arrived (method,
/// path, the headers it says it signed, the body) with the test secret,
/// as Bedrock does; returns `sigv4` or the error Bedrock would answer.
pub(super) fn verify_sigv4(
    headers: &HeaderMap,
    raw_path: &str,
    body: &[u8],
) -> Result<String, (&'static str, String)> {
    use sha2::Digest;
    let missing = |what: &str| {
        (
            "MissingAuthenticationTokenException",
            format!("missing {what}"),
        )
    };
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let authorization = get("authorization").ok_or_else(|| missing("authorization"))?;
    let fields = authorization
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or_else(|| {
            (
                "IncompleteSignatureException",
                "not AWS4-HMAC-SHA256".to_owned(),
            )
        })?;
    let field = |name: &str| {
        fields.split(", ").find_map(|part| {
            part.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('='))
        })
    };
    let credential = field("Credential").ok_or_else(|| missing("Credential"))?;
    let signed = field("SignedHeaders").ok_or_else(|| missing("SignedHeaders"))?;
    let signature = field("Signature").ok_or_else(|| missing("Signature"))?;
    let scope: Vec<&str> = credential.split('/').collect();
    if scope.len() != 5 || scope[0] != AWS_ACCESS_KEY_ID {
        return Err((
            "UnrecognizedClientException",
            "The security token included in the request is invalid.".to_owned(),
        ));
    }
    let amz_date = get("x-amz-date").ok_or_else(|| missing("x-amz-date"))?;
    if scope[1] != &amz_date[..8.min(amz_date.len())]
        || scope[2] != AWS_REGION
        || scope[3] != "bedrock"
        || scope[4] != "aws4_request"
    {
        return Err((
            "InvalidSignatureException",
            format!("Credential should be scoped correctly: {credential}"),
        ));
    }
    let names: Vec<&str> = signed.split(';').collect();
    for required in ["host", "x-amz-date", "content-type"] {
        if !names.contains(&required) {
            return Err((
                "InvalidSignatureException",
                format!("{required} is not signed"),
            ));
        }
    }
    if let Some(token) = get("x-amz-security-token") {
        if !names.contains(&"x-amz-security-token") {
            return Err((
                "InvalidSignatureException",
                "the session token is not signed".to_owned(),
            ));
        }
        if token != AWS_SESSION_TOKEN {
            return Err((
                "UnrecognizedClientException",
                "The security token included in the request is invalid.".to_owned(),
            ));
        }
    }
    let mut canonical_headers = String::new();
    for name in &names {
        let value = get(name).ok_or_else(|| missing(name))?;
        canonical_headers.push_str(&format!("{name}:{}\n", value.trim()));
    }
    // The path as received, encoded once more (every service but S3).
    let mut path = String::new();
    for byte in raw_path.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                path.push(byte as char)
            }
            _ => path.push_str(&format!("%{byte:02X}")),
        }
    }
    let canonical = format!(
        "POST\n{path}\n\n{canonical_headers}\n{signed}\n{}",
        hex(&sha2::Sha256::digest(body))
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{}\n{}",
        scope[1..].join("/"),
        hex(&sha2::Sha256::digest(canonical.as_bytes()))
    );
    let mut key = hmac(format!("AWS4{AWS_SECRET_ACCESS_KEY}").as_bytes(), scope[1]);
    for part in [scope[2], scope[3], scope[4]] {
        key = hmac(&key, part);
    }
    if hex(&hmac(&key, &string_to_sign)) != signature {
        // As AWS words it, canonical request (session token included) and all.
        return Err((
            "InvalidSignatureException",
            format!(
                "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.\n\nThe Canonical String for this request should have been\n'{canonical}'\n\nThe String-to-Sign should have been\n'{string_to_sign}'\n"
            ),
        ));
    }
    Ok("sigv4".to_owned())
}
