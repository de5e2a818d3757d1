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

/// Where a format puts one setting: a path of object keys, if anywhere.
type Place = Option<&'static [&'static str]>;

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
        let values: [(&'static str, Option<Value>); 7] = [
            ("temperature", self.temperature.map(|v| json!(v))),
            ("top_p", self.top_p.map(|v| json!(v))),
            ("max_tokens", self.max_tokens.map(|v| json!(v))),
            ("stop", (!self.stop.is_empty()).then(|| json!(self.stop))),
            ("seed", self.seed.map(|v| json!(v))),
            (
                "frequency_penalty",
                self.frequency_penalty.map(|v| json!(v)),
            ),
            ("presence_penalty", self.presence_penalty.map(|v| json!(v))),
        ];
        let mut unapplied = Vec::new();
        for ((name, value), path) in values.into_iter().zip(places(api, thinking)) {
            match (value, path) {
                (None, _) => {}
                (Some(value), Some(path)) => put(body, path, value),
                (Some(_), None) => unapplied.push(name),
            }
        }
        unapplied
    }
}

/// Where `api` puts each setting, in `Sampling::apply`'s order
/// (temperature, top_p, max_tokens, stop, seed, frequency and presence
/// penalties); `None` where the format has no place for it.
fn places(api: Api, thinking: bool) -> [Place; 7] {
    // Claude thinking: its temperature, top_p and budget are fixed.
    let unless_thinking = |path: Place| if thinking { None } else { path };
    match api {
        Api::OpenAiCompletions => [
            Some(&["temperature"]),
            Some(&["top_p"]),
            Some(&["max_completion_tokens"]),
            Some(&["stop"]),
            Some(&["seed"]),
            Some(&["frequency_penalty"]),
            Some(&["presence_penalty"]),
        ],
        Api::OpenAiResponses => [
            Some(&["temperature"]),
            Some(&["top_p"]),
            Some(&["max_output_tokens"]),
            None,
            None,
            None,
            None,
        ],
        Api::AnthropicMessages => [
            unless_thinking(Some(&["temperature"])),
            unless_thinking(Some(&["top_p"])),
            unless_thinking(Some(&["max_tokens"])),
            Some(&["stop_sequences"]),
            None,
            None,
            None,
        ],
        Api::Gemini => [
            Some(&["generationConfig", "temperature"]),
            Some(&["generationConfig", "topP"]),
            Some(&["generationConfig", "maxOutputTokens"]),
            Some(&["generationConfig", "stopSequences"]),
            Some(&["generationConfig", "seed"]),
            Some(&["generationConfig", "frequencyPenalty"]),
            Some(&["generationConfig", "presencePenalty"]),
        ],
        Api::Ollama => [
            Some(&["options", "temperature"]),
            Some(&["options", "top_p"]),
            Some(&["options", "num_predict"]),
            Some(&["options", "stop"]),
            Some(&["options", "seed"]),
            Some(&["options", "frequency_penalty"]),
            Some(&["options", "presence_penalty"]),
        ],
        Api::Bedrock => [
            unless_thinking(Some(&["inferenceConfig", "temperature"])),
            unless_thinking(Some(&["inferenceConfig", "topP"])),
            unless_thinking(Some(&["inferenceConfig", "maxTokens"])),
            Some(&["inferenceConfig", "stopSequences"]),
            None,
            None,
            None,
        ],
    }
}

/// Sets `value` at `path` in `body`, making objects on the way.
fn put(body: &mut Value, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut target = body;
    for key in parents {
        if !target[*key].is_object() {
            target[*key] = json!({});
        }
        target = &mut target[*key];
    }
    target[*last] = value;
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
