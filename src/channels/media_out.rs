//! A file to send (`send`'s `mediaUrl`, `mediaUrls` or `buffer`) read,
//! checked and stored, so the outbox records its reference and a restart
//! sends the same bytes.
//!
//! Why these sources and checks: a URL is fetched as `web_fetch` fetches
//! (public addresses only unless `tools.web.fetch.ssrfPolicy` allows, each
//! redirect checked), so `send` lends the gateway's network reach no
//! further than the agent's own tool does; a local path must lie, links
//! resolved, in the state dir's media store or the agent's workspace
//! (OpenClaw's `tools.fs.workspaceOnly` shape), so `send` cannot mail out
//! the config or the credentials. Every file is capped by the channel's
//! `mediaMaxMb`.

use std::path::{Path, PathBuf};

use base64::Engine;

use super::media::{self, Attachment};
use crate::gateway::Gateway;

/// Where a file comes from.
pub enum Source {
    /// `http(s)://...`, `file://...` or an absolute path.
    Url(String),
    /// `buffer`: the bytes, base64.
    Buffer(String),
}

/// What the caller said about the file.
pub struct Described<'a> {
    pub source: Source,
    pub filename: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub voice: bool,
}

/// Reads, checks and stores the file; its reference for the outbox.
pub async fn resolve(
    gateway: &Gateway,
    agent_id: &str,
    cap: u64,
    described: Described<'_>,
) -> Result<Attachment, String> {
    let (bytes, served_type, source_name) = match &described.source {
        Source::Buffer(text) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|error| format!("buffer is not base64: {error}"))?;
            (bytes, None, None)
        }
        Source::Url(url) if url.starts_with("http://") || url.starts_with("https://") => {
            let policy = crate::agent::tools::web_fetch::Policy::from_tools_config(
                gateway.config().tools.as_ref(),
            );
            let (bytes, served) =
                crate::agent::tools::web_fetch::fetch_bytes(&policy, url, cap).await?;
            let name = reqwest::Url::parse(url).ok().and_then(|url| {
                url.path_segments()
                    .and_then(|mut segments| segments.next_back().map(str::to_owned))
                    .filter(|name| !name.is_empty())
            });
            (bytes, served, name)
        }
        Source::Url(path) => {
            let path = path.strip_prefix("file://").unwrap_or(path);
            let allowed = allowed_roots(gateway, agent_id);
            let bytes = read_local(Path::new(path), &allowed, cap).await?;
            let name = Path::new(path)
                .file_name()
                .map(|name| name.to_string_lossy().into_owned());
            (bytes, None, name)
        }
    };
    if bytes.len() as u64 > cap {
        return Err(format!(
            "the file is larger than the channel's {cap} bytes (mediaMaxMb)"
        ));
    }
    if bytes.is_empty() {
        return Err("the file is empty".to_owned());
    }
    let name = described
        .filename
        .map(str::to_owned)
        .or(source_name)
        .unwrap_or_else(|| "file".to_owned());
    let mime = described
        .content_type
        .map(str::to_owned)
        .or(served_type.filter(|served| served != "application/octet-stream"))
        .unwrap_or_else(|| guess_mime(&name).to_owned());
    let stored = media::store(&gateway.state_root, &bytes).await?;
    Ok(Attachment {
        sha256: stored.sha256,
        mime,
        name,
        size: stored.size,
        voice: described.voice,
    })
}

/// OpenClaw's reply convention: a line `MEDIA:<path or URL>` (the value
/// may be quoted) asks for that file to be sent; such lines are taken out
/// of the text. Lines inside code fences are text.
pub fn split_media_lines(text: &str) -> (String, Vec<String>) {
    let mut kept = Vec::new();
    let mut media = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("```") {
            fenced = !fenced;
        }
        match trimmed.strip_prefix("MEDIA:") {
            Some(value) if !fenced => {
                let value = value
                    .trim()
                    .trim_matches(|c| c == '"' || c == '\'' || c == '`');
                if !value.is_empty() {
                    media.push(value.to_owned());
                }
            }
            _ => kept.push(line),
        }
    }
    (kept.join("\n").trim().to_owned(), media)
}

/// The state dir's media store and the agent's workspace, links resolved
/// (a root that does not exist yet allows nothing).
fn allowed_roots(gateway: &Gateway, agent_id: &str) -> Vec<PathBuf> {
    let workspace = crate::agent::workspace::dir(&gateway.config(), &gateway.state_root, agent_id);
    [gateway.state_root.join("media"), workspace]
        .iter()
        .filter_map(|root| std::fs::canonicalize(root).ok())
        .collect()
}

async fn read_local(path: &Path, allowed: &[PathBuf], cap: u64) -> Result<Vec<u8>, String> {
    if !path.is_absolute() {
        return Err(format!(
            "{} is not an absolute path or an http(s) URL",
            path.display()
        ));
    }
    let resolved =
        std::fs::canonicalize(path).map_err(|error| format!("{}: {error}", path.display()))?;
    if !allowed.iter().any(|root| resolved.starts_with(root)) {
        return Err(format!(
            "{} is outside the agent's workspace and the state dir's media store: not sent",
            path.display()
        ));
    }
    let metadata = tokio::fs::metadata(&resolved)
        .await
        .map_err(|error| format!("{}: {error}", path.display()))?;
    if !metadata.is_file() {
        return Err(format!("{} is not a file", path.display()));
    }
    if metadata.len() > cap {
        return Err(format!(
            "{} is larger than the channel's {cap} bytes (mediaMaxMb)",
            path.display()
        ));
    }
    tokio::fs::read(&resolved)
        .await
        .map_err(|error| format!("{}: {error}", path.display()))
}

/// A mime type from a file name's extension (what platforms need to show
/// a photo as a photo); anything else is sent as a document.
pub fn guess_mime(name: &str) -> &'static str {
    let extension = name
        .rsplit_once('.')
        .map(|(_, extension)| extension.to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ogg" | "oga" | "opus" => "audio/ogg",
        "mp3" => "audio/mpeg",
        "m4a" => "audio/mp4",
        "wav" => "audio/wav",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        "md" => "text/markdown",
        "json" => "application/json",
        "csv" => "text/csv",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_lines_are_taken_out_of_the_text() {
        let (text, media) = split_media_lines(
            "Here it is.\nMEDIA: \"/ws/My File.png\"\n```\nMEDIA:/not/this\n```\nMEDIA:https://x.example/a.pdf",
        );
        assert_eq!(text, "Here it is.\n```\nMEDIA:/not/this\n```");
        assert_eq!(media, vec!["/ws/My File.png", "https://x.example/a.pdf"]);
        assert_eq!(
            split_media_lines("no media"),
            ("no media".to_owned(), Vec::new())
        );
    }

    #[test]
    fn mime_from_the_name() {
        assert_eq!(guess_mime("a.JPG"), "image/jpeg");
        assert_eq!(guess_mime("voice.ogg"), "audio/ogg");
        assert_eq!(guess_mime("noext"), "application/octet-stream");
    }

    #[tokio::test]
    async fn local_paths_are_confined() {
        let dir = tempfile::tempdir().expect("tempdir");
        let inside = dir.path().join("ws");
        std::fs::create_dir(&inside).expect("ws");
        std::fs::write(inside.join("a.png"), b"png").expect("file");
        std::fs::write(dir.path().join("secret.json"), b"{}").expect("secret");
        let allowed = vec![std::fs::canonicalize(&inside).expect("root")];
        assert_eq!(
            read_local(&inside.join("a.png"), &allowed, 10)
                .await
                .expect("inside"),
            b"png"
        );
        let escape = inside.join("../secret.json");
        let refused = read_local(&escape, &allowed, 10)
            .await
            .expect_err("outside");
        assert!(
            refused.contains("outside the agent's workspace"),
            "{refused}"
        );
        let big = read_local(&inside.join("a.png"), &allowed, 2)
            .await
            .expect_err("cap");
        assert!(big.contains("larger"), "{big}");
        assert!(read_local(Path::new("a.png"), &allowed, 10).await.is_err());
    }
}
