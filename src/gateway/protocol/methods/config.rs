//! `config.get`, `config.set`, `config.apply`, `config.patch`,
//! `config.schema` and `config.schema.lookup`.
//!
//! Optimistic concurrency as OpenClaw does it: a client reads the config
//! and its hash, edits, and sends the hash back as `baseHash`; a write whose
//! base is not the file's current hash is refused, so two editors never
//! overwrite each other unknowingly. The check, the file write and the
//! `config.changed` event happen under the gateway's write lock.
//!
//! What the log gets: the new config with secrets redacted, and its keyed
//! hash. Secrets stay in the file (mode 0600), never in the log.

use std::sync::{Arc, OnceLock};

use clawback_events::event::{ConfigChanged, Event};
use serde_json::{Value, json};

use super::super::frames::{ErrorShape, codes};
use super::{Params, Reply, now_ms};
use crate::config::{self, Loaded, edit, json5, model};
use crate::gateway::Gateway;

/// Settings read only at start: changing them needs a restart, and the
/// answer says so instead of pretending they took effect.
/// Settings read once at start: changing them answers `restart.required`.
const RESTART_PREFIXES: &[&str] = &["gateway", "cron.enabled", "hooks.path"];
/// Settings inside a restart prefix that are read per request anyway.
const LIVE_PREFIXES: &[&str] = &["gateway.tools"];

pub async fn get(gateway: &Arc<Gateway>, params: Option<&Value>) -> Reply {
    if let Err(error) = Params::closed("config.get", params, &[]) {
        return Reply::answer(Err(error));
    }
    let lock = gateway.writes.clone().lock_owned().await;
    let loaded = match read(gateway) {
        Ok(loaded) => loaded,
        Err(error) => return Reply::answer(Err(error)),
    };
    let mut reply = Reply::answer(Ok(Value::Null));
    let mut applied = None;
    if let Some(event) = observe_file(gateway, &loaded) {
        reply.events.push(("config".to_owned(), event));
        reply.write_lock = Some(lock);
        // Recorded with this answer, so it is the applied version now.
        applied = Some(loaded.hash.clone());
    }
    reply.result = Ok(describe(gateway, &loaded, applied));
    reply
}

/// `config.set` and `config.apply`: the whole document in `raw`.
pub async fn set(gateway: &Arc<Gateway>, method: &str, params: Option<&Value>) -> Reply {
    const SET_KEYS: &[&str] = &["raw", "baseHash"];
    const APPLY_KEYS: &[&str] = &[
        "raw",
        "baseHash",
        "sessionKey",
        "deliveryContext",
        "note",
        "restartDelayMs",
    ];
    let keys = if method == "config.apply" {
        APPLY_KEYS
    } else {
        SET_KEYS
    };
    let params = match Params::closed(method, params, keys) {
        Ok(params) => params,
        Err(error) => return Reply::answer(Err(error)),
    };
    let (raw, base_hash) = match (params.str("raw"), params.opt_str("baseHash")) {
        (Ok(raw), Ok(base)) => (raw, base),
        (Err(error), _) | (_, Err(error)) => return Reply::answer(Err(error)),
    };
    let lock = gateway.writes.clone().lock_owned().await;
    let current = match read(gateway) {
        Ok(current) => current,
        Err(error) => return Reply::answer(Err(error)),
    };
    if let Err(error) = check_base(&current, base_hash, None) {
        return Reply::answer(Err(error));
    }
    let new = match json5::parse_object(raw) {
        Ok(new) => new,
        Err(message) => {
            return Reply::answer(Err(invalid_config(&[config::Issue {
                path: String::new(),
                message,
            }])));
        }
    };
    write(gateway, method, current, new, lock)
}

/// `config.patch`: a JSON5 merge patch (RFC 7396) in `raw`.
pub async fn patch(gateway: &Arc<Gateway>, params: Option<&Value>) -> Reply {
    const KEYS: &[&str] = &[
        "raw",
        "baseHash",
        "replacePaths",
        "restartDelayMs",
        "note",
        "sessionKey",
        "deliveryContext",
    ];
    let params = match Params::closed("config.patch", params, KEYS) {
        Ok(params) => params,
        Err(error) => return Reply::answer(Err(error)),
    };
    let (raw, base_hash) = match (params.str("raw"), params.opt_str("baseHash")) {
        (Ok(raw), Ok(base)) => (raw, base),
        (Err(error), _) | (_, Err(error)) => return Reply::answer(Err(error)),
    };
    let replace_paths = match params.opt_strings("replacePaths") {
        Ok(paths) => paths.unwrap_or_default(),
        Err(error) => return Reply::answer(Err(error)),
    };
    let patch = match json5::parse_object(raw) {
        Ok(patch) => patch,
        Err(message) => {
            return Reply::answer(Err(invalid_config(&[config::Issue {
                path: String::new(),
                message: format!("the patch is {message}"),
            }])));
        }
    };
    let (lock, current, mut new) = match merged(gateway, &patch).await {
        Ok(merged) => merged,
        Err(error) => return Reply::answer(Err(error)),
    };
    let base = current.parsed.as_ref().expect("merged checked it parses");
    for path in replace_paths {
        let pointer = format!("/{}", path.replace('.', "/"));
        if let (Some(replacement), Some(slot)) =
            (patch.pointer(&pointer), new.pointer_mut(&pointer))
        {
            *slot = replacement.clone();
        }
    }
    let changed = edit::changed_paths(base, &new);
    if let Err(error) = check_base(&current, base_hash, Some(&changed)) {
        return Reply::answer(Err(error));
    }
    write(gateway, "config.patch", current, new, lock)
}

/// Merges `patch` (RFC 7396) into the config file on behalf of `source`
/// (the setup wizard): checked, written and recorded as `config.patch` is,
/// without a base hash because the caller holds no earlier read.
pub async fn merge(gateway: &Arc<Gateway>, source: &str, patch: &Value) -> Reply {
    match merged(gateway, patch).await {
        Ok((lock, current, new)) => write(gateway, source, current, new, lock),
        Err(error) => Reply::answer(Err(error)),
    }
}

/// Takes the write lock, reads the file, and merges `patch` into it: the
/// lock (held until the change is durable), what was read, and the result.
async fn merged(
    gateway: &Gateway,
    patch: &Value,
) -> Result<(tokio::sync::OwnedMutexGuard<()>, Loaded, Value), ErrorShape> {
    let lock = gateway.writes.clone().lock_owned().await;
    let current = read(gateway)?;
    let Ok(base) = &current.parsed else {
        return Err(ErrorShape::invalid(format!(
            "the config file cannot be patched while it is invalid ({}); fix it with config.set",
            config::describe(current.issues())
        )));
    };
    let mut new = base.clone();
    edit::merge_patch(&mut new, patch);
    Ok((lock, current, new))
}

/// Validates, writes the file, records the change, applies what can be
/// applied live, and answers.
fn write(
    gateway: &Arc<Gateway>,
    method: &str,
    current: Loaded,
    mut new: Value,
    lock: tokio::sync::OwnedMutexGuard<()>,
) -> Reply {
    let empty = Value::Object(serde_json::Map::new());
    let base = current.parsed.as_ref().unwrap_or(&empty);
    if let Err(message) = edit::restore_redacted(&mut new, base) {
        return Reply::answer(Err(ErrorShape::invalid(message)));
    }
    let checked = match model::check(&new) {
        Ok(checked) => checked,
        Err(issues) => return Reply::answer(Err(invalid_config(&issues))),
    };
    if let Err(message) = crate::gateway::http::hooks::check_token(&checked.typed, &gateway.auth) {
        return Reply::answer(Err(ErrorShape::invalid(message)));
    }
    let changed = edit::changed_paths(base, &new);
    let path = gateway.config_file.path().display().to_string();
    let mut reply = Reply::answer(Ok(Value::Null));
    // A file changed by hand since the last record is recorded first, so
    // the history shows both versions.
    if let Some(event) = observe_file(gateway, &current) {
        reply.events.push(("config".to_owned(), event));
    }
    if changed.is_empty() && current.exists {
        reply.result = Ok(json!({
            "ok": true, "path": path, "hash": current.hash, "config": current.redacted_value(),
            "changedPaths": [], "restart": {"required": false, "paths": []},
        }));
        reply.write_lock = Some(lock);
        return reply;
    }
    let text = match serde_json::to_string_pretty(&new) {
        Ok(text) => text + "\n",
        Err(error) => {
            return Reply::answer(Err(ErrorShape::new(
                codes::UNAVAILABLE,
                format!("cannot encode the config: {error}"),
            )));
        }
    };
    if let Err(error) = gateway.config_file.write(&text) {
        return Reply::answer(Err(ErrorShape::new(
            codes::UNAVAILABLE,
            format!("cannot write the config: {error:#}"),
        )));
    }
    let hash = gateway.config_file.hash(&text);
    let mut redacted = new.clone();
    crate::redact::redact_value(&mut redacted);
    reply.events.push((
        "config".to_owned(),
        Event::ConfigChanged(ConfigChanged {
            config_hash: hash.clone(),
            config_redacted: redacted.to_string(),
            source: format!("rpc:{method}"),
        }),
    ));
    gateway.apply_config(checked.typed);
    let restart: Vec<&String> = changed
        .iter()
        .filter(|path| {
            !LIVE_PREFIXES
                .iter()
                .any(|live| path.as_str() == *live || path.starts_with(&format!("{live}.")))
        })
        .filter(|path| {
            RESTART_PREFIXES
                .iter()
                // The setting itself, inside it, or a section holding it
                // (a new `cron` object carries `cron.enabled`).
                .any(|prefix| {
                    path.as_str() == *prefix
                        || path.starts_with(&format!("{prefix}."))
                        || prefix.starts_with(&format!("{path}."))
                })
        })
        .collect();
    reply.result = Ok(json!({
        "ok": true,
        "path": path,
        "hash": hash,
        "config": redacted,
        "changedPaths": changed,
        "warnings": checked.warnings,
        "restart": {
            "required": !restart.is_empty(),
            "paths": restart,
            "reason": if restart.is_empty() { Value::Null } else {
                json!("gateway settings are read at start: restart clawback to apply them")
            },
        },
    }));
    reply.write_lock = Some(lock);
    reply
}

pub fn schema(params: Option<&Value>) -> Result<Value, ErrorShape> {
    Params::closed("config.schema", params, &[])?;
    Ok(json!({
        "schema": cached_schema(),
        "uiHints": {},
        "version": env!("CARGO_PKG_VERSION"),
        "generatedAt": now_ms(),
    }))
}

/// One subtree of the schema, by dotted path (`gateway.auth`).
pub fn schema_lookup(params: Option<&Value>) -> Result<Value, ErrorShape> {
    let params = Params::closed("config.schema.lookup", params, &["path"])?;
    let path = params.str("path")?;
    let root = cached_schema();
    let mut node = root;
    for segment in path.split('.').filter(|segment| !segment.is_empty()) {
        node = resolve_ref(root, node);
        node = node
            .get("properties")
            .and_then(|properties| properties.get(segment))
            .ok_or_else(|| ErrorShape::invalid(format!("no config setting at {path}")))?;
    }
    Ok(json!({"path": path, "schema": resolve_ref(root, node)}))
}

/// Follows `$ref`s and optional wrappers (`anyOf: [T, null]`) to the
/// schema that describes the setting itself. Bounded: schemars output has no
/// reference cycles through optional wrappers, but a bad schema must not
/// loop.
fn resolve_ref<'a>(root: &'a Value, mut node: &'a Value) -> &'a Value {
    for _ in 0..16 {
        if let Some(target) = node
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|reference| reference.strip_prefix('#'))
            .and_then(|pointer| root.pointer(pointer))
        {
            node = target;
            continue;
        }
        let wrapped = ["anyOf", "oneOf", "allOf"].iter().find_map(|key| {
            node.get(*key)?
                .as_array()?
                .iter()
                .find(|option| option.get("type") != Some(&json!("null")))
        });
        match wrapped {
            Some(inner) if node.get("properties").is_none() => node = inner,
            _ => break,
        }
    }
    node
}

fn cached_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(model::schema)
}

fn read(gateway: &Gateway) -> Result<Loaded, ErrorShape> {
    Loaded::read(&gateway.config_file).map_err(|error| {
        ErrorShape::new(
            codes::UNAVAILABLE,
            format!("cannot read the config: {error:#}"),
        )
    })
}

/// OpenClaw's answers: a write to an existing file needs the hash it was
/// read at, and that hash must still be current.
fn check_base(
    current: &Loaded,
    base_hash: Option<&str>,
    changed: Option<&[String]>,
) -> Result<(), ErrorShape> {
    if !current.exists {
        return Ok(());
    }
    match base_hash {
        None => Err(ErrorShape::invalid(match changed {
            Some(paths) if !paths.is_empty() => format!(
                "config base hash required for {}; re-run config.get and retry",
                paths.join(", ")
            ),
            _ => "config base hash required; re-run config.get and retry".to_owned(),
        })),
        Some(base) if base != current.hash => Err(ErrorShape::invalid(
            "config changed since last load; re-run config.get and retry",
        )),
        Some(_) => Ok(()),
    }
}

fn invalid_config(issues: &[config::Issue]) -> ErrorShape {
    ErrorShape::invalid(format!("invalid config: {}", config::describe(issues)))
        .with_details(json!({"code": "INVALID_CONFIG", "issues": issues}))
}

/// The `config.get` answer, secrets redacted everywhere.
fn describe(gateway: &Gateway, loaded: &Loaded, applied: Option<String>) -> Value {
    let redacted = loaded.redacted_value();
    let applied = applied.or_else(|| {
        gateway
            .state
            .read()
            .expect("state lock")
            .config
            .current_hash()
            .map(str::to_owned)
    });
    let runtime = {
        let mut value = serde_json::to_value(&*gateway.config()).unwrap_or(Value::Null);
        crate::redact::redact_value(&mut value);
        value
    };
    json!({
        "path": gateway.config_file.path().display().to_string(),
        "exists": loaded.exists,
        "raw": loaded.redacted_raw(),
        "parsed": redacted,
        "sourceConfig": redacted,
        "resolved": redacted,
        "config": redacted,
        "runtimeConfig": runtime,
        "valid": loaded.is_valid(),
        "issues": loaded.issues(),
        "warnings": loaded.warnings(),
        "legacyIssues": [],
        "includedPaths": [],
        "hash": loaded.hash,
        "configRevisionHash": loaded.hash,
        "appliedConfigHash": applied,
    })
}

/// A valid file whose hash is not the last recorded one was changed outside
/// the gateway: the change to record (and apply), if any.
pub fn observe_file(gateway: &Gateway, loaded: &Loaded) -> Option<Event> {
    let checked = loaded.checked.as_ref().ok()?;
    if !loaded.exists {
        return None;
    }
    let recorded = gateway
        .state
        .read()
        .expect("state lock")
        .config
        .current_hash()
        .map(str::to_owned);
    if recorded.as_deref() == Some(loaded.hash.as_str()) {
        return None;
    }
    gateway.apply_config(checked.typed.clone());
    let event = Event::ConfigChanged(ConfigChanged {
        config_hash: loaded.hash.clone(),
        config_redacted: loaded.redacted_value().to_string(),
        source: "file".to_owned(),
    });
    Some(event)
}
