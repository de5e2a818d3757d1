//! A run's sampling settings (temperature, nucleus, token cap, stop
//! sequences, seed, penalties), as an OpenAI-style client sends them, put
//! into each provider's request in that provider's own words.
//!
//! Why a module: the OpenAI-compatible endpoints accept these fields and a
//! client expects them to act (LangChain sends a temperature with every
//! call); each wire format names and nests them differently, and some
//! have no equivalent. `apply` writes what the format has and returns the
//! names it could not, so the endpoint can say which were not applied
//! rather than drop them silently. The request sent, sampling included,
//! is recorded in `llm.call.requested` as always.

use serde_json::{Value, json};

use super::provider::Api;

/// One setting: its OpenAI name, its value if set, and where the format
/// puts it (a path of object keys), if anywhere.
type Field = (&'static str, Option<Value>, Option<&'static [&'static str]>);

/// What a client asked for; `None` and empty mean "the model's default".
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sampling {
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub max_tokens: Option<u64>,
    pub stop: Vec<String>,
    pub seed: Option<i64>,
    pub frequency_penalty: Option<f64>,
    pub presence_penalty: Option<f64>,
}

impl Sampling {
    pub fn is_empty(&self) -> bool {
        *self == Sampling::default()
    }

    /// Writes the settings into `body` for `api`; returns the OpenAI names
    /// of those the format has no place for. `thinking` says whether the
    /// request has reasoning on (Anthropic then refuses a temperature or
    /// top_p other than its own).
    pub fn apply(&self, api: Api, body: &mut Value, thinking: bool) -> Vec<&'static str> {
        let mut unapplied = Vec::new();
        let set = |body: &mut Value, path: &[&str], value: Value| {
            let mut target = body;
            for key in &path[..path.len() - 1] {
                if !target[*key].is_object() {
                    target[*key] = json!({});
                }
                target = &mut target[*key];
            }
            target[path[path.len() - 1]] = value;
        };
        let stop = (!self.stop.is_empty()).then(|| json!(self.stop));
        let fields: [Field; 7] = match api {
            Api::OpenAiCompletions => [
                (
                    "temperature",
                    self.temperature.map(|v| json!(v)),
                    Some(&["temperature"]),
                ),
                ("top_p", self.top_p.map(|v| json!(v)), Some(&["top_p"])),
                (
                    "max_tokens",
                    self.max_tokens.map(|v| json!(v)),
                    Some(&["max_completion_tokens"]),
                ),
                ("stop", stop, Some(&["stop"])),
                ("seed", self.seed.map(|v| json!(v)), Some(&["seed"])),
                (
                    "frequency_penalty",
                    self.frequency_penalty.map(|v| json!(v)),
                    Some(&["frequency_penalty"]),
                ),
                (
                    "presence_penalty",
                    self.presence_penalty.map(|v| json!(v)),
                    Some(&["presence_penalty"]),
                ),
            ],
            Api::OpenAiResponses => [
                (
                    "temperature",
                    self.temperature.map(|v| json!(v)),
                    Some(&["temperature"]),
                ),
                ("top_p", self.top_p.map(|v| json!(v)), Some(&["top_p"])),
                (
                    "max_tokens",
                    self.max_tokens.map(|v| json!(v)),
                    Some(&["max_output_tokens"]),
                ),
                ("stop", stop, None),
                ("seed", self.seed.map(|v| json!(v)), None),
                (
                    "frequency_penalty",
                    self.frequency_penalty.map(|v| json!(v)),
                    None,
                ),
                (
                    "presence_penalty",
                    self.presence_penalty.map(|v| json!(v)),
                    None,
                ),
            ],
            Api::AnthropicMessages => [
                (
                    "temperature",
                    self.temperature.map(|v| json!(v)),
                    (!thinking).then_some(&["temperature"][..]),
                ),
                (
                    "top_p",
                    self.top_p.map(|v| json!(v)),
                    (!thinking).then_some(&["top_p"][..]),
                ),
                (
                    "max_tokens",
                    self.max_tokens.map(|v| json!(v)),
                    (!thinking).then_some(&["max_tokens"][..]),
                ),
                ("stop", stop, Some(&["stop_sequences"])),
                ("seed", self.seed.map(|v| json!(v)), None),
                (
                    "frequency_penalty",
                    self.frequency_penalty.map(|v| json!(v)),
                    None,
                ),
                (
                    "presence_penalty",
                    self.presence_penalty.map(|v| json!(v)),
                    None,
                ),
            ],
            Api::Gemini => [
                (
                    "temperature",
                    self.temperature.map(|v| json!(v)),
                    Some(&["generationConfig", "temperature"]),
                ),
                (
                    "top_p",
                    self.top_p.map(|v| json!(v)),
                    Some(&["generationConfig", "topP"]),
                ),
                (
                    "max_tokens",
                    self.max_tokens.map(|v| json!(v)),
                    Some(&["generationConfig", "maxOutputTokens"]),
                ),
                ("stop", stop, Some(&["generationConfig", "stopSequences"])),
                (
                    "seed",
                    self.seed.map(|v| json!(v)),
                    Some(&["generationConfig", "seed"]),
                ),
                (
                    "frequency_penalty",
                    self.frequency_penalty.map(|v| json!(v)),
                    Some(&["generationConfig", "frequencyPenalty"]),
                ),
                (
                    "presence_penalty",
                    self.presence_penalty.map(|v| json!(v)),
                    Some(&["generationConfig", "presencePenalty"]),
                ),
            ],
            Api::Ollama => [
                (
                    "temperature",
                    self.temperature.map(|v| json!(v)),
                    Some(&["options", "temperature"]),
                ),
                (
                    "top_p",
                    self.top_p.map(|v| json!(v)),
                    Some(&["options", "top_p"]),
                ),
                (
                    "max_tokens",
                    self.max_tokens.map(|v| json!(v)),
                    Some(&["options", "num_predict"]),
                ),
                ("stop", stop, Some(&["options", "stop"])),
                (
                    "seed",
                    self.seed.map(|v| json!(v)),
                    Some(&["options", "seed"]),
                ),
                (
                    "frequency_penalty",
                    self.frequency_penalty.map(|v| json!(v)),
                    Some(&["options", "frequency_penalty"]),
                ),
                (
                    "presence_penalty",
                    self.presence_penalty.map(|v| json!(v)),
                    Some(&["options", "presence_penalty"]),
                ),
            ],
            Api::Bedrock => [
                (
                    "temperature",
                    self.temperature.map(|v| json!(v)),
                    (!thinking).then_some(&["inferenceConfig", "temperature"][..]),
                ),
                (
                    "top_p",
                    self.top_p.map(|v| json!(v)),
                    (!thinking).then_some(&["inferenceConfig", "topP"][..]),
                ),
                (
                    "max_tokens",
                    self.max_tokens.map(|v| json!(v)),
                    (!thinking).then_some(&["inferenceConfig", "maxTokens"][..]),
                ),
                ("stop", stop, Some(&["inferenceConfig", "stopSequences"])),
                ("seed", self.seed.map(|v| json!(v)), None),
                (
                    "frequency_penalty",
                    self.frequency_penalty.map(|v| json!(v)),
                    None,
                ),
                (
                    "presence_penalty",
                    self.presence_penalty.map(|v| json!(v)),
                    None,
                ),
            ],
        };
        for (name, value, path) in fields {
            match (value, path) {
                (None, _) => {}
                (Some(value), Some(path)) => set(body, path, value),
                (Some(_), None) => unapplied.push(name),
            }
        }
        unapplied
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Sampling {
        Sampling {
            temperature: Some(0.2),
            top_p: Some(0.9),
            max_tokens: Some(64),
            stop: vec!["END".to_owned()],
            seed: Some(7),
            frequency_penalty: Some(0.5),
            presence_penalty: Some(-0.5),
        }
    }

    #[test]
    fn each_format_gets_the_settings_in_its_own_words() {
        let mut body = json!({"model": "m", "max_completion_tokens": 10});
        assert!(
            all()
                .apply(Api::OpenAiCompletions, &mut body, false)
                .is_empty()
        );
        assert_eq!(body["max_completion_tokens"], 64);
        assert_eq!(body["stop"], json!(["END"]));
        assert_eq!(body["seed"], 7);

        let mut body = json!({"generationConfig": {"maxOutputTokens": 10}});
        assert!(all().apply(Api::Gemini, &mut body, false).is_empty());
        assert_eq!(body["generationConfig"]["maxOutputTokens"], 64);
        assert_eq!(body["generationConfig"]["topP"], 0.9);

        let mut body = json!({});
        assert!(all().apply(Api::Ollama, &mut body, false).is_empty());
        assert_eq!(body["options"]["num_predict"], 64);

        let mut body = json!({});
        assert_eq!(
            all().apply(Api::OpenAiResponses, &mut body, false),
            ["stop", "seed", "frequency_penalty", "presence_penalty"]
        );
        assert_eq!(body["max_output_tokens"], 64);

        let mut body = json!({"max_tokens": 1024});
        assert_eq!(
            all().apply(Api::AnthropicMessages, &mut body, false),
            ["seed", "frequency_penalty", "presence_penalty"]
        );
        assert_eq!(
            (body["temperature"].clone(), body["stop_sequences"].clone()),
            (json!(0.2), json!(["END"]))
        );
    }

    #[test]
    fn with_thinking_on_claude_keeps_its_own_temperature_and_budget() {
        let mut body = json!({"max_tokens": 10240, "thinking": {"type": "enabled"}});
        let unapplied = all().apply(Api::AnthropicMessages, &mut body, true);
        assert!(
            unapplied.starts_with(&["temperature", "top_p", "max_tokens"]),
            "{unapplied:?}"
        );
        assert_eq!(body["max_tokens"], 10240);
        assert!(body.get("temperature").is_none());
    }
}
