//! `wizard.*`: the setup wizard, step by step over the protocol, as
//! OpenClaw's apps drive it (start, answer each step with `next`, cancel,
//! poll `status`).
//!
//! What it sets up: a model provider (OpenAI, Anthropic, Gemini,
//! OpenRouter, Ollama or any OpenAI-compatible URL), its key and the
//! default model, written to the config file through the same checked and
//! recorded path as `config.patch`. Nothing is written before the final
//! confirmation. The channels flow waits for channels (a later issue) and
//! is refused with that reason.
//!
//! Sessions live in memory, bounded in number and idle time: a wizard is a
//! conversation with one client, and only its outcome (the config change)
//! belongs in the log. Answers are redacted whole in the recorded request
//! (see `redact::redact_rpc_params`), since one of them is an API key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::super::frames::{ErrorShape, codes};
use super::{Params, Reply};
use crate::gateway::Gateway;

/// Wizards open at once; OpenClaw admits one setup at a time.
const SETUP_SESSIONS_MAX: usize = 1;
/// A wizard nobody advanced for this long is dropped.
const IDLE_MAX: Duration = Duration::from_secs(30 * 60);

/// The providers the wizard offers: id, label, `api`, base URL, default
/// model, and whether it needs a key.
const PROVIDERS: &[(&str, &str, &str, &str, &str, bool)] = &[
    (
        "openai",
        "OpenAI",
        "openai-completions",
        "https://api.openai.com/v1",
        "gpt-4.1-mini",
        true,
    ),
    (
        "anthropic",
        "Anthropic",
        "anthropic-messages",
        "https://api.anthropic.com",
        "claude-sonnet-4-5",
        true,
    ),
    (
        "google",
        "Google Gemini",
        "google-generative-ai",
        "https://generativelanguage.googleapis.com/v1beta",
        "gemini-2.5-flash",
        true,
    ),
    (
        "openrouter",
        "OpenRouter",
        "openai-completions",
        "https://openrouter.ai/api/v1",
        "openai/gpt-4.1-mini",
        true,
    ),
    (
        "ollama",
        "Ollama (local)",
        "ollama",
        "http://127.0.0.1:11434",
        "llama3.2",
        false,
    ),
    (
        "custom",
        "Another OpenAI-compatible server",
        "openai-completions",
        "",
        "",
        true,
    ),
];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Step {
    Intro,
    Provider,
    BaseUrl,
    ApiKey,
    Model,
    Confirm,
}

impl Step {
    fn id(self) -> &'static str {
        match self {
            Step::Intro => "intro",
            Step::Provider => "provider",
            Step::BaseUrl => "baseUrl",
            Step::ApiKey => "apiKey",
            Step::Model => "model",
            Step::Confirm => "confirm",
        }
    }
}

/// A wizard that finished is dropped at once (its outcome is the config
/// change), so only these two are ever observed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Running,
    Cancelled,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Cancelled => "cancelled",
        }
    }
}

struct Run {
    step: Step,
    status: Status,
    /// The final step was answered yes: write the config.
    confirmed: bool,
    provider: Option<usize>,
    base_url: Option<String>,
    api_key: Option<String>,
    model: Option<String>,
    touched: Instant,
}

/// Open wizard sessions, by session id.
#[derive(Default)]
pub struct Wizards {
    runs: Mutex<HashMap<String, Run>>,
}

impl Wizards {
    fn with<T>(&self, id: &str, f: impl FnOnce(&mut Run) -> T) -> Result<T, ErrorShape> {
        let mut runs = self.runs.lock().expect("wizards lock");
        runs.retain(|_, run| run.touched.elapsed() < IDLE_MAX);
        let run = runs.get_mut(id).ok_or_else(not_found)?;
        run.touched = Instant::now();
        Ok(f(run))
    }
}

fn not_found() -> ErrorShape {
    ErrorShape::invalid("wizard not found").with_details(json!({"code": "WIZARD_NOT_FOUND"}))
}

/// `wizard.start`.
pub fn start(gateway: &Gateway, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let params = Params::closed(
        "wizard.start",
        params,
        &["mode", "workspace", "installDaemon", "flow", "channel"],
    )?;
    if params.opt_choice("flow", &["setup", "channels"])? == Some("channels") {
        return Err(ErrorShape::new(
            codes::UNAVAILABLE,
            "the channels setup flow needs chat channels, which clawback does not have yet",
        ));
    }
    if params.opt_choice("mode", &["local", "remote"])? == Some("remote") {
        return Err(ErrorShape::invalid(
            "remote mode points a client at a remote gateway; run the setup on that client",
        ));
    }
    if params.opt_bool("installDaemon")? == Some(true) {
        return Err(ErrorShape::invalid(
            "clawback does not install itself as a service; run `clawback gateway run` under your service manager",
        ));
    }
    params.opt_str("workspace")?;
    params.opt_str("channel")?;
    let mut runs = gateway.wizards.runs.lock().expect("wizards lock");
    runs.retain(|_, run| run.touched.elapsed() < IDLE_MAX && run.status == Status::Running);
    if runs.len() >= SETUP_SESSIONS_MAX {
        return Err(ErrorShape::new(
            codes::UNAVAILABLE,
            "another setup wizard is running; finish or cancel it first",
        )
        .with_details(json!({"code": "SETUP_BUSY"})));
    }
    let id = uuid::Uuid::new_v4().to_string();
    let run = Run {
        step: Step::Intro,
        status: Status::Running,
        confirmed: false,
        provider: None,
        base_url: None,
        api_key: None,
        model: None,
        touched: Instant::now(),
    };
    let mut result = present(&run, gateway);
    runs.insert(id.clone(), run);
    result["sessionId"] = json!(id);
    Ok(result)
}

/// `wizard.next`: takes the answer to the current step (if any) and
/// answers with the next step, or the current one with `error` when the
/// answer does not fit; the last step writes the config.
pub async fn next(gateway: &Arc<Gateway>, params: Option<&Value>) -> Reply {
    let parsed = (|| {
        let params = Params::closed("wizard.next", params, &["sessionId", "answer"])?;
        let id = params.str("sessionId")?.to_owned();
        let answer = match params.get("answer") {
            None => None,
            Some(Value::Object(answer)) => {
                if let Some(key) = answer
                    .keys()
                    .find(|key| *key != "stepId" && *key != "value")
                {
                    return Err(params.invalid(format!(
                        "at /answer: must NOT have additional properties (unexpected property '{key}')"
                    )));
                }
                let step = answer
                    .get("stepId")
                    .and_then(Value::as_str)
                    .filter(|step| !step.is_empty())
                    .ok_or_else(|| {
                        params.invalid("at /answer: must have required property 'stepId'")
                    })?;
                Some((
                    step.to_owned(),
                    answer.get("value").cloned().unwrap_or(Value::Null),
                ))
            }
            Some(_) => return Err(params.invalid("at /answer: must be object")),
        };
        Ok((id, answer))
    })();
    let (id, answer) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => return Reply::answer(Err(error)),
    };
    let advanced = gateway.wizards.with(&id, |run| {
        if let Some((step, value)) = answer {
            if run.status != Status::Running {
                return Err(ErrorShape::invalid("wizard not running"));
            }
            if step != run.step.id() {
                return Err(ErrorShape::invalid(format!(
                    "the wizard is at step \"{}\", not \"{step}\"",
                    run.step.id()
                )));
            }
            if let Err(message) = take_answer(run, &value) {
                let mut result = present(run, gateway);
                result["error"] = json!(message);
                return Ok(Advanced::Show(result));
            }
        }
        if run.status == Status::Running && run.confirmed {
            return Ok(Advanced::Write(config_patch(run)));
        }
        Ok(Advanced::Show(present(run, gateway)))
    });
    let advanced = match advanced.and_then(|inner| inner) {
        Ok(advanced) => advanced,
        Err(error) => return Reply::answer(Err(error)),
    };
    match advanced {
        Advanced::Show(result) => {
            if result["done"] == true {
                gateway
                    .wizards
                    .runs
                    .lock()
                    .expect("wizards lock")
                    .remove(&id);
            }
            Reply::answer(Ok(result))
        }
        Advanced::Write((patch, model_ref)) => {
            let mut reply = super::config::merge(gateway, "wizard", &patch).await;
            let outcome = match &reply.result {
                Ok(_) => Ok(json!({"done": true, "status": "done", "preparedModelRef": model_ref})),
                Err(error) => Err(error.message.clone()),
            };
            gateway
                .wizards
                .runs
                .lock()
                .expect("wizards lock")
                .remove(&id);
            reply.result = match outcome {
                Ok(result) => Ok(result),
                Err(message) => Ok(json!({"done": true, "status": "error", "error": message})),
            };
            reply
        }
    }
}

enum Advanced {
    Show(Value),
    /// The config patch to write and the model it sets up.
    Write((Value, String)),
}

/// Applies an answer to the current step and moves on.
fn take_answer(run: &mut Run, value: &Value) -> Result<(), String> {
    let text = || {
        value
            .as_str()
            .map(str::trim)
            .filter(|text| !text.is_empty())
            .map(str::to_owned)
    };
    let provider = run.provider.map(|index| PROVIDERS[index]);
    run.step = match run.step {
        Step::Intro => Step::Provider,
        Step::Provider => {
            let chosen = value.as_str().unwrap_or_default();
            let index = PROVIDERS
                .iter()
                .position(|(id, ..)| *id == chosen)
                .ok_or_else(|| format!("choose one of: {}", ids().join(", ")))?;
            run.provider = Some(index);
            let (_, _, _, _, _, needs_key) = PROVIDERS[index];
            match PROVIDERS[index].0 {
                "custom" | "ollama" => Step::BaseUrl,
                _ if needs_key => Step::ApiKey,
                _ => Step::Model,
            }
        }
        Step::BaseUrl => {
            let url = text().ok_or("enter the server's base URL")?;
            let parsed =
                reqwest::Url::parse(&url).map_err(|error| format!("not a URL: {error}"))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err("the base URL must start with http:// or https://".to_owned());
            }
            run.base_url = Some(url.trim_end_matches('/').to_owned());
            if provider.is_some_and(|provider| provider.5) {
                Step::ApiKey
            } else {
                Step::Model
            }
        }
        Step::ApiKey => {
            run.api_key = Some(
                text().ok_or("enter the API key, or ${ENV_VAR} to read it from the environment")?,
            );
            Step::Model
        }
        Step::Model => {
            let model = text().ok_or("enter a model id")?;
            if model.chars().any(char::is_whitespace) {
                return Err("a model id has no spaces".to_owned());
            }
            run.model = Some(model);
            Step::Confirm
        }
        Step::Confirm => {
            match value {
                Value::Bool(true) => run.confirmed = true,
                Value::Bool(false) => {
                    run.status = Status::Cancelled;
                }
                _ => {
                    return Err(
                        "answer true to write the config, or false to leave it unchanged"
                            .to_owned(),
                    );
                }
            }
            Step::Confirm
        }
    };
    Ok(())
}

fn ids() -> Vec<&'static str> {
    PROVIDERS.iter().map(|(id, ..)| *id).collect()
}

/// The provider entry and default model the wizard writes.
fn config_patch(run: &Run) -> (Value, String) {
    let (id, _, api, base_url, _, _) = PROVIDERS[run.provider.unwrap_or(0)];
    let provider_id = if id == "custom" { "custom" } else { id };
    let model = run.model.clone().unwrap_or_default();
    let mut provider = json!({
        "api": api,
        "baseUrl": run.base_url.clone().unwrap_or_else(|| base_url.to_owned()),
        "models": [{"id": model}],
    });
    if let Some(key) = &run.api_key {
        provider["apiKey"] = json!(key);
    }
    let model_ref = format!("{provider_id}/{model}");
    let patch = json!({
        "models": {"providers": {provider_id: provider}},
        "agents": {"defaults": {"model": {"primary": model_ref}}},
    });
    (patch, model_ref)
}

/// The answer for the wizard's current state.
fn present(run: &Run, gateway: &Gateway) -> Value {
    if run.status != Status::Running {
        return json!({"done": true, "status": run.status.as_str()});
    }
    let provider = run.provider.map(|index| PROVIDERS[index]);
    let step = match run.step {
        Step::Intro => json!({
            "type": "note", "title": "Set up clawback",
            "message": format!(
                "This sets up a model provider and the default model. Nothing is written until you confirm; \
                 then {} is updated and the change is recorded in the log (secrets redacted).",
                gateway.config_file.path().display()
            ),
        }),
        Step::Provider => json!({
            "type": "select", "title": "Model provider",
            "options": PROVIDERS.iter().map(|(id, label, api, base_url, _, _)| json!({
                "value": id, "label": label,
                "hint": if base_url.is_empty() { (*api).to_owned() } else { format!("{api}, {base_url}") },
            })).collect::<Vec<_>>(),
        }),
        Step::BaseUrl => json!({
            "type": "text", "title": "Base URL",
            "initialValue": provider.map(|provider| provider.3).filter(|url| !url.is_empty()),
            "placeholder": "http://127.0.0.1:8000/v1",
        }),
        Step::ApiKey => json!({
            "type": "text", "title": format!("{} API key", provider.map_or("Provider", |p| p.1)),
            "message": "Stored in the config file (mode 0600), never in the log. ${ENV_VAR} reads it from the environment instead.",
            "sensitive": true,
        }),
        Step::Model => json!({
            "type": "text", "title": "Default model",
            "initialValue": provider.map(|provider| provider.4).filter(|model| !model.is_empty()),
            "placeholder": "model id",
        }),
        Step::Confirm => {
            let (patch, model_ref) = config_patch(run);
            let base_url =
                &patch["models"]["providers"][model_ref.split('/').next().unwrap_or("")]["baseUrl"];
            json!({
                "type": "confirm", "title": "Write the config?",
                "message": format!("Default model {model_ref} at {}.", base_url.as_str().unwrap_or("")),
                "initialValue": true,
            })
        }
    };
    let mut step = step;
    step["id"] = json!(run.step.id());
    step["executor"] = json!("client");
    json!({"done": false, "status": "running", "step": step})
}

/// `wizard.cancel`.
pub fn cancel(gateway: &Gateway, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let params = Params::closed("wizard.cancel", params, &["sessionId", "closeInput"])?;
    let id = params.str("sessionId")?;
    params.opt_bool("closeInput")?;
    let status = gateway.wizards.with(id, |run| {
        if run.status == Status::Running {
            run.status = Status::Cancelled;
        }
        run.status
    })?;
    gateway
        .wizards
        .runs
        .lock()
        .expect("wizards lock")
        .remove(id);
    Ok(json!({"status": status.as_str()}))
}

/// `wizard.status`.
pub fn status(gateway: &Gateway, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let params = Params::closed("wizard.status", params, &["sessionId"])?;
    let id = params.str("sessionId")?;
    let status = gateway.wizards.with(id, |run| run.status)?;
    if status != Status::Running {
        gateway
            .wizards
            .runs
            .lock()
            .expect("wizards lock")
            .remove(id);
    }
    Ok(json!({"status": status.as_str()}))
}
