//! Files that arrive with chat messages (photos, documents, voice notes):
//! downloaded under a size cap into `<state-dir>/media/<sha256>` and shown
//! to the model as a note with that path.
//!
//! Why the bytes are kept out of the log and the note in the message text:
//! the log records what the model read, and a file is evidence the model
//! reads through a path (OpenClaw's `[media attached: ...]` note), while a
//! photo's megabytes in the log would make every replay carry them. The
//! note names the content hash, so the log still says exactly which bytes
//! the model was given; the path is a real file, not a virtual URI a tool
//! cannot open (openclaw #97237).
//!
//! Why the download happens before the record, and only for admitted
//! messages: a refused sender's file is never fetched, and the recorded
//! text is final (no "pending" state for a restart to settle). A message
//! recorded is never downloaded again: a redelivery stops at the dedupe
//! check before reaching here. A crash between download and record leaves
//! a file that the redelivery finds already stored (same hash).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// OpenClaw's per-channel `mediaMaxMb` when unset (Telegram's own limit for
/// files a bot may download is 20 MB).
pub const DEFAULT_MAX_MB: f64 = 20.0;
/// The longest caption sent with a file (Telegram's limit, the lowest of
/// the platforms'); longer text follows as its own message.
pub const CAPTION_LIMIT: usize = 1024;
/// One file's whole download (20 MB on a slow link fits).
pub const DOWNLOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// A file a platform message carries, as the platform describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaRef {
    /// The platform's id for the file (Telegram `file_id`, Discord
    /// attachment id, Slack file id, Matrix `mxc://` URI).
    pub file_id: String,
    /// What the adapter fetches: a URL, or the id again.
    pub locator: String,
    pub mime: Option<String>,
    pub name: Option<String>,
    /// The size the platform declares, if it does (checked before fetching).
    pub size: Option<u64>,
}

/// A file a delivery carries out: a stored file's reference, recorded in
/// `delivery.prepared` (inside its target's JSON, as `media`), never its
/// bytes; a restart's resend reads the same file back by its hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub sha256: String,
    pub mime: String,
    pub name: String,
    pub size: u64,
    /// Sent as a voice note where the platform tells them apart
    /// (OpenClaw's `asVoice`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub voice: bool,
}

impl Attachment {
    /// The stored bytes (checked against the hash: a file changed on disk
    /// is not sent as if it were the recorded one).
    pub async fn read(&self, state_root: &Path) -> Result<Vec<u8>, String> {
        let path = state_root.join("media").join(&self.sha256);
        let bytes = tokio::fs::read(&path).await.map_err(|error| {
            format!("the stored file {} is unreadable: {error}", path.display())
        })?;
        if format!("{:x}", Sha256::digest(&bytes)) != self.sha256 {
            return Err(format!(
                "the stored file {} changed since it was recorded",
                path.display()
            ));
        }
        Ok(bytes)
    }
}

/// A `multipart/form-data` body built by hand (reqwest's multipart needs a
/// crate this build does not carry): text fields, then one file.
pub fn multipart(fields: &[(&str, String)], file: (&str, &Attachment, &[u8])) -> (String, Vec<u8>) {
    let boundary = format!("clawback-{}", &file.1.sha256[..24]);
    let mut body = Vec::with_capacity(file.2.len() + 512);
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\ncontent-disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    let (name, attachment, bytes) = file;
    let filename = attachment.name.replace(['"', '\r', '\n'], "_");
    body.extend_from_slice(
        format!(
            "--{boundary}\r\ncontent-disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\ncontent-type: {}\r\n\r\n",
            attachment.mime
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Why a file was not downloaded.
#[derive(Debug)]
pub enum DownloadError {
    /// Larger than the cap (the size, when known).
    TooLarge(Option<u64>),
    Failed(String),
}

/// A stored file.
#[derive(Debug, PartialEq, Eq)]
pub struct Stored {
    pub sha256: String,
    pub path: PathBuf,
    pub size: u64,
}

/// `mediaMaxMb` as bytes (a nonsensical value falls back to the default).
pub fn max_bytes(max_mb: Option<f64>) -> u64 {
    let mb = max_mb
        .filter(|mb| mb.is_finite() && *mb > 0.0)
        .unwrap_or(DEFAULT_MAX_MB);
    (mb * 1024.0 * 1024.0) as u64
}

/// Reads a response body, refusing one larger than `cap` as soon as its
/// declared length or its bytes so far say so.
pub async fn read_capped(
    mut response: reqwest::Response,
    cap: u64,
) -> Result<Vec<u8>, DownloadError> {
    let status = response.status();
    if !status.is_success() {
        return Err(DownloadError::Failed(format!("HTTP {status}")));
    }
    if let Some(length) = response.content_length()
        && length > cap
    {
        return Err(DownloadError::TooLarge(Some(length)));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| DownloadError::Failed(error.without_url().to_string()))?
    {
        if bytes.len() as u64 + chunk.len() as u64 > cap {
            return Err(DownloadError::TooLarge(None));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// Downloads an http(s) URL a platform gave for a file, with `bearer`
/// when the platform wants its token (Slack's private file URLs).
pub async fn get(
    client: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
    cap: u64,
) -> Result<Vec<u8>, DownloadError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|_| DownloadError::Failed("the platform gave no usable file URL".to_owned()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(DownloadError::Failed(format!(
            "the file URL's scheme {} is not http(s)",
            parsed.scheme()
        )));
    }
    let mut request = client.get(parsed).timeout(DOWNLOAD_TIMEOUT);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = request
        .send()
        .await
        .map_err(|error| DownloadError::Failed(error.without_url().to_string()))?;
    // Slack answers a file URL it will not serve the token (no `files:read`
    // scope) with its sign-in page, 200: stored, that page would pass for
    // the file.
    let html = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim_start().starts_with("text/html"));
    if bearer.is_some() && html {
        return Err(DownloadError::Failed(
            "the platform answered a web page, not the file (does the token have the files:read scope?)"
                .to_owned(),
        ));
    }
    read_capped(response, cap).await
}

/// Whether `url` is on `host` (a token is sent only to its platform).
pub fn on_host(url: &str, host: &str) -> bool {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|url| url.host_str().map(str::to_owned))
        .is_some_and(|url_host| url_host.eq_ignore_ascii_case(host))
}

/// Stores `bytes` content-addressed under `<state_root>/media/`; a file
/// already there (the same bytes) is kept.
pub async fn store(state_root: &Path, bytes: &[u8]) -> Result<Stored, String> {
    let sha256 = format!("{:x}", Sha256::digest(bytes));
    let dir = state_root.join("media");
    let path = dir.join(&sha256);
    let stored = Stored {
        sha256: sha256.clone(),
        path: path.clone(),
        size: bytes.len() as u64,
    };
    if tokio::fs::metadata(&path)
        .await
        .is_ok_and(|metadata| metadata.len() == bytes.len() as u64)
    {
        return Ok(stored);
    }
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|error| format!("cannot create {}: {error}", dir.display()))?;
    // Written aside and renamed, so a crash never leaves a partial file
    // under the hash of the whole.
    let partial = dir.join(format!("{sha256}.partial-{}", std::process::id()));
    tokio::fs::write(&partial, bytes)
        .await
        .map_err(|error| format!("cannot write {}: {error}", partial.display()))?;
    tokio::fs::rename(&partial, &path)
        .await
        .map_err(|error| format!("cannot store {}: {error}", path.display()))?;
    Ok(stored)
}

/// How a file is described in a note: mime, size, name, platform id.
fn describe(channel: &str, media: &MediaRef, size: Option<u64>) -> String {
    let mut parts = vec![
        media
            .mime
            .clone()
            .unwrap_or_else(|| "application/octet-stream".to_owned()),
    ];
    if let Some(size) = size {
        parts.push(format!("{size} bytes"));
    }
    if let Some(name) = &media.name {
        parts.push(format!("name {name:?}"));
    }
    parts.push(format!("{channel} file {}", media.file_id));
    parts.join(", ")
}

/// The note for a stored file, as the model reads it.
pub fn attached_note(channel: &str, media: &MediaRef, stored: &Stored) -> String {
    format!(
        "[media attached: {} ({})]",
        stored.path.display(),
        describe(channel, media, Some(stored.size))
    )
}

/// The note for a file that was not downloaded, and why.
pub fn missing_note(channel: &str, media: &MediaRef, cap: u64, error: &DownloadError) -> String {
    let why = match error {
        DownloadError::TooLarge(_) => format!(
            "larger than the {} MB limit (mediaMaxMb)",
            (cap as f64 / (1024.0 * 1024.0) * 100.0).round() / 100.0
        ),
        DownloadError::Failed(reason) => format!("download failed: {reason}"),
    };
    let size = match error {
        DownloadError::TooLarge(Some(size)) => Some(*size),
        _ => media.size,
    };
    format!(
        "[media not downloaded: {} ({}); {why}]",
        media.name.as_deref().unwrap_or("a file"),
        describe(channel, media, size)
    )
}

/// Appends notes to a message's text (a caption stays first).
pub fn with_notes(text: &str, notes: &[String]) -> String {
    let mut lines: Vec<&str> = Vec::new();
    if !text.is_empty() {
        lines.push(text);
    }
    lines.extend(notes.iter().map(String::as_str));
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn photo() -> MediaRef {
        MediaRef {
            file_id: "AgAD1".to_owned(),
            locator: "AgAD1".to_owned(),
            mime: Some("image/jpeg".to_owned()),
            name: None,
            size: Some(3),
        }
    }

    #[tokio::test]
    async fn stored_by_content_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = store(dir.path(), b"abc").await.expect("store");
        assert_eq!(
            first.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(std::fs::read(&first.path).expect("file"), b"abc");
        assert_eq!(store(dir.path(), b"abc").await.expect("again"), first);
        let entries = std::fs::read_dir(dir.path().join("media"))
            .expect("dir")
            .count();
        assert_eq!(entries, 1, "no partial file left behind");
    }

    #[test]
    fn notes_name_the_file_and_the_reason() {
        let stored = Stored {
            sha256: "ab".to_owned(),
            path: PathBuf::from("/s/media/ab"),
            size: 3,
        };
        assert_eq!(
            attached_note("telegram", &photo(), &stored),
            "[media attached: /s/media/ab (image/jpeg, 3 bytes, telegram file AgAD1)]"
        );
        let big = missing_note(
            "telegram",
            &photo(),
            max_bytes(Some(1.0)),
            &DownloadError::TooLarge(Some(5_000_000)),
        );
        assert!(big.contains("larger than the 1 MB limit"), "{big}");
        assert!(big.contains("5000000 bytes"), "{big}");
        assert_eq!(with_notes("", &["n".to_owned()]), "n");
        assert_eq!(with_notes("hi", &["n".to_owned()]), "hi\nn");
        assert_eq!(max_bytes(None), 20 * 1024 * 1024);
        assert_eq!(max_bytes(Some(-1.0)), 20 * 1024 * 1024);
    }
}
