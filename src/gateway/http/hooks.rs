//! Inbound hooks, OpenClaw's `hooks.*`: `POST <hooks.path>/wake` (a
//! "System:" turn now, as the `wake` RPC), `POST <hooks.path>/agent` (an
//! agent run) and `POST <hooks.path>/<name>` (the first matching
//! `hooks.mappings` entry). Off unless `hooks.enabled`.
//!
//! Who may call: whoever holds `hooks.token`, presented as
//! `Authorization: Bearer` or `x-openclaw-token`, never in the query (a
//! token in a URL ends up in proxy logs, openclaw #9435: 400). The hook
//! token must differ from the gateway's secret (openclaw #20809: a sender
//! of webhooks must not hold operator access); a config where they are
//! equal is refused at start and at `config.*` (`check_token`). Failed
//! attempts are limited per client address (20 per 60 s, then 429 with
//! `Retry-After`; the right token still passes and resets the count).
//!
//! What a hook says is data, not the owner's voice: every text a hook
//! brings reaches the model wrapped as external, untrusted content
//! (`untrusted`), unless a mapping says `allowUnsafeExternalContent`
//! (openclaw #1827).
//!
//! What is recorded: each authenticated request that reaches `/wake`,
//! `/agent` or a mapping (refused or not) as `rpc.received` (method
//! `hooks.wake` / `hooks.agent` / `hooks.mapping`, connection `http`, the
//! path, the body with secrets redacted and sealed under the first run's
//! session, and the run ids it starts) before
//! any run starts, and `rpc.answered` with its outcome; the runs record
//! themselves (trigger `hook`, actor `http:<path>`). Tokens and headers are
//! never recorded. Unauthenticated requests are not recorded (they would let
//! anyone fill the log); they go to the diagnostic log. Nor are requests
//! refused before a hook is chosen (unreadable body, no mapping).
//!
//! An agent run's reply is announced to a chat (`deliver`, `channel`, `to`,
//! `accountId`; `channels::announce`) once the run ends, under a key
//! derived from the run, so a repeated request sends nothing twice.
//!
//! Differences from OpenClaw, on purpose: `next-heartbeat` wakes are
//! refused (no heartbeats);
//! wake text is wrapped as untrusted too (OpenClaw trusts it as a system
//! event; here it becomes a "System:" turn, exactly what #1827 warns of);
//! JavaScript transforms are refused at config time; a repeated
//! `idempotencyKey` is recognised across restarts (the run id derives from
//! it, and the log remembers the run), where OpenClaw forgets on restart.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use clawback_events::event::{Event, RpcAnswered, RpcOutcome, RpcReceived};
use clawback_events::{Actor, NewEvent};
use serde_json::{Map, Value, json};

use super::hook_plan::{Plan, Refused};
pub use super::hook_token::check_token;
use super::hook_token::resolve_token;
use super::{BodyError, json_response, read_body, text_response};
use crate::agent::{RunOutcome, Started};
use crate::channels::announce::{self, Attempt};
use crate::config::model::{ConfigFile, HooksSection};
use crate::gateway::Gateway;
use crate::gateway::protocol::AuthLimiter;

/// OpenClaw's default body limit.
pub const BODY_BYTES_DEFAULT: u64 = 256 * 1024;
pub const DEFAULT_PATH: &str = "/hooks";
const AUTH_FAILURES_MAX: u32 = 20;
const IDEMPOTENCY_KEY_CHARS_MAX: usize = 256;
/// Headers a template never sees (they carry secrets).
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "x-openclaw-token",
    "cookie",
];

/// Failed hook authentications per client address (OpenClaw allows 20
/// a minute on hooks, apart from the gateway's own limit).
pub struct HooksState {
    limiter: AuthLimiter,
}

impl Default for HooksState {
    fn default() -> HooksState {
        HooksState {
            limiter: AuthLimiter::with_max(AUTH_FAILURES_MAX),
        }
    }
}

impl HooksState {
    /// `Some(retry after, ms)` when `address` is over the limit.
    fn throttled(&self, address: IpAddr) -> Option<u64> {
        self.limiter.retry_after_ms(address)
    }

    fn failed(&self, address: IpAddr) {
        self.limiter.failed(address);
    }

    fn succeeded(&self, address: IpAddr) {
        self.limiter.succeeded(address);
    }
}

/// `hooks.path` as served: a leading slash, no trailing one.
pub fn base_path(config: &ConfigFile) -> String {
    let raw = config
        .hooks
        .as_ref()
        .and_then(|hooks| hooks.path.as_deref())
        .unwrap_or(DEFAULT_PATH);
    format!("/{}", raw.trim().trim_matches('/'))
}

/// The routes under `hooks.path`, read once at start (a change of the path
/// needs a restart; everything else is read per request).
pub fn router(gateway: Arc<Gateway>) -> Router {
    let base = base_path(&gateway.config());
    Router::new()
        .route(&base, any(handle))
        .route(&format!("{base}/{{*rest}}"), any(handle))
        .with_state(gateway)
}

/// Everything one authenticated hook request needs.
pub(super) struct Hook {
    pub(super) gateway: Arc<Gateway>,
    pub(super) hooks: HooksSection,
    pub(super) actor: Actor,
    pub(super) request_id: String,
    pub(super) sub_path: String,
}

/// An answer and what to record of it.
struct Answer {
    response: Response,
    outcome: RpcOutcome,
}

impl Answer {
    fn ok(response: Response) -> Answer {
        Answer {
            response,
            outcome: RpcOutcome::Ok,
        }
    }
}

impl From<Refused> for Answer {
    fn from(refused: Refused) -> Answer {
        Answer {
            response: json_response(
                refused.status,
                json!({"ok": false, "error": refused.message}),
            ),
            outcome: RpcOutcome::Error {
                code: refused.status.as_u16().to_string(),
                message: refused.message,
            },
        }
    }
}

async fn handle(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let config = gateway.config();
    let Some(hooks) = config
        .hooks
        .clone()
        .filter(|hooks| hooks.enabled == Some(true))
    else {
        return text_response(StatusCode::NOT_FOUND, "Not Found");
    };
    let (parts, body) = request.into_parts();
    if query_has_token(parts.uri.query()) {
        return text_response(
            StatusCode::BAD_REQUEST,
            "Hook token must be provided via Authorization: Bearer <token> or X-OpenClaw-Token header (query parameters are not allowed).",
        );
    }
    if parts.method != Method::POST {
        let mut response = text_response(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
        return response;
    }
    let token = match check_token(&config, &gateway.auth).and_then(|()| resolve_token(&hooks)) {
        Ok(token) => token,
        Err(problem) => {
            // Only a config edited by hand while running gets here: the
            // start and config.* refuse it. Never fall back to accepting.
            tracing::error!(subsystem = "hooks", "hooks refused: {problem}");
            return text_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "Hooks are misconfigured; see the gateway log.",
            );
        }
    };
    let address = remote.ip();
    let offered = super::bearer_token(&parts.headers).or_else(|| {
        parts
            .headers
            .get("x-openclaw-token")
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
            .filter(|value| !value.is_empty())
    });
    let valid = offered
        .is_some_and(|offered| super::secret_matches(offered, &blake3::hash(token.as_bytes())));
    if !valid {
        if let Some(retry_after_ms) = gateway.http.hooks.throttled(address) {
            tracing::warn!(subsystem = "hooks", "hook auth throttled for {address}");
            let mut response = text_response(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
            response.headers_mut().insert(
                header::RETRY_AFTER,
                super::retry_after_header(retry_after_ms),
            );
            return response;
        }
        gateway.http.hooks.failed(address);
        tracing::warn!(subsystem = "hooks", "hook auth failed from {address}");
        return text_response(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    gateway.http.hooks.succeeded(address);
    let base = base_path(&config);
    let sub_path = parts
        .uri
        .path()
        .strip_prefix(&base)
        .unwrap_or_default()
        .trim_matches('/')
        .to_owned();
    if sub_path.is_empty() {
        return text_response(StatusCode::NOT_FOUND, "Not Found");
    }
    let limit = hooks.max_body_bytes.unwrap_or(BODY_BYTES_DEFAULT);
    let bytes = match read_body(&parts.headers, body, limit as usize).await {
        Ok(bytes) => bytes,
        Err(BodyError::TooLarge) => {
            return json_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({"ok": false, "error": "payload too large"}),
            );
        }
        Err(BodyError::Timeout) => {
            return json_response(
                StatusCode::REQUEST_TIMEOUT,
                json!({"ok": false, "error": "request body timeout"}),
            );
        }
        Err(BodyError::Broken(message)) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                json!({"ok": false, "error": message}),
            );
        }
    };
    let payload = match super::parse_json(&bytes) {
        Ok(Value::Object(object)) => Value::Object(object),
        // OpenClaw reads a non-object body as an empty one.
        Ok(_) => Value::Object(Map::new()),
        Err(message) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                json!({"ok": false, "error": message}),
            );
        }
    };
    let hook = Hook {
        gateway: gateway.clone(),
        hooks,
        actor: Actor::Http {
            endpoint: format!("{base}/{sub_path}"),
        },
        request_id: uuid::Uuid::new_v4().to_string(),
        sub_path,
    };
    let context = RequestContext::new(&parts.headers, parts.uri.query());
    // Runs and records in a task of its own: a client that hangs up must
    // not leave a request recorded as received and never answered.
    match tokio::spawn(async move { hook.dispatch(payload, context).await }).await {
        Ok(response) => response,
        Err(error) => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"ok": false, "error": format!("hook handling failed: {error}")}),
        ),
    }
}

fn query_has_token(query: Option<&str>) -> bool {
    query_pairs(query).any(|(key, _)| key == "token")
}

/// A query string's `key=value` pairs, percent- and `+`-decoded (as a
/// browser's `URLSearchParams` reads them).
fn query_pairs(query: Option<&str>) -> impl Iterator<Item = (String, String)> + '_ {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
}

/// The request's headers (secrets left out) and query, for templates and
/// idempotency.
pub(super) struct RequestContext {
    pub(super) headers: BTreeMap<String, String>,
    pub(super) query: BTreeMap<String, String>,
}

impl RequestContext {
    fn new(headers: &HeaderMap, query: Option<&str>) -> RequestContext {
        let headers = headers
            .iter()
            .filter(|(name, _)| !SECRET_HEADERS.contains(&name.as_str()))
            .filter_map(|(name, value)| {
                Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
            })
            .collect();
        let query = query_pairs(query).collect();
        RequestContext { headers, query }
    }

    /// `Idempotency-Key`, then `X-OpenClaw-Idempotency-Key`, then the
    /// payload's `idempotencyKey`: trimmed, non-empty, at most 256 chars.
    pub(super) fn idempotency_key(&self, payload: &Value) -> Option<String> {
        let usable = |raw: Option<&str>| {
            raw.map(str::trim)
                .filter(|key| !key.is_empty() && key.chars().count() <= IDEMPOTENCY_KEY_CHARS_MAX)
                .map(str::to_owned)
        };
        usable(self.headers.get("idempotency-key").map(String::as_str))
            .or_else(|| {
                usable(
                    self.headers
                        .get("x-openclaw-idempotency-key")
                        .map(String::as_str),
                )
            })
            .or_else(|| usable(payload.get("idempotencyKey").and_then(Value::as_str)))
    }
}

impl Hook {
    async fn dispatch(self, payload: Value, context: RequestContext) -> Response {
        let method = match self.sub_path.as_str() {
            "wake" => "hooks.wake",
            "agent" => "hooks.agent",
            _ => "hooks.mapping",
        };
        let planned = match self.sub_path.as_str() {
            "wake" => self.plan_wake(&payload),
            "agent" => self.plan_direct_agent(&payload, &context),
            _ => match self.plan_mapping(&payload, &context) {
                Ok(Some(plan)) => Ok(plan),
                Ok(None) => return text_response(StatusCode::NOT_FOUND, "Not Found"),
                Err(error) => Err(error),
            },
        };
        let run_ids: Vec<String> = match &planned {
            Ok(plan) => plan
                .wakes
                .iter()
                .map(|wake| wake.request.run_id.clone())
                .chain(plan.agents.iter().map(|run| run.request.run_id.clone()))
                .collect(),
            Err(_) => Vec::new(),
        };
        // The body is the message a run answers: sealed under the session
        // of the first run it starts (a refused hook starts none; its body
        // stays in clear).
        let content_of = planned.as_ref().ok().and_then(|plan| {
            plan.agents
                .first()
                .map(|run| run.request.session_key.clone())
                .or_else(|| {
                    plan.wakes
                        .first()
                        .map(|wake| wake.request.session_key.clone())
                })
        });
        let mut body = payload.clone();
        crate::redact::redact_value(&mut body);
        let received = Event::RpcReceived(RpcReceived {
            conn_id: "http".to_owned(),
            request_id: self.request_id.clone(),
            method: method.to_owned(),
            params_redacted: json!({"path": self.sub_path, "runIds": run_ids, "body": body})
                .to_string(),
        });
        if let Err(error) = self.record(received, content_of).await {
            return json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"ok": false, "error": error}),
            );
        }
        let answer = match planned {
            Err(refused) => refused.into(),
            Ok(plan) => self.start(plan).await,
        };
        let answered = Event::RpcAnswered(RpcAnswered {
            conn_id: "http".to_owned(),
            request_id: self.request_id.clone(),
            method: method.to_owned(),
            outcome: answer.outcome,
        });
        if let Err(error) = self.record(answered, None).await {
            return json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"ok": false, "error": error}),
            );
        }
        answer.response
    }

    async fn record(&self, event: Event, content_of: Option<String>) -> Result<(), String> {
        let mut new =
            NewEvent::new("gateway", self.actor.clone(), event).correlated(self.request_id.clone());
        if let Some(session_key) = content_of {
            new = new.sealed_for(session_key);
        }
        self.gateway
            .log
            .append(vec![new])
            .await
            .map(|_| ())
            .map_err(|error| format!("the gateway cannot record this: {error}"))
    }

    /// Starts what was planned and answers as OpenClaw does.
    async fn start(&self, plan: Plan) -> Answer {
        let Plan {
            wakes,
            agents,
            wait,
        } = plan;
        let woke = !wakes.is_empty();
        for wake in wakes {
            drop(
                self.gateway
                    .agent
                    .clone()
                    .start(self.gateway.clone(), wake.request),
            );
        }
        let mut wake_fields = Map::new();
        if woke {
            wake_fields.insert("eventOutcome".to_owned(), json!("queued"));
        }
        if agents.is_empty() {
            if !woke {
                return Answer::ok(StatusCode::NO_CONTENT.into_response());
            }
            let mut body = json!({"ok": true, "mode": "now"});
            body.as_object_mut().expect("object").extend(wake_fields);
            return Answer::ok(json_response(StatusCode::OK, body));
        }
        let mut run_ids = Vec::with_capacity(agents.len());
        let mut started = Vec::with_capacity(agents.len());
        for run in agents {
            run_ids.push(run.request.run_id.clone());
            let session_key = run.request.session_key.clone();
            let run_id = run.request.run_id.clone();
            if run.known {
                // Its delivery (if any) was prepared under the run's key
                // by whoever ran it: never a second one.
                started.push((
                    run_id,
                    session_key,
                    self.gateway.agent.lookup(&run.request.run_id),
                    None,
                ));
            } else {
                let how = self
                    .gateway
                    .agent
                    .clone()
                    .start(self.gateway.clone(), run.request);
                let mut delivery = run.delivery;
                // Without waiting, the reply is announced when the run
                // ends, after the answer.
                if !wait
                    && let Started::New(receiver) = &how
                    && let Some(delivery) = delivery.take()
                {
                    let gateway = self.gateway.clone();
                    let receiver = receiver.clone();
                    tokio::spawn(async move {
                        if let Some(outcome) = crate::agent::wait(receiver).await {
                            announce::reply(
                                &gateway,
                                &delivery.destination,
                                &delivery.sessions,
                                &outcome,
                            )
                            .await;
                        }
                    });
                }
                started.push((run_id, session_key, Some(how), delivery));
            }
        }
        let mut body = json!({"ok": true, "runId": run_ids[0]});
        if run_ids.len() > 1 {
            body["runIds"] = json!(run_ids);
            body["dispatched"] = json!(run_ids.len());
        }
        body.as_object_mut().expect("object").extend(wake_fields);
        if wait {
            let (run_id, session_key, how, delivery) = started.swap_remove(0);
            let outcome = match how {
                None => None,
                Some(Started::Finished(outcome)) => Some(Some(*outcome)),
                Some(Started::New(receiver) | Started::Running(receiver)) => {
                    Some(crate::agent::wait(receiver).await)
                }
            };
            let completion = match outcome {
                // A run from before this process: as recorded.
                None => self.recorded_completion(&session_key, &run_id),
                Some(None) => json!({"status": "error", "replyDisposition": "empty"}),
                Some(Some(outcome)) => {
                    let delivered = match &delivery {
                        Some(delivery) => {
                            announce::reply(
                                &self.gateway,
                                &delivery.destination,
                                &delivery.sessions,
                                &outcome,
                            )
                            .await
                        }
                        None => Attempt::default(),
                    };
                    completion(&outcome, delivered)
                }
            };
            body["completion"] = completion;
        }
        Answer::ok(json_response(StatusCode::OK, body))
    }

    /// The completion of a run from before this process, as recorded.
    fn recorded_completion(&self, session_key: &str, run_id: &str) -> Value {
        use clawback_projections::sessions::RunState;
        let state = self.gateway.state.read().expect("state lock");
        let run = state
            .sessions
            .by_key
            .get(session_key)
            .and_then(|session| session.run(run_id));
        let status = match run.map(|run| &run.state) {
            Some(RunState::Finished {
                status: clawback_events::event::RunStatus::Completed,
                ..
            }) => "ok",
            Some(RunState::Running) => "running",
            _ => "error",
        };
        // Its announcement, if one was prepared, as the outbox recorded it.
        let key = format!("announce:{run_id}");
        let prepared = state.deliveries.by_idempotency_key(&key);
        let delivered = prepared.is_some_and(|delivery_id| {
            state.deliveries.finished.iter().any(|finished| {
                finished.delivery_id == delivery_id
                    && matches!(
                        finished.outcome,
                        clawback_projections::deliveries::DeliveryOutcome::Sent { .. }
                    )
            })
        });
        json!({"status": status, "delivered": delivered, "deliveryAttempted": prepared.is_some()})
    }
}

/// OpenClaw's `completion`: whether the run ended well, whether it had a
/// reply and whether it was delivered, never the reply's text (a hook
/// sender is not a reader).
fn completion(outcome: &RunOutcome, delivered: Attempt) -> Value {
    let disposition = if outcome.ok && !outcome.text.trim().is_empty() {
        "visible"
    } else {
        "empty"
    };
    json!({
        "status": if outcome.ok { "ok" } else { "error" },
        "replyDisposition": disposition,
        "delivered": delivered.delivered,
        "deliveryAttempted": delivered.attempted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::protocol::connect::Auth;

    fn config(value: Value) -> ConfigFile {
        crate::config::model::check(&value).unwrap().typed
    }

    #[test]
    fn the_hook_token_must_exist_and_differ_from_the_gateway_secret() {
        let hooks = |token: &str| config(json!({"hooks": {"enabled": true, "token": token}}));
        assert!(check_token(&hooks("hook-secret"), &Auth::token("gateway-secret")).is_ok());
        let same = check_token(&hooks("gateway-secret"), &Auth::token("gateway-secret"));
        assert!(same.unwrap_err().contains("must differ"));
        let same = check_token(&hooks("pw"), &Auth::password("pw"));
        assert!(same.is_err());
        let in_file = config(json!({"gateway": {"auth": {"token": "t1"}},
                                    "hooks": {"enabled": true, "token": "t1"}}));
        assert!(check_token(&in_file, &Auth::None).is_err());
        let blank = config(json!({"hooks": {"enabled": false, "token": " "}}));
        assert!(
            check_token(&blank, &Auth::None).is_ok(),
            "disabled hooks are not checked"
        );
        assert!(crate::config::model::check(&json!({"hooks": {"enabled": true}})).is_err());
    }

    #[test]
    fn the_limiter_throttles_after_twenty_failures_and_resets_on_success() {
        let state = HooksState::default();
        let address: IpAddr = [127, 0, 0, 1].into();
        for _ in 0..AUTH_FAILURES_MAX {
            assert_eq!(state.throttled(address), None);
            state.failed(address);
        }
        let retry = state.throttled(address).expect("throttled");
        assert!(retry > 0 && retry <= 60_000);
        state.succeeded(address);
        assert_eq!(state.throttled(address), None);
        let tracked_max = crate::gateway::protocol::AUTH_TRACKED_ADDRESSES_MAX;
        for index in 0..(tracked_max as u32 + 10) {
            state.failed(IpAddr::from(index.to_be_bytes()));
        }
        assert!(state.limiter.tracked() <= tracked_max);
    }

    #[test]
    fn tokens_in_queries_are_seen_and_the_base_path_is_normalized() {
        assert!(query_has_token(Some("a=1&token=x")));
        assert!(query_has_token(Some("token")));
        assert!(!query_has_token(Some("tokens=1")));
        assert!(!query_has_token(None));
        assert!(query_has_token(Some("tok%65n=x")));
        let decoded = |query: &str| query_pairs(Some(query)).collect::<Vec<_>>();
        assert_eq!(
            decoded("k=a+b%20c%2"),
            [("k".to_owned(), "a b c%2".to_owned())]
        );
        assert_eq!(decoded("k=%C3%A9"), [("k".to_owned(), "é".to_owned())]);
        assert_eq!(base_path(&config(json!({"hooks": {"path": "in/"}}))), "/in");
        assert_eq!(base_path(&config(json!({}))), "/hooks");
    }
}
