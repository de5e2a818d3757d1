//! The control UI: one page, served by the gateway on its own port, that
//! talks to the gateway over the same authenticated WebSocket every client
//! uses. Sessions, live events, a chat box, a session's replay timeline
//! step by step with each LLM request and response, and the audit status.
//!
//! Why plain HTML, JS and CSS compiled into the binary (`include_str!`):
//! no build step, no npm at build time, nothing fetched from a CDN, so the
//! page loads in milliseconds and works with no internet. Why the files are
//! served without auth: they hold no data. Every datum comes over the
//! WebSocket after `connect` with the gateway's token, which the user
//! pastes and the page keeps in `sessionStorage` (never in a URL: a token
//! in a query string leaks into logs and history, OpenClaw's CVE).
//!
//! What is served: `GET /` without an `Upgrade` (the WebSocket keeps `/`,
//! see `gateway::upgrade`), `/ui` and `/ui/` (the page), `/ui/app.js`,
//! `/ui/app.css`. Headers: a Content-Security-Policy that allows only this
//! origin's script, style and WebSocket (no inline script), `X-Frame-Options:
//! DENY`, `nosniff`, no referrer. The page is revalidated on every load
//! (`no-cache` + `ETag`); the assets it names carry their content hash in
//! the URL and are cached for a year. `gateway.controlUi.enabled: false`
//! turns the page off (404); the WebSocket is unaffected.
//!
//! `origin` holds the browser Origin check made on every WebSocket upgrade.

pub mod origin;

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::Gateway;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

/// The page's routes (`/` is answered by the WebSocket handler, which
/// calls [`page_response`] for a plain GET).
pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/ui", get(page))
        .route("/ui/", get(page))
        .route("/ui/app.js", get(script))
        .route("/ui/app.css", get(style))
        .with_state(gateway)
}

/// The asset files' content hash, which versions their URLs.
fn assets_version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        let mut hasher = blake3::Hasher::new();
        hasher.update(APP_JS.as_bytes());
        hasher.update(APP_CSS.as_bytes());
        hasher.finalize().to_hex()[..16].to_owned()
    })
}

/// The page, with the asset URLs versioned, and its ETag.
fn index() -> &'static (String, String) {
    static INDEX: OnceLock<(String, String)> = OnceLock::new();
    INDEX.get_or_init(|| {
        let html = INDEX_HTML.replace("{{ASSETS_VERSION}}", assets_version());
        let etag = format!("\"{}\"", &blake3::hash(html.as_bytes()).to_hex()[..16]);
        (html, etag)
    })
}

fn enabled(gateway: &Gateway) -> bool {
    gateway
        .config()
        .gateway
        .as_ref()
        .and_then(|section| section.control_ui.as_ref())
        .and_then(|ui| ui.enabled)
        .unwrap_or(true)
}

async fn page(State(gateway): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    page_response(&gateway, &headers)
}

/// `GET /` or `/ui`: the page, or 304 when the browser has it.
pub fn page_response(gateway: &Gateway, headers: &HeaderMap) -> Response {
    if !enabled(gateway) {
        return disabled();
    }
    let (html, etag) = index();
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|tag| tag.trim() == etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html.as_str(),
        )
            .into_response()
    };
    let out = response.headers_mut();
    secure(out);
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(etag) {
        out.insert(header::ETAG, value);
    }
    response
}

async fn script(State(gateway): State<Arc<Gateway>>, uri: Uri) -> Response {
    asset(&gateway, &uri, "text/javascript; charset=utf-8", APP_JS)
}

async fn style(State(gateway): State<Arc<Gateway>>, uri: Uri) -> Response {
    asset(&gateway, &uri, "text/css; charset=utf-8", APP_CSS)
}

/// An asset: cached for a year when asked for by its current version
/// (`?v=<hash>`, as the page names it), revalidated otherwise.
fn asset(gateway: &Gateway, uri: &Uri, content_type: &'static str, body: &'static str) -> Response {
    if !enabled(gateway) {
        return disabled();
    }
    let versioned = uri.query().is_some_and(|query| {
        query
            .split('&')
            .any(|pair| pair == format!("v={}", assets_version()))
    });
    let mut response = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    let out = response.headers_mut();
    secure(out);
    out.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if versioned {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        }),
    );
    response
}

fn disabled() -> Response {
    (
        StatusCode::NOT_FOUND,
        "the control UI is disabled (gateway.controlUi.enabled: false)",
    )
        .into_response()
}

/// The headers every UI response carries.
fn secure(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

/// The origin policy in force (the config is read live).
pub fn check_origin(gateway: &Gateway, headers: &HeaderMap) -> Result<origin::Allowed, String> {
    let config = gateway.config();
    let ui = config
        .gateway
        .as_ref()
        .and_then(|section| section.control_ui.as_ref());
    let empty = Vec::new();
    let policy = origin::OriginPolicy {
        allowed_origins: ui.map_or(&empty, |ui| &ui.allowed_origins),
        host_header_fallback: ui
            .and_then(|ui| ui.dangerously_allow_host_header_origin_fallback)
            .unwrap_or(false),
    };
    let text = |name: header::HeaderName| {
        headers
            .get(name)
            .map(|value| value.to_str().unwrap_or("(not text)"))
    };
    origin::check(text(header::ORIGIN), text(header::HOST), &policy)
}
