//! `voicewake.get` / `voicewake.set` (the wake words voice clients listen
//! for, a gateway setting kept in the log) and `talk.mode`.

use clawback_events::event::{Event, VoiceWakeChanged};
use serde_json::{Value, json};

use super::super::frames::{ErrorShape, codes};
use super::{Params, Reply};
use crate::gateway::Gateway;

/// OpenClaw's defaults, used until words are set (or when set to none).
const DEFAULT_TRIGGERS: &[&str] = &["openclaw", "claude", "computer"];
const TRIGGERS_MAX: usize = 32;
const TRIGGER_CHARS_MAX: usize = 64;

pub fn get(gateway: &Gateway, params: Option<&Value>) -> Result<Value, ErrorShape> {
    Params::closed("voicewake.get", params, &[])?;
    Ok(json!({"triggers": current(gateway)}))
}

pub fn set(params: Option<&Value>) -> Reply {
    let parsed = (|| {
        let params = Params::closed("voicewake.set", params, &["triggers"])?;
        let Some(Value::Array(items)) = params.get("triggers") else {
            return Err(ErrorShape::invalid(
                "voicewake.set requires triggers: string[]",
            ));
        };
        if !items.iter().all(Value::is_string) {
            return Err(ErrorShape::invalid(
                "voicewake.set requires triggers: string[]",
            ));
        }
        Ok(normalize(items.iter().filter_map(Value::as_str)))
    })();
    match parsed {
        Ok(triggers) => {
            let mut reply = Reply::answer(Ok(json!({"triggers": triggers})));
            reply.events.push((
                "gateway".to_owned(),
                Event::VoiceWakeChanged(VoiceWakeChanged { triggers }),
            ));
            reply
        }
        Err(error) => Reply::answer(Err(error)),
    }
}

/// Talk mode needs a Talk-capable node; clawback has no nodes yet, so it
/// answers as OpenClaw does when none is connected.
pub fn talk_mode(_params: Option<&Value>) -> Result<Value, ErrorShape> {
    Err(ErrorShape::new(
        codes::UNAVAILABLE,
        "talk disabled: no connected Talk-capable nodes",
    ))
}

fn current(gateway: &Gateway) -> Vec<String> {
    gateway
        .state
        .read()
        .expect("state lock")
        .gateway
        .voice_wake
        .clone()
        .unwrap_or_else(defaults)
}

fn defaults() -> Vec<String> {
    DEFAULT_TRIGGERS
        .iter()
        .map(|word| (*word).to_owned())
        .collect()
}

/// Trimmed, non-empty, at most 32 words of at most 64 characters; none
/// means the defaults.
fn normalize<'a>(words: impl Iterator<Item = &'a str>) -> Vec<String> {
    let cleaned: Vec<String> = words
        .map(str::trim)
        .filter(|word| !word.is_empty())
        .take(TRIGGERS_MAX)
        .map(|word| word.chars().take(TRIGGER_CHARS_MAX).collect())
        .collect();
    if cleaned.is_empty() {
        defaults()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_are_normalized_and_default_when_empty() {
        assert_eq!(
            normalize([" hey claw ", "", "x"].into_iter()),
            ["hey claw", "x"]
        );
        assert_eq!(normalize(std::iter::empty()), defaults());
        let long = "a".repeat(100);
        assert_eq!(normalize([long.as_str()].into_iter())[0].len(), 64);
    }
}
