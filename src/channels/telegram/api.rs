//! The Telegram Bot API over HTTPS: `POST <apiRoot>/bot<token>/<method>`
//! with a JSON body, answered `{ok, result}` or `{ok: false, error_code,
//! description, parameters: {retry_after}}`
//! (<https://core.telegram.org/bots/api#making-requests>).
//!
//! Why errors are rebuilt here rather than shown as reqwest words them: the
//! request URL holds the bot token, and reqwest's errors print their URL.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::channels::media::{DOWNLOAD_TIMEOUT, DownloadError, read_capped};
use crate::channels::platform::SendError;

pub struct Api {
    client: reqwest::Client,
    /// `<apiRoot>/bot<token>/`: secret, never logged.
    base: String,
    /// `<apiRoot>/file/bot<token>/`, where `getFile`'s paths are
    /// downloaded from: secret too.
    files: String,
}

#[derive(Deserialize)]
struct Answer {
    ok: bool,
    result: Option<Value>,
    error_code: Option<u16>,
    description: Option<String>,
    parameters: Option<Parameters>,
}

#[derive(Deserialize)]
struct Parameters {
    retry_after: Option<u64>,
}

impl Api {
    pub fn new(client: reqwest::Client, api_root: &str, token: &str) -> Api {
        let root = api_root.trim_end_matches('/');
        Api {
            client,
            base: format!("{root}/bot{token}/"),
            files: format!("{root}/file/bot{token}/"),
        }
    }

    /// Downloads a file by its id: `getFile` gives a path, valid for an
    /// hour, under the file root
    /// (<https://core.telegram.org/bots/api#getfile>).
    pub async fn download(&self, file_id: &str, cap: u64) -> Result<Vec<u8>, DownloadError> {
        let file = self
            .call(
                "getFile",
                &serde_json::json!({"file_id": file_id}),
                DOWNLOAD_TIMEOUT,
            )
            .await
            .map_err(|error| DownloadError::Failed(error.message))?;
        if let Some(size) = file.get("file_size").and_then(Value::as_u64)
            && size > cap
        {
            return Err(DownloadError::TooLarge(Some(size)));
        }
        let path = file
            .get("file_path")
            .and_then(Value::as_str)
            .filter(|path| !path.is_empty() && !path.contains(".."))
            .ok_or_else(|| DownloadError::Failed("getFile gave no file_path".to_owned()))?;
        let response = self
            .client
            .get(format!("{}{path}", self.files))
            .timeout(DOWNLOAD_TIMEOUT)
            .send()
            .await
            .map_err(|error| {
                DownloadError::Failed(format!("Telegram file: {}", error.without_url()))
            })?;
        read_capped(response, cap).await
    }

    /// Calls `method`; the `result` on success.
    pub async fn call(
        &self,
        method: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<Value, SendError> {
        let request = self
            .client
            .post(format!("{}{method}", self.base))
            .json(body);
        self.answer(method, request, timeout).await
    }

    /// Calls `method` with a `multipart/form-data` body (a file upload:
    /// `sendPhoto`, `sendDocument`, ...).
    pub async fn call_multipart(
        &self,
        method: &str,
        (content_type, body): (String, Vec<u8>),
        timeout: Duration,
    ) -> Result<Value, SendError> {
        let request = self
            .client
            .post(format!("{}{method}", self.base))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        self.answer(method, request, timeout).await
    }

    async fn answer(
        &self,
        method: &str,
        request: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<Value, SendError> {
        let response = request.timeout(timeout).send().await.map_err(|error| {
            SendError::transient(format!("Telegram {method}: {}", error.without_url()))
        })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|error| {
            SendError::transient(format!("Telegram {method}: {}", error.without_url()))
        })?;
        let answer: Answer = serde_json::from_slice(&bytes).map_err(|_| SendError {
            message: format!(
                "Telegram {method}: HTTP {status} with a body that is not the Bot API's JSON"
            ),
            retryable: status.is_server_error(),
            retry_after: None,
        })?;
        if answer.ok {
            return Ok(answer.result.unwrap_or(Value::Null));
        }
        let code = answer.error_code.unwrap_or(status.as_u16());
        let description = answer
            .description
            .unwrap_or_else(|| format!("HTTP {status}"));
        let retry_after = answer
            .parameters
            .and_then(|parameters| parameters.retry_after)
            .map(Duration::from_secs);
        Err(SendError {
            message: format!("Telegram {method}: {code} {description}"),
            retryable: code == 429 || code >= 500,
            retry_after,
        })
    }
}
