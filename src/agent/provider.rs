//! What every provider wire format shares: the messages of a conversation
//! (text, the assistant's tool calls, tool results) and the tools offered,
//! the endpoint, the completed reply with every chunk as received and the
//! tool calls it asked for, the classified failure, and the dispatch from a
//! config's `api` to its adapter.
//!
//! Why a provider-neutral message type: a run may fall back to another
//! provider between two tool rounds, and the next turn may use another
//! model; each adapter renders the same conversation in its own format.

use std::time::Duration;

use clawback_events::event::Usage;
use serde_json::{Value, json};

use super::{anthropic, bedrock, gemini, ollama, openai, openai_responses};

/// OpenClaw's thinking levels.
pub const THINKING_LEVELS: &[&str] = &["off", "minimal", "low", "medium", "high", "xhigh"];

/// The largest reply accepted from a provider: a bound on memory per run.
pub const REPLY_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Chunks kept for the record; beyond this the reply text still grows but
/// the chunk list stops (and says how many it dropped).
pub const CHUNKS_KEPT_MAX: usize = 20_000;

/// The wire formats clawback speaks, by their OpenClaw `api` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    OpenAiCompletions,
    OpenAiResponses,
    AnthropicMessages,
    Ollama,
    Gemini,
    Bedrock,
}

impl Api {
    pub fn parse(name: &str) -> Option<Api> {
        match name {
            "openai-completions" => Some(Api::OpenAiCompletions),
            "openai-responses" => Some(Api::OpenAiResponses),
            "anthropic-messages" => Some(Api::AnthropicMessages),
            "ollama" => Some(Api::Ollama),
            "google-generative-ai" => Some(Api::Gemini),
            "bedrock-converse-stream" => Some(Api::Bedrock),
            _ => None,
        }
    }

    /// The request body; `thinking` (a level, for a model that reasons) is
    /// mapped to the provider's own setting.
    pub fn request_body(
        self,
        model: &str,
        messages: &[Message],
        max_tokens: Option<u64>,
        thinking: Option<&str>,
        tools: &[ToolSpec],
    ) -> Value {
        if self == Api::Bedrock {
            // Its thinking setting depends on the model family.
            return bedrock::request_body(model, messages, max_tokens, thinking, tools);
        }
        let mut body = self.plain_body(model, messages, max_tokens);
        if !tools.is_empty() {
            self.apply_tools(&mut body, tools);
        }
        if let Some(level) = thinking {
            self.apply_thinking(&mut body, level);
        }
        body
    }

    /// OpenClaw's levels (off, minimal, low, medium, high, xhigh) as each
    /// provider expresses them: an effort name, or a token budget.
    fn apply_thinking(self, body: &mut Value, level: &str) {
        let effort = match level {
            "minimal" => "minimal",
            "low" => "low",
            "medium" => "medium",
            "high" | "xhigh" => "high",
            _ => "off",
        };
        let budget: u64 = match level {
            "minimal" => 1_024,
            "low" => 2_048,
            "medium" => 8_192,
            "high" => 16_384,
            "xhigh" => 32_768,
            _ => 0,
        };
        match self {
            Api::OpenAiCompletions if effort != "off" => {
                body["reasoning_effort"] = json!(effort);
            }
            Api::OpenAiResponses if effort != "off" => {
                body["reasoning"] = json!({"effort": effort});
                // Stateless (`store: false`) tool loops must send the
                // reasoning items back with the calls; OpenAI hands them
                // out encrypted only when asked.
                body["include"] = json!(["reasoning.encrypted_content"]);
            }
            Api::AnthropicMessages if budget > 0 => {
                body["thinking"] = json!({"type": "enabled", "budget_tokens": budget});
                // The reply must have room beyond the thinking budget.
                let max = body["max_tokens"].as_u64().unwrap_or(0);
                body["max_tokens"] = json!(max.max(budget + anthropic::MAX_TOKENS_DEFAULT));
            }
            Api::Gemini => {
                body["generationConfig"]["thinkingConfig"] = json!({"thinkingBudget": budget});
            }
            Api::Ollama => body["think"] = json!(budget > 0),
            _ => {}
        }
    }

    /// The tools offered, in the provider's declaration format.
    fn apply_tools(self, body: &mut Value, tools: &[ToolSpec]) {
        match self {
            Api::OpenAiCompletions => body["tools"] = openai::tools(tools),
            Api::OpenAiResponses => body["tools"] = openai_responses::tools(tools),
            Api::AnthropicMessages => body["tools"] = anthropic::tools(tools),
            Api::Ollama => body["tools"] = ollama::tools(tools),
            Api::Gemini => body["tools"] = gemini::tools(tools),
            Api::Bedrock => {}
        }
    }

    fn plain_body(self, model: &str, messages: &[Message], max_tokens: Option<u64>) -> Value {
        match self {
            Api::OpenAiCompletions => openai::request_body(model, messages),
            Api::OpenAiResponses => openai_responses::request_body(model, messages, max_tokens),
            Api::AnthropicMessages => anthropic::request_body(
                model,
                messages,
                max_tokens.unwrap_or(anthropic::MAX_TOKENS_DEFAULT),
            ),
            Api::Ollama => ollama::request_body(model, messages),
            // The model is in Gemini's URL, not its body.
            Api::Gemini => gemini::request_body(model, messages, max_tokens),
            Api::Bedrock => bedrock::request_body(model, messages, max_tokens, None, &[]),
        }
    }

    pub async fn stream(
        self,
        client: &reqwest::Client,
        endpoint: &Endpoint<'_>,
        model: &str,
        body: &Value,
        on_delta: impl FnMut(&str),
    ) -> Result<Completion, Failure> {
        match self {
            Api::OpenAiCompletions => openai::stream(client, endpoint, body, on_delta).await,
            Api::OpenAiResponses => {
                openai_responses::stream(client, endpoint, body, on_delta).await
            }
            Api::AnthropicMessages => anthropic::stream(client, endpoint, body, on_delta).await,
            Api::Ollama => ollama::stream(client, endpoint, body, on_delta).await,
            Api::Gemini => gemini::stream(client, endpoint, model, body, on_delta).await,
            Api::Bedrock => bedrock::stream(client, endpoint, model, body, on_delta).await,
        }
    }
}

pub struct Endpoint<'a> {
    pub base_url: &'a str,
    pub api_key: Option<&'a str>,
    /// AWS keys to sign with (Bedrock), instead of sending a key.
    pub aws: Option<&'a crate::credentials::aws::Signing>,
    pub headers: &'a std::collections::BTreeMap<String, String>,
    pub timeout: Duration,
    /// `api_key` is a Claude Pro/Max sign-in's access token: Anthropic
    /// takes it as a bearer with the OAuth beta (`anthropic`).
    pub oauth: bool,
}

/// One message of a conversation, provider-neutral.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    System(String),
    User(String),
    /// The assistant's text and the tools it asked for (either may be empty).
    Assistant {
        text: String,
        tool_calls: Vec<ToolCall>,
    },
    Tool(ToolResult),
}

impl Message {
    /// The characters a message holds, for the context-size estimate.
    pub fn chars(&self) -> usize {
        match self {
            Message::System(text) | Message::User(text) => text.chars().count(),
            Message::Assistant { text, tool_calls } => {
                text.chars().count()
                    + tool_calls
                        .iter()
                        .map(|call| call.name.len() + call.arguments.len())
                        .sum::<usize>()
            }
            Message::Tool(result) => result.output.chars().count(),
        }
    }
}

/// A tool the model asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolCall {
    /// The provider's call id when it gave a usable one, else one of ours.
    pub id: String,
    pub name: String,
    /// The arguments as JSON text, exactly as the model produced them (they
    /// may not parse: that is the tool's error to report, not ours).
    pub arguments: String,
    /// What the provider needs back with the call: Gemini's
    /// `thoughtSignature` on a `functionCall` part (with `signed_by`: on
    /// every later turn too); Bedrock's reasoning blocks (prefixed
    /// [`super::bedrock::REASONING_PREFIX`]) and Anthropic's thinking
    /// blocks (prefixed [`super::anthropic::THINKING_PREFIX`]), on the
    /// reply's first call, which Claude wants before its tool calls when
    /// thinking is on, within the run (both providers ignore the
    /// reasoning of earlier turns; the recorded chunks hold it anyway).
    pub signature: Option<String>,
    /// The model whose reply carried `signature`, when the provider wants
    /// it back on later turns but only from that model (Gemini): such a
    /// signature is recorded with the call (`toolCalls[].signature` of
    /// `llm.call.completed`) and restored into later turns' context.
    pub signed_by: Option<String>,
}

impl ToolCall {
    /// The arguments as a JSON object for formats that carry objects (an
    /// argument text that does not parse becomes `{}`; the tool already
    /// answered that it was invalid).
    pub fn arguments_object(&self) -> Value {
        match serde_json::from_str::<Value>(&self.arguments) {
            Ok(value @ Value::Object(_)) => value,
            _ => json!({}),
        }
    }
}

/// A tool's answer to one call.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolResult {
    pub call_id: String,
    /// The tool's name (Gemini and Ollama match results by name).
    pub name: String,
    pub output: String,
    pub is_error: bool,
}

/// A tool as offered to the model.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// A JSON Schema (draft 2020-12 subset) for the arguments object.
    pub parameters: Value,
}

/// Tool calls one reply may ask for; a bound on memory and work per round.
pub const TOOL_CALLS_PER_REPLY_MAX: usize = 64;

/// A provider call id we can send back to every provider (Anthropic wants
/// `[A-Za-z0-9_-]+`, OpenAI at most 40 characters), else a fresh one.
pub fn call_id(provided: Option<&str>) -> String {
    match provided {
        Some(id)
            if !id.is_empty()
                && id.len() <= 40
                && id
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-') =>
        {
            id.to_owned()
        }
        _ => {
            let fresh = uuid::Uuid::new_v4().simple().to_string();
            format!("call_{}", &fresh[..24])
        }
    }
}

/// Tool calls assembled from streamed pieces, keyed by the provider's
/// index (or order of appearance), bounded like the reply text.
#[derive(Default)]
pub struct PendingCalls {
    calls: std::collections::BTreeMap<u64, (Option<String>, String, String, Option<String>)>,
    bytes: usize,
}

impl PendingCalls {
    /// Starts or continues call `index` with an id and name (when given).
    pub fn open(
        &mut self,
        index: u64,
        id: Option<&str>,
        name: Option<&str>,
    ) -> Result<(), Failure> {
        if !self.calls.contains_key(&index) && self.calls.len() >= TOOL_CALLS_PER_REPLY_MAX {
            return Err(Failure {
                class: "unknown",
                message: format!(
                    "the reply asked for more than {TOOL_CALLS_PER_REPLY_MAX} tool calls"
                ),
                http_status: None,
            });
        }
        let call = self.calls.entry(index).or_default();
        if let Some(id) = id.filter(|id| !id.is_empty()) {
            call.0 = Some(id.to_owned());
        }
        if let Some(name) = name.filter(|name| !name.is_empty()) {
            call.1.push_str(name);
        }
        Ok(())
    }

    /// Adds a piece of call `index`'s argument text.
    pub fn push_arguments(&mut self, index: u64, piece: &str) -> Result<(), Failure> {
        self.bytes += piece.len();
        if self.bytes > REPLY_BYTES_MAX {
            return Err(Failure::too_long());
        }
        self.open(index, None, None)?;
        if let Some(call) = self.calls.get_mut(&index) {
            call.2.push_str(piece);
        }
        Ok(())
    }

    /// Replaces call `index`'s arguments with the complete text.
    pub fn set_arguments(&mut self, index: u64, arguments: String) -> Result<(), Failure> {
        self.open(index, None, None)?;
        if let Some(call) = self.calls.get_mut(&index) {
            self.bytes = self.bytes.saturating_sub(call.2.len()) + arguments.len();
            if self.bytes > REPLY_BYTES_MAX {
                return Err(Failure::too_long());
            }
            call.2 = arguments;
        }
        Ok(())
    }

    pub fn set_signature(&mut self, index: u64, signature: &str) {
        if let Some(call) = self.calls.get_mut(&index) {
            call.3 = Some(signature.to_owned());
        }
    }

    pub fn len(&self) -> u64 {
        self.calls.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// The calls in index order; empty arguments mean `{}`.
    pub fn finish(self) -> Vec<ToolCall> {
        self.calls
            .into_values()
            .map(|(id, name, arguments, signature)| ToolCall {
                id: call_id(id.as_deref()),
                name,
                arguments: if arguments.trim().is_empty() {
                    "{}".to_owned()
                } else {
                    arguments
                },
                signature,
                signed_by: None,
            })
            .collect()
    }
}

/// What a successful call returned.
#[derive(Default)]
pub struct Completion {
    pub text: String,
    /// The tools the model asked for, in order (empty for a final answer).
    pub tool_calls: Vec<ToolCall>,
    pub finish_reason: String,
    pub usage: Usage,
    /// Every stream event, in order, as received.
    pub chunks: Vec<String>,
    pub chunks_dropped: usize,
}

/// How a provider takes its key.
pub enum KeyHeader {
    /// `Authorization: Bearer <key>`.
    Bearer,
    /// The key in a header of its own (`x-api-key`, `x-goog-api-key`).
    Named(&'static str),
}

/// Sends `body` to `url` with the endpoint's key and headers; a non-2xx
/// answer is returned as (status, body text) for the adapter to classify.
pub async fn send(
    client: &reqwest::Client,
    endpoint: &Endpoint<'_>,
    url: &str,
    key: KeyHeader,
    extra: &[(&str, &str)],
    body: &Value,
) -> Result<Result<reqwest::Response, (u16, String)>, Failure> {
    let mut request = client.post(url).timeout(endpoint.timeout).json(body);
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    if let Some(secret) = endpoint.api_key {
        request = match key {
            KeyHeader::Bearer => request.bearer_auth(secret),
            KeyHeader::Named(name) => request.header(name, secret),
        };
    }
    for (name, value) in endpoint.headers {
        request = request.header(name, value);
    }
    let response = request
        .send()
        .await
        .map_err(|error| Failure::transport(url, &error))?;
    let status = response.status();
    if status.is_success() {
        Ok(Ok(response))
    } else {
        let text = response.text().await.unwrap_or_default();
        Ok(Err((status.as_u16(), text)))
    }
}

impl Completion {
    /// Adds a piece of the reply (within the size bound) and passes it on.
    pub fn push_text(
        &mut self,
        piece: &str,
        on_delta: &mut impl FnMut(&str),
    ) -> Result<(), Failure> {
        if piece.is_empty() {
            return Ok(());
        }
        if self.text.len() + piece.len() > REPLY_BYTES_MAX {
            return Err(Failure::too_long());
        }
        self.text.push_str(piece);
        on_delta(piece);
        Ok(())
    }

    /// Keeps a raw chunk for the record, within the bound.
    pub fn keep(&mut self, chunk: String) {
        if self.chunks.len() < CHUNKS_KEPT_MAX {
            self.chunks.push(chunk);
        } else {
            self.chunks_dropped += 1;
        }
    }
}

/// A classified failure: `auth`, `rate_limit`, `billing`,
/// `context_overflow`, `timeout` or `unknown`.
#[derive(Debug)]
pub struct Failure {
    pub class: &'static str,
    pub message: String,
    pub http_status: Option<u16>,
}

impl Failure {
    pub fn transport(url: &str, error: &reqwest::Error) -> Failure {
        Failure {
            class: if error.is_timeout() {
                "timeout"
            } else {
                "unknown"
            },
            message: format!("cannot reach {url}: {error}"),
            http_status: None,
        }
    }

    pub fn broken(url: &str, detail: &str) -> Failure {
        Failure {
            class: "unknown",
            message: format!("the stream from {url} broke: {detail}"),
            http_status: None,
        }
    }

    pub fn too_long() -> Failure {
        Failure {
            class: "unknown",
            message: format!("the reply exceeded {REPLY_BYTES_MAX} bytes"),
            http_status: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinking_levels_map_to_each_provider() {
        let messages = [Message::User("hi".to_owned())];
        let body = |api: Api, level| api.request_body("m", &messages, Some(1000), Some(level), &[]);
        assert_eq!(
            body(Api::OpenAiCompletions, "xhigh")["reasoning_effort"],
            "high"
        );
        assert!(
            body(Api::OpenAiCompletions, "off")
                .get("reasoning_effort")
                .is_none()
        );
        assert_eq!(
            body(Api::OpenAiResponses, "low")["reasoning"]["effort"],
            "low"
        );
        let anthropic = body(Api::AnthropicMessages, "medium");
        assert_eq!(anthropic["thinking"]["budget_tokens"], 8192);
        assert_eq!(anthropic["max_tokens"], 8192 + 4096);
        assert_eq!(
            body(Api::Gemini, "off")["generationConfig"]["thinkingConfig"]["thinkingBudget"],
            0
        );
        assert_eq!(body(Api::Ollama, "high")["think"], true);
        // Bedrock: Claude models only, through additionalModelRequestFields.
        let bedrock = Api::Bedrock.request_body(
            "us.anthropic.claude-sonnet-4-5-v1:0",
            &messages,
            None,
            Some("xhigh"),
            &[],
        );
        assert_eq!(
            bedrock["additionalModelRequestFields"]["thinking"],
            json!({"type": "enabled", "budget_tokens": 16384})
        );
    }
}
