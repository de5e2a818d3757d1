//! The Matrix client-server API over HTTP: `<homeserver>/_matrix/client/v3/
//! ...` with a bearer token, answered with JSON or with `{errcode, error,
//! retry_after_ms}` (<https://spec.matrix.org/v1.15/client-server-api/>).
//!
//! Why errors are rebuilt here rather than shown as reqwest words them:
//! they must never carry the access token or the password, and the outbox
//! needs a rate limit (`M_LIMIT_EXCEEDED`, 429) told apart from a refusal.

use std::time::Duration;

use reqwest::{Method, Url};
use serde_json::Value;

use crate::channels::media::{DOWNLOAD_TIMEOUT, DownloadError, read_capped};
use crate::channels::platform::SendError;

/// The longest answer body read (a sync of a busy account is large, but
/// bounded by the filter's timeline limit).
const BODY_BYTES_MAX: usize = 32 << 20;

pub struct Api {
    client: reqwest::Client,
    /// `<homeserver>/_matrix/client/v3`.
    base: Url,
}

/// A failed call: what the homeserver said, without secrets.
#[derive(Debug)]
pub struct ApiError {
    pub message: String,
    /// `M_LIMIT_EXCEEDED`, `M_UNKNOWN_TOKEN`, ... when the server said.
    pub errcode: Option<String>,
    pub status: Option<u16>,
    pub retry_after: Option<Duration>,
}

impl ApiError {
    /// Worth another attempt: a rate limit, a server error, the network.
    pub fn retryable(&self) -> bool {
        match self.status {
            None => true,
            Some(status) => status == 429 || status >= 500,
        }
    }

    pub fn unknown_token(&self) -> bool {
        self.errcode.as_deref() == Some("M_UNKNOWN_TOKEN")
    }
}

impl From<ApiError> for SendError {
    fn from(error: ApiError) -> SendError {
        SendError {
            retryable: error.retryable(),
            retry_after: error.retry_after,
            message: error.message,
        }
    }
}

impl Api {
    pub fn new(client: reqwest::Client, homeserver: &Url) -> Result<Api, String> {
        let mut base = homeserver.clone();
        base.path_segments_mut()
            .map_err(|()| format!("channels.matrix.homeserver {homeserver} cannot be a base URL"))?
            .pop_if_empty()
            .extend(["_matrix", "client", "v3"]);
        Ok(Api { client, base })
    }

    /// Calls `method` on the path made of `segments` (each percent-encoded:
    /// room ids hold `!` and `:`, event ids `$`).
    pub async fn call(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
        token: Option<&str>,
        timeout: Duration,
    ) -> Result<Value, ApiError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("the base URL was checked in new")
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let what = segments.first().copied().unwrap_or_default();
        let mut request = self.client.request(method, url).timeout(timeout);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let network = |error: reqwest::Error| ApiError {
            message: format!("Matrix {what}: {}", error.without_url()),
            errcode: None,
            status: None,
            retry_after: None,
        };
        let response = request.send().await.map_err(network)?;
        let status = response.status();
        let header_wait = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| text.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        if response
            .content_length()
            .is_some_and(|length| length > BODY_BYTES_MAX as u64)
        {
            return Err(ApiError {
                message: format!("Matrix {what}: the answer is larger than {BODY_BYTES_MAX} bytes"),
                errcode: None,
                status: Some(status.as_u16()),
                retry_after: None,
            });
        }
        let bytes = response.bytes().await.map_err(network)?;
        let answer: Option<Value> = serde_json::from_slice(&bytes).ok();
        if status.is_success() {
            return answer.ok_or_else(|| ApiError {
                message: format!("Matrix {what}: HTTP {status} with a body that is not JSON"),
                errcode: None,
                status: Some(status.as_u16()),
                retry_after: None,
            });
        }
        Err(error_from(
            what,
            status.as_u16(),
            answer.as_ref(),
            header_wait,
        ))
    }
}

impl Api {
    /// Uploads a file (`POST /_matrix/media/v3/upload`, where the spec
    /// keeps uploads); its `mxc://` URI.
    pub async fn upload(
        &self,
        attachment: &crate::channels::media::Attachment,
        bytes: &[u8],
        token: &str,
    ) -> Result<String, ApiError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("the base URL was checked in new")
            .pop()
            .pop()
            .extend(["media", "v3", "upload"]);
        url.query_pairs_mut()
            .append_pair("filename", &attachment.name);
        let network = |error: reqwest::Error| ApiError {
            message: format!("Matrix upload: {}", error.without_url()),
            errcode: None,
            status: None,
            retry_after: None,
        };
        let response = self
            .client
            .post(url)
            .bearer_auth(token)
            .header(reqwest::header::CONTENT_TYPE, &attachment.mime)
            .body(bytes.to_vec())
            .timeout(DOWNLOAD_TIMEOUT)
            .send()
            .await
            .map_err(network)?;
        let status = response.status();
        let answer: Option<Value> = response.json().await.ok();
        if !status.is_success() {
            return Err(error_from("upload", status.as_u16(), answer.as_ref(), None));
        }
        answer
            .as_ref()
            .and_then(|answer| answer.get("content_uri"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| ApiError {
                message: "Matrix upload: the answer has no content_uri".to_owned(),
                errcode: None,
                status: Some(status.as_u16()),
                retry_after: None,
            })
    }

    /// Downloads `mxc://<server>/<media id>` through authenticated media
    /// (`GET /_matrix/client/v1/media/download/<server>/<media id>`,
    /// Matrix 1.11; homeservers now refuse the old unauthenticated
    /// `/_matrix/media/v3` download for new files).
    pub async fn download(
        &self,
        mxc: &str,
        token: &str,
        cap: u64,
    ) -> Result<Vec<u8>, DownloadError> {
        let (server, media_id) = mxc
            .strip_prefix("mxc://")
            .and_then(|rest| rest.split_once('/'))
            .filter(|(server, id)| !server.is_empty() && !id.is_empty() && !id.contains('/'))
            .ok_or_else(|| DownloadError::Failed(format!("{mxc:?} is not an mxc:// URI")))?;
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("the base URL was checked in new")
            .pop()
            .extend(["v1", "media", "download", server, media_id]);
        let response = self
            .client
            .get(url)
            .bearer_auth(token)
            .timeout(DOWNLOAD_TIMEOUT)
            .send()
            .await
            .map_err(|error| {
                DownloadError::Failed(format!("Matrix media: {}", error.without_url()))
            })?;
        read_capped(response, cap).await
    }
}

/// The error a non-2xx answer describes.
fn error_from(
    what: &str,
    status: u16,
    answer: Option<&Value>,
    header_wait: Option<Duration>,
) -> ApiError {
    let field = |name: &str| {
        answer
            .and_then(|answer| answer.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let errcode = field("errcode");
    let description = field("error").unwrap_or_else(|| format!("HTTP {status}"));
    // `retry_after_ms` in the body (all versions), `Retry-After` (v1.10+).
    let retry_after = answer
        .and_then(|answer| answer.get("retry_after_ms"))
        .and_then(Value::as_u64)
        .map(Duration::from_millis)
        .or(header_wait);
    ApiError {
        message: format!(
            "Matrix {what}: {status} {}{description}",
            errcode
                .as_deref()
                .map(|code| format!("{code} "))
                .unwrap_or_default()
        ),
        errcode,
        status: Some(status),
        retry_after,
    }
}

/// The transaction id of a send, from its idempotency key: the same key
/// always gives the same id, so a send repeated under it (a retry, a
/// restart) is recognised by the homeserver, which keeps the event it made
/// for a `(device, txnId)` and answers it again instead of sending twice.
/// Hashed because keys are free text and txn ids go in the URL path.
pub fn txn_id(idempotency_key: &str) -> String {
    let hash = blake3::hash(idempotency_key.as_bytes());
    format!("clawback.{}", &hash.to_hex()[..32])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn txn_ids_are_stable_distinct_and_url_safe() {
        let first = txn_id("ch-0123#0");
        assert_eq!(first, txn_id("ch-0123#0"), "same key, same id, every run");
        assert_ne!(first, txn_id("ch-0123#1"));
        assert_ne!(txn_id("send:a"), txn_id("send:b"));
        assert_eq!(first.len(), "clawback.".len() + 32);
        assert!(first.chars().all(|c| c.is_ascii_alphanumeric() || c == '.'));
    }

    #[test]
    fn a_rate_limit_is_retryable_with_its_wait() {
        let answer = json!({"errcode": "M_LIMIT_EXCEEDED", "error": "Too Many Requests", "retry_after_ms": 1500});
        let error = error_from("rooms", 429, Some(&answer), None);
        assert!(error.retryable());
        assert_eq!(error.retry_after, Some(Duration::from_millis(1500)));
        assert_eq!(
            error.message,
            "Matrix rooms: 429 M_LIMIT_EXCEEDED Too Many Requests"
        );
        let header_only = error_from("rooms", 429, None, Some(Duration::from_secs(2)));
        assert_eq!(header_only.retry_after, Some(Duration::from_secs(2)));
        let forbidden = error_from(
            "rooms",
            403,
            Some(&json!({"errcode": "M_FORBIDDEN", "error": "not in room"})),
            None,
        );
        assert!(!forbidden.retryable());
        let token = error_from(
            "sync",
            401,
            Some(&json!({"errcode": "M_UNKNOWN_TOKEN"})),
            None,
        );
        assert!(token.unknown_token());
    }

    #[test]
    fn paths_are_percent_encoded_under_the_client_api() {
        let api = Api::new(
            crate::channels::http_client().build().expect("client"),
            &Url::parse("https://hs.example/").expect("url"),
        )
        .expect("api");
        let mut url = api.base.clone();
        url.path_segments_mut().expect("base").extend([
            "rooms",
            "!abc:hs.example",
            "send",
            "m.room.message",
            "t/1",
        ]);
        assert_eq!(
            url.as_str(),
            "https://hs.example/_matrix/client/v3/rooms/!abc:hs.example/send/m.room.message/t%2F1"
        );
    }
}
