use super::*;
use crate::agent::provider::{ToolCall, ToolResult};

#[test]
fn the_conversation_renders_as_converse_blocks() {
    let reasoning = json!([{"reasoningContent": {"reasoningText":
                              {"text": "think", "signature": "sig"}}}]);
    let call = ToolCall {
        id: "tooluse_1".to_owned(),
        name: "read".to_owned(),
        arguments: r#"{"path":"a"}"#.to_owned(),
        signature: Some(format!("{REASONING_PREFIX}{reasoning}")),
        signed_by: None,
    };
    let body = request_body(
        "us.anthropic.claude-sonnet-4-v1:0",
        &[
            Message::System("be brief".to_owned()),
            Message::User("a".to_owned()),
            Message::User("b".to_owned()),
            Message::Assistant {
                text: String::new(),
                tool_calls: vec![call],
            },
            Message::Tool(ToolResult {
                call_id: "tooluse_1".to_owned(),
                name: "read".to_owned(),
                output: "no such file".to_owned(),
                is_error: true,
            }),
        ],
        Some(1000),
        Some("low"),
        &[ToolSpec {
            name: "read".to_owned(),
            description: "Read".to_owned(),
            parameters: json!({"type": "object"}),
        }],
    );
    assert_eq!(body["system"], json!([{"text": "be brief"}]));
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": [{"text": "a"}, {"text": "b"}]},
            {"role": "assistant", "content": [reasoning[0], {"toolUse": {"toolUseId": "tooluse_1",
                "name": "read", "input": {"path": "a"}}}]},
            {"role": "user", "content": [{"toolResult": {"toolUseId": "tooluse_1",
                "content": [{"text": "no such file"}], "status": "error"}}]},
        ])
    );
    assert_eq!(
        body["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"]["type"],
        "object"
    );
    assert_eq!(
        body["additionalModelRequestFields"]["thinking"]["budget_tokens"],
        2048
    );
    assert_eq!(body["inferenceConfig"]["maxTokens"], 2048 + 4096);
    // Not a Claude model: no reasoning setting at all.
    let nova = request_body("amazon.nova-pro-v1:0", &[], Some(10), Some("high"), &[]);
    assert!(nova.get("additionalModelRequestFields").is_none());
    assert_eq!(nova["inferenceConfig"]["maxTokens"], 10);
}

#[test]
fn errors_are_classified_by_their_aws_names() {
    let http = |status, kind: &str, message: &str| {
        http_failure(status, Some(kind), &json!({"message": message}).to_string()).class
    };
    assert_eq!(
        http(
            429,
            "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/",
            "Too many requests, please wait before trying again."
        ),
        "rate_limit"
    );
    assert_eq!(
        http(403, "AccessDeniedException", "You don't have access"),
        "auth"
    );
    assert_eq!(
        http(403, "UnrecognizedClientException", "invalid token"),
        "auth"
    );
    assert_eq!(http(403, "ExpiredTokenException", "expired"), "auth");
    assert_eq!(
        http(
            400,
            "ValidationException",
            "Input is too long for requested model."
        ),
        "context_overflow"
    );
    assert_eq!(
        http(400, "ValidationException", "Malformed input request"),
        "unknown"
    );
    assert_eq!(
        http(503, "ServiceUnavailableException", "unavailable"),
        "unknown"
    );
    assert_eq!(http(408, "ModelTimeoutException", "slow"), "timeout");
    let body = json!({"__type": "com.amazon.coral.service#ThrottlingException",
                      "message": "Rate exceeded"});
    assert_eq!(
        http_failure(400, None, &body.to_string()).class,
        "rate_limit"
    );
    assert_eq!(
        classify(None, "throttlingException", "slow down").class,
        "rate_limit"
    );
}

fn frame(headers: &[(&str, &str)], payload: Value) -> Frame {
    let mut decoder = Decoder::default();
    decoder.push(&crate::agent::eventstream::encode(
        headers,
        payload.to_string().as_bytes(),
    ));
    decoder.next_frame().unwrap().unwrap()
}

fn event(kind: &str, payload: Value) -> Frame {
    frame(
        &[(":message-type", "event"), (":event-type", kind)],
        payload,
    )
}

#[test]
fn stream_events_build_the_completion() {
    let mut completion = Completion::default();
    let mut calls = PendingCalls::default();
    let mut reasoning = Reasoning::default();
    let mut deltas = Vec::new();
    let frames = [
        event("messageStart", json!({"role": "assistant", "p": "ab"})),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "hmm"}}}),
        ),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"signature": "sig"}}}),
        ),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 1, "delta": {"text": "Hi"}}),
        ),
        event(
            "contentBlockStart",
            json!({"contentBlockIndex": 2,
                   "start": {"toolUse": {"toolUseId": "tooluse_a", "name": "read"}}}),
        ),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 2, "delta": {"toolUse": {"input": "{\"path\":"}}}),
        ),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 2, "delta": {"toolUse": {"input": "\"a\"}"}}}),
        ),
        event("messageStop", json!({"stopReason": "tool_use"})),
        event(
            "metadata",
            json!({"usage": {"inputTokens": 3, "outputTokens": 4, "cacheReadInputTokens": 5},
                   "metrics": {"latencyMs": 1}}),
        ),
    ];
    for frame in &frames {
        handle(
            frame,
            &mut completion,
            &mut calls,
            &mut reasoning,
            &mut |piece: &str| deltas.push(piece.to_owned()),
        )
        .map_err(|_| "failed")
        .unwrap();
    }
    assert_eq!(deltas, ["Hi"], "reasoning is not reply text");
    assert_eq!(completion.finish_reason, "tool_use");
    assert_eq!(completion.usage.cache_read_tokens, 5);
    assert_eq!(completion.chunks.len(), frames.len());
    assert!(completion.chunks[1].starts_with("contentBlockDelta: {"));
    assert_eq!(
        reasoning.blocks().unwrap(),
        json!([{"reasoningContent": {"reasoningText": {"text": "hmm", "signature": "sig"}}}])
            .to_string()
    );
    let calls = calls.finish();
    assert_eq!(calls[0].id, "tooluse_a");
    assert_eq!(calls[0].arguments, r#"{"path":"a"}"#);
}

#[test]
fn exception_and_error_frames_fail_the_call() {
    let run = |frame: Frame| {
        let mut completion = Completion::default();
        match handle(
            &frame,
            &mut completion,
            &mut PendingCalls::default(),
            &mut Reasoning::default(),
            &mut |_: &str| {},
        ) {
            Err(Handled::Failure(failure)) => failure.class.to_owned(),
            Err(Handled::Broken(detail)) => format!("broken: {detail}"),
            Ok(event) => format!("ok: {event}"),
        }
    };
    let exception = |kind: &str, message: &str| {
        frame(
            &[(":message-type", "exception"), (":exception-type", kind)],
            json!({"message": message}),
        )
    };
    assert_eq!(run(exception("throttlingException", "slow")), "rate_limit");
    assert_eq!(
        run(exception(
            "validationException",
            "Input is too long for requested model."
        )),
        "context_overflow"
    );
    assert_eq!(
        run(exception("serviceUnavailableException", "later")),
        "unknown"
    );
    assert_eq!(
        run(frame(
            &[
                (":message-type", "error"),
                (":error-code", "AccessDeniedException")
            ],
            json!({})
        )),
        "auth"
    );
    assert!(run(frame(&[], json!({}))).starts_with("broken: "));
    assert!(
        run(frame(
            &[(":message-type", "event"), (":event-type", "x")],
            json!(null)
        ))
        .starts_with("ok")
    );
}

#[test]
fn credentials_are_scrubbed_from_messages_before_they_are_cut() {
    let token = "IQoJb3JpZ2luX2VjEXAMPLETOKEN";
    let body = json!({"message": format!(
        "The request signature we calculated does not match... The Canonical String for \
         this request should have been 'POST\n/model/x/converse-stream\n\n\
         x-amz-security-token:{token}\n'")});
    let failure = http_failure(403, Some("InvalidSignatureException"), &body.to_string());
    let scrubbed = scrub(&failure.message, &[token]);
    assert!(!scrubbed.contains(token));
    assert!(scrubbed.contains("x-amz-security-token:<redacted>"));
    // Short strings are never taken for secrets.
    assert_eq!(scrub("a b c", &["a"]), "a b c");
}

#[test]
fn model_ids_are_one_encoded_path_segment() {
    assert_eq!(
        url(
            "https://bedrock-runtime.us-east-1.amazonaws.com/",
            "arn:aws:bedrock:us-east-1:1:application-inference-profile/x"
        ),
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/\
         arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Aapplication-inference-profile%2Fx/converse-stream"
    );
}
